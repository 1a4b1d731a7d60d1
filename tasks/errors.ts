/**
 * The codes only the steps throw: the engine checkout (upstream.ts), the converter's output
 * (convert, fetch-gguf, generate, quantize) and the GPU split solver (gpu-split.ts). Codes a
 * lower floor throws too live there (a missing output is core's E_BUILD_OUTPUT; a CPU-only
 * GPU build, pipeline/engine-build's E_BUILD_BACKEND; an unsuitable Python, pipeline/python.ts's).
 */
export const TASK_ERROR_CODES = [
  // external/powerinfer has local changes.
  "E_UPSTREAM_DIRTY",
  // The config pin and the submodule gitlink disagree.
  "E_UPSTREAM_PIN_MISMATCH",
  "E_UPSTREAM_FETCH",
  "E_CONVERT_OUTPUT",
  // f32/q8_0 sparse models give NaN on CPU.
  "E_UNSAFE_OUTTYPE",
  "E_GPU_SPLIT",
] as const;

export type TaskErrorCode = (typeof TASK_ERROR_CODES)[number];

declare module "../pipeline/core/errors.js" {
  interface ErrorCodes extends Record<TaskErrorCode, true> {}
}
