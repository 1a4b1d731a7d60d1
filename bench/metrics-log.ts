// A realistic metrics log for the benchmarks (bench/metrics-summary.ts, bench/report.ts): `ai-tools run` records of
// 5 models on 4 engines, 2% errors, log-normal latencies, one request every second on average (1,000,000 lines span
// about 11.6 days). Deterministic for a given line count.
import { createWriteStream } from "node:fs";
import type { MetricsRecord } from "../pipeline/metrics/record.js";
import { prng } from "../test/helpers/prng.js";

export async function generateMetricsLog(path: string, lines: number): Promise<void> {
  const rand = prng(20240601);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join("");
  const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
  const gpu = { count: 1, names: ["NVIDIA GeForce RTX 4090"] };
  const models = [
    { name: "llama-2-7b-chat.Q4_K_M.gguf", version: "v1.0", engine: "llama.cpp", ttft: 180, tps: 95, local: true, weight: 0.35 },
    { name: "mistral-7b-instruct-v0.2.Q5_K_M.gguf", version: "v0.2", engine: "llama.cpp", ttft: 210, tps: 80, local: true, weight: 0.25 },
    { name: "phi-3-mini-4k-instruct-q4.gguf", version: "2024-05", engine: "node-llama-cpp", ttft: 90, tps: 140, local: true, weight: 0.15 },
    { name: "ReluLLaMA-7B.powerinfer.gguf", version: "v1", engine: "powerinfer", ttft: 300, tps: 45, local: true, weight: 0.15 },
    { name: "gpt-4o-mini", version: null, engine: "openai", ttft: 450, tps: 60, local: false, weight: 0.1 },
  ].map((m) => ({
    ...m,
    checksum: m.local ? hex(64) : null,
    path: m.local ? `/srv/models/${m.name}` : null,
    policyHash: hex(64),
    engineInfo: m.local ? { name: m.engine, version: `build ${1500 + Math.floor(rand() * 200)} (${hex(7)})`, commit: hex(40) } : { name: m.engine, version: "gpt-4o-mini-2024-07-18", commit: null },
  }));
  const errorCodes = ["E_ENGINE_TIMEOUT", "E_ENGINE_HTTP", "E_ENGINE_FAILED"];
  const out = createWriteStream(path);
  let time = Date.parse("2024-06-01T00:00:00Z");
  const batch: string[] = [];
  for (let i = 0; i < lines; i++) {
    let pick = rand();
    const m = models.find((x) => (pick -= x.weight) < 0) ?? models[0]!;
    time += Math.floor(rand() * 2000);
    const failed = rand() < 0.02;
    const promptTokens = 20 + Math.floor(rand() * 500);
    const generatedTokens = 16 + Math.floor(rand() * 496);
    const ttft = m.ttft * Math.exp(0.5 * gauss());
    const tps = Math.max(1, m.tps * (1 + 0.15 * gauss()));
    const record: MetricsRecord = {
      schemaVersion: 1,
      time: new Date(time).toISOString(),
      model: { name: m.name, version: m.version, checksum: m.checksum, path: m.path },
      engine: m.engineInfo,
      policyHash: m.policyHash,
      host: { name: "detected", physicalCores: 16, gpus: gpu },
      exitStatus: failed ? errorCodes[Math.floor(rand() * errorCodes.length)]! : "ok",
      metrics: failed
        ? null
        : {
            timeToFirstTokenMs: round(ttft, 2),
            totalMs: round(ttft + (generatedTokens / tps) * 1000, 2),
            promptTokens,
            generatedTokens,
            promptTokensPerSecond: round((promptTokens / ttft) * 1000, 2),
            generationTokensPerSecond: round(tps, 2),
            source: m.local ? "engine" : "measured",
            ...(m.local ? { peakRssBytes: Math.round(4.2e9 * (1 + 0.05 * rand())), cpuUserMs: round(ttft * 8, 1), cpuSystemMs: round(ttft * 0.3, 1) } : {}),
          },
      promptChars: promptTokens * 4,
      outputChars: failed ? 0 : generatedTokens * 4,
    };
    batch.push(JSON.stringify(record));
    if (batch.length === 10_000 || i === lines - 1) {
      if (!out.write(`${batch.join("\n")}\n`)) await new Promise<void>((resolve) => out.once("drain", () => resolve()));
      batch.length = 0;
    }
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}
