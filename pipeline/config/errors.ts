/**
 * The model catalogue's error codes (local-recipe.ts, and the download and graph steps that
 * check a checkpoint against it). A bad recipe or config value is core's E_CONFIG_*.
 */
export const MODEL_ERROR_CODES = [
  // The model is not one the pinned engine can run sparsely (not ReLU-family, mixture-of-experts, another format) or convert.
  "E_MODEL_UNSUPPORTED",
] as const;

export type ModelErrorCode = (typeof MODEL_ERROR_CODES)[number];

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<ModelErrorCode, true> {}
}
