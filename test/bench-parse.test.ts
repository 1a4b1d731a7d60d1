/**
 * The engine's benchmark outputs: the llama_print_timings block on stderr, the `-ld` YAML log and llama-bench JSON.
 * The real samples (../shared) where present, and constructed edge cases: inf, nan, -nan, negative totals, -n 1,
 * crashed runs, \r\n, interleaved log lines and garbage. A non-finite value must never reach a field as NaN.
 */
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { parseLlamaBenchJson } from "../pipeline/model-bench/llama-bench.js";
import { BenchError, parseLogYaml, parseTimings, type Timings } from "../pipeline/model-bench/timings.js";
import { haveSamples, sample, SAMPLE_TIMINGS, thrownBy } from "./helpers/samples.js";


const failure = (fn: () => unknown) => thrownBy(BenchError, fn);

/** Every numeric field is a finite number or an explicit null: no NaN, no Infinity. */
function expectNoSilentNaN(t: Timings): void {
  for (const [key, value] of Object.entries(t)) {
    if (key === "warnings") continue;
    expect(value === null || Number.isFinite(value), `${key} = ${String(value)}`).toBe(true);
  }
}

// The engine's printf formats (powerinfer-upstream.md §4), so the constructed blocks are laid out like real ones.
const P = "llama_print_timings:";
const head = (kind: string) => `${P} ${`${kind} time`.padStart(16)} = `;
const plain = (kind: string, ms: string) => `${head(kind)}${ms.padStart(10)} ms`;
const counted = (kind: string, ms: string, n: string, perToken: string, perSecond: string) =>
  `${head(kind)}${ms.padStart(10)} ms / ${n.padStart(5)} ${kind === "prompt eval" ? "tokens" : "runs  "} (${perToken.padStart(8)} ms per token, ${perSecond.padStart(8)} tokens per second)`;

interface BlockValues {
  load: string;
  sample: [string, string, string, string];
  prompt: [string, string, string, string];
  eval: [string, string, string, string];
  total: string;
}
const NORMAL: BlockValues = {
  load: "0.89",
  sample: ["0.26", "16", "0.02", "60836.50"],
  prompt: ["0.48", "11", "0.04", "22964.51"],
  eval: ["2.14", "15", "0.14", "7025.76"],
  total: "3.59",
};
function block(patch: Partial<BlockValues> = {}): string[] {
  const v = { ...NORMAL, ...patch };
  return [plain("load", v.load), counted("sample", ...v.sample), counted("prompt eval", ...v.prompt), counted("eval", ...v.eval), plain("total", v.total)];
}
const stderrOf = (lines: string[], eol = "\n") => ["generate: n_ctx = 512, n_batch = 512, n_predict = 16, n_keep = 0", "", "", ...lines, "Log end", ""].join(eol);

const EXPECTED_SAMPLE = SAMPLE_TIMINGS;

describe("parseTimings", () => {
  it.skipIf(!haveSamples)("reads the real main run's timings block (needs the ../shared sample main-run.stderr.log)", () => {
    expect(parseTimings(sample("main-run.stderr.log"))).toEqual(EXPECTED_SAMPLE);
  });

  it("reads a block laid out by the engine's printf formats exactly as the sample", () => {
    expect(block()[3]).toBe("llama_print_timings:        eval time =       2.14 ms /    15 runs   (    0.14 ms per token,  7025.76 tokens per second)");
    expect(parseTimings(stderrOf(block()))).toEqual(EXPECTED_SAMPLE);
  });

  it("handles \\r\\n and lone \\r line ends", () => {
    expect(parseTimings(stderrOf(block(), "\r\n"))).toEqual(EXPECTED_SAMPLE);
    expect(parseTimings(stderrOf(block(), "\r"))).toEqual(EXPECTED_SAMPLE);
  });

  it("handles log lines interleaved with the block and generated text in front of a timings line", () => {
    const [load, sampleLine, prompt, evalLine, total] = block();
    const text = [
      "main: build = 1590 (d3ebd7c)",
      `Once upon a time the~,ppher${load!}`,
      "ggml_cuda: some other thread logging",
      sampleLine!,
      "",
      prompt!,
      "llama_new_context_with_model: kv self size  =    0.25 MB",
      evalLine!,
      `${total!}   `,
      "Log end",
    ].join("\n");
    expect(parseTimings(text)).toEqual(EXPECTED_SAMPLE);
  });

  it("-n 1: eval is 1 run in 0 ms at inf tokens/s -> evalTokensPerSecond null, with a warning and a hint", () => {
    const t = parseTimings(stderrOf(block({ sample: ["0.02", "1", "0.02", "50000.00"], eval: ["0.00", "1", "0.00", "inf"], total: "0.71" })));
    expect(t.evalRuns).toBe(1);
    expect(t.evalMs).toBe(0);
    expect(t.msPerToken).toBe(0);
    expect(t.evalTokensPerSecond).toBeNull();
    expect(t.warnings).toContain("eval tokens per second is inf: recorded as null");
    expect(t.warnings.some((w) => w.includes("-n 0 or 1"))).toBe(true);
    expectNoSilentNaN(t);
  });

  it("nan and -nan become null, each named in warnings", () => {
    const t = parseTimings(stderrOf(block({ sample: ["0.00", "1", "0.00", "-nan"], prompt: ["nan", "11", "nan", "-nan"] })));
    expect(t.promptEvalMs).toBeNull();
    expect(t.promptTokensPerSecond).toBeNull();
    expect(t.promptTokens).toBe(11);
    expect(t.evalTokensPerSecond).toBe(7025.76);
    expect(t.warnings).toEqual(["prompt eval time is nan: recorded as null", "prompt eval tokens per second is -nan: recorded as null"]);
    expectNoSilentNaN(t);
  });

  it("-inf and other spellings of infinity are null too", () => {
    const t = parseTimings(stderrOf(block({ eval: ["2.14", "15", "-inf", "INF"] })));
    expect(t.msPerToken).toBeNull();
    expect(t.evalTokensPerSecond).toBeNull();
    expectNoSilentNaN(t);
  });

  it("keeps negative totals (seen in real runs) and warns", () => {
    const t = parseTimings(stderrOf(block({ total: "-0.05" })));
    expect(t.totalMs).toBe(-0.05);
    expect(t.warnings).toEqual(["total time is negative (-0.05): kept as reported"]);
    const t2 = parseTimings(stderrOf(block({ total: "-0.78", load: "-1.00" })));
    expect([t2.loadMs, t2.totalMs]).toEqual([-1, -0.78]);
    expect(t2.warnings).toHaveLength(2);
  });

  it("a crashed run (no eval line) is E_BENCH_NO_TIMINGS naming the missing line", () => {
    const lines = block().filter((line) => !line.includes(" eval time") || line.includes("prompt eval"));
    expect(lines).toHaveLength(4);
    const error = failure(() => parseTimings(stderrOf(lines)));
    expect(error.code).toBe("E_BENCH_NO_TIMINGS");
    expect(error.missing).toEqual(["eval"]);
    expect(error.message).toContain('"eval time"');
    expect(error.message).not.toContain("prompt eval time");
  });

  it("a block cut short names every missing line", () => {
    const error = failure(() => parseTimings(stderrOf(block().slice(0, 3))));
    expect(error.code).toBe("E_BENCH_NO_TIMINGS");
    expect(error.missing).toEqual(["eval", "total"]);
    expect(error.message).toContain('"eval time", "total time" lines');
  });

  it("no block at all (the engine died before printing it) names all five lines", () => {
    const error = failure(() => parseTimings("error loading model: failed to open x: No such file or directory\nSegmentation fault\n"));
    expect(error.code).toBe("E_BENCH_NO_TIMINGS");
    expect(error.missing).toEqual(["load", "sample", "prompt eval", "eval", "total"]);
    expect(failure(() => parseTimings("")).code).toBe("E_BENCH_NO_TIMINGS");
  });

  it("garbage: binary noise is no block; an unreadable value or count is reported as such", () => {
    const noise = Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 7919) % 256)).toString("latin1");
    expect(failure(() => parseTimings(noise)).missing).toHaveLength(5);

    const bad = block();
    bad[3] = `${head("eval")}      abc ms /    15 runs   (    0.14 ms per token,  7025.76 tokens per second)`;
    const error = failure(() => parseTimings(stderrOf(bad)));
    expect(error.code).toBe("E_BENCH_NO_TIMINGS");
    expect(error.missing).toEqual(["eval"]);
    expect(error.message).toContain("cannot read");
    expect(error.details[0]).toContain("abc ms");

    const badCount = block();
    badCount[1] = counted("sample", "0.26", "1x", "0.02", "60836.50");
    expect(failure(() => parseTimings(stderrOf(badCount))).missing).toEqual(["sample"]);

    const noCount = block();
    noCount[2] = plain("prompt eval", "0.48");
    expect(failure(() => parseTimings(stderrOf(noCount))).missing).toEqual(["prompt eval"]);
  });

  it("several blocks: the last value of each line, with a warning", () => {
    const first = block({ eval: ["9.00", "15", "0.60", "1666.67"] });
    const t = parseTimings(stderrOf([...first, "", ...block()]));
    expect(t.evalTokensPerSecond).toBe(7025.76);
    expect(t.warnings).toEqual(["the output holds 2 timings blocks: the last value of each line is used"]);
  });
});

// ---- -ld YAML log ---------------------------------------------------------------------------------------------------

/** A log with the shape of the engine's (header keys, the duplicated cpu_has_blas, the timings section). */
function logYaml(patch: Record<string, string> = {}, drop: readonly string[] = []): string {
  const entries: [string, string][] = [
    ["binary", "main"],
    ["build_commit", "d3ebd7c"],
    ["build_number", "1590"],
    ["cpu_has_blas", "false"],
    ["cpu_has_avx", "true"],
    ["cpu_has_blas", "false"],
    ["model_desc", "llama ?B mostly F16"],
    ["model", "MODEL_DIR/tiny-relu-llama.powerinfer.gguf # default: models/7B/ggml-model.bin"],
    ["n_predict", "16 # default: -1 (unlimited)"],
    ["ctx_size", "512 # default: 512"],
    ["prompt", "Once upon a time"],
    ["prompt_tokens", "[1, 463, 435, 314, 308, 445, 264, 261, 259, 381, 430]"],
    ["seed", "42 # default: -1 (random seed)"],
    ["temp", "0.800000 # default: 0.8"],
    ["threads", "2 # default: 2"],
    ["top_p", "0.900000 # default: 0.95"],
    ["vram_budget", "-1.000000 # default: -1.0 (all available VRAM)"],
    ["output", "the end"],
    ["output_tokens", "[158, 265, 129]"],
    ["mst_eval", "0.14  # ms / token during generation"],
    ["mst_p_eval", "0.04  # ms / token during prompt processing"],
    ["mst_sample", "0.02  # ms / token during sampling"],
    ["n_eval", "15  # number of tokens generated (excluding the first one)"],
    ["n_p_eval", "11  # number of tokens processed in batches at the beginning"],
    ["n_sample", "16  # number of sampled tokens"],
    ["t_eval_us", "2135  # total microseconds spent generating tokens"],
    ["t_load_us", "891  # total microseconds spent loading the model"],
    ["t_p_eval_us", "479  # total microseconds spent prompt processing"],
    ["t_sample_us", "263  # total microseconds spent sampling"],
    ["ts_eval", "7025.76  # tokens / second during generation"],
    ["ts_p_eval", "22964.51  # tokens / second during prompt processing"],
    ["ts_sample", "60836.50  # tokens / second during sampling"],
  ];
  return `${entries
    .filter(([k]) => !drop.includes(k))
    .map(([k, v]) => `${k}: ${patch[k] ?? v}`)
    .join("\n")}\n`;
}

const EXPECTED_LOG_TIMINGS: Timings = {
  loadMs: 0.891,
  sampleMs: 0.263,
  sampleRuns: 16,
  promptEvalMs: 0.479,
  promptTokens: 11,
  evalMs: 2.135,
  evalRuns: 15,
  totalMs: null,
  promptTokensPerSecond: 22964.51,
  evalTokensPerSecond: 7025.76,
  msPerToken: 0.14,
  warnings: ["total time is not in the -ld YAML log: recorded as null"],
};

describe("parseLogYaml", () => {
  it.skipIf(!haveSamples)("reads the real -ld log (needs the ../shared sample main-logdir.yml, with its duplicated cpu_has_blas)", () => {
    const text = sample("main-logdir.yml");
    expect(() => parseYaml(text)).toThrow(/unique/i);
    const log = parseLogYaml(text);
    expect(log.timings).toEqual(EXPECTED_LOG_TIMINGS);
    expect(log).toMatchObject({
      buildCommit: "d3ebd7c",
      buildNumber: 1590,
      threads: 2,
      seed: 42,
      modelDesc: "llama ?B mostly F16",
      model: "MODEL_DIR/tiny-relu-llama.powerinfer.gguf",
      nPredict: 16,
      ctxSize: 512,
      temp: 0.8,
      topP: 0.9,
      vramBudget: -1,
      promptTokenCount: 11,
      outputTokenCount: 16,
    });
  });

  it("reads a constructed log with the duplicated key the same way", () => {
    const log = parseLogYaml(logYaml());
    expect(log.timings).toEqual(EXPECTED_LOG_TIMINGS);
    expect(log.buildCommit).toBe("d3ebd7c");
    expect(log.outputTokenCount).toBe(3);
  });

  it("coerces build_commit to the string as written (all-digit, leading zero, exponent-like hashes)", () => {
    expect(parseLogYaml(logYaml({ build_commit: "1234567" })).buildCommit).toBe("1234567");
    expect(parseLogYaml(logYaml({ build_commit: "0123456" })).buildCommit).toBe("0123456");
    expect(parseLogYaml(logYaml({ build_commit: "1234e56" })).buildCommit).toBe("1234e56");
    expect(parseLogYaml(logYaml({ build_commit: "unknown", build_number: "0" }))).toMatchObject({ buildCommit: "unknown", buildNumber: 0 });
  });

  it("inf/nan rates become null with warnings; missing ts_*/mst_* are derived from times and counts", () => {
    const log = parseLogYaml(logYaml({ ts_eval: "inf", ts_p_eval: "-nan", n_eval: "1", t_eval_us: "0", mst_eval: "0.00" }));
    expect(log.timings.evalTokensPerSecond).toBeNull();
    expect(log.timings.promptTokensPerSecond).toBeNull();
    expect(log.timings.warnings).toContain("eval tokens per second is inf: recorded as null");
    expect(log.timings.warnings).toContain("prompt eval tokens per second is -nan: recorded as null");
    expectNoSilentNaN(log.timings);

    const derived = parseLogYaml(logYaml({}, ["ts_eval", "mst_eval"]));
    expect(derived.timings.evalTokensPerSecond).toBeCloseTo((15 * 1e6) / 2135, 6);
    expect(derived.timings.msPerToken).toBeCloseTo(2.135 / 15, 9);
  });

  it("reads the timings even when unquoted generated text makes the YAML invalid", () => {
    const log = parseLogYaml(logYaml({ output: "a: b: [c {d" }));
    expect(log.timings.evalTokensPerSecond).toBe(7025.76);
    expect(log.buildCommit).toBe("d3ebd7c");
    expect(log.timings.warnings[0]).toMatch(/does not parse as a whole/);
  });

  it("handles \\r\\n", () => {
    expect(parseLogYaml(logYaml().replace(/\n/g, "\r\n")).timings).toEqual(EXPECTED_LOG_TIMINGS);
  });

  it("missing timing keys (a crashed run) are E_BENCH_NO_TIMINGS naming them", () => {
    const error = failure(() => parseLogYaml(logYaml({}, ["t_eval_us", "n_eval"])));
    expect(error.code).toBe("E_BENCH_NO_TIMINGS");
    expect(error.missing).toEqual(["t_eval_us", "n_eval"]);
    expect(error.message).toContain("t_eval_us, n_eval");
    expect(failure(() => parseLogYaml(logYaml({ n_sample: "lots" }))).missing).toEqual(["n_sample"]);
    const header = logYaml().split("\n").slice(0, 10).join("\n");
    expect(failure(() => parseLogYaml(header)).missing).toHaveLength(7);
  });

  it("garbage is E_BENCH_LOG_INVALID", () => {
    expect(failure(() => parseLogYaml("{{{ not: [yaml")).code).toBe("E_BENCH_LOG_INVALID");
    expect(failure(() => parseLogYaml("- a\n- b\n")).code).toBe("E_BENCH_LOG_INVALID");
    expect(failure(() => parseLogYaml("just a line of text")).code).toBe("E_BENCH_LOG_INVALID");
  });
});

// ---- llama-bench JSON -----------------------------------------------------------------------------------------------

/** One llama-bench JSON object, as the engine prints it (constructed). */
function rawRow(patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    build_commit: "d3ebd7c",
    build_number: 1590,
    cuda: false,
    opencl: false,
    metal: false,
    gpu_blas: false,
    blas: false,
    cpu_info: "Test CPU",
    gpu_info: "",
    model_filename: "m.powerinfer.gguf",
    model_type: "llama ?B mostly F16",
    model_size: 1000,
    model_n_params: 500,
    n_batch: 512,
    n_threads: 2,
    f16_kv: true,
    n_gpu_layers: 0,
    main_gpu: 0,
    mul_mat_q: true,
    tensor_split: "0.00",
    n_prompt: 16,
    n_gen: 0,
    test_time: "2026-11-26T14:50:16Z",
    avg_ns: 500000,
    stddev_ns: 1000,
    avg_ts: 32000.5,
    stddev_ts: 100.25,
    samples_ns: [500000, 501000],
    samples_ts: [32000, 32001],
    ...patch,
  };
}

describe("parseLlamaBenchJson", () => {
  it.skipIf(!haveSamples)("reads the real llama-bench JSON: a pp and a tg row (needs the ../shared sample llama-bench.json)", () => {
    const rows = parseLlamaBenchJson(sample("llama-bench.json"));
    expect(rows.map((r) => [r.test, r.kind, r.nPrompt, r.nGen])).toEqual([
      ["pp16", "pp", 16, 0],
      ["tg16", "tg", 0, 16],
    ]);
    expect(rows[0]).toMatchObject({
      buildCommit: "d3ebd7c",
      buildNumber: 1590,
      cpuInfo: "Intel(R) Xeon(R) Processor",
      modelType: "llama ?B mostly F16",
      modelSize: 435456,
      nThreads: 2,
      nGpuLayers: 0,
      avgNs: 508653,
      avgTs: 31563.591435,
      stddevTs: 2230.188011,
      samplesTs: [29096.8, 33437.3, 32156.6],
    });
    expect(rows[1]!.avgTs).toBe(7965.603142);
  });

  it.skipIf(!haveSamples)("reads the medium-model sweep: sparse F16, sparse Q4_0 and dense (needs the ../shared sample llama-bench-medium.json)", () => {
    const rows = parseLlamaBenchJson(sample("llama-bench-medium.json"));
    expect(rows.map((r) => `${r.modelFilename.replace("MODEL_DIR/", "")} ${r.test}`)).toEqual([
      "medium.powerinfer.gguf pp64",
      "medium.powerinfer.gguf tg32",
      "medium.q4.powerinfer.gguf pp64",
      "medium.q4.powerinfer.gguf tg32",
      "medium.dense.gguf pp64",
      "medium.dense.gguf tg32",
    ]);
    expect(rows[2]!.modelType).toBe("llama ?B mostly Q4_0");
    expect(rows[1]).toMatchObject({ kind: "tg", avgTs: 39.259973, samplesTs: [59.8874, 19.7062, 38.1863] });
    for (const row of rows) expect(row.samplesTs).toHaveLength(3);
  });

  it("derives the test kind from n_prompt / n_gen", () => {
    const rows = parseLlamaBenchJson(JSON.stringify([rawRow(), rawRow({ n_prompt: 0, n_gen: 32 }), rawRow({ n_prompt: 64, n_gen: 32 })]));
    expect(rows.map((r) => [r.test, r.kind])).toEqual([
      ["pp16", "pp"],
      ["tg32", "tg"],
      ["pp64+tg32", "pg"],
    ]);
  });

  it("reads bare inf/nan/-nan (std::to_string output, not JSON) as null, but not inside strings", () => {
    const text = JSON.stringify([rawRow({ gpu_info: "nan inf", avg_ts: 0, stddev_ts: 1, samples_ts: [2, 3] })])
      .replace('"avg_ts":0', '"avg_ts":inf')
      .replace('"stddev_ts":1', '"stddev_ts":-nan')
      .replace('"samples_ts":[2,3]', '"samples_ts":[ nan, 3 ]');
    const [row] = parseLlamaBenchJson(text);
    expect(row).toMatchObject({ gpuInfo: "nan inf", avgTs: null, stddevTs: null, samplesTs: [null, 3] });
  });

  it("malformed JSON (cut short by a failed load), wrong shapes and missing fields are E_BENCH_LLAMA_BENCH_INVALID", () => {
    const cut = `[\n${JSON.stringify(rawRow()).slice(0, 200)}`;
    const e1 = failure(() => parseLlamaBenchJson(cut));
    expect(e1.code).toBe("E_BENCH_LLAMA_BENCH_INVALID");
    expect(e1.message).toContain("not valid JSON");
    expect(failure(() => parseLlamaBenchJson("")).code).toBe("E_BENCH_LLAMA_BENCH_INVALID");
    expect(failure(() => parseLlamaBenchJson("[]")).message).toContain("no test results");
    expect(failure(() => parseLlamaBenchJson('{"a": 1}')).message).toContain("not an array");

    const { n_gen: _drop, ...withoutGen } = rawRow();
    const e2 = failure(() => parseLlamaBenchJson(JSON.stringify([rawRow(), withoutGen])));
    expect(e2.code).toBe("E_BENCH_LLAMA_BENCH_INVALID");
    expect(e2.paths).toEqual(["[1].n_gen"]);
    expect(e2.message).toContain("[1].n_gen");

    const e3 = failure(() => parseLlamaBenchJson(JSON.stringify([rawRow({ avg_ts: "fast", n_threads: -1 })])));
    expect(e3.paths).toEqual(["[0].n_threads", "[0].avg_ts"]);

    const e4 = failure(() => parseLlamaBenchJson(JSON.stringify([rawRow({ n_prompt: 0, n_gen: 0 })])));
    expect(e4.message).toContain("neither a pp nor a tg test");
  });
});

describe("the loader's GPU lines", () => {
  it("reads offloaded FFN MiB, VRAM used, the layers within the budget and what happened to the index", async () => {
    const { parseGpuLog, endToEndTokensPerSecond } = await import("../pipeline/model-bench/gpu-log.js");
    const log = parseGpuLog([
      "llm_load_sparse_model_tensors: using CUDA for GPU acceleration",
      "llm_load_sparse_model_tensors: offloaded layers from VRAM budget(8589934592 bytes): 33/33",
      "llm_load_sparse_model_tensors: VRAM used: 3925.12 MB",
      "invoking powerinfer Python module to generate gpu split for 4147.77 MiB of VRAM",
      "llm_load_gpu_split: offloaded 4012.50 MiB of FFN weights to GPU",
      "llama_new_context_with_model: n_ctx = 512",
    ]);
    expect(log).toMatchObject({ offloadedFfnMiB: 4012.5, vramUsedMB: 3925.12, offloadedLayers: { layers: 33, of: 33, budgetBytes: 8589934592 }, gpuIndex: "generated" });
    expect(log!.lines).toHaveLength(4);
    expect(parseGpuLog(["failed to apply previously generated gpu split", "llm_load_gpu_split: offloaded 0.00 MiB of FFN weights to GPU"])).toMatchObject({ gpuIndex: "failed", offloadedFfnMiB: 0 });
    // A stale cached index is regenerated: that run did get its split.
    expect(
      parseGpuLog([
        "failed to apply previously generated gpu split",
        "invoking powerinfer Python module to generate gpu split for 4147.77 MiB of VRAM",
        "llm_load_gpu_split: offloaded 4012.50 MiB of FFN weights to GPU",
      ]),
    ).toMatchObject({ gpuIndex: "generated", offloadedFfnMiB: 4012.5 });
    expect(parseGpuLog(["activation files under '/m/activation' not found", "failed to generate gpu split, an empty one will be used"])).toMatchObject({ gpuIndex: "failed" });
    expect(parseGpuLog(["llama_new_context_with_model: n_ctx = 512"])).toBeNull();
    // 16 tokens (15 eval runs + the first from the prompt) in 0.1 + 0.9 s.
    expect(endToEndTokensPerSecond({ promptEvalMs: 100, evalMs: 900, evalRuns: 15 })).toBe(16);
    expect(endToEndTokensPerSecond({ promptEvalMs: null, evalMs: 900, evalRuns: 15 })).toBeNull();
  });
});
