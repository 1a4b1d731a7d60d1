/**
 * The verification error taxonomy (signing.md §8): one code per way a model directory
 * can fail to be what was signed. Consumers switch on `code`; messages name the file
 * and say what to do.
 */
import { PipelineError } from "../core/errors.js";

export type VerifyErrorCode =
  | "E_NO_SIGNATURE"
  | "E_MALFORMED"
  | "E_UNSUPPORTED"
  | "E_UNKNOWN_KEY"
  | "E_KEY_EXPIRED"
  | "E_KEY_REVOKED"
  | "E_BAD_SIGNATURE"
  | "E_MANIFEST_INVALID"
  | "E_NOT_REGULAR_FILE"
  | "E_MISSING_FILE"
  | "E_EXTRA_FILE"
  | "E_DIGEST_MISMATCH"
  | "E_PROVENANCE_MISMATCH"
  | "E_POLICY"
  | "E_TRUST_CONFIG"
  | "E_IO";

export class VerifyError extends PipelineError<VerifyErrorCode> {
  /** Model-relative names the failure is about (missing, extra, mismatched files). */
  readonly files: readonly string[];

  constructor(code: VerifyErrorCode, message: string, options: { cause?: unknown; details?: readonly string[]; files?: readonly string[] } = {}) {
    super(code, message, options);
    this.files = options.files ?? [];
  }
}

export function isVerifyError(error: unknown): error is VerifyError {
  return error instanceof VerifyError;
}
