/** The engines' error codes (every backend, the registry of engines, the serve front's engine client). */
import { PipelineError } from "../pipeline/core/errors.js";

export const ENGINE_ERROR_CODES = [
  "E_ENGINE_UNKNOWN",
  "E_ENGINE_UNAVAILABLE",
  "E_ENGINE_FAILED",
  "E_ENGINE_TIMEOUT",
  "E_ENGINE_AUTH",
  "E_ENGINE_HTTP",
  // Ctrl-C during generation: exit 130, no error banner.
  "E_ENGINE_ABORTED",
] as const;

export type EngineErrorCode = (typeof ENGINE_ERROR_CODES)[number];

declare module "../pipeline/core/errors.js" {
  interface ErrorCodes extends Record<EngineErrorCode, true> {}
}

export class EngineError extends PipelineError<EngineErrorCode> {}
