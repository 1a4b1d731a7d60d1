/**
 * Reading a pulled ModelPack manifest, before anything is fetched or written: the bytes
 * come from a registry, so every field that decides what is downloaded or where a file
 * lands is checked here, and a manifest that fails any check is refused whole. Pure.
 *
 * Limits (documented in the README):
 * - a manifest over 4 MiB (4,194,304 bytes, CNCF Distribution's own limit) → E_REGISTRY_LIMIT;
 * - more than 10,000 layers → E_REGISTRY_LIMIT (a raw layer costs ~360-400 bytes of manifest,
 *   so 4 MiB holds about 10⁴; no model has that many files);
 * - a config blob over 4 MiB is not read (MAX_CONFIG_BYTES, for the caller that fetches it).
 * Refused as E_REGISTRY_MANIFEST_INVALID: not an OCI image manifest, an artifactType or config
 * type that is not ModelPack's (either spelling), a descriptor without a sha256 digest and a
 * byte size, an unknown or compressed layer type, a layer without a file path.
 * Refused as E_REGISTRY_UNSAFE_PATH: a file path with `..`, `.` or empty segments, absolute,
 * with a backslash or a control character, too long, listed twice, or colliding with another
 * layer's (equal ignoring case or Unicode normalisation, or one inside the other).
 */
import { createHash } from "node:crypto";
import { findCollision, layerPathProblem } from "./layer-paths.js";
import {
  FILEPATH_ANNOTATION,
  IMAGE_MANIFEST_MEDIA_TYPE,
  LEGACY_FILEPATH_ANNOTATION,
  MODEL_ARTIFACT_TYPES,
  MODEL_CONFIG_MEDIA_TYPES,
  MODEL_MANIFEST_ARTIFACT_TYPE,
  parseLayerMediaType,
  SHA256_DIGEST,
  type LayerContent,
  type OciDescriptor,
  type OciManifest,
} from "./oci-spec.js";
import { PipelineError } from "../core/errors.js";
import { PackError } from "./pack-errors.js";

export const MAX_MANIFEST_BYTES = 4 << 20;
export const MAX_LAYERS = 10_000;
export const MAX_CONFIG_BYTES = 4 << 20;

export interface ParsedLayer {
  descriptor: OciDescriptor;
  /** Where the file (raw) or the folder (tar) goes, relative to the model directory. */
  filepath: string;
  packing: "raw" | "tar";
  content: LayerContent;
}

export interface ParsedModelPack {
  /** `sha256:` of the exact bytes. */
  digest: string;
  size: number;
  manifest: OciManifest;
  config: OciDescriptor;
  layers: ParsedLayer[];
  annotations: Record<string, string>;
  /** Written with the pre-v0.0.7 `vnd.cnai` / `org.cnai` names. */
  legacy: boolean;
}

const invalid = (message: string) => new PackError("E_REGISTRY_MANIFEST_INVALID", message);

export interface ParseManifestOptions {
  /** How errors name the manifest (default "the manifest"; e.g. the reference it came from). */
  what?: string;
  /** The digest the bytes must have (a pull by digest, a descriptor from a tag): else E_DIGEST_MISMATCH. */
  expectedDigest?: string;
}

export function parseModelPackManifest(bytes: Uint8Array, options: ParseManifestOptions = {}): ParsedModelPack {
  const what = options.what ?? "the manifest";
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  if (options.expectedDigest !== undefined && options.expectedDigest !== digest) {
    throw new PipelineError("E_DIGEST_MISMATCH", `${what} is ${digest}, not the requested ${options.expectedDigest}: refusing it`);
  }
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new PackError("E_REGISTRY_LIMIT", `${what} is ${bytes.length} bytes; manifests over ${MAX_MANIFEST_BYTES} bytes (4 MiB) are refused`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (error) {
    throw invalid(`${what} is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw invalid(`${what} is not a JSON object`);
  if (value.schemaVersion !== 2) throw invalid(`${what} has schemaVersion ${JSON.stringify(value.schemaVersion)}; an OCI manifest has 2`);
  if (value.mediaType !== IMAGE_MANIFEST_MEDIA_TYPE) throw invalid(`${what} has mediaType ${JSON.stringify(value.mediaType)}; a ModelPack manifest is ${IMAGE_MANIFEST_MEDIA_TYPE}`);
  if (typeof value.artifactType !== "string" || !MODEL_ARTIFACT_TYPES.has(value.artifactType)) {
    throw invalid(`${what} has artifactType ${JSON.stringify(value.artifactType)}: not a ModelPack model (${MODEL_MANIFEST_ARTIFACT_TYPE})`);
  }
  const config = descriptor(value.config, `${what}: config`);
  if (!MODEL_CONFIG_MEDIA_TYPES.has(config.mediaType)) throw invalid(`${what}: config type ${JSON.stringify(config.mediaType)} is not a ModelPack config`);
  if (config.size > MAX_CONFIG_BYTES) throw new PackError("E_REGISTRY_LIMIT", `${what}: the config blob is ${config.size} bytes; more than ${MAX_CONFIG_BYTES} is refused`);

  if (!Array.isArray(value.layers)) throw invalid(`${what} has no layers list`);
  if (value.layers.length > MAX_LAYERS) throw new PackError("E_REGISTRY_LIMIT", `${what} lists ${value.layers.length} layers; more than ${MAX_LAYERS} are refused`);
  if (value.layers.length === 0) throw invalid(`${what} lists no layers: there is no model in it`);

  const layers: ParsedLayer[] = value.layers.map((raw: unknown, i: number) => {
    const d = descriptor(raw, `${what}: layer ${i}`);
    const type = parseLayerMediaType(d.mediaType);
    if (!type) throw invalid(`${what}: layer ${i} has media type ${JSON.stringify(d.mediaType)}, not a ModelPack layer type`);
    if (type.packing !== "raw" && type.packing !== "tar") throw invalid(`${what}: layer ${i} is ${type.packing}; compressed tar layers are not supported (raw and tar are)`);
    const filepath = d.annotations?.[FILEPATH_ANNOTATION] ?? d.annotations?.[LEGACY_FILEPATH_ANNOTATION];
    if (filepath === undefined) throw invalid(`${what}: layer ${i} (${d.digest}) has no ${FILEPATH_ANNOTATION} annotation: there is nowhere to put it`);
    const problem = layerPathProblem(filepath);
    if (problem) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${what}: layer ${i} file path ${JSON.stringify(filepath)} ${problem}; refusing the manifest`);
    return { descriptor: d, filepath, packing: type.packing, content: type.content };
  });

  const seen = new Set<string>();
  for (const layer of layers) {
    if (seen.has(layer.filepath)) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${what}: two layers have the file path ${JSON.stringify(layer.filepath)}`);
    seen.add(layer.filepath);
  }
  const collision = findCollision(layers.map((l) => l.filepath));
  if (collision) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${what}: layer paths ${JSON.stringify(collision[0])} and ${JSON.stringify(collision[1])} would land on the same file or one inside the other`);

  const annotations = value.annotations === undefined ? {} : stringRecord(value.annotations, `${what}: annotations`);
  return {
    digest,
    size: bytes.length,
    manifest: value as unknown as OciManifest,
    config,
    layers,
    annotations,
    legacy: value.artifactType !== MODEL_MANIFEST_ARTIFACT_TYPE,
  };
}

function descriptor(value: unknown, what: string): OciDescriptor {
  if (!isObject(value)) throw invalid(`${what} is not a descriptor object`);
  if (typeof value.mediaType !== "string" || value.mediaType === "") throw invalid(`${what} has no mediaType`);
  if (typeof value.digest !== "string" || !SHA256_DIGEST.test(value.digest)) {
    throw invalid(`${what} has digest ${JSON.stringify(value.digest)}; only sha256:<64 lowercase hex> digests are read`);
  }
  if (typeof value.size !== "number" || !Number.isSafeInteger(value.size) || value.size < 0) throw invalid(`${what} has size ${JSON.stringify(value.size)}, not a byte count`);
  const annotations = value.annotations === undefined ? undefined : stringRecord(value.annotations, `${what}: annotations`);
  return { mediaType: value.mediaType, digest: value.digest, size: value.size, ...(annotations ? { annotations } : {}) };
}

function stringRecord(value: unknown, what: string): Record<string, string> {
  if (!isObject(value)) throw invalid(`${what} is not an object`);
  for (const [key, v] of Object.entries(value)) if (typeof v !== "string") throw invalid(`${what}: ${key} is not a string`);
  return value as Record<string, string>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
