/**
 * Error codes of the registry-free half of OCI distribution (the ModelPack layout and the
 * local store): what a pulled manifest or tar layer may not do. Kept apart from the
 * transport's errors.ts so the two halves merge without touching each other's codes.
 * A blob whose bytes differ from its digest is the existing E_DIGEST_MISMATCH; a pulled
 * directory that differs from its signature keeps the verifier's codes (E_MISSING_FILE,
 * E_EXTRA_FILE, E_DIGEST_MISMATCH).
 */
import { PipelineError } from "../core/errors.js";
import type { RegistryErrorCode } from "./errors.js";

export type PackErrorCode =
  /** A manifest, layer count, config or path past the documented limits (the transport's code, errors.ts). */
  | Extract<RegistryErrorCode, "E_REGISTRY_LIMIT">
  /** A layer path or tar member that could write outside its place: `..`, absolute, backslash, control characters, a link or device, a duplicate. */
  | "E_REGISTRY_UNSAFE_PATH"
  /** Not a ModelPack manifest this toolkit can materialise (types, descriptors, annotations). */
  | "E_REGISTRY_MANIFEST_INVALID";

export class PackError extends PipelineError<PackErrorCode> {}
