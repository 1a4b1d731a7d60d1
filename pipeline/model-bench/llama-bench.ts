/**
 * `llama-bench -o json` output: an array with one object per test. Prompt-processing rows have `n_gen = 0`,
 * generation rows `n_prompt = 0`. Pure: no I/O.
 *
 * llama-bench prints floats with `std::to_string`, so a zero-time test writes bare `inf`/`nan`/`-nan`, which is not
 * JSON: those tokens (outside strings) are read as null, and the typed row holds null there.
 */
import * as z from "zod";
import { BenchError, schemaError } from "./timings.js";

export const LLAMA_BENCH_TEST_KINDS = ["pp", "tg", "pg"] as const;
/** pp: prompt processing (n_gen = 0); tg: text generation (n_prompt = 0); pg: both in one test (newer llama-bench). */
export type LlamaBenchTestKind = (typeof LLAMA_BENCH_TEST_KINDS)[number];

const int = z.number().int();
const count = z.number().int().nonnegative();
/** Tokens per second: null where llama-bench wrote inf/nan. */
const rate = z.number().nullable();

/** The row as bench.json stores it (camelCase). */
export const llamaBenchRowSchema = z.object({
  /** "pp16", "tg32", "pp64+tg32". */
  test: z.string().min(1),
  kind: z.enum(LLAMA_BENCH_TEST_KINDS),
  buildCommit: z.string(),
  buildNumber: int,
  cuda: z.boolean(),
  opencl: z.boolean(),
  metal: z.boolean(),
  gpuBlas: z.boolean(),
  blas: z.boolean(),
  cpuInfo: z.string(),
  gpuInfo: z.string(),
  modelFilename: z.string(),
  /** e.g. "llama ?B mostly F16": does not tell sparse from dense. */
  modelType: z.string(),
  modelSize: count,
  modelNParams: count,
  nBatch: count,
  nThreads: count,
  f16Kv: z.boolean(),
  nGpuLayers: int,
  mainGpu: int,
  mulMatQ: z.boolean(),
  tensorSplit: z.string(),
  nPrompt: count,
  nGen: count,
  testTime: z.string(),
  avgNs: z.number().nonnegative(),
  stddevNs: z.number().nonnegative(),
  avgTs: rate,
  stddevTs: rate,
  samplesNs: z.array(z.number().nonnegative()),
  samplesTs: z.array(rate),
});
export type LlamaBenchRow = z.infer<typeof llamaBenchRowSchema>;

/** One object of llama-bench's JSON, as it prints it. Unknown fields (other versions) are ignored. */
const rawRowSchema = z
  .object({
    build_commit: z.union([z.string(), z.number()]).transform(String),
    build_number: int,
    cuda: z.boolean(),
    opencl: z.boolean(),
    metal: z.boolean(),
    gpu_blas: z.boolean(),
    blas: z.boolean(),
    cpu_info: z.string(),
    gpu_info: z.string(),
    model_filename: z.string(),
    model_type: z.string(),
    model_size: count,
    model_n_params: count,
    n_batch: count,
    n_threads: count,
    f16_kv: z.boolean(),
    n_gpu_layers: int,
    main_gpu: int,
    mul_mat_q: z.boolean(),
    tensor_split: z.string(),
    n_prompt: count,
    n_gen: count,
    test_time: z.string(),
    avg_ns: z.number().nonnegative(),
    stddev_ns: z.number().nonnegative(),
    avg_ts: rate,
    stddev_ts: rate,
    samples_ns: z.array(z.number().nonnegative()),
    samples_ts: z.array(rate),
  })
  .refine((row) => row.n_prompt > 0 || row.n_gen > 0, { message: "n_prompt and n_gen are both 0: neither a pp nor a tg test", path: ["n_gen"] });

export function llamaBenchTestKind(nPrompt: number, nGen: number): LlamaBenchTestKind {
  return nGen === 0 ? "pp" : nPrompt === 0 ? "tg" : "pg";
}

function toRow(raw: z.infer<typeof rawRowSchema>): LlamaBenchRow {
  const kind = llamaBenchTestKind(raw.n_prompt, raw.n_gen);
  return {
    test: kind === "pp" ? `pp${raw.n_prompt}` : kind === "tg" ? `tg${raw.n_gen}` : `pp${raw.n_prompt}+tg${raw.n_gen}`,
    kind,
    buildCommit: raw.build_commit,
    buildNumber: raw.build_number,
    cuda: raw.cuda,
    opencl: raw.opencl,
    metal: raw.metal,
    gpuBlas: raw.gpu_blas,
    blas: raw.blas,
    cpuInfo: raw.cpu_info,
    gpuInfo: raw.gpu_info,
    modelFilename: raw.model_filename,
    modelType: raw.model_type,
    modelSize: raw.model_size,
    modelNParams: raw.model_n_params,
    nBatch: raw.n_batch,
    nThreads: raw.n_threads,
    f16Kv: raw.f16_kv,
    nGpuLayers: raw.n_gpu_layers,
    mainGpu: raw.main_gpu,
    mulMatQ: raw.mul_mat_q,
    tensorSplit: raw.tensor_split,
    nPrompt: raw.n_prompt,
    nGen: raw.n_gen,
    testTime: raw.test_time,
    avgNs: raw.avg_ns,
    stddevNs: raw.stddev_ns,
    avgTs: raw.avg_ts,
    stddevTs: raw.stddev_ts,
    samplesNs: raw.samples_ns,
    samplesTs: raw.samples_ts,
  };
}

const NON_FINITE_TOKEN = /^[+-]?(?:inf(?:inity)?|nan(?:\([^)]*\))?)(?![\w.])/i;

/** Bare inf/nan tokens outside JSON strings -> null. */
function nonFiniteToNull(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if ("+-iInN".includes(c) && !/[\w.]/.test(text[i - 1] ?? "")) {
      const m = NON_FINITE_TOKEN.exec(text.slice(i, i + 32));
      if (m) {
        out += "null";
        i += m[0].length;
        continue;
      }
    }
    out += c;
    i++;
  }
  return out;
}

/**
 * The rows of `llama-bench -o json` (stdout), in order, typed.
 * @throws BenchError E_BENCH_LLAMA_BENCH_INVALID: not JSON (e.g. cut short by a failed model load), not an array,
 *   no rows, or a row lacking a field (the message names it, e.g. `[1].n_gen`).
 */
export function parseLlamaBenchJson(text: string): LlamaBenchRow[] {
  if (text.trim() === "") throw new BenchError("E_BENCH_LLAMA_BENCH_INVALID", "llama-bench printed no JSON (empty output)");
  let data: unknown;
  try {
    data = JSON.parse(nonFiniteToNull(text));
  } catch (error) {
    throw new BenchError("E_BENCH_LLAMA_BENCH_INVALID", `llama-bench output is not valid JSON (cut short?): ${(error as Error).message}`, { cause: error });
  }
  if (!Array.isArray(data)) throw new BenchError("E_BENCH_LLAMA_BENCH_INVALID", "llama-bench JSON is not an array of test results");
  if (data.length === 0) throw new BenchError("E_BENCH_LLAMA_BENCH_INVALID", "llama-bench JSON holds no test results");
  const parsed = z.array(rawRowSchema).safeParse(data);
  if (!parsed.success) throw schemaError("E_BENCH_LLAMA_BENCH_INVALID", "llama-bench JSON", parsed.error.issues);
  return parsed.data.map(toRow);
}
