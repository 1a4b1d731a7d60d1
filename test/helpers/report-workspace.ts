/**
 * A workspace as a fleet's report sees it, built with the project's own writers (bench.json through its schema,
 * policy.yaml through convert's renderer, signatures and provenance through the signing library, the engine's build
 * record in the executor's format):
 *
 * - tiny-relu-llama: signed and intact; bench results of three releases (v0.1, v0.2, v0.3) on a 2-core CI host
 *   (manifests/, the model folder's copy of v0.3 being the same bytes) and of the same three on a GPU box (a --baseline
 *   folder), where v0.3 regressed beyond the gate;
 * - relu-llama-2-7b: signed and intact, but its provenance records an older engine build than the one here (drift);
 * - bamboo-base-7b: signed, then a byte of its weights changed (tampered: E_DIGEST_MISMATCH);
 * - a broken bench.json under manifests/ (found, reported, left out);
 * - a 10,000-line metrics log over 48 hours: two models, one of them on two engine versions, 2% errors, 3 malformed lines.
 *
 * Everything the tests assert is derived from the exported design below, not from the report.
 */
import { createHash, generateKeyPairSync, type KeyObject } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { stringify } from "yaml";
import { deriveHostClass } from "../../pipeline/model-bench/host.js";
import { buildAggregates, BENCH_SCHEMA_VERSION, serializeBenchResult, type BenchResultInput, type BenchRun } from "../../pipeline/model-bench/result.js";
import type { Timings } from "../../pipeline/model-bench/timings.js";
import type { MetricsRecord } from "../../pipeline/metrics/record.js";
import { publicKeyPem } from "../../pipeline/signing/keys.js";
import type { ProvenanceInput } from "../../pipeline/signing/provenance.js";
import { signModelDirectory } from "../../pipeline/signing/sign.js";
import { renderPolicy } from "../../tasks/convert.js";
import { powerInferModelSpec, writeGguf } from "./gguf-writer.js";
import { prng } from "./prng.js";

export const CPU_HOST = { cpuModel: "AMD EPYC 7763 64-Core Processor", physicalCores: 2, logicalCores: 4, memoryBytes: 16 * 2 ** 30, gpus: [] as { name: string; driver: string; memoryBytes: number }[] };
export const GPU_HOST = {
  cpuModel: "AMD Ryzen 9 7950X 16-Core Processor",
  physicalCores: 16,
  logicalCores: 32,
  memoryBytes: 64 * 2 ** 30,
  gpus: [{ name: "NVIDIA GeForce RTX 4090", driver: "580.95.05", memoryBytes: 24 * 2 ** 30 }],
};
export const CPU_CLASS = deriveHostClass(CPU_HOST);
export const GPU_CLASS = deriveHostClass(GPU_HOST);

/** The engine build here, and the older one relu-llama-2-7b's provenance records. */
export const ENGINE = { commit: "d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8", buildNumber: 1590, main: "#!/bin/sh\n# PowerInfer main, build 1590 (fixture)\n" };
export const OLD_ENGINE = { commit: "7e1a3c9d0b8f2a4c6e5d7f9b1a3c5e7d9f0b2a4c", buildNumber: 1544, main: "#!/bin/sh\n# PowerInfer main, build 1544 (fixture)\n" };

export interface DesignedResult {
  model: string;
  hostClass: string;
  backend: "cpu" | "cuda";
  /** Where it is written: a model folder, manifests/<model>/<version>/, or the GPU box's --baseline folder. */
  place: "model" | "manifest" | "baseline";
  version: string | null;
  createdAt: string;
  /** Measured runs: generation and prompt tokens/s per run. */
  evalTps: number[];
  promptTps: number[];
  /** Written before end-to-end tokens/s existed (aggregate null). */
  noEndToEnd?: boolean;
}

const day = (d: string) => `2025-${d}T10:00:00.000Z`;

/** Every result written (the model folder's copy of tiny v0.3 is the same bytes as its manifest, so counted once). */
export const DESIGNED_RESULTS: readonly DesignedResult[] = [
  { model: "tiny-relu-llama", hostClass: CPU_CLASS, backend: "cpu", place: "manifest", version: "v0.1", createdAt: day("09-02"), evalTps: [612, 640, 655, 630, 648], promptTps: [2210, 2290, 2305, 2250, 2280], noEndToEnd: true },
  { model: "tiny-relu-llama", hostClass: CPU_CLASS, backend: "cpu", place: "manifest", version: "v0.2", createdAt: day("10-14"), evalTps: [655, 671, 690, 668, 662], promptTps: [2330, 2360, 2391, 2340, 2352] },
  { model: "tiny-relu-llama", hostClass: CPU_CLASS, backend: "cpu", place: "manifest", version: "v0.3", createdAt: day("11-20"), evalTps: [640, 662, 675, 651, 667], promptTps: [2300, 2341, 2370, 2320, 2333] },
  { model: "tiny-relu-llama", hostClass: GPU_CLASS, backend: "cuda", place: "baseline", version: "v0.1", createdAt: day("09-03"), evalTps: [2310, 2388, 2402, 2350, 2371], promptTps: [9100, 9260, 9310, 9205, 9222], noEndToEnd: true },
  { model: "tiny-relu-llama", hostClass: GPU_CLASS, backend: "cuda", place: "baseline", version: "v0.2", createdAt: day("10-15"), evalTps: [2420, 2466, 2490, 2451, 2475], promptTps: [9400, 9520, 9588, 9470, 9505] },
  // The regression: every run well below v0.2's, and more than 10% down.
  { model: "tiny-relu-llama", hostClass: GPU_CLASS, backend: "cuda", place: "baseline", version: "v0.3", createdAt: day("11-21"), evalTps: [1980, 2010, 2051, 1995, 2022], promptTps: [8800, 8950, 9012, 8890, 8921] },
  { model: "relu-llama-2-7b", hostClass: CPU_CLASS, backend: "cpu", place: "model", version: null, createdAt: day("08-28"), evalTps: [4.1, 4.3, 4.4, 4.2, 4.3], promptTps: [18.2, 18.9, 19.1, 18.5, 18.8] },
  { model: "bamboo-base-7b", hostClass: CPU_CLASS, backend: "cpu", place: "model", version: null, createdAt: day("11-22"), evalTps: [3.9, 4.0, 4.1, 3.95, 4.05], promptTps: [17.1, 17.5, 17.8, 17.3, 17.4] },
];

export const TAMPERED_MODEL = "bamboo-base-7b";
export const DRIFTED_MODEL = "relu-llama-2-7b";
export const INTACT_MODEL = "tiny-relu-llama";
export const MODELS = [INTACT_MODEL, DRIFTED_MODEL, TAMPERED_MODEL] as const;

// ---- the metrics log ----------------------------------------------------------------------------------------------

export const LOG_START = Date.parse("2025-11-24T00:00:00Z");
export const LOG_HOURS = 48;
export const LOG_LINES = 10_000;
/** Lines (1-based) replaced by something that is not a record. */
export const MALFORMED_LINES = [17, 4_242, 9_999];

export interface LogSeries {
  /** As the report names it: name@version. */
  key: string;
  model: MetricsRecord["model"];
  engine: MetricsRecord["engine"];
  /** Hours [from, to) of the log in which this series serves. */
  hours: [number, number];
  ttftMs: number;
  tps: number;
  rssBytes: number;
  gpuBytes: number | null;
}

const tinyModel = { name: "model.powerinfer.gguf", version: "v0.3", checksum: null, path: "models/powerinfer/tiny-relu-llama/model.powerinfer.gguf" };
export const LOG_SERIES: readonly LogSeries[] = [
  { key: "model.powerinfer.gguf@v0.3", model: tinyModel, engine: { name: "powerinfer", version: "build 1544 (7e1a3c9)", commit: OLD_ENGINE.commit }, hours: [0, 24], ttftMs: 38, tps: 610, rssBytes: 310 * 2 ** 20, gpuBytes: 1_150 * 2 ** 20 },
  { key: "model.powerinfer.gguf@v0.3", model: tinyModel, engine: { name: "powerinfer", version: "build 1590 (d3ebd7c)", commit: ENGINE.commit }, hours: [24, 48], ttftMs: 31, tps: 655, rssBytes: 296 * 2 ** 20, gpuBytes: 1_090 * 2 ** 20 },
  {
    key: "llama-2-7b-chat.Q4_K_M.gguf@v1.0",
    model: { name: "llama-2-7b-chat.Q4_K_M.gguf", version: "v1.0", checksum: null, path: "/srv/models/llama-2-7b-chat.Q4_K_M.gguf" },
    engine: { name: "llama.cpp", version: "node-llama-cpp 3.21.1", commit: null },
    hours: [0, 48],
    ttftMs: 190,
    tps: 92,
    rssBytes: 4_300 * 2 ** 20,
    gpuBytes: null,
  },
];

/** The log's lines: every 17.28 s a request, from one of the series serving at that hour; 2% fail. */
export function metricsLogLines(): { lines: string[]; records: MetricsRecord[] } {
  const rand = prng(1117);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const step = (LOG_HOURS * 3_600_000) / LOG_LINES;
  const lines: string[] = [];
  const records: MetricsRecord[] = [];
  for (let i = 0; i < LOG_LINES; i++) {
    if (MALFORMED_LINES.includes(i + 1)) {
      lines.push(i === 16 ? "{not json" : JSON.stringify({ schemaVersion: 2, note: "a future format" }));
      continue;
    }
    const time = LOG_START + Math.floor(i * step);
    const hour = Math.floor((time - LOG_START) / 3_600_000);
    const serving = LOG_SERIES.filter((s) => hour >= s.hours[0] && hour < s.hours[1]);
    const s = serving[Math.floor(rand() * serving.length)]!;
    const failed = rand() < 0.02;
    const ttft = s.ttftMs * Math.exp(0.35 * gauss());
    const tps = s.tps * (1 + 0.1 * gauss());
    const generated = 16 + Math.floor(rand() * 240);
    const record: MetricsRecord = {
      schemaVersion: 1,
      time: new Date(time).toISOString(),
      model: s.model,
      engine: s.engine,
      policyHash: "c".repeat(64),
      host: { name: s.gpuBytes ? "gpu-box" : "detected", physicalCores: 16, gpus: s.gpuBytes ? { count: 1, names: ["NVIDIA GeForce RTX 4090"] } : { count: 0, names: [] } },
      exitStatus: failed ? (rand() < 0.5 ? "E_ENGINE_TIMEOUT" : "E_ENGINE_FAILED") : "ok",
      metrics: failed
        ? null
        : {
            timeToFirstTokenMs: Math.round(ttft * 100) / 100,
            totalMs: Math.round((ttft + (generated / tps) * 1000) * 100) / 100,
            promptTokens: 12,
            generatedTokens: generated,
            promptTokensPerSecond: Math.round((12 / ttft) * 100_000) / 100,
            generationTokensPerSecond: Math.round(tps * 100) / 100,
            source: "engine",
            peakRssBytes: Math.round(s.rssBytes * (1 + 0.03 * rand())),
            ...(s.gpuBytes ? { gpuMemoryBytes: Math.round(s.gpuBytes * (1 + 0.02 * rand())) } : {}),
          },
      promptChars: 48,
      outputChars: failed ? 0 : generated * 4,
    };
    records.push(record);
    lines.push(JSON.stringify(record));
  }
  return { lines, records };
}

// ---- the workspace ------------------------------------------------------------------------------------------------

export interface ReportWorkspace {
  root: string;
  /** The GPU box's results, as a folder for --baseline (<model>/<version>/bench.json). */
  gpuResults: string;
  metricsLog: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

function timings(evalTps: number, promptTps: number): Timings {
  const promptTokens = 11;
  const evalRuns = 15;
  const promptEvalMs = (promptTokens / promptTps) * 1000;
  const evalMs = (evalRuns / evalTps) * 1000;
  return {
    loadMs: 0.9,
    sampleMs: 0.26,
    sampleRuns: 16,
    promptEvalMs,
    promptTokens,
    evalMs,
    evalRuns,
    totalMs: promptEvalMs + evalMs + 1,
    promptTokensPerSecond: promptTps,
    evalTokensPerSecond: evalTps,
    msPerToken: 1000 / evalTps,
    warnings: [],
  };
}

export function benchJson(d: DesignedResult, modelSha256: string): string {
  const host = d.hostClass === GPU_CLASS ? GPU_HOST : CPU_HOST;
  const engine = d.createdAt < day("09-15") || d.model === DRIFTED_MODEL ? OLD_ENGINE : ENGINE;
  const runs: BenchRun[] = d.evalTps.map((tps, i) => ({
    timings: timings(tps, d.promptTps[i]!),
    peakRssBytes: 40_000_000 + i * 4096,
    cpuUserMs: 20,
    cpuSystemMs: 2,
    ...(d.backend === "cuda" ? { gpuMemoryBytes: 1_100 * 2 ** 20 } : {}),
    wallMs: 30 + i,
    exitCode: 0,
  }));
  const buildDir = `build/powerinfer/${d.backend}-${sha256(engine.commit + d.backend).slice(0, 12)}`;
  const aggregates = buildAggregates(runs);
  const result: BenchResultInput = {
    schemaVersion: BENCH_SCHEMA_VERSION,
    model: { name: d.model, file: `models/powerinfer/${d.model}/model.powerinfer.gguf`, sha256: modelSha256, sparse: true, fileType: 1 },
    engine: { buildDir, backend: d.backend, buildNumber: engine.buildNumber, buildCommit: engine.commit.slice(0, 7), binarySha256: sha256(d.backend === "cpu" ? engine.main : engine.main + d.backend) },
    host: { ...host, os: "Debian GNU/Linux 12 (bookworm)", kernel: "6.1.0-41-amd64", hostClass: d.hostClass },
    settings: { threads: host.physicalCores, prompt: "Once upon a time", promptTokens: 11, nPredict: 16, ctxSize: 256, seed: 42, temp: 0.8, topP: 0.9, warmupRuns: 1, runs: runs.length },
    command: [`${buildDir}/bin/main`, "-m", `models/powerinfer/${d.model}/model.powerinfer.gguf`, "-n", "16", "-t", String(host.physicalCores), "--seed", "42"],
    runs,
    aggregates: { ...aggregates, ...(d.noEndToEnd ? { endToEndTokensPerSecond: null } : {}) },
    createdAt: d.createdAt,
  };
  return serializeBenchResult(result);
}

function provenance(model: string, engine: typeof ENGINE, benchSha: string | null): ProvenanceInput {
  const generated = model === INTACT_MODEL;
  const repo = model === DRIFTED_MODEL ? "SparseLLM/ReluLLaMA-7B" : "PowerInfer/Bamboo-base-v0_1";
  const repoCommit = sha256(repo).slice(0, 40);
  const upstream = "https://github.com/SJTU-IPADS/PowerInfer.git";
  return {
    modelId: model,
    externalParameters: {
      recipe: model,
      modelId: model,
      source: generated ? { uri: "file:scripts/make-tiny-relu-llama.py", revision: "seed 0" } : { uri: `https://huggingface.co/${repo}`, revision: "main" },
      options: { outtype: "f16", vocabtype: generated ? "spm" : null, quantize: null },
      model: { format: "gguf", quantization: "f16", family: "relu-llama" },
      audit: { model_version: model === INTACT_MODEL ? "v0.3" : "v1", source_repo: repo },
    },
    internalParameters: {
      build: { backend: "cpu", buildDir: "build/powerinfer/cpu-a478faa057c3", configureArgs: ["-DCMAKE_BUILD_TYPE=Release"], tools: {}, buildNumber: engine.buildNumber, mainSha256: sha256(engine.main) },
      python: { path: "/usr/bin/python3", version: "3.11.2", modules: { numpy: "1.24.2", sentencepiece: "0.1.99" } },
      converter: { script: "convert.py", argv: ["convert.py", "--outfile", "model.powerinfer.gguf"] },
      signingKey: { hint: "fixture", curve: "P-256", development: false },
    },
    resolvedDependencies: [
      { name: "powerinfer", uri: `git+${upstream}@${engine.commit}`, digest: { gitCommit: engine.commit } },
      { name: "converter convert.py", uri: `git+${upstream}@${engine.commit}#convert.py`, digest: { sha256: sha256("convert.py " + engine.commit) } },
      ...(generated
        ? [{ name: "checkpoint generator", uri: "file:scripts/make-tiny-relu-llama.py", digest: { sha256: sha256("generator") }, annotations: { seed: 0 } }]
        : [{ uri: `git+https://huggingface.co/${repo}@${repoCommit}`, digest: { gitCommit: repoCommit }, annotations: { revision: "main" } }]),
    ],
    builder: { id: "https://github.com/ai-tools/ai-tools/.github/workflows/release.yml@refs/tags/v0.3.0", version: { "ai-tools": "0.1.0", powerinfer: engine.commit } },
    invocationId: "urn:uuid:00000000-0000-4000-8000-000000000000",
    startedOn: "2025-11-20T09:58:00.000Z",
    finishedOn: "2025-11-20T10:02:00.000Z",
    byproducts: benchSha ? [{ name: "bench.json", digest: { sha256: benchSha } }] : [],
  };
}

/** The build record `pnpm pipeline engine` leaves (build/state/build.lock.json), for the engine build here. */
function writeEngineBuild(root: string): void {
  const main = "build/powerinfer/cpu-a478faa057c3/bin/main";
  mkdirSync(join(root, dirname(main)), { recursive: true });
  writeFileSync(join(root, main), ENGINE.main, { mode: 0o755 });
  const record = {
    schema: 1,
    task: "build",
    instance: "build",
    fingerprint: sha256("fingerprint"),
    inputs: { values: {}, tools: {}, env: {}, files: {} },
    outputs: { [main]: { type: "file", size: ENGINE.main.length, mtimeMs: Date.now(), sha256: sha256(ENGINE.main) } },
    result: { backend: "cpu", buildDir: dirname(dirname(main)), binaries: { main }, buildInfo: { number: ENGINE.buildNumber, commit: ENGINE.commit.slice(0, 7) }, sourceCommit: ENGINE.commit },
    startedAt: "2025-11-20T09:00:00.000Z",
    finishedAt: "2025-11-20T09:01:00.000Z",
    durationMs: 60_000,
  };
  mkdirSync(join(root, "build", "state"), { recursive: true });
  writeFileSync(join(root, "build", "state", "build.lock.json"), JSON.stringify(record, null, 2));
}

async function writeModel(root: string, model: string, key: KeyObject): Promise<string> {
  const dir = join(root, "models", "powerinfer", model);
  mkdirSync(dir, { recursive: true });
  const gguf = join(dir, "model.powerinfer.gguf");
  writeGguf(gguf, powerInferModelSpec({ name: model }));
  const ggufSha = sha256(readFileSync(gguf));
  const version = model === INTACT_MODEL ? "v0.3" : "v1";
  writeFileSync(
    join(dir, "policy.yaml"),
    renderPolicy(
      {
        model,
        recipeFile: `configs/models/powerinfer/${model}.yaml`,
        generation: { temperature: 0.8, top_p: 0.9, top_k: 40, repeat_penalty: 1.1, n_predict: 16, ctx_size: 256 },
        runtime: { threads: "auto" },
        audit: { model_version: version, source_repo: "SparseLLM/ReluLLaMA-7B" },
      } as Parameters<typeof renderPolicy>[0],
      `powerinfer/${model}/model.powerinfer.gguf`,
      ggufSha,
    ),
  );
  const own = DESIGNED_RESULTS.filter((d) => d.model === model && (d.place === "model" || (d.place === "manifest" && d.version === version)));
  let benchSha: string | null = null;
  for (const d of own) {
    const text = benchJson(d, ggufSha);
    writeFileSync(join(dir, "bench.json"), text);
    benchSha = sha256(text);
  }
  await signModelDirectory(dir, { privateKey: key, provenance: provenance(model, model === DRIFTED_MODEL ? OLD_ENGINE : ENGINE, benchSha), subjectName: model });
  return ggufSha;
}

export async function makeReportWorkspace(): Promise<ReportWorkspace> {
  const base = mkdtempSync(join(tmpdir(), "ai-tools-report-"));
  const root = join(base, "workspace");
  const gpuResults = join(base, "gpu-box");
  mkdirSync(join(root, "configs"), { recursive: true });
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  writeFileSync(join(root, "configs", "trusted-keys.yaml"), stringify({ keys: [{ id: "release-2025", publicKey: publicKeyPem(publicKey) }] }));
  writeEngineBuild(root);

  const modelSha: Record<string, string> = {};
  for (const model of MODELS) modelSha[model] = await writeModel(root, model, privateKey);

  // The releases of tiny-relu-llama as `sign` publishes them; v0.3 is the model folder's signed state.
  for (const d of DESIGNED_RESULTS) {
    if (d.place === "manifest") {
      const dir = join(root, "manifests", d.model, d.version!);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "bench.json"), benchJson(d, modelSha[d.model]!));
      if (d.version === "v0.3") for (const f of ["model.sig", "provenance.sigstore.json", "SHA256SUMS", "policy.yaml"]) copyFileSync(join(root, "models", "powerinfer", d.model, f), join(dir, f));
    } else if (d.place === "baseline") {
      const dir = join(gpuResults, d.model, d.version!);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "bench.json"), benchJson(d, modelSha[d.model]!));
    }
  }
  // A bench.json someone hand-edited: found, named in the report's problems, left out.
  mkdirSync(join(root, "manifests", INTACT_MODEL, "v0.0"), { recursive: true });
  writeFileSync(join(root, "manifests", INTACT_MODEL, "v0.0", "bench.json"), `{"schemaVersion": 1, "model": {"name": "tiny-relu-llama"}}\n`);

  // Tampered after signing: same size, one byte different, deep in the tensor data.
  const tampered = join(root, "models", "powerinfer", TAMPERED_MODEL, "model.powerinfer.gguf");
  const bytes = readFileSync(tampered);
  bytes[bytes.length - 100]! ^= 0xff;
  writeFileSync(tampered, bytes);

  const metricsLog = join(base, "metrics.jsonl");
  writeFileSync(metricsLog, metricsLogLines().lines.join("\n") + "\n");

  const env: NodeJS.ProcessEnv = { ...process.env, AI_TOOLS_ROOT: root, CI: "true", XDG_CACHE_HOME: join(base, "cache") };
  for (const name of ["AI_TOOLS_POWERINFER_BIN", "AI_TOOLS_METRICS_LOG", "AI_TOOLS_MODEL_ROOT"]) delete env[name];
  return { root, gpuResults, metricsLog, env, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}
