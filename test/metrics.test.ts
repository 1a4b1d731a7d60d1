import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RequestMetrics } from "../engines/types.js";
import { EngineError } from "../engines/types.js";
import { escapeLabelValue, renderPrometheusText, writePrometheusTextfile } from "../pipeline/metrics/prometheus.js";
import { appendMetricsRecord, buildMetricsRecord, MAX_LOGGED_TEXT_CHARS, type MetricsRecord } from "../pipeline/metrics/record.js";
import { createSketch } from "../pipeline/metrics/sketch.js";
import { formatSummaryTable, summarizeMetricsLog, summarizeRecords } from "../pipeline/metrics/summary.js";
import type { RenderedPolicy } from "../pipeline/policy/types.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";
import { prng } from "./helpers/prng.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ai-tools-metrics-"));
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(dir, { recursive: true, force: true });
});

function policy(overrides: Partial<RenderedPolicy> = {}): RenderedPolicy {
  return {
    file: "configs/policies/tiny.yaml",
    engine: "llama.cpp",
    modelPath: "/models/tiny-q4.gguf",
    generation: { temperature: 0.7, top_p: 0.9, top_k: 40, repeat_penalty: 1.1, max_tokens: 64, ctx_size: 2048, seed: -1, stop: [] },
    runtime: { threads: 2, vram_budget_gb: null, gpu_layers: null, batch_size: null },
    audit: { model_version: "v1", source_repo: "org/tiny", checksum: `sha256:${"AB".repeat(32)}` },
    sources: {},
    warnings: [],
    policyHash: "f".repeat(64),
    host: { name: "detected", source: "detected", physicalCores: 2, memoryBytes: 8 << 30, gpus: [{ name: "NVIDIA H100", memoryTotalBytes: 80e9, memoryFreeBytes: null }] },
    ...overrides,
  };
}

function metrics(overrides: Partial<RequestMetrics> = {}): RequestMetrics {
  return {
    timeToFirstTokenMs: 120,
    totalMs: 900,
    promptTokens: 12,
    generatedTokens: 64,
    promptTokensPerSecond: 400,
    generationTokensPerSecond: 80,
    source: "engine",
    peakRssBytes: 512 * 2 ** 20,
    ...overrides,
  };
}

const probe = { name: "llama.cpp", version: "build 1590 (d3ebd7c)", commit: "d3ebd7c" };

function record(overrides: Partial<MetricsRecord> = {}): MetricsRecord {
  return { ...buildMetricsRecord({ policy: policy(), probe, prompt: "hi", output: "hello", metrics: metrics() }), ...overrides };
}

async function readLines(file: string): Promise<string[]> {
  return (await readFile(file, "utf8")).split("\n").filter((l) => l !== "");
}


/** The quantile as the sketch defines it (nearest rank), computed exactly. */
function exactQuantile(sorted: readonly number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

describe("metrics record", () => {
  it("is built from the policy, probe and result, with sizes but no text by default", () => {
    const r = buildMetricsRecord({ policy: policy(), probe, prompt: "secret plans 😀", output: "ok!", metrics: metrics(), now: new Date(0) });
    expect(r).toMatchObject({
      schemaVersion: 1,
      time: "1970-01-01T00:00:00.000Z",
      model: { name: "tiny-q4.gguf", version: "v1", checksum: "ab".repeat(32), path: "/models/tiny-q4.gguf" },
      engine: probe,
      policyHash: "f".repeat(64),
      host: { name: "detected", physicalCores: 2, gpus: { count: 1, names: ["NVIDIA H100"] } },
      exitStatus: "ok",
      promptChars: 14,
      outputChars: 3,
    });
    expect(r.metrics).toEqual(metrics());
    expect(r).not.toHaveProperty("prompt");
    expect(r).not.toHaveProperty("output");
  });

  it("takes the error's code as exitStatus", () => {
    const failed = buildMetricsRecord({ policy: policy(), probe, prompt: "x", output: "", metrics: null, error: new EngineError("E_ENGINE_TIMEOUT", "timed out") });
    expect(failed.exitStatus).toBe("E_ENGINE_TIMEOUT");
    expect(buildMetricsRecord({ policy: policy(), probe, prompt: "x", output: "", metrics: null, error: new Error("boom") }).exitStatus).toBe("E_UNEXPECTED");
  });

  it("does not log prompts by default, logs them with logPrompts, cut to MAX_LOGGED_TEXT_CHARS", async () => {
    const file = join(dir, "nested", "deeper", "metrics.jsonl");
    await appendMetricsRecord(file, buildMetricsRecord({ policy: policy(), probe, prompt: "PROMPT-TEXT-1", output: "OUTPUT-TEXT-1", metrics: metrics() }));
    const long = "😀".repeat(MAX_LOGGED_TEXT_CHARS + 5);
    await appendMetricsRecord(file, buildMetricsRecord({ policy: policy(), probe, prompt: "PROMPT-TEXT-2", output: long, metrics: metrics(), logPrompts: true }));
    const text = await readFile(file, "utf8");
    expect(text).not.toContain("PROMPT-TEXT-1");
    expect(text).not.toContain("OUTPUT-TEXT-1");
    const [first, second] = (await readLines(file)).map((l) => JSON.parse(l) as MetricsRecord);
    expect(first).toMatchObject({ promptChars: 13, outputChars: 13 });
    expect(first).not.toHaveProperty("prompt");
    expect(second!.prompt).toBe("PROMPT-TEXT-2");
    expect(second!.outputChars).toBe(MAX_LOGGED_TEXT_CHARS + 5);
    expect(second!.output).toBe("😀".repeat(MAX_LOGGED_TEXT_CHARS));
  });

  it("never writes a secret environment value, even one with JSON-escaped characters", async () => {
    const secret = 'sk-DISTINCTIVE-"quoted"\\back-31337';
    vi.stubEnv("OPENAI_API_KEY", secret);
    vi.stubEnv("HF_TOKEN", "hf_AnotherDistinctiveToken42");
    const file = join(dir, "metrics.jsonl");
    const r = buildMetricsRecord({
      policy: policy({ modelPath: `/models/${secret}.gguf` }),
      probe: { ...probe, version: `via https://user:${secret}@host/v1` },
      prompt: `my key is ${secret} and hf_AnotherDistinctiveToken42`,
      output: `echo ${secret}`,
      metrics: metrics(),
      logPrompts: true,
    });
    await appendMetricsRecord(file, r);
    const text = await readFile(file, "utf8");
    expect(text).not.toContain("DISTINCTIVE");
    expect(text).not.toContain("hf_AnotherDistinctiveToken42");
    expect(text).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(JSON.parse(text).prompt).toBe("my key is *** and ***");
  });

  it("never interleaves lines from concurrent writers (two processes x 2,000 lines over PIPE_BUF)", async () => {
    const file = join(dir, "shared", "metrics.jsonl");
    const PER_WRITER = 2000;
    // Each line ~6 KB (> PIPE_BUF, 4 KiB), text with spaces as prompts have (redact() is slow on long unbroken runs); each writer keeps 20 appends in flight, so the two overlap heavily.
    const script = `
      import { appendMetricsRecord } from ${JSON.stringify(join(PROJECT_ROOT, "pipeline/metrics/record.ts"))};
      const [file, writer, n] = process.argv.slice(1);
      const base = JSON.parse(process.env.RECORD);
      process.stdout.write("ready\\n");
      await new Promise((resolve) => process.stdin.once("data", resolve));
      let next = 0;
      const worker = async () => {
        while (next < Number(n)) {
          const i = next++;
          await appendMetricsRecord(file, { ...base, prompt: (writer + " ").repeat(3000), promptChars: i, output: writer + ":" + i });
        }
      };
      await Promise.all(Array.from({ length: 20 }, worker));
      process.stdin.destroy();
    `;
    const env = { ...process.env, RECORD: JSON.stringify(record()) };
    const children = ["A", "B"].map((writer) =>
      spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, file, writer, String(PER_WRITER)], { cwd: PROJECT_ROOT, env, stdio: ["pipe", "pipe", "inherit"] }),
    );
    const exited = children.map((child) => new Promise<number | null>((resolve) => child.once("exit", resolve)));
    await Promise.all(children.map((child) => new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()))));
    for (const child of children) child.stdin!.write("go\n");
    expect(await Promise.all(exited)).toEqual([0, 0]);

    const lines = await readLines(file);
    expect(lines).toHaveLength(2 * PER_WRITER);
    const seen = { A: new Set<number>(), B: new Set<number>() };
    let switches = 0;
    let previous = "";
    for (const line of lines) {
      const r = JSON.parse(line) as MetricsRecord; // throws on a torn line
      const [writer, i] = r.output!.split(":") as ["A" | "B", string];
      expect(r.prompt).toBe(`${writer} `.repeat(3000));
      seen[writer].add(Number(i));
      if (previous && previous !== writer) switches++;
      previous = writer;
    }
    expect(seen.A.size).toBe(PER_WRITER);
    expect(seen.B.size).toBe(PER_WRITER);
    // The writers did run at the same time (else the test proves nothing).
    expect(switches).toBeGreaterThan(10);
  });
});

describe("quantile sketch", () => {
  it("is within its relative accuracy on a wide distribution and handles zeros", () => {
    const rand = prng(7);
    const sketch = createSketch();
    const values: number[] = [];
    for (let i = 0; i < 50_000; i++) {
      const v = i % 100 === 0 ? 0 : Math.exp(rand() * 20 - 5);
      values.push(v);
      sketch.accept(v);
    }
    values.sort((a, b) => a - b);
    for (const q of [0, 0.001, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1]) {
      // DDSketch takes the rank below nearest-rank: either neighbour is an exact answer.
      const got = sketch.getValueAtQuantile(q);
      const candidates = [exactQuantile(values, q), values[Math.floor(q * (values.length - 1))]!];
      const close = candidates.some((exact) => (exact === 0 ? Math.abs(got) < 1e-9 : Math.abs(got - exact) / exact <= 0.01 + 1e-12));
      expect(close, `q=${q}: ${got} vs ${candidates.join(" / ")}`).toBe(true);
    }
    expect(Number.isNaN(createSketch().getValueAtQuantile(0.5))).toBe(true);
  });

  it("merges: two sketches merged answer as one sketch fed both halves (time buckets becoming one)", () => {
    const rand = prng(11);
    const [a, b, whole] = [createSketch(), createSketch(), createSketch()];
    for (let i = 0; i < 20_000; i++) {
      const v = Math.exp(rand() * 12);
      (i % 3 === 0 ? a : b).accept(v);
      whole.accept(v);
    }
    a.merge(b);
    expect([a.count, a.min, a.max]).toEqual([whole.count, whole.min, whole.max]);
    expect(a.sum).toBeCloseTo(whole.sum, 3);
    for (const q of [0.01, 0.5, 0.95, 0.99]) expect(a.getValueAtQuantile(q)).toBe(whole.getValueAtQuantile(q));
    expect(() => a.merge({ ...b })).toThrow(/not a sketch from createSketch/);
  });
});

describe("metrics summary", () => {
  it("gives per-model percentiles within 2% of exact, streaming the log", async () => {
    const file = join(dir, "metrics.jsonl");
    const rand = prng(42);
    const values = { a: { ttft: [] as number[], total: [] as number[], gen: [] as number[] }, b: { ttft: [] as number[], total: [] as number[], gen: [] as number[] } };
    const lines: string[] = [];
    const base = record();
    for (let i = 0; i < 20_000; i++) {
      const which = i % 4 === 0 ? "b" : "a";
      const failed = i % 50 === 0;
      // Log-normal latencies (a long right tail, like real ones) and a uniform speed.
      const total = Math.exp(Math.log(which === "a" ? 800 : 3000) + 0.6 * gaussian(rand));
      const ttft = total * (0.05 + 0.1 * rand());
      const gen = 20 + 80 * rand();
      if (!failed) {
        values[which].total.push(total);
        values[which].ttft.push(ttft);
        values[which].gen.push(gen);
      }
      const r: MetricsRecord = {
        ...base,
        model: { ...base.model, name: `model-${which}`, version: which === "a" ? "v1" : null },
        exitStatus: failed ? "E_ENGINE_TIMEOUT" : "ok",
        metrics: failed ? null : metrics({ totalMs: total, timeToFirstTokenMs: ttft, generationTokensPerSecond: gen, promptTokensPerSecond: null }),
      };
      lines.push(JSON.stringify(r));
    }
    await writeFile(file, `${lines.join("\n")}\n`);

    const summary = await summarizeMetricsLog(file);
    expect(summary).toMatchObject({ lines: 20_000, records: 20_000, malformed: { count: 0, first: [] } });
    expect(summary.models.map((m) => [m.model, m.engine, m.requests, m.errors])).toEqual([
      ["model-a@v1", "llama.cpp", 15_000, 200],
      ["model-b", "llama.cpp", 5_000, 200],
    ]);
    expect(summary.models[0]!.errorCodes).toEqual({ E_ENGINE_TIMEOUT: 200 });
    for (const [m, key] of [
      [summary.models[0]!, "a"],
      [summary.models[1]!, "b"],
    ] as const) {
      expect(m.metrics.promptTokensPerSecond).toBeNull();
      for (const [metric, sample] of [
        ["totalMs", values[key].total],
        ["timeToFirstTokenMs", values[key].ttft],
        ["generationTokensPerSecond", values[key].gen],
      ] as const) {
        const stats = m.metrics[metric]!;
        const sorted = [...sample].sort((x, y) => x - y);
        expect(stats.count).toBe(sorted.length);
        expect(stats.mean).toBeCloseTo(sorted.reduce((s, x) => s + x, 0) / sorted.length, 6);
        expect(stats.min).toBe(sorted[0]);
        expect(stats.max).toBe(sorted.at(-1));
        for (const [q, got] of [
          [0.5, stats.p50],
          [0.95, stats.p95],
          [0.99, stats.p99],
        ] as const) {
          expect(Math.abs(got - exactQuantile(sorted, q)) / exactQuantile(sorted, q), `${key} ${metric} p${q * 100}`).toBeLessThan(0.02);
        }
      }
    }
    // JSON-able as it is.
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary);
    const table = formatSummaryTable(summary);
    expect(table).toContain("20000 records");
    expect(table).toMatch(/model-a@v1\s+llama\.cpp\s+15000\s+200\s+E_ENGINE_TIMEOUT 200/);
    expect(table).toMatch(/model-b\s+llama\.cpp\s+total \(ms\)\s+4800\s/);
  });

  it("counts malformed lines with their line numbers and goes on", async () => {
    const file = join(dir, "metrics.jsonl");
    const good = JSON.stringify(record());
    const lines = [
      good,
      "not json at all",
      "",
      good,
      JSON.stringify({ ...record(), schemaVersion: 2 }),
      good.slice(0, 40), // a torn line
      JSON.stringify({ ...record(), metrics: metrics({ totalMs: "fast" as unknown as number }) }),
      "[1,2,3]",
      JSON.stringify({ ...record(), engine: {} }),
      "   ",
      good,
    ];
    await writeFile(file, lines.join("\r\n"));
    const summary = await summarizeMetricsLog(file);
    expect(summary.lines).toBe(9);
    expect(summary.records).toBe(3);
    expect(summary.malformed).toEqual({
      count: 6,
      first: [
        { line: 2, reason: "not JSON" },
        { line: 5, reason: "schemaVersion is not 1" },
        { line: 6, reason: "not JSON" },
        { line: 7, reason: "metrics.totalMs not a number >= 0" },
        { line: 8, reason: "not a JSON object" },
        { line: 9, reason: "engine.name missing" },
      ],
    });
    expect(summary.models[0]!.requests).toBe(3);
    expect(formatSummaryTable(summary)).toContain("6 malformed lines: 2 (not JSON), 5 (schemaVersion is not 1)");

    // Only the first 10 are located.
    await writeFile(file, Array.from({ length: 25 }, (_, i) => (i % 2 ? good : `x${i}`)).join("\n"));
    const many = await summarizeMetricsLog(file);
    expect(many.malformed.count).toBe(13);
    expect(many.malformed.first.map((m) => m.line)).toEqual([1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  });

  it("leaves out what `include` refuses (not counted as malformed) and hands each counted record to `onRecord`", async () => {
    const file = join(dir, "metrics.jsonl");
    const one = record();
    const other = { ...one, model: { ...one.model, name: "other.gguf" } };
    await writeFile(file, [JSON.stringify(one), JSON.stringify(other), "torn {", JSON.stringify(one)].join("\n"));
    const seen: string[] = [];
    const summary = await summarizeMetricsLog(file, { include: (r) => r.model.name !== "other.gguf", onRecord: (r) => seen.push(`${r.model.name} ${String(r.time)}`) });
    expect(summary.records).toBe(2);
    expect(summary.models.map((m) => m.model)).toEqual(["tiny-q4.gguf@v1"]);
    expect(summary.malformed.count).toBe(1);
    expect(seen).toEqual([`tiny-q4.gguf ${one.time}`, `tiny-q4.gguf ${one.time}`]);
  });

  it("rejects on a missing file and on abort", async () => {
    await expect(summarizeMetricsLog(join(dir, "absent.jsonl"))).rejects.toMatchObject({ code: "ENOENT" });
    const file = join(dir, "metrics.jsonl");
    await writeFile(file, `${JSON.stringify(record())}\n`.repeat(1000));
    await expect(summarizeMetricsLog(file, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });
    const controller = new AbortController();
    const pending = summarizeMetricsLog(file, { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
  });
});

/** Standard normal (Box-Muller). */
function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

// Exposition format 0.0.4: metric and label names, label values with \\, \" and \n as the only escapes.
const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_VALUE = String.raw`"(?:[^"\\\n]|\\[\\"n])*"`;
const LABELS = `\\{(?:[a-zA-Z_][a-zA-Z0-9_]*=${LABEL_VALUE})(?:,[a-zA-Z_][a-zA-Z0-9_]*=${LABEL_VALUE})*\\}`;
const VALUE = String.raw`(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)`;
const HELP = new RegExp(`^# HELP (${NAME}) (?:[^\\\\\\n]|\\\\[\\\\n])*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|summary|histogram|untyped)$`);
const SAMPLE = new RegExp(`^(${NAME})(${LABELS})? (${VALUE})(?: -?\\d+)?$`);

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(new RegExp(`([a-zA-Z_][a-zA-Z0-9_]*)=(${LABEL_VALUE})`, "g"))) out[m[1]!] = unescapeLabel(m[2]!.slice(1, -1));
  return out;
}

describe("prometheus textfile", () => {
  it("parses line by line: HELP and TYPE before each family's samples, escaped labels", async () => {
    const weird = 'we"ird\\model\nname';
    const base = record();
    const records: MetricsRecord[] = [
      { ...base, metrics: metrics({ totalMs: 1500, timeToFirstTokenMs: 250 }) },
      { ...base, metrics: metrics({ totalMs: 2500, timeToFirstTokenMs: 350 }) },
      { ...base, exitStatus: "E_ENGINE_FAILED", metrics: null },
      { ...base, model: { ...base.model, name: weird, version: null }, engine: { ...base.engine, name: 'eng"ine' }, metrics: metrics({ peakRssBytes: undefined }) },
    ];
    const file = join(dir, "textfile", "ai_tools.prom");
    await writePrometheusTextfile(file, records);
    expect(await readdir(join(dir, "textfile"))).toEqual(["ai_tools.prom"]); // no temporary left behind
    const text = await readFile(file, "utf8");
    expect(text.endsWith("\n")).toBe(true);

    const typed = new Map<string, string>();
    const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
    let helpFor = "";
    for (const line of text.slice(0, -1).split("\n")) {
      const help = HELP.exec(line);
      const type = TYPE.exec(line);
      const sample = SAMPLE.exec(line);
      if (help) helpFor = help[1]!;
      else if (type) {
        expect(type[1], "TYPE follows its HELP").toBe(helpFor);
        expect(typed.has(type[1]!), `one TYPE for ${type[1]}`).toBe(false);
        typed.set(type[1]!, type[2]!);
      } else if (sample) {
        const family = [...typed.keys()].at(-1)!;
        expect([family, `${family}_sum`, `${family}_count`], line).toContain(sample[1]);
        samples.push({ name: sample[1]!, labels: sample[2] ? parseLabels(sample[2]) : {}, value: Number(sample[3]!.replace("Inf", "Infinity")) });
      } else throw new Error(`not exposition format: ${JSON.stringify(line)}`);
    }

    const find = (name: string, labels: Record<string, string>) => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    const plain = { model: "tiny-q4.gguf@v1", engine: "llama.cpp" };
    expect(typed.get("ai_tools_requests_total")).toBe("counter");
    expect(typed.get("ai_tools_request_duration_seconds")).toBe("summary");
    expect(find("ai_tools_requests_total", plain)).toBe(3);
    expect(find("ai_tools_request_errors_total", plain)).toBe(1);
    expect(find("ai_tools_request_duration_seconds_count", plain)).toBe(2);
    expect(find("ai_tools_request_duration_seconds_sum", plain)).toBeCloseTo(4, 9);
    // Two requests (1.5 s, 2.5 s): the sketch's p99 is one of them, within its 1 %.
    const p99 = find("ai_tools_request_duration_seconds", { ...plain, quantile: "0.99" })!;
    expect([1.5, 2.5].some((v) => Math.abs(p99 - v) / v <= 0.011), String(p99)).toBe(true);
    expect(Math.abs(find("ai_tools_time_to_first_token_seconds", { ...plain, quantile: "0.5" })! - 0.25) / 0.25).toBeLessThanOrEqual(0.011);
    expect(Math.abs(find("ai_tools_generation_tokens_per_second", { ...plain, quantile: "0.5" })! - 80) / 80).toBeLessThanOrEqual(0.011);
    // The odd names come back exactly; a metric with no values has a zero count and no quantiles.
    expect(find("ai_tools_requests_total", { model: weird, engine: 'eng"ine' })).toBe(1);
    expect(find("ai_tools_peak_rss_bytes_count", { model: weird })).toBe(0);
    expect(samples.some((s) => s.name === "ai_tools_peak_rss_bytes" && s.labels.model === weird)).toBe(false);

    // A summary renders the same as its records.
    expect(renderPrometheusText(summarizeRecords(records))).toBe(text);
  });

  it("escapes label values as the format requires", () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  });
});
