/**
 * The OCI and CNCF ModelPack names this toolkit writes and reads (oci-models.md §1, §3):
 * media types, annotation keys and descriptor shapes. Pure constants and types.
 *
 * ModelPack tags up to v0.0.6 spelled everything `vnd.cnai` / `org.cnai`; v0.0.7 renamed
 * them to `vnd.cncf` / `org.cncf`. We write the new spelling and read both (modctl still
 * reads the old keys).
 */

// The image-spec's own types are declared once, in types.ts (the transport's vocabulary).
export { OCI_MANIFEST as IMAGE_MANIFEST_MEDIA_TYPE, OCI_INDEX as IMAGE_INDEX_MEDIA_TYPE } from "./types.js";

export const MODEL_MANIFEST_ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json";
export const MODEL_CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.config.v1+json";
const LEGACY_MODEL_MANIFEST_ARTIFACT_TYPE = "application/vnd.cnai.model.manifest.v1+json";
const LEGACY_MODEL_CONFIG_MEDIA_TYPE = "application/vnd.cnai.model.config.v1+json";
export const MODEL_ARTIFACT_TYPES: ReadonlySet<string> = new Set([MODEL_MANIFEST_ARTIFACT_TYPE, LEGACY_MODEL_MANIFEST_ARTIFACT_TYPE]);
export const MODEL_CONFIG_MEDIA_TYPES: ReadonlySet<string> = new Set([MODEL_CONFIG_MEDIA_TYPE, LEGACY_MODEL_CONFIG_MEDIA_TYPE]);

/** What a layer holds (the middle of `application/vnd.cncf.model.<content>.v1.<packing>`). */
export type LayerContent = "weight" | "weight.config" | "doc" | "code" | "dataset";
/** How it is packed: we write raw and tar; compressed tars are recognised and refused. */
export type LayerPacking = "raw" | "tar" | "tar+gzip" | "tar+zstd";

export function layerMediaType(content: LayerContent, packing: LayerPacking): string {
  return `application/vnd.cncf.model.${content}.v1.${packing}`;
}

const LAYER_MEDIA_TYPE = /^application\/vnd\.(cncf|cnai)\.model\.(weight|weight\.config|doc|code|dataset)\.v1\.(raw|tar|tar\+gzip|tar\+zstd)$/;

/** A ModelPack layer media type (either spelling) split into its parts, else null. */
export function parseLayerMediaType(mediaType: string): { content: LayerContent; packing: LayerPacking } | null {
  const match = LAYER_MEDIA_TYPE.exec(mediaType);
  return match ? { content: match[2] as LayerContent, packing: match[3] as LayerPacking } : null;
}

/** Layer annotations (docs/annotations.md). */
export const FILEPATH_ANNOTATION = "org.cncf.model.filepath";
export const FILE_METADATA_ANNOTATION = "org.cncf.model.file.metadata+json";
export const MEDIATYPE_UNTESTED_ANNOTATION = "org.cncf.model.file.mediatype.untested";
export const LEGACY_FILEPATH_ANNOTATION = "org.cnai.model.filepath";

/** Manifest and index annotations (image-spec annotations.md). */
export const OCI_CREATED = "org.opencontainers.image.created";
export const OCI_TITLE = "org.opencontainers.image.title";
export const OCI_VERSION = "org.opencontainers.image.version";
export const OCI_SOURCE = "org.opencontainers.image.source";
export const OCI_REVISION = "org.opencontainers.image.revision";
export const OCI_REF_NAME = "org.opencontainers.image.ref.name";

/**
 * Our manifest annotations: what the ModelPack config cannot hold (every config object is
 * `additionalProperties: false`). Prefix `dev.ai-tools.`; values are strings.
 */
export const AI_TOOLS_ANNOTATIONS = {
  /** "PowerInfer GGUF" (PWRI magic) or "GGUF": the config's `format` can only say "gguf". */
  format: "dev.ai-tools.model.format",
  /** The PowerInfer commit the model was converted and benchmarked with (40 hex). */
  engineCommit: "dev.ai-tools.engine.commit",
  /** `sha256:<hex>` of provenance.sigstore.json (also its layer's digest). */
  provenanceDigest: "dev.ai-tools.provenance.digest",
  /** `sha256:<hex>`: the OMS root digest model.sig signs (the directory's identity). */
  rootDigest: "dev.ai-tools.signature.root",
  /** The signing key's hint (hex sha256 of its PEM SPKI), as model.sig names it. */
  keyHint: "dev.ai-tools.signature.key-hint",
} as const;

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType: string;
  artifactType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  subject?: OciDescriptor;
  annotations?: Record<string, string>;
}

export interface OciIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: OciDescriptor[];
  annotations?: Record<string, string>;
}

/** `sha256:<64 lowercase hex>`: the only algorithm this toolkit reads or writes. */
export const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

export function hexOf(digest: string): string {
  if (!SHA256_DIGEST.test(digest)) throw new TypeError(`not a sha256 digest: ${JSON.stringify(digest)}`);
  return digest.slice("sha256:".length);
}
