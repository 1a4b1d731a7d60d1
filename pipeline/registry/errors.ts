/**
 * The registry transport's error codes. Callers switch on `code`; the message names the
 * registry, repository and object, and says what to do. Credentials never appear in any
 * of them: messages are built from hosts, repositories, digests and status codes only.
 */
import { PipelineError, type DeclaredCode } from "../core/errors.js";

export const REGISTRY_ERROR_CODES = [
  /** Missing or refused credentials (after one fresh attempt: no retry storm). */
  "E_REGISTRY_AUTH",
  /** Connection refused, DNS failure, TLS failure, or resets past the retry budget. */
  "E_REGISTRY_UNREACHABLE",
  /** Any other non-success answer; `status` and the registry's error `registryCode` are set. */
  "E_REGISTRY_HTTP",
  /** Manifest, blob, tag or repository unknown. */
  "E_REGISTRY_NOT_FOUND",
  /** A malformed `oci://` reference, repository name, tag or digest. */
  "E_REGISTRY_REFERENCE",
  /** Plain HTTP to a host that is not loopback, without `insecure`. */
  "E_REGISTRY_INSECURE",
  /** A manifest over the size cap, too many pages or redirects. */
  "E_REGISTRY_LIMIT",
  /** An answer that breaks the protocol: bad JSON, a Content-Type that contradicts the body, a wrong Range. */
  "E_REGISTRY_BAD_RESPONSE",
] as const;

export type RegistryErrorCode = (typeof REGISTRY_ERROR_CODES)[number];

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<RegistryErrorCode, true> {}
}

/** Codes RegistryError carries: the registry's own plus the shared digest check. (An abort is core's AbortedError.) */
export type RegistryFailureCode = RegistryErrorCode | DeclaredCode<"E_DIGEST_MISMATCH">;

export class RegistryError extends PipelineError<RegistryFailureCode> {
  /** HTTP status of the answer that failed, when there was one. */
  readonly status: number | undefined;
  /** The first `errors[].code` of the registry's JSON error body (`MANIFEST_UNKNOWN`, `DENIED`…). */
  readonly registryCode: string | undefined;

  constructor(code: RegistryFailureCode, message: string, options: { status?: number; registryCode?: string; cause?: unknown; details?: readonly string[] } = {}) {
    super(code, message, options);
    this.status = options.status;
    this.registryCode = options.registryCode;
  }
}

export function isRegistryError(error: unknown): error is RegistryError {
  return error instanceof RegistryError;
}
