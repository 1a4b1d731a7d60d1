/**
 * bench.json: one benchmark of one model on one engine build on one host (schemaVersion 1), its zod schema, the
 * per-metric aggregates over the measured runs, and the host class that decides which results are comparable.
 * Pure: no I/O.
 */
import * as z from "zod";
import { BACKENDS } from "../config/engine-config.js";
import { llamaBenchRowSchema } from "./llama-bench.js";
import { BenchError, schemaError, type Timings } from "./timings.js";
import { endToEndTokensPerSecond } from "./gpu-log.js";

export const BENCH_SCHEMA_VERSION = 1 as const;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "a lowercase sha256 hex digest (64 characters)");
const count = z.number().int().nonnegative();
const ms = z.number().nullable();

export const timingsSchema = z.object({
  loadMs: ms,
  sampleMs: ms,
  sampleRuns: z.number().int(),
  promptEvalMs: ms,
  promptTokens: z.number().int(),
  evalMs: ms,
  evalRuns: z.number().int(),
  totalMs: ms,
  promptTokensPerSecond: ms,
  evalTokensPerSecond: ms,
  msPerToken: ms,
  warnings: z.array(z.string()).default([]),
}) satisfies z.ZodType<Timings, unknown>;

export const benchRunSchema = z.object({
  timings: timingsSchema,
  /** Peak resident set size of the engine process (VmHWM); null where it could not be read (process gone first). */
  peakRssBytes: count.nullable(),
  cpuUserMs: z.number().nonnegative().nullable(),
  cpuSystemMs: z.number().nonnegative().nullable(),
  /** Peak GPU memory used by the process, where a GPU was used and could be read. */
  gpuMemoryBytes: count.optional(),
  /** The loader's GPU lines (offloaded FFN MiB, VRAM used, layers within the budget, the index), on GPU builds. */
  gpuLog: z
    .object({
      offloadedFfnMiB: z.number().nullable(),
      vramUsedMB: z.number().nullable(),
      offloadedLayers: z.object({ layers: count, of: count, budgetBytes: z.number() }).nullable(),
      gpuIndex: z.enum(["loaded", "generated", "failed"]).nullable(),
      lines: z.array(z.string()),
    })
    .optional(),
  wallMs: z.number().nonnegative(),
  exitCode: z.number().int(),
});
export type BenchRun = z.infer<typeof benchRunSchema>;

export const aggregateSchema = z.object({
  median: z.number(),
  min: z.number(),
  max: z.number(),
  mean: z.number(),
  /** Sample standard deviation (n - 1); 0 for one sample. */
  stddev: z.number().nonnegative(),
  samples: z.array(z.number()).min(1),
});
export type Aggregate = z.infer<typeof aggregateSchema>;

/** The aggregated metrics; for each, higher or lower is better (see compare.ts). */
export const AGGREGATE_METRICS = ["evalTokensPerSecond", "promptTokensPerSecond", "endToEndTokensPerSecond", "loadMs", "totalMs", "msPerToken", "peakRssBytes"] as const;
export type AggregateMetric = (typeof AGGREGATE_METRICS)[number];

/** null: no run had a finite value for the metric (e.g. inf tokens/s with -n 1; no total in a YAML log). */
export const aggregatesSchema = z.object({
  evalTokensPerSecond: aggregateSchema.nullable(),
  promptTokensPerSecond: aggregateSchema.nullable(),
  /** Tokens generated / (prompt + generation time): the engine authors' metric. Absent in results written before it. */
  endToEndTokensPerSecond: aggregateSchema.nullable().default(null),
  loadMs: aggregateSchema.nullable(),
  totalMs: aggregateSchema.nullable(),
  msPerToken: aggregateSchema.nullable(),
  peakRssBytes: aggregateSchema.nullable(),
}) satisfies z.ZodType<Record<AggregateMetric, Aggregate | null>, unknown>;
export type Aggregates = z.infer<typeof aggregatesSchema>;

export const gpuSchema = z.object({
  name: z.string().min(1),
  driver: z.string(),
  memoryBytes: count,
});

export const hostSchema = z.object({
  cpuModel: z.string().min(1),
  physicalCores: z.number().int().positive(),
  logicalCores: z.number().int().positive(),
  memoryBytes: count,
  os: z.string(),
  kernel: z.string(),
  gpus: z.array(gpuSchema),
  /** deriveHostClass(): results are compared only within one host class. */
  hostClass: z.string().min(1),
});
export type BenchHost = z.infer<typeof hostSchema>;

export const benchResultSchema = z.object({
  schemaVersion: z.literal(BENCH_SCHEMA_VERSION),
  model: z.object({
    name: z.string().min(1),
    file: z.string().min(1),
    sha256,
    /** PWRI magic: PowerInfer sparse inference. */
    sparse: z.boolean(),
    /** general.file_type (1 F16, 2 Q4_0, ...). */
    fileType: z.number().int().nonnegative().optional(),
  }),
  engine: z.object({
    buildDir: z.string().min(1),
    backend: z.enum(BACKENDS),
    buildNumber: z.number().int().nonnegative(),
    buildCommit: z.string().min(1),
    /** sha256 of the `main` binary that ran. */
    binarySha256: sha256,
  }),
  host: hostSchema,
  settings: z.object({
    threads: z.number().int().positive(),
    prompt: z.string(),
    promptTokens: count.optional(),
    nPredict: z.number().int(),
    ctxSize: count,
    seed: z.number().int(),
    temp: z.number().nonnegative(),
    topP: z.number().nonnegative(),
    warmupRuns: count,
    runs: z.number().int().positive(),
    vramBudgetGiB: z.number().optional(),
    /** "paper": the engine authors' methodology (fixed prompt set, explicit VRAM budget, end-to-end metric). */
    profile: z.enum(["default", "paper"]).optional(),
    /** The prompt set, used in turn by the measured runs (paper profile). */
    prompts: z.array(z.string()).optional(),
  }),
  /** The engine command line of a measured run (argv[0] first). */
  command: z.array(z.string()).min(1),
  runs: z.array(benchRunSchema).min(1),
  aggregates: aggregatesSchema,
  llamaBench: z.array(llamaBenchRowSchema).optional(),
  createdAt: z.iso.datetime({ offset: true }),
});
export type BenchResult = z.infer<typeof benchResultSchema>;
/** What a writer may pass (timings.warnings may be left out). */
export type BenchResultInput = z.input<typeof benchResultSchema>;

/**
 * median, min, max, mean and sample standard deviation (n - 1; 0 for one sample) of `samples`, kept in order.
 * @throws RangeError on no samples or a non-finite one (buildAggregates leaves those out first).
 */
export function aggregate(samples: readonly number[]): Aggregate {
  if (samples.length === 0) throw new RangeError("aggregate: no samples");
  if (!samples.every(Number.isFinite)) throw new RangeError(`aggregate: non-finite sample in [${samples.join(", ")}]`);
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const mean = samples.reduce((sum, x) => sum + x, 0) / n;
  const variance = n < 2 ? 0 : samples.reduce((sum, x) => sum + (x - mean) ** 2, 0) / (n - 1);
  return { median, min: sorted[0]!, max: sorted[n - 1]!, mean, stddev: Math.sqrt(variance), samples: [...samples] };
}

/** The aggregates over the measured runs; a metric's null values are left out, and it is null if none is left. */
export function buildAggregates(runs: readonly { timings: Timings; peakRssBytes: number | null }[]): Aggregates {
  const over = (pick: (run: (typeof runs)[number]) => number | null): Aggregate | null => {
    const samples = runs.map(pick).filter((x): x is number => x !== null && Number.isFinite(x));
    return samples.length === 0 ? null : aggregate(samples);
  };
  return {
    evalTokensPerSecond: over((r) => r.timings.evalTokensPerSecond),
    promptTokensPerSecond: over((r) => r.timings.promptTokensPerSecond),
    endToEndTokensPerSecond: over((r) => endToEndTokensPerSecond(r.timings)),
    loadMs: over((r) => r.timings.loadMs),
    totalMs: over((r) => r.timings.totalMs),
    msPerToken: over((r) => r.timings.msPerToken),
    peakRssBytes: over((r) => r.peakRssBytes),
  };
}

/**
 * A bench.json, as text or already parsed, validated.
 * @throws BenchError E_BENCH_RESULT_INVALID: not JSON, or schema problems, each named by its key path
 *   (e.g. `runs[0].timings.evalMs: Invalid input: expected number, received string`; `paths` lists them).
 */
export function parseBenchResult(json: unknown, source = "bench.json"): BenchResult {
  let data = json;
  if (typeof json === "string") {
    try {
      data = JSON.parse(json);
    } catch (error) {
      throw new BenchError("E_BENCH_RESULT_INVALID", `${source} is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  const parsed = benchResultSchema.safeParse(data);
  if (!parsed.success) throw schemaError("E_BENCH_RESULT_INVALID", source, parsed.error.issues);
  return parsed.data;
}

/** Validated, pretty-printed bench.json text (2 spaces, trailing newline). @throws BenchError E_BENCH_RESULT_INVALID. */
export function serializeBenchResult(result: BenchResultInput): string {
  return `${JSON.stringify(parseBenchResult(result), null, 2)}\n`;
}
