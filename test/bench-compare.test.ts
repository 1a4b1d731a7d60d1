/**
 * bench.json and the regression gate: aggregates, the schema round trip and its key-path errors, the host class,
 * and compareResults: a regression beyond the threshold and the noise fails, noise and small changes do not, and
 * results from another host class, backend or setting are refused unless forced. Plus the text/Markdown tables.
 */
import { describe, expect, it } from "vitest";
import { compareResults, formatComparisonMarkdown, formatComparisonTable, formatResultMarkdown, formatResultTable } from "../pipeline/model-bench/compare.js";
import { parseLlamaBenchJson } from "../pipeline/model-bench/llama-bench.js";
import {
  aggregate,
  BENCH_SCHEMA_VERSION,
  buildAggregates,
  parseBenchResult,
  serializeBenchResult,
  type BenchResult,
  type BenchRun,
} from "../pipeline/model-bench/result.js";
import { deriveHostClass } from "../pipeline/model-bench/host.js";
import { BenchError, type Timings } from "../pipeline/model-bench/timings.js";
import { PipelineError } from "../pipeline/core/errors.js";
import { SAMPLE_TIMINGS, thrownBy } from "./helpers/samples.js";

const failure = (fn: () => unknown) => thrownBy(BenchError, fn);

function timings(evalTps: number | null, patch: Partial<Timings> = {}): Timings {
  return {
    ...SAMPLE_TIMINGS,
    evalTokensPerSecond: evalTps,
    msPerToken: evalTps === null ? null : 1000 / evalTps,
    warnings: evalTps === null ? ["eval tokens per second is inf: recorded as null"] : [],
    ...patch,
  };
}

const CPU = { cpuModel: "Intel(R) Xeon(R) Processor", physicalCores: 2, gpus: [] };

/** A bench.json whose runs have these eval tokens/s (null: inf/nan in that run). */
function result(evalTps: readonly (number | null)[], patch: (r: BenchResult) => void = () => {}): BenchResult {
  const runs: BenchRun[] = evalTps.map((tps, i) => ({
    timings: timings(tps),
    peakRssBytes: 10_000_000 + i * 1000,
    cpuUserMs: 5,
    cpuSystemMs: 1,
    wallMs: 20 + i,
    exitCode: 0,
  }));
  const r: BenchResult = {
    schemaVersion: BENCH_SCHEMA_VERSION,
    model: { name: "tiny-relu-llama", file: "models/powerinfer/tiny-relu-llama/model.powerinfer.gguf", sha256: "a".repeat(64), sparse: true, fileType: 1 },
    engine: { buildDir: "build/powerinfer/cpu-a478faa057c3", backend: "cpu", buildNumber: 1590, buildCommit: "d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8", binarySha256: "b".repeat(64) },
    host: {
      ...CPU,
      logicalCores: 2,
      memoryBytes: 8 * 1024 ** 3,
      os: "Debian GNU/Linux 12 (bookworm)",
      kernel: "6.1.0-18-amd64",
      hostClass: deriveHostClass(CPU),
    },
    settings: { threads: 2, prompt: "Once upon a time", promptTokens: 11, nPredict: 16, ctxSize: 512, seed: 42, temp: 0.8, topP: 0.9, warmupRuns: 1, runs: runs.length },
    command: ["build/powerinfer/cpu-a478faa057c3/bin/main", "-m", "model.powerinfer.gguf", "-n", "16", "-t", "2", "--seed", "42", "--log-disable"],
    runs,
    aggregates: buildAggregates(runs),
    createdAt: "2026-11-26T14:50:04.675Z",
  };
  patch(r);
  return r;
}

describe("aggregate / buildAggregates", () => {
  it("median, min, max, mean and the sample standard deviation, samples in run order", () => {
    expect(aggregate([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, mean: 2, stddev: 1, samples: [3, 1, 2] });
    expect(aggregate([4, 1, 3, 2]).median).toBe(2.5);
    expect(aggregate([7])).toEqual({ median: 7, min: 7, max: 7, mean: 7, stddev: 0, samples: [7] });
    expect(aggregate([2, 4, 4, 4, 5, 5, 7, 9]).stddev).toBeCloseTo(2.138, 3);
  });

  it("refuses no samples and non-finite ones", () => {
    expect(() => aggregate([])).toThrow(RangeError);
    expect(() => aggregate([1, Number.NaN])).toThrow(RangeError);
    expect(() => aggregate([Infinity])).toThrow(RangeError);
  });

  it("leaves out null values; a metric with none is null", () => {
    const a = buildAggregates(result([100, null, 110]).runs);
    expect(a.evalTokensPerSecond?.samples).toEqual([100, 110]);
    expect(a.peakRssBytes?.samples).toEqual([10_000_000, 10_001_000, 10_002_000]);
    expect(buildAggregates(result([null, null]).runs).evalTokensPerSecond).toBeNull();
    const noTotal = buildAggregates([{ timings: timings(100, { totalMs: null }), peakRssBytes: null }]);
    expect(noTotal.peakRssBytes).toBeNull();
    expect(noTotal.totalMs).toBeNull();
    expect(noTotal.loadMs?.median).toBe(0.89);
  });
});

describe("bench.json schema", () => {
  it("round-trips through serializeBenchResult / parseBenchResult, nulls and llama-bench rows included", () => {
    const rows = parseLlamaBenchJson(
      JSON.stringify([
        { build_commit: "d3ebd7c", build_number: 1590, cuda: false, opencl: false, metal: false, gpu_blas: false, blas: false, cpu_info: "Test CPU", gpu_info: "", model_filename: "m.gguf", model_type: "llama ?B mostly F16", model_size: 1, model_n_params: 1, n_batch: 512, n_threads: 2, f16_kv: true, n_gpu_layers: 0, main_gpu: 0, mul_mat_q: true, tensor_split: "0.00", n_prompt: 0, n_gen: 16, test_time: "2026-11-26T14:50:16Z", avg_ns: 2, stddev_ns: 0, avg_ts: 8000, stddev_ts: 0, samples_ns: [2], samples_ts: [8000] },
      ]),
    );
    const r = result([100, null, 105], (x) => {
      x.llamaBench = rows;
      x.settings.vramBudgetGiB = 4.5;
      x.runs[0]!.gpuMemoryBytes = 123456;
      x.runs[2]!.peakRssBytes = null;
      x.runs[2]!.cpuUserMs = null;
    });
    const text = serializeBenchResult(r);
    expect(text.endsWith("}\n")).toBe(true);
    const back = parseBenchResult(text);
    expect(back).toEqual(r);
    expect(parseBenchResult(JSON.parse(text))).toEqual(r);
    expect(back.runs[1]!.timings.evalTokensPerSecond).toBeNull();
    expect(back.llamaBench?.[0]?.kind).toBe("tg");
  });

  it("fills timings.warnings when a writer leaves it out", () => {
    const data = JSON.parse(serializeBenchResult(result([100]))) as { runs: { timings: Record<string, unknown> }[] };
    delete data.runs[0]!.timings.warnings;
    expect(parseBenchResult(data).runs[0]!.timings.warnings).toEqual([]);
  });

  it("a bad bench.json is E_BENCH_RESULT_INVALID naming the key path of each problem", () => {
    const data = JSON.parse(serializeBenchResult(result([100, 101]))) as Record<string, any>;
    data.runs[1].timings.evalMs = "fast";
    const e1 = failure(() => parseBenchResult(data, "results/bench.json"));
    expect(e1.code).toBe("E_BENCH_RESULT_INVALID");
    expect(e1.paths).toEqual(["runs[1].timings.evalMs"]);
    expect(e1.message).toMatch(/^results\/bench\.json is invalid: runs\[1\]\.timings\.evalMs: /);

    delete data.host.hostClass;
    data.schemaVersion = 2;
    data.engine.binarySha256 = "xyz";
    const e2 = failure(() => parseBenchResult(data));
    expect(e2.paths).toEqual(expect.arrayContaining(["schemaVersion", "host.hostClass", "engine.binarySha256", "runs[1].timings.evalMs"]));
    expect(e2.message).toContain("4 problems");
    expect(e2.details).toHaveLength(4);
    expect(e2.details.some((line) => line.startsWith("engine.binarySha256: ") && line.includes("sha256"))).toBe(true);

    expect(failure(() => parseBenchResult("{ not json")).code).toBe("E_BENCH_RESULT_INVALID");
    expect(failure(() => parseBenchResult(null)).paths).toEqual([""]);
    expect(failure(() => serializeBenchResult({ ...result([100]), runs: [] })).paths).toEqual(["runs"]);
  });
});

describe("deriveHostClass", () => {
  it("is short and stable: CPU model, physical cores and GPU models with counts", () => {
    expect(deriveHostClass(CPU)).toBe("intel-xeon/2c");
    expect(deriveHostClass({ cpuModel: "intel(r)  XEON(R) processor ", physicalCores: 2, gpus: [] })).toBe("intel-xeon/2c");
    expect(deriveHostClass({ ...CPU, physicalCores: 16 })).toBe("intel-xeon/16c");
    const h100 = { name: "NVIDIA H100 80GB HBM3" };
    expect(deriveHostClass({ ...CPU, gpus: [h100] })).toBe("intel-xeon/2c/nvidia-h100-80gb-hbm3");
    expect(deriveHostClass({ ...CPU, gpus: [h100, h100] })).toBe("intel-xeon/2c/2xnvidia-h100-80gb-hbm3");
    expect(deriveHostClass({ ...CPU, gpus: [{ name: "b" }, { name: "a" }] })).toBe(deriveHostClass({ ...CPU, gpus: [{ name: "a" }, { name: "b" }] }));
  });
});

describe("compareResults", () => {
  it("fails on a regression: median 100 -> 80 (-20% > 10%) with non-overlapping ranges", () => {
    const c = compareResults(result([98, 100, 102]), result([78, 80, 82]));
    expect(c.comparable).toBe(true);
    expect(c.failed).toBe(true);
    const gate = c.rows.find((r) => r.metric === "evalTokensPerSecond")!;
    expect(gate).toMatchObject({ old: 100, new: 80, ratio: 0.8, verdict: "regression", gating: true, oldRange: [98, 102], newRange: [78, 82] });
    expect(gate.changePercent).toBeCloseTo(-20, 9);
    expect(c.summary).toMatch(/^FAILED: eval tokens\/s/);
    // ms per token rose 25%, also beyond the noise, but does not gate on its own.
    expect(c.rows.find((r) => r.metric === "msPerToken")?.verdict).toBe("regression");
    expect(c.rows.find((r) => r.metric === "loadMs")?.verdict).toBe("ok");
  });

  it("tolerates noise: a 20% lower median whose sample range overlaps the baseline's", () => {
    const c = compareResults(result([90, 100, 110]), result([75, 80, 95]));
    expect(c.failed).toBe(false);
    expect(c.rows.find((r) => r.metric === "evalTokensPerSecond")?.verdict).toBe("noise");
    expect(c.summary).toMatch(/within the run-to-run noise/);
  });

  it("tolerates a drop under the threshold even outside the noise", () => {
    const c = compareResults(result([100, 100.5, 101]), result([95, 95.5, 96]));
    expect(c.failed).toBe(false);
    expect(c.rows.find((r) => r.metric === "evalTokensPerSecond")?.verdict).toBe("ok");
    expect(compareResults(result([100, 100.5, 101]), result([95, 95.5, 96]), { maxRegressionPercent: 4 }).failed).toBe(true);
    expect(compareResults(result([98, 100, 102]), result([78, 80, 82]), { maxRegressionPercent: 25 }).failed).toBe(false);
  });

  it("an improvement passes, with its verdict", () => {
    const c = compareResults(result([78, 80, 82]), result([98, 100, 102]));
    expect(c.failed).toBe(false);
    expect(c.rows.find((r) => r.metric === "evalTokensPerSecond")?.verdict).toBe("improvement");
  });

  it("refuses another host class unless forceCompare", () => {
    const gpuHost = (r: BenchResult) => {
      r.host.gpus = [{ name: "NVIDIA H100 80GB HBM3", driver: "580.95.05", memoryBytes: 80 * 1024 ** 3 }];
      r.host.hostClass = deriveHostClass(r.host);
    };
    const old = result([98, 100, 102]);
    const next = result([78, 80, 82], gpuHost);
    const c = compareResults(old, next);
    expect(c).toMatchObject({ comparable: false, failed: false, forced: false, rows: [] });
    expect(c.reason).toBe("different host class: intel-xeon/2c vs intel-xeon/2c/nvidia-h100-80gb-hbm3");

    const forced = compareResults(old, next, { forceCompare: true });
    expect(forced).toMatchObject({ comparable: true, forced: true, failed: true });
    expect(forced.reason).toContain("different host class");
    expect(forced.summary).toContain("forced despite");
  });

  it("refuses another backend, model or setting unless forceCompare", () => {
    const old = result([100]);
    const cuda = compareResults(old, result([100], (r) => void (r.engine.backend = "cuda")));
    expect(cuda.comparable).toBe(false);
    expect(cuda.reason).toBe("different backend/preset: cpu vs cuda");
    const threads = compareResults(old, result([100], (r) => void (r.settings.threads = 4)));
    expect(threads.reason).toBe("different settings: threads 2 vs 4");
    const dense = compareResults(old, result([100], (r) => void (r.model.sparse = false)));
    expect(dense.reason).toContain("sparse vs dense");
    expect(compareResults(old, result([100], (r) => void (r.settings.threads = 4)), { forceCompare: true }).comparable).toBe(true);
  });

  it("notes a new engine build or model file without refusing", () => {
    const c = compareResults(
      result([100]),
      result([100], (r) => {
        r.engine.buildNumber = 1591;
        r.engine.buildCommit = "1113aef";
        r.model.sha256 = "c".repeat(64);
      }),
    );
    expect(c.comparable).toBe(true);
    expect(c.notes).toEqual([`engine build 1590 (d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8) -> 1591 (1113aef)`, "model file changed (aaaaaaaaaaaa -> cccccccccccc)"]);
  });

  it("a new result without eval tokens/s fails; a baseline without them is not compared", () => {
    const gone = compareResults(result([100, 101]), result([null, null]));
    expect(gone).toMatchObject({ comparable: true, failed: true });
    expect(gone.rows.map((r) => r.metric)).not.toContain("evalTokensPerSecond");
    expect(gone.notes.some((n) => n.startsWith("eval tokens/s: no finite samples in the new result"))).toBe(true);
    expect(compareResults(result([null]), result([100]))).toMatchObject({ comparable: false, failed: false });
  });

  it("refuses a nonsensical threshold with E_USAGE", () => {
    for (const bad of [-1, Number.NaN, Infinity]) {
      let error: unknown;
      try {
        compareResults(result([100]), result([100]), { maxRegressionPercent: bad });
      } catch (e) {
        error = e;
      }
      expect((error as PipelineError).code).toBe("E_USAGE");
    }
  });
});

describe("formatters", () => {
  const regression = compareResults(result([98, 100, 102]), result([78, 80, 82]));

  it("formatComparisonTable: aligned columns with the verdicts", () => {
    const text = formatComparisonTable(regression);
    const lines = text.split("\n");
    const header = lines.find((l) => l.startsWith("metric"))!;
    const evalLine = lines.find((l) => l.startsWith("eval tokens/s"))!;
    expect(evalLine).toContain("REGRESSION");
    expect(evalLine).toContain("-20.0%");
    expect(evalLine).toContain("98.00..102.00");
    // Right-aligned numeric columns end where their header ends.
    const changeEnd = header.indexOf("change") + "change".length;
    for (const l of lines.filter((l) => / [+-]\d+\.\d%/.test(l))) expect(l.slice(changeEnd - 1, changeEnd)).toBe("%");
    expect(text).toContain("FAILED");
    expect(text.endsWith("\n")).toBe(false);

    const refused = formatComparisonTable(compareResults(result([100]), result([100], (r) => void (r.engine.backend = "cuda"))));
    expect(refused).toContain("not compared: different backend/preset: cpu vs cuda");
  });

  it("formatComparisonMarkdown: a GitHub job-summary table", () => {
    const md = formatComparisonMarkdown(regression);
    expect(md).toMatch(/^### Benchmark comparison: ❌ failed/);
    expect(md).toContain("| metric | old (median) | new (median) | change | old range | new range | verdict |");
    expect(md).toContain("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    expect(md).toMatch(/\| eval tokens\/s \*\*\(gate\)\*\* \| 100.00 \| 80.00 \| -20.0% \| .* \| ❌ regression \|/);
    const tableRows = md.split("\n").filter((l) => l.startsWith("| "));
    expect(tableRows).toHaveLength(2 + 7);
    for (const row of tableRows) expect(row.split(" | ")).toHaveLength(7);
  });

  it("formatResultTable / formatResultMarkdown: one result, with n/a for empty metrics and the run warnings", () => {
    const r = result([100, null, 110], (x) => {
      x.model.name = "a|b";
    });
    r.aggregates = buildAggregates(r.runs.map((run) => ({ ...run, timings: { ...run.timings, totalMs: null } })));
    const text = formatResultTable(r);
    expect(text).toMatch(/^model +a\|b \(sparse, PWRI, F16\)/);
    expect(text).toMatch(/eval tokens\/s +105\.00 +100\.00 +110\.00/);
    expect(text).toMatch(/total time \(ms\) +n\/a/);
    expect(text).toMatch(/peak RSS +9\.54 MiB/);
    expect(text).toContain("warning: eval tokens per second is inf: recorded as null (1 of 3 runs)");

    const md = formatResultMarkdown(r);
    expect(md).toMatch(/^### Benchmark: a\\\|b/);
    expect(md).toContain("| metric | median | min | max | mean | stddev | n |");
    expect(md).toContain("| total time (ms) | n/a |  |  |  |  | 0 |");
    expect(md).toContain("> ⚠️ eval tokens per second is inf");
  });
});
