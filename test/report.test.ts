/**
 * The report's library without a browser: time buckets that stay bounded and merge exactly, bench results grouped with
 * the gate per backend, every bench.json found once (and a broken one reported, a broken named one refused), the
 * --models filter across folders, results and the log, provenance facts, escaping, and the CLI's flags and errors.
 * (report-browser.test.ts opens the page in Chromium.)
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseBenchResult } from "../pipeline/model-bench/result.js";
import { parseCli } from "../pipeline/cli/program.js";
import type { MetricsRecord } from "../pipeline/metrics/record.js";
import { createSketch } from "../pipeline/metrics/sketch.js";
import { groupBenchResults, type FoundBench } from "../pipeline/report/bench-series.js";
import { findBenchResults, versionFromPath } from "../pipeline/report/bench-sources.js";
import { splitModelList } from "../pipeline/report/command.js";
import { gatherReportData } from "../pipeline/report/gather.js";
import { renderReportHtml } from "../pipeline/report/html.js";
import { provenanceFacts } from "../pipeline/report/provenance-summary.js";
import type { ReportData } from "../pipeline/report/report-data.js";
import { prefixIds } from "../pipeline/report/svg.js";
import { MAX_TIME_BUCKETS, MetricsTimeline, nextBucketWidth } from "../pipeline/report/timeline.js";
import { CPU_CLASS, DESIGNED_RESULTS, GPU_CLASS, benchJson, makeReportWorkspace, type DesignedResult, type ReportWorkspace } from "./helpers/report-workspace.js";
import { runCli } from "./helpers/workspace.js";

const HOUR = 3_600_000;

function logRecord(time: string | number, patch: { totalMs?: number; ttft?: number; engineVersion?: string; failed?: boolean; rss?: number } = {}): MetricsRecord {
  return {
    schemaVersion: 1,
    time: typeof time === "number" ? new Date(time).toISOString() : time,
    model: { name: "m.gguf", version: "v1", checksum: null, path: null },
    engine: { name: "llama.cpp", version: patch.engineVersion ?? "b1", commit: null },
    policyHash: "f".repeat(64),
    host: { name: "h", physicalCores: 2, gpus: { count: 0, names: [] } },
    exitStatus: patch.failed ? "E_ENGINE_TIMEOUT" : "ok",
    metrics: patch.failed
      ? null
      : { timeToFirstTokenMs: patch.ttft ?? 10, totalMs: patch.totalMs ?? 100, promptTokens: 1, generatedTokens: 1, promptTokensPerSecond: 1, generationTokensPerSecond: 1, source: "engine", ...(patch.rss ? { peakRssBytes: patch.rss } : {}) },
    promptChars: 1,
    outputChars: 1,
  };
}

describe("time buckets", () => {
  it("widen along 1 min, 5 min, 15 min, 1 h, 3 h, 6 h, 12 h, 1 d, 7 d, 28 d, then x4, each a multiple of the one before", () => {
    const widths = [60_000];
    while (widths.length < 13) widths.push(nextBucketWidth(widths.at(-1)!));
    expect(widths.map((w) => w / 60_000)).toEqual([1, 5, 15, 60, 180, 360, 720, 1440, 10080, 40320, 161280, 645120, 2580480]);
    for (let i = 1; i < widths.length; i++) expect(widths[i]! % widths[i - 1]!).toBe(0);
  });

  it("30 days of requests every 10 minutes: 12-hour buckets whose quantiles are exactly a sketch of the bucket's requests", () => {
    const timeline = new MetricsTimeline();
    const start = Date.parse("2025-03-01T00:00:00Z");
    const byBucket = new Map<number, number[]>();
    for (let i = 0; i < 30 * 144; i++) {
      const time = start + i * 600_000;
      const totalMs = 50 + ((i * 7919) % 1000);
      timeline.add(logRecord(time, { totalMs }));
      const bucket = Math.floor(time / (12 * HOUR));
      byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), totalMs]);
    }
    const result = timeline.result();
    expect(result.bucketMs).toBe(12 * HOUR);
    const points = result.series[0]!.points;
    expect(points).toHaveLength(60);
    expect(points.reduce((n, p) => n + p.requests, 0)).toBe(30 * 144);
    for (const p of points) {
      const sketch = createSketch();
      for (const v of byBucket.get(Date.parse(p.start) / (12 * HOUR))!) sketch.accept(v);
      expect(p.latencyMs).toEqual({ p50: sketch.getValueAtQuantile(0.5), p95: sketch.getValueAtQuantile(0.95), p99: sketch.getValueAtQuantile(0.99) });
    }
  });

  it("stay at most MAX_TIME_BUCKETS per series over years, out of order too", () => {
    const timeline = new MetricsTimeline();
    const start = Date.parse("2020-01-01T00:00:00Z");
    for (let i = 0; i < 5_000; i++) timeline.add(logRecord(start + ((i * 7_777_777_777) % (6 * 365 * 24 * HOUR)), { engineVersion: i % 2 ? "b1" : "b2" }));
    const result = timeline.result();
    expect(result.series).toHaveLength(2);
    for (const s of result.series) {
      expect(s.points.length).toBeLessThanOrEqual(MAX_TIME_BUCKETS);
      expect(s.points.map((p) => p.start)).toEqual([...s.points.map((p) => p.start)].sort());
    }
    expect(result.series.reduce((n, s) => n + s.points.reduce((m, p) => m + p.requests, 0), 0)).toBe(5_000);
  });

  it("count errors and untimed records, keep the largest peak, and read any ISO 8601 offset", () => {
    const timeline = new MetricsTimeline();
    timeline.add(logRecord("2025-01-01T00:30:00.000Z", { rss: 100 }));
    timeline.add(logRecord("2025-01-01T00:30:59.999Z", { rss: 250 }));
    timeline.add(logRecord("2025-01-01T01:31:00+01:00", { rss: 300 })); // 00:31 UTC
    timeline.add(logRecord("2025-01-01T00:32:10Z", { failed: true }));
    timeline.add(logRecord("yesterday"));
    timeline.add({ ...logRecord(0), time: undefined } as unknown as MetricsRecord);
    const result = timeline.result();
    expect(result.untimed).toBe(2);
    expect(result.bucketMs).toBe(60_000);
    expect(result.series[0]!.points.map((p) => [p.start, p.requests, p.errors, p.peakRssBytes, p.latencyMs === null])).toEqual([
      ["2025-01-01T00:30:00.000Z", 2, 0, 250, false],
      ["2025-01-01T00:31:00.000Z", 1, 0, 300, false],
      ["2025-01-01T00:32:00.000Z", 1, 1, null, true],
    ]);
  });
});

function found(d: DesignedResult, patch: (r: ReturnType<typeof parseBenchResult>) => void = () => {}): FoundBench {
  const result = parseBenchResult(benchJson(d, "a".repeat(64)));
  patch(result);
  return { result, kind: d.place === "manifest" ? "release" : d.place === "baseline" ? "baseline" : "model", version: d.version, paths: [`${d.model}/${d.version}`] };
}

describe("bench groups", () => {
  const tinyCpu = DESIGNED_RESULTS.filter((d) => d.model === "tiny-relu-llama" && d.hostClass === CPU_CLASS);
  const tinyGpu = DESIGNED_RESULTS.filter((d) => d.model === "tiny-relu-llama" && d.hostClass === GPU_CLASS);

  it("one group per model and host class, oldest first, each result gated against the previous one of its backend", () => {
    const groups = groupBenchResults([...tinyGpu, ...tinyCpu].reverse().map((d) => found(d)), { maxRegressionPercent: 10 });
    expect(groups.map((g) => [g.model, g.hostClass, g.points.map((p) => p.label)])).toEqual([
      ["tiny-relu-llama", CPU_CLASS, ["v0.1", "v0.2", "v0.3"]],
      ["tiny-relu-llama", GPU_CLASS, ["v0.1", "v0.2", "v0.3"]],
    ]);
    const gpu = groups[1]!.points;
    expect(gpu[0]!.gate).toBeNull();
    expect(gpu[1]!.gate).toMatchObject({ baselineLabel: "v0.1", comparable: true, failed: false, verdict: "ok" });
    expect(gpu[2]!.gate).toMatchObject({ baselineLabel: "v0.2", comparable: true, failed: true, verdict: "regression" });
    expect(gpu[2]!.gate!.threshold).toBeCloseTo(2466 * 0.9, 6);
    expect(gpu[2]!.gate!.summary).toMatch(/^FAILED: eval tokens\/s 2466\.00 -> 2010\.00 \(-18\.5%\)/);
    expect(groups[0]!.points[0]!.metrics["end-to-end"]).toBeNull();
    expect(groups[0]!.points[1]!.metrics.generation).toEqual({ median: 668, min: 655, max: 690, runs: 5 });
  });

  it("gates backends separately, and says why a result with other settings was not compared", () => {
    const [a, b, c] = tinyCpu;
    const cuda = found(b!, (r) => {
      r.engine.backend = "cuda";
    });
    const threads = found(c!, (r) => {
      r.settings.threads = 1;
    });
    const points = groupBenchResults([found(a!), cuda, threads], { maxRegressionPercent: 10 })[0]!.points;
    expect(points.map((p) => [p.backend, p.gate?.baselineLabel ?? null])).toEqual([
      ["cpu", null],
      ["cuda", null],
      ["cpu", "v0.1"],
    ]);
    expect(points[2]!.gate).toMatchObject({ comparable: false, threshold: null, failed: false, verdict: null });
    expect(points[2]!.gate!.summary).toContain("different settings: threads 2 vs 1");
  });
});

describe("bench sources and the workspace", () => {
  let ws: ReportWorkspace;
  beforeAll(async () => {
    ws = await makeReportWorkspace();
  });
  afterAll(() => ws?.cleanup());

  it("finds each result once: the model folder's copy of a release is that release, the GPU box's by their folders' versions", async () => {
    const { found, problems } = await findBenchResults(ws.root, { baselines: [ws.gpuResults] });
    const shown = found.map((f) => [f.result.model.name, f.result.host.hostClass === GPU_CLASS ? "gpu" : "cpu", f.kind, f.version]).sort();
    expect(shown).toEqual(
      [
        ["bamboo-base-7b", "cpu", "model", null],
        ["relu-llama-2-7b", "cpu", "model", null],
        ["tiny-relu-llama", "cpu", "release", "v0.1"],
        ["tiny-relu-llama", "cpu", "release", "v0.2"],
        ["tiny-relu-llama", "cpu", "release", "v0.3"],
        ["tiny-relu-llama", "gpu", "baseline", "v0.1"],
        ["tiny-relu-llama", "gpu", "baseline", "v0.2"],
        ["tiny-relu-llama", "gpu", "baseline", "v0.3"],
      ].sort(),
    );
    expect(found.find((f) => f.version === "v0.3" && f.kind === "release")!.paths.sort()).toEqual(["manifests/tiny-relu-llama/v0.3/bench.json", "models/powerinfer/tiny-relu-llama/bench.json"]);
    expect(problems).toEqual([{ path: "manifests/tiny-relu-llama/v0.0/bench.json", code: "E_BENCH_RESULT_INVALID", message: expect.stringContaining("model.file") }]);
  });

  it("refuses a --baseline that is missing or not a bench result, naming it", async () => {
    await expect(findBenchResults(ws.root, { baselines: [join(ws.root, "nope.json")] })).rejects.toMatchObject({ code: "E_USAGE", message: expect.stringContaining("--baseline") });
    const broken = join(ws.root, "broken-bench.json");
    writeFileSync(broken, "{");
    await expect(findBenchResults(ws.root, { baselines: [broken] })).rejects.toMatchObject({ code: "E_BENCH_RESULT_INVALID", message: expect.stringContaining("broken-bench.json is not valid JSON") });
  });

  it("reads the version from the manifests layout only", () => {
    expect(versionFromPath("/x/manifests/tiny/v0.3/bench.json", "tiny")).toBe("v0.3");
    expect(versionFromPath("/x/tiny/v0.3/bench.json", "other")).toBeNull();
    expect(versionFromPath("/x/tiny-bench.json", "tiny")).toBeNull();
  });

  it("--models keeps one model's folders, results and log records (matched by the model folder in the record's path)", async () => {
    const data = await gatherReportData({ root: ws.root, env: ws.env, models: ["tiny-relu-llama"], metricsLog: ws.metricsLog, baselines: [ws.gpuResults], command: "test" });
    expect(data.models.map((m) => m.name)).toEqual(["tiny-relu-llama"]);
    expect(data.bench.groups.map((g) => g.model)).toEqual(["tiny-relu-llama", "tiny-relu-llama"]);
    expect(data.metrics!.summary.models.map((m) => m.model)).toEqual(["model.powerinfer.gguf@v0.3"]);
    expect(data.metrics!.timeline.series.map((s) => s.engineVersion)).toEqual(["build 1544 (7e1a3c9)", "build 1590 (d3ebd7c)"]);
    expect(data.problems.map((p) => p.path)).toEqual(["manifests/tiny-relu-llama/v0.0/bench.json"]);
    // Another model's broken file is not this report's problem.
    expect((await findBenchResults(ws.root, { models: ["relu-llama-2-7b"] })).problems).toEqual([]);
  });

  it("--models with a name nothing has is an error listing the names there are", async () => {
    await expect(gatherReportData({ root: ws.root, env: ws.env, models: ["tiny-relu-llama", "relu-lama"], command: "test" })).rejects.toMatchObject({
      code: "E_USAGE",
      message: expect.stringContaining("--models relu-lama"),
      details: ["Models in this workspace: bamboo-base-7b, relu-llama-2-7b, tiny-relu-llama."],
    });
  });
});

describe("provenance facts", () => {
  it("a Hub download: the source at its resolved commit (through a mirror too), the engine, the converter", () => {
    const facts = provenanceFacts({
      predicate: {
        buildDefinition: {
          externalParameters: { modelId: "relu-llama-2-7b", source: { uri: "https://huggingface.co/SparseLLM/ReluLLaMA-7B", revision: "main" } },
          internalParameters: { build: { backend: "cuda", buildNumber: 1590 }, signingKey: { development: true } },
          resolvedDependencies: [
            { name: "powerinfer", uri: "git+https://github.com/SJTU-IPADS/PowerInfer.git@d3ebd7c5", digest: { gitCommit: "d3ebd7c5" } },
            { name: "converter convert-hf-to-powerinfer-gguf.py", digest: { sha256: "ab".repeat(32) } },
            { uri: "git+http://127.0.0.1:9/SparseLLM/ReluLLaMA-7B@0123456789abcdef0123456789abcdef01234567", digest: { gitCommit: "0123456789abcdef0123456789abcdef01234567" } },
          ],
        },
        runDetails: { builder: { id: "urn:b", version: { powerinfer: "d3ebd7c5" } }, metadata: { finishedOn: "2025-01-01T00:00:00Z" } },
      },
    });
    expect(facts).toEqual({
      modelId: "relu-llama-2-7b",
      source: "https://huggingface.co/SparseLLM/ReluLLaMA-7B",
      sourceRevision: "main",
      sourceCommit: "0123456789abcdef0123456789abcdef01234567",
      engineCommit: "d3ebd7c5",
      engineBackend: "cuda",
      engineBuildNumber: 1590,
      converter: `convert-hf-to-powerinfer-gguf.py (sha256 ${"ab".repeat(6)})`,
      builderId: "urn:b",
      finishedOn: "2025-01-01T00:00:00Z",
      developmentKey: true,
    });
  });

  it("a ready-made GGUF has no converter; a statement without a predicate gives nulls, not an error", () => {
    const facts = provenanceFacts({ predicate: { buildDefinition: { internalParameters: { readyMade: { file: "llama-7b-relu.powerinfer.gguf" } } } } });
    expect(facts.converter).toBe("none: ready-made GGUF llama-7b-relu.powerinfer.gguf");
    expect(Object.values(provenanceFacts({})).every((v) => v === null)).toBe(true);
  });
});

describe("the page", () => {
  const hostile = `<img src=x onerror="alert(1)">`;
  const data: ReportData = {
    title: `report ${hostile}`,
    generatedAt: "2025-01-01T00:00:00.000Z",
    toolVersion: "0.1.0",
    workspace: "/w",
    command: `ai-tools report --models ${hostile}`,
    chartLibraries: { vega: "6.4.0", vegaLite: "6.4.3" },
    maxRegressionPercent: 10,
    bench: { groups: [] },
    metrics: null,
    models: [{ name: hostile, dir: `models/powerinfer/${hostile}`, verification: { status: "failed", code: "E_DIGEST_MISMATCH", message: hostile, files: [] }, drift: { checked: false, code: "E_CONFIG_MISSING", message: hostile }, provenance: null }],
    trustNotes: [],
    problems: [{ path: hostile, code: "E_IO", message: hostile }],
  };

  it("escapes every value, and its one style element and one script are allowed by their hashes alone", () => {
    const html = renderReportHtml(data, []);
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
    // In the attribute as &#39;...&#39; (escaped like every value), which the browser reads as quotes.
    expect(html).toContain(`script-src &#39;sha256-${createHash("sha256").update(script).digest("base64")}&#39;`);
    expect(html.match(/<script/g)).toHaveLength(1);
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    expect(html).toContain(`style-src &#39;sha256-${createHash("sha256").update(style).digest("base64")}&#39;;`);
  });

  it("makes the ids of inlined SVGs unique per chart", () => {
    expect(prefixIds(`<clipPath id="clip1"/><g clip-path="url(#clip1)"/><use xlink:href="#clip1"/>`, "c3")).toBe(`<clipPath id="c3-clip1"/><g clip-path="url(#c3-clip1)"/><use xlink:href="#c3-clip1"/>`);
  });
});


describe("ai-tools report (CLI)", () => {
  let root: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "ai-tools-report-cli-"));
    env = { ...process.env, AI_TOOLS_ROOT: root, CI: "true", XDG_CACHE_HOME: join(root, ".cache") };
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("parses its flags: --out, --models (repeatable, comma-separated), --metrics-log, several --baseline, --json", () => {
    const parsed = parseCli(["report", "--out", "r.html", "--models", "a,b", "--models", "c", "--metrics-log", "m.jsonl", "--baseline", "x.json", "--baseline", "dir", "--json"]);
    if (parsed.kind !== "command") throw new Error("not a command");
    const o = parsed.invocation.options as { models: string[] };
    expect(parsed.invocation.options).toMatchObject({ out: "r.html", metricsLog: "m.jsonl", baseline: ["x.json", "dir"], json: true });
    expect(splitModelList(o.models)).toEqual(["a", "b", "c"]);
    expect(() => parseCli(["report", "extra"])).toThrow(/too many arguments|report/);
  });

  it("an empty workspace gives a page that says what is missing, and --json one report event", async () => {
    const result = await runCli(["report", "--json"], env);
    expect(result.code, result.stderr).toBe(0);
    const event = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(event).toMatchObject({ v: 1, event: "report", file: join(root, "build", "report", "index.html"), charts: 0, bench: { results: 0, groups: [], gateFailures: [] }, metrics: null, models: [], problems: [] });
    const html = readFileSync(join(root, "build", "report", "index.html"), "utf8");
    expect(html).toContain("No bench results found");
    expect(html).toContain("No metrics log given");
  });

  it("a missing --metrics-log and an unknown --models are usage errors naming the flag (exit 2), and nothing is written", async () => {
    const out = join(root, "never.html");
    const missing = await runCli(["report", "--metrics-log", join(root, "nope.jsonl"), "--out", out], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/error \[E_USAGE\]: --metrics-log .*nope\.jsonl: no such file/);
    const unknown = await runCli(["report", "--models", "ghost", "--out", out], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--models ghost: no model folder, bench result or metrics log record has this name/);
    expect(() => readFileSync(out)).toThrow();
  });
});
