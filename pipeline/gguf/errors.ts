/** The GGUF reader's error codes (reader.ts), and the error that carries the file and byte offset. */
import { PipelineError } from "../core/errors.js";

export const GGUF_ERROR_CODES = ["E_GGUF_IO", "E_GGUF_TRUNCATED", "E_GGUF_MAGIC", "E_GGUF_VERSION", "E_GGUF_LIMIT", "E_GGUF_INVALID"] as const;

export type GgufErrorCode = (typeof GGUF_ERROR_CODES)[number];

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<GgufErrorCode, true> {}
}

/** A GGUF file that cannot be read or is not a sound GGUF v2/v3 (or PowerInfer `PWRI`) header. */
export class GgufError extends PipelineError<GgufErrorCode> {
  constructor(
    code: GgufErrorCode,
    message: string,
    /** The file (or source name). */
    readonly file: string,
    /** Byte offset in the file where the problem was found, where one applies. */
    readonly offset?: number,
    options: { cause?: unknown; details?: readonly string[] } = {},
  ) {
    super(code, `${file}: ${message}${offset === undefined ? "" : ` (at byte ${offset})`}`, options);
  }
}
