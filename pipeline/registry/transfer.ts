/**
 * Push and pull as a workspace uses them: the registry client set up from the environment
 * (credentials, CA, plain-HTTP rule), the shared local store, the upload-session and
 * blob-location records, the workspace's trust store, and the pull record `run oci://` and
 * `drift` read. The CLI commands and the runtime call these; tests call them directly.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { atomicWriteFile } from "../core/files.js";
import { parseBundle, verifyBundleSignature } from "../signing/bundle.js";
import type { CertificateRoot } from "../signing/certificates.js";
import type { TrustedKey } from "../signing/trust.js";
import { verifyModel, type VerifyResult } from "../signing/verify.js";
import { DigestCache } from "../core/digest-cache.js";
import { RegistryClient, type RegistryClientOptions } from "./client.js";
import { FileBlobLocations } from "./locations.js";
import { pullModel, type PullProgress, type PullResult } from "./pull.js";
import { pushModel, type PushProgress, type PushResult } from "./push.js";
import { formatReference, manifestReference, parseReference, type RegistryReference } from "./reference.js";
import { FileUploadSessionStore } from "./sessions.js";
import { defaultStoreDir, OciStore } from "./store.js";
import { OCI_MANIFEST } from "./types.js";

export interface RegistryAccess {
  env: NodeJS.ProcessEnv;
  /** Plain HTTP to a host that is not loopback (--insecure / AI_TOOLS_REGISTRY_INSECURE=1). */
  insecure?: boolean;
  /** A PEM file of CA certificates to trust for the registry (--registry-ca / AI_TOOLS_REGISTRY_CA). */
  caFile?: string;
  signal?: AbortSignal;
  onEvent?: RegistryClientOptions["onEvent"];
}

export async function registryClient(reference: RegistryReference, access: RegistryAccess): Promise<RegistryClient> {
  const caFile = access.caFile ?? access.env.AI_TOOLS_REGISTRY_CA;
  const insecure = access.insecure ?? access.env.AI_TOOLS_REGISTRY_INSECURE === "1";
  return RegistryClient.forReference(reference, {
    env: access.env,
    ...(insecure ? { insecure: true, plainHttp: true } : {}),
    ...(caFile ? { ca: await readFile(caFile) } : {}),
    ...(access.signal ? { signal: access.signal } : {}),
    ...(access.onEvent ? { onEvent: access.onEvent } : {}),
  });
}

/** Who may have signed a model: the trusted keys, and the certificate roots (with their pinned signer identities) of the trust file or flags. */
export interface ModelTrust {
  trustedKeys: readonly TrustedKey[];
  certificateRoots?: readonly CertificateRoot[];
}

/** The trust as the signing library's options take it. */
function trustOptions(trust: ModelTrust): { trustedKeys: TrustedKey[]; certificateRoots?: readonly CertificateRoot[] } {
  return { trustedKeys: [...trust.trustedKeys], ...(trust.certificateRoots && trust.certificateRoots.length > 0 ? { certificateRoots: trust.certificateRoots } : {}) };
}

export async function openStore(env: NodeJS.ProcessEnv): Promise<OciStore> {
  return OciStore.open(defaultStoreDir(env));
}

export interface WorkspacePushOptions extends RegistryAccess, ModelTrust {
  root: string;
  /** The signed model directory. */
  dir: string;
  reference: string;
  // The directory is verified first against the trust (signature, key or root, every file), so nothing broken is published.
  mountFrom?: readonly string[];
  concurrency?: number;
  chunkSize?: number;
  onProgress?: (event: PushProgress) => void;
}

export async function pushWorkspaceModel(options: WorkspacePushOptions): Promise<PushResult & { verified: VerifyResult }> {
  const reference = parseReference(options.reference);
  // The digest cache keeps a re-push of an unchanged model from reading its weights again.
  const cache = await DigestCache.open();
  const verified = await verifyModel(options.dir, { ...trustOptions(options), digestCache: cache, ...(options.signal ? { signal: options.signal } : {}) });
  const store = await openStore(options.env);
  const client = await registryClient(reference, options);
  try {
    const result = await pushModel(options.dir, {
      client,
      reference,
      // Verified just now: the plan trusts model.sig's digests for raw layers (the registry checks each upload).
      plan: { store, verifyDigests: false, digestCache: cache, ...(options.signal ? { signal: options.signal } : {}) },
      locations: FileBlobLocations.inStore(store.dir),
      sessions: new FileUploadSessionStore(join(options.root, "build", "state", "registry-uploads.json")),
      ...(options.mountFrom ? { mountFrom: options.mountFrom } : {}),
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return { ...result, verified };
  } finally {
    await client.close();
  }
}

export interface WorkspacePullOptions extends RegistryAccess, ModelTrust {
  root: string;
  reference: string;
  /** Default: models/powerinfer/<last path component of the repository>. */
  to?: string;
  requireDigest?: boolean;
  replace?: boolean;
  concurrency?: number;
  onProgress?: (event: PullProgress) => void;
}

/** Where a pulled model goes when --to is not given. */
export function defaultPullDir(root: string, reference: RegistryReference): string {
  return join(root, "models", "powerinfer", basename(reference.repository));
}

export async function pullWorkspaceModel(options: WorkspacePullOptions): Promise<PullResult & { verified: VerifyResult }> {
  const reference = parseReference(options.reference);
  const store = await openStore(options.env);
  const client = await registryClient(reference, options);
  const to = resolve(options.to ?? defaultPullDir(options.root, reference));
  let verified: VerifyResult | undefined;
  try {
    const result = await pullModel({
      client,
      reference,
      store,
      to,
      ...(options.requireDigest ? { requireDigest: true } : {}),
      ...(options.replace ? { replace: true } : {}),
      checkSignature: async (bytes, label) => {
        await verifyBundleSignature(parseBundle(bytes, label), { ...trustOptions(options), now: new Date() });
      },
      verify: async (dir) => {
        verified = await verifyModel(dir, { ...trustOptions(options), ...(options.signal ? { signal: options.signal } : {}) });
      },
      locations: FileBlobLocations.inStore(store.dir),
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    await recordPull(options.root, { reference: formatReference(reference), digest: result.digest, dir: result.dir, pulledAt: new Date().toISOString() });
    return { ...result, verified: verified! };
  } finally {
    await client.close();
  }
}

/**
 * What `run oci://…` and `drift` need to know about a pull: the reference as given, the
 * digest it resolved to, and where the directory is. One file per reference under
 * build/state/pulls/ (the model directory itself holds only signed files).
 */
export interface PullRecord {
  reference: string;
  digest: string;
  dir: string;
  pulledAt: string;
}

function pullRecordPath(root: string, reference: string): string {
  return join(root, "build", "state", "pulls", `${createHash("sha256").update(reference).digest("hex").slice(0, 32)}.json`);
}

export async function recordPull(root: string, record: PullRecord): Promise<void> {
  await atomicWriteFile(pullRecordPath(root, record.reference), `${JSON.stringify(record, null, 2)}\n`);
}

export async function readPullRecord(root: string, reference: string): Promise<PullRecord | undefined> {
  const canonical = formatReference(parseReference(reference));
  try {
    const record = JSON.parse(await readFile(pullRecordPath(root, canonical), "utf8")) as PullRecord;
    return record.reference === canonical && existsSync(record.dir) ? record : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a pulled tag now names another artifact: a HEAD (or GET) of the manifest, nothing more. */
export async function tagDrift(record: PullRecord, access: RegistryAccess): Promise<{ current: string | undefined; moved: boolean }> {
  const reference = parseReference(record.reference);
  if (reference.digest) return { current: reference.digest, moved: false };
  const client = await registryClient(reference, access);
  try {
    const head = await client.headManifest(reference.repository, manifestReference(reference), { accept: [OCI_MANIFEST] });
    const current = head?.digest ?? (await client.getManifest(reference.repository, manifestReference(reference))).digest;
    return { current, moved: current !== record.digest };
  } finally {
    await client.close();
  }
}
