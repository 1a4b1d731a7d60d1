/** OCI media types and the descriptor shape the registry layer speaks (image-spec v1.1). */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";
/** What every manifest GET/HEAD accepts unless told otherwise (2.8.2 hides OCI manifests from other Accept lists). */
export const OCI_MANIFEST_TYPES: readonly string[] = [OCI_MANIFEST, OCI_INDEX];
/** distribution's `maxManifestBodySize` (4 << 20), and what the spec asks registries to accept. */
export const MANIFEST_SIZE_LIMIT = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}
