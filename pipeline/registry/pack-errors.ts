/**
 * Error codes of the registry-free half of OCI distribution (the ModelPack layout and the
 * local store): what a pulled manifest or tar layer may not do. Kept apart from the
 * transport's errors.ts so the two halves merge without touching each other's codes.
 * A blob whose bytes differ from its digest is the existing E_DIGEST_MISMATCH; a pulled
 * directory that differs from its signature keeps the verifier's codes (E_MISSING_FILE,
 * E_EXTRA_FILE, E_DIGEST_MISMATCH).
 */
import { PipelineError, type DeclaredCode } from "../core/errors.js";

export const PACK_ERROR_CODES = [
  /** A layer path or tar member that could write outside its place: `..`, absolute, backslash, control characters, a link or device, a duplicate. */
  "E_REGISTRY_UNSAFE_PATH",
  /** Not a ModelPack manifest this toolkit can materialise (types, descriptors, annotations). */
  "E_REGISTRY_MANIFEST_INVALID",
] as const;

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<(typeof PACK_ERROR_CODES)[number], true> {}
}

/** The pack's own codes, and a manifest, layer count, config or path past the documented limits (the transport's E_REGISTRY_LIMIT, errors.ts). */
export type PackErrorCode = (typeof PACK_ERROR_CODES)[number] | DeclaredCode<"E_REGISTRY_LIMIT">;

export class PackError extends PipelineError<PackErrorCode> {}
