/**
 * The engine build's error codes: a GPU build that came out CPU-only, or a GPU toolkit that
 * is missing. The CUDA build planning throws it (being moved here out of tasks/build.ts, by
 * the change that creates this folder's other modules), and so does the build step.
 */
export const ENGINE_BUILD_ERROR_CODES = ["E_BUILD_BACKEND"] as const;

export type EngineBuildErrorCode = (typeof ENGINE_BUILD_ERROR_CODES)[number];

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<EngineBuildErrorCode, true> {}
}
