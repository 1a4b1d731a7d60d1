/**
 * The manifests that attach model.sig and the SLSA provenance to a model manifest as
 * referrers (oci-models.md §5, §8): the sigstore bundle as the one layer, the empty config,
 * the model manifest as `subject`. The bundle blob is the same one the model manifest
 * carries as a layer, so attaching uploads nothing but this small manifest.
 *
 * Our model.sig signs the directory's root digest, not the manifest digest: as a referrer
 * it serves discovery (`skopeo`/`oras discover`, registry UIs); verification reads the
 * model.sig layer, which works on registries with no referrer support at all.
 */
import { OMS_PREDICATE_TYPE } from "../signing/oms.js";
import { OCI_EMPTY, OCI_MANIFEST, type Descriptor } from "./types.js";

export const SIGSTORE_BUNDLE_ARTIFACT_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
export const SLSA_PROVENANCE_PREDICATE_TYPE = "https://slsa.dev/provenance/v1";

/** The empty JSON object `{}` (image-spec "empty descriptor"); still uploaded as a blob (2.8.2 checks configs exist). */
export const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: OCI_EMPTY,
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
};
export const EMPTY_BLOB = Buffer.from("{}");

export type ReferrerKind = "signature" | "provenance";

const PREDICATE: Record<ReferrerKind, string> = {
  signature: OMS_PREDICATE_TYPE,
  provenance: SLSA_PROVENANCE_PREDICATE_TYPE,
};

/** Compact, fixed key order: the same inputs give the same referrer digest (re-pushes add nothing). */
export function referrerManifest(kind: ReferrerKind, bundle: Descriptor, subject: Descriptor, created: string | undefined): Buffer {
  const annotations: Record<string, string> = {
    "dev.sigstore.bundle.content": "dsse-envelope",
    "dev.sigstore.bundle.predicateType": PREDICATE[kind],
    ...(created ? { "org.opencontainers.image.created": created } : {}),
  };
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: SIGSTORE_BUNDLE_ARTIFACT_TYPE,
      config: EMPTY_DESCRIPTOR,
      layers: [{ mediaType: SIGSTORE_BUNDLE_ARTIFACT_TYPE, digest: bundle.digest, size: bundle.size }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations,
    }),
  );
}
