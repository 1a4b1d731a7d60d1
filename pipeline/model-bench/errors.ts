/**
 * The model bench's error codes: an engine's timings, llama-bench's output or a bench.json
 * that cannot be read. (This is the folder the bench library is being renamed to, from
 * pipeline/bench/, so the two changes merge without moving this file.)
 */
export const BENCH_ERROR_CODES = ["E_BENCH_NO_TIMINGS", "E_BENCH_LOG_INVALID", "E_BENCH_LLAMA_BENCH_INVALID", "E_BENCH_RESULT_INVALID"] as const;

export type BenchErrorCode = (typeof BENCH_ERROR_CODES)[number];

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<BenchErrorCode, true> {}
}
