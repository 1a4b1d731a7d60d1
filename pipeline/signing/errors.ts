/**
 * The verification error taxonomy (signing.md §8): one code per way a model directory
 * can fail to be what was signed. Consumers switch on `code`; messages name the file
 * and say what to do.
 */
import { PipelineError, type DeclaredCode } from "../core/errors.js";

/** Signing's own codes: what `sign` and `keygen` refuse. */
export const SIGN_ERROR_CODES = [
  // The signing key is missing, unreadable, world-readable, encrypted without a passphrase, or not EC.
  "E_SIGNING_KEY",
  "E_SIGN_INPUT",
  // A file name with control characters, bidirectional overrides or bytes that are not UTF-8: refused by sign.
  "E_SIGN_UNSAFE_NAME",
] as const;

export type SignErrorCode = (typeof SIGN_ERROR_CODES)[number];

/** The verifier's own codes (VerifyErrorCode adds core's file codes: E_DIGEST_MISMATCH, E_MISSING_FILE, E_NOT_REGULAR_FILE, E_IO). */
export const VERIFY_ERROR_CODES = [
  "E_NO_SIGNATURE",
  "E_MALFORMED",
  "E_UNSUPPORTED",
  "E_UNKNOWN_KEY",
  "E_KEY_EXPIRED",
  "E_KEY_REVOKED",
  "E_BAD_SIGNATURE",
  "E_MANIFEST_INVALID",
  "E_EXTRA_FILE",
  "E_PROVENANCE_MISMATCH",
  "E_POLICY",
  "E_TRUST_CONFIG",
] as const;

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<SignErrorCode | (typeof VERIFY_ERROR_CODES)[number], true> {}
}

/** Every code a VerifyError carries (public: `ai-tools/verify`). */
export type VerifyErrorCode = (typeof VERIFY_ERROR_CODES)[number] | DeclaredCode<"E_DIGEST_MISMATCH" | "E_MISSING_FILE" | "E_NOT_REGULAR_FILE" | "E_IO">;

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
