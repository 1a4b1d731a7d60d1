/**
 * Push: a signed model directory to `oci://HOST/REPO:TAG` as a ModelPack artifact, its
 * signature and provenance attached as referrers (oci-models.md §8 "Push order").
 *
 * Order: every blob (HEAD first, then a cross-repository mount when another repository of
 * the same registry is known to hold it, else an upload), the config, the manifest by
 * digest, the tag, then the referrers. A manifest therefore never names a blob the registry
 * lacks, and a push killed at any point is finished by running it again: blobs already
 * there cost one HEAD each, an interrupted upload continues its session.
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { mapLimit } from "../core/concurrency.js";
import type { RegistryClient } from "./client.js";
import { formatReference, type RegistryReference } from "./reference.js";
import type { UploadSessionStore } from "./sessions.js";
import { planModelPack, sha256Digest, type ModelPackPlan, type PlanOptions } from "./modelpack.js";
import { EMPTY_BLOB, EMPTY_DESCRIPTOR, SIGSTORE_BUNDLE_ARTIFACT_TYPE, referrerManifest, type ReferrerKind } from "./referrer-manifests.js";
import { OCI_MANIFEST, type Descriptor } from "./types.js";
import { OCI_CREATED } from "./oci-spec.js";
import type { BlobLocations } from "./locations.js";
import { PROVENANCE_FILE, SIGNATURE_FILE } from "../signing/oms.js";

export type BlobOutcome = "exists" | "mounted" | "uploaded";

export interface PushedBlob {
  name: string;
  digest: string;
  size: number;
  outcome: BlobOutcome;
  /** Body bytes sent for this blob (0 when it existed or was mounted). */
  bytesSent: number;
  /** Offset an interrupted upload session was continued from. */
  resumedFrom: number;
}

export type PushProgress =
  | { kind: "plan"; blobs: number; bytes: number }
  | { kind: "blob"; name: string; digest: string; sent: number; total: number }
  | { kind: "blob-done"; blob: PushedBlob }
  | { kind: "manifest"; digest: string }
  | { kind: "referrer"; file: string; digest: string; via: "api" | "tag-schema" };

export interface PushOptions {
  client: RegistryClient;
  reference: RegistryReference;
  /** Plan options (store for tar layers, digest cache, verifyDigests). */
  plan?: PlanOptions;
  /** Where other repositories of this registry are known to hold a blob (for mounts). */
  locations?: BlobLocations;
  /** Repositories of the same registry to try mounting from, besides the known ones. */
  mountFrom?: readonly string[];
  sessions?: UploadSessionStore;
  /** Blobs uploaded at once (default 4). */
  concurrency?: number;
  chunkSize?: number;
  monolithicLimit?: number;
  onProgress?: (event: PushProgress) => void;
  signal?: AbortSignal;
}

export interface ReferrerRecord {
  file: string;
  digest: string;
  via: "api" | "tag-schema";
}

export interface PushResult {
  reference: string;
  digest: string;
  tag: string | undefined;
  blobs: PushedBlob[];
  bytesSent: number;
  referrers: ReferrerRecord[];
}

export async function pushModel(dir: string, options: PushOptions): Promise<PushResult> {
  const { client, reference } = options;
  const repository = reference.repository;
  const call = options.signal ? { signal: options.signal } : {};
  const plan = await planModelPack(dir, options.plan);
  try {
    const blobs = blobsOf(plan);
    options.onProgress?.({ kind: "plan", blobs: blobs.length, bytes: blobs.reduce((n, b) => n + b.size, 0) });
    const pushed = await mapLimit(blobs, options.concurrency ?? 4, (blob) => pushBlob(blob, options));

    // The manifest by digest first, then the tag: a tag never names a half-pushed artifact.
    const manifest = await client.putManifest(repository, plan.manifestDescriptor.digest, plan.manifest, OCI_MANIFEST, call);
    options.onProgress?.({ kind: "manifest", digest: manifest.digest });
    if (reference.tag) await client.putManifest(repository, reference.tag, plan.manifest, OCI_MANIFEST, call);
    await options.locations?.record(client.registry, repository, [...blobs.map((b) => b.digest)]);

    const referrers = await attachSignatureReferrers(plan, options);
    return {
      reference: formatReference({ ...reference, digest: plan.manifestDescriptor.digest }),
      digest: plan.manifestDescriptor.digest,
      tag: reference.tag,
      blobs: pushed,
      bytesSent: pushed.reduce((n, b) => n + b.bytesSent, 0),
      referrers,
    };
  } finally {
    await plan.dispose();
  }
}

interface BlobToPush {
  name: string;
  digest: string;
  size: number;
  /** A file to stream, or bytes in memory (the config, the empty descriptor). */
  file?: string;
  bytes?: Buffer;
}

function blobsOf(plan: ModelPackPlan): BlobToPush[] {
  const layers = plan.layers.map((l) => ({ name: l.filepath, digest: l.descriptor.digest, size: l.descriptor.size, file: l.source }));
  return [...layers, { name: "config", digest: plan.configDescriptor.digest, size: plan.configDescriptor.size, bytes: plan.config }];
}

async function pushBlob(blob: BlobToPush, options: PushOptions): Promise<PushedBlob> {
  const { client, reference } = options;
  const repository = reference.repository;
  const call = options.signal ? { signal: options.signal } : {};
  const done = (outcome: BlobOutcome, bytesSent = 0, resumedFrom = 0): PushedBlob => {
    const result = { name: blob.name, digest: blob.digest, size: blob.size, outcome, bytesSent, resumedFrom };
    options.onProgress?.({ kind: "blob-done", blob: result });
    return result;
  };
  if ((await client.statBlob(repository, blob.digest, call)) !== null) return done("exists");

  // A sibling repository that holds the blob: the registry links it, no bytes move.
  const known = (await options.locations?.repositoriesWith(client.registry, blob.digest)) ?? [];
  const sources = [...new Set([...(options.mountFrom ?? []), ...known])].filter((r) => r !== repository);
  let session;
  for (const from of sources) {
    const mount = await client.mountBlob(repository, blob.digest, from, call);
    if (mount.mounted) return done("mounted");
    // A 202 opened an upload session: use it rather than opening another.
    session = mount.session;
    break;
  }

  const source = {
    digest: blob.digest,
    size: blob.size,
    name: blob.name,
    open: (start: number, end: number) =>
      blob.bytes ? Readable.from([blob.bytes.subarray(start, end)]) : createReadStream(blob.file!, { start, end: Math.max(start, end - 1), highWaterMark: 1 << 20 }),
  };
  const result = await client.uploadBlob(repository, source, {
    ...call,
    skipExistenceCheck: true,
    ...(session ? { session } : {}),
    ...(options.sessions ? { sessions: options.sessions } : {}),
    ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
    ...(options.monolithicLimit !== undefined ? { monolithicLimit: options.monolithicLimit } : {}),
    onProgress: (sent, total) => options.onProgress?.({ kind: "blob", name: blob.name, digest: blob.digest, sent, total }),
  });
  return done(result.outcome === "exists" ? "exists" : "uploaded", result.bytesSent, result.resumedFrom);
}

/**
 * model.sig and the provenance as referrers of the model manifest: the same blobs the
 * manifest already carries as layers (no upload), wrapped in a small manifest whose
 * `subject` is the model. Registries without the Referrers API (no `OCI-Subject` in the
 * answer) get the entry in the `sha256-<hex>` tag index, other tools' entries kept.
 */
async function attachSignatureReferrers(plan: ModelPackPlan, options: PushOptions): Promise<ReferrerRecord[]> {
  const { client, reference } = options;
  const repository = reference.repository;
  const call = options.signal ? { signal: options.signal } : {};
  const files: [string, ReferrerKind][] = [
    [SIGNATURE_FILE, "signature"],
    [PROVENANCE_FILE, "provenance"],
  ];
  const present = files.flatMap(([file, kind]) => {
    const layer = plan.layers.find((l) => l.filepath === file && l.packing === "raw");
    return layer ? [{ file, kind, layer }] : [];
  });
  if (present.length === 0) return [];
  if ((await client.statBlob(repository, EMPTY_DESCRIPTOR.digest, call)) === null) {
    await client.uploadBlob(repository, { digest: EMPTY_DESCRIPTOR.digest, size: EMPTY_DESCRIPTOR.size, name: "empty config", open: () => Readable.from([EMPTY_BLOB]) }, call);
  }
  const subject: Descriptor = { mediaType: OCI_MANIFEST, digest: plan.manifestDescriptor.digest, size: plan.manifestDescriptor.size };
  const records: ReferrerRecord[] = [];
  for (const { file, kind, layer } of present) {
    const bytes = referrerManifest(kind, { mediaType: SIGSTORE_BUNDLE_ARTIFACT_TYPE, digest: layer.descriptor.digest, size: layer.descriptor.size }, subject, createdOf(plan));
    const digest = sha256Digest(bytes);
    const put = await client.putManifest(repository, digest, bytes, OCI_MANIFEST, call);
    let via: "api" | "tag-schema" = "api";
    if (!put.subject) {
      const json = JSON.parse(bytes.toString("utf8")) as { artifactType: string; annotations?: Record<string, string> };
      await client.addReferrerToFallbackIndex(repository, subject.digest, { mediaType: OCI_MANIFEST, digest, size: bytes.length, artifactType: json.artifactType, ...(json.annotations ? { annotations: json.annotations } : {}) }, call);
      via = "tag-schema";
    }
    records.push({ file, digest, via });
    options.onProgress?.({ kind: "referrer", file, digest, via });
  }
  return records;
}

function createdOf(plan: ModelPackPlan): string | undefined {
  const manifest = JSON.parse(plan.manifest.toString("utf8")) as { annotations?: Record<string, string> };
  return manifest.annotations?.[OCI_CREATED];
}
