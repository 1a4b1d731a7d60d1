/**
 * Pull: `oci://HOST/REPO:TAG` or `@sha256:…` into the local content-addressed store, then a
 * model directory built from it and verified like `verify` before it gets its name.
 *
 * Both bindings are checked, and the cheap ones first: the manifest's digest (when pulled
 * by digest), then the model.sig layer (small) against the trusted keys, then every layer
 * against the files model.sig signs — all before a single weight byte is fetched, so a
 * swapped layer or an unknown signer costs kilobytes, not gigabytes. Each blob is checked
 * against its digest as it arrives and only then named in the store; the directory is
 * verified in a temporary folder and renamed into place: nothing unverified is left under
 * models/.
 */
import { MAX_BUNDLE_BYTES } from "../signing/bundle.js";
import { mapLimit } from "../core/concurrency.js";
import { SIGNATURE_FILE } from "../signing/oms.js";
import type { RegistryClient } from "./client.js";
import { RegistryError } from "./errors.js";
import type { BlobLocations } from "./locations.js";
import { bindLayersToSignature, signedManifestOf, type MaterializeResult } from "./materialize.js";
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseModelPackManifest, type ParsedModelPack } from "./modelpack-parse.js";
import { formatReference, type RegistryReference } from "./reference.js";
import type { OciStore } from "./store.js";
import { OCI_MANIFEST } from "./types.js";

export interface PulledBlob {
  name: string;
  digest: string;
  size: number;
  /** False when the store already had it. */
  fetched: boolean;
  resumedFrom: number;
}

export type PullProgress =
  | { kind: "manifest"; digest: string; from: "store" | "registry" }
  | { kind: "plan"; blobs: number; bytes: number; missing: number; missingBytes: number }
  | { kind: "blob"; name: string; digest: string; received: number; total: number | undefined }
  | { kind: "blob-done"; blob: PulledBlob };

export interface PullOptions {
  client: RegistryClient;
  reference: RegistryReference;
  store: OciStore;
  /** The model directory to create. */
  to: string;
  /** Refuse a reference without a digest (production: a tag can be moved). */
  requireDigest?: boolean;
  /** Replace a directory already at `to`. */
  replace?: boolean;
  /** The model.sig bundle against the trusted keys, before any weight is fetched (throws VerifyError). */
  checkSignature: (bundle: Buffer, label: string) => void | Promise<void>;
  /** The whole directory, as `verify` checks it, before it gets its name (throws VerifyError). */
  verify: (dir: string) => Promise<unknown>;
  locations?: BlobLocations;
  /** Blobs fetched at once (default 4). */
  concurrency?: number;
  onProgress?: (event: PullProgress) => void;
  signal?: AbortSignal;
}

export interface PullResult {
  /** The reference with the digest it resolved to. */
  reference: string;
  digest: string;
  tag: string | undefined;
  dir: string;
  blobs: PulledBlob[];
  bytesFetched: number;
  materialized: MaterializeResult;
}

export async function pullModel(options: PullOptions): Promise<PullResult> {
  const { client, reference, store } = options;
  const repository = reference.repository;
  if (options.requireDigest && !reference.digest) {
    throw new RegistryError("E_REGISTRY_REFERENCE", `${formatReference(reference)}: a tag can be moved to another artifact, and --require-digest is set`, {
      details: [`Pull by digest: ${formatReference({ ...reference, tag: undefined, digest: "sha256:<digest>" })} (push prints it, and so does a pull by tag).`],
    });
  }

  const manifest = await fetchManifest(options);
  const layers = manifest.layers;

  // The signature first: who signed it, and which files it covers, before any weight moves.
  const signatureLayer = layers.find((l) => l.packing === "raw" && l.filepath === SIGNATURE_FILE);
  const early = signatureLayer ? await ingest(options, signatureLayer.filepath, signatureLayer.descriptor.digest, signatureLayer.descriptor.size) : undefined;
  const signed = await signedManifestOf(store, manifest);
  await options.checkSignature(await store.readBlob(signatureLayer!.descriptor.digest, MAX_BUNDLE_BYTES), `${SIGNATURE_FILE} of ${formatReference(reference)}`);
  bindLayersToSignature(manifest, signed);

  const wanted = [
    ...layers.map((l) => ({ name: l.filepath, digest: l.descriptor.digest, size: l.descriptor.size })),
    { name: "config", digest: manifest.config.digest, size: manifest.config.size },
  ];
  if (manifest.config.size > MAX_CONFIG_BYTES) throw new RegistryError("E_REGISTRY_LIMIT", `${formatReference(reference)}: the config blob is ${manifest.config.size} bytes, over ${MAX_CONFIG_BYTES}`);
  const missing = [];
  for (const blob of wanted) if (blob.digest === early?.digest ? early.fetched : !(await store.has(blob.digest))) missing.push(blob);
  options.onProgress?.({
    kind: "plan",
    blobs: wanted.length,
    bytes: wanted.reduce((n, b) => n + b.size, 0),
    missing: missing.length,
    missingBytes: missing.reduce((n, b) => n + b.size, 0),
  });
  const blobs = await mapLimit(wanted, options.concurrency ?? 4, (blob) => (blob.digest === early?.digest ? Promise.resolve(early) : ingest(options, blob.name, blob.digest, blob.size)));

  const materialized = await store.materialize(manifest, options.to, { ...(options.replace ? { replace: true } : {}), verify: options.verify });
  const descriptor = { mediaType: OCI_MANIFEST, digest: manifest.digest, size: manifest.size };
  if (reference.tag) await store.tag(storeRef(reference), descriptor);
  await options.locations?.record(client.registry, repository, wanted.map((b) => b.digest));
  return {
    reference: formatReference({ ...reference, digest: manifest.digest }),
    digest: manifest.digest,
    tag: reference.tag,
    dir: materialized.dir,
    blobs,
    bytesFetched: blobs.reduce((n, b) => n + (b.fetched ? b.size - b.resumedFrom : 0), 0),
    materialized,
  };
}

/** The store's name for a pulled tag: `HOST/REPO:TAG` (OCI layout ref.name). */
export function storeRef(reference: RegistryReference): string {
  return `${reference.registry}/${reference.repository}:${reference.tag ?? "latest"}`;
}

/** By digest from the store when it has it (no request at all); else from the registry, kept in the store. */
async function fetchManifest(options: PullOptions): Promise<ParsedModelPack> {
  const { client, reference, store } = options;
  const what = formatReference(reference);
  if (reference.digest && (await store.has(reference.digest))) {
    const bytes = await store.readBlob(reference.digest, MAX_MANIFEST_BYTES);
    options.onProgress?.({ kind: "manifest", digest: reference.digest, from: "store" });
    return parseModelPackManifest(bytes, { what, expectedDigest: reference.digest });
  }
  const fetched = await client.getManifest(reference.repository, reference.digest ?? reference.tag ?? "latest", {
    maxBytes: MAX_MANIFEST_BYTES,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // Parsed (limits, paths, types) before anything is written for it.
  const parsed = parseModelPackManifest(fetched.bytes, { what, ...(reference.digest ? { expectedDigest: reference.digest } : {}) });
  await store.writeBlob(fetched.bytes);
  options.onProgress?.({ kind: "manifest", digest: parsed.digest, from: "registry" });
  return parsed;
}

async function ingest(options: PullOptions, name: string, digest: string, size: number): Promise<PulledBlob> {
  const { client, reference, store } = options;
  const result = await store.ingestDownload(
    digest,
    size,
    async (partial) => {
      const got = await client.getBlob(reference.repository, digest, {
        file: partial,
        name,
        size,
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (received, total) => options.onProgress?.({ kind: "blob", name, digest, received, total }),
      });
      return { digest: got.digest, size: got.size, resumedFrom: got.resumedFrom };
    },
    options.signal ? { signal: options.signal } : {},
  );
  const blob = { name, digest, size, fetched: result.fetched, resumedFrom: result.resumedFrom };
  options.onProgress?.({ kind: "blob-done", blob });
  return blob;
}
