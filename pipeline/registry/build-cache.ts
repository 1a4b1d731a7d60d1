/**
 * The engine build cache: a finished build's binaries and build record as a signed OCI
 * artifact, tagged `<backend>-<build fingerprint>` in a repository machines share
 * (`--build-cache oci://HOST/REPO`). A fresh CI runner whose build has the same fingerprint
 * (same source commit, flags, compilers, CUDA plan) pulls it instead of compiling.
 *
 * An entry is trusted only as far as its signature: the directory (bin/*, the record,
 * SHA256SUMS) is signed like a model (OMS over every file) with the pipeline's signing key,
 * and a pull verifies it against the workspace's trusted keys, then checks every binary
 * against the sha256 the record lists, before the folder gets its name. Anything else — a
 * miss, an unreachable registry, an unknown signer, a changed byte — is a reason to compile,
 * never a reason to run a binary.
 */
import { createHash, type KeyObject } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, copyFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { randomBytes } from "node:crypto";
import { signModelDirectory } from "../signing/sign.js";
import type { TrustedKey } from "../signing/trust.js";
import { verifyModel } from "../signing/verify.js";
import type { RegistryClient } from "./client.js";
import { RegistryError } from "./errors.js";
import { layerPathProblem } from "./layer-paths.js";
import { PackError } from "./pack-errors.js";
import { formatReference, parseReference, type RegistryReference } from "./reference.js";
import { OCI_MANIFEST, type Descriptor } from "./types.js";
import { FILEPATH_ANNOTATION } from "./oci-spec.js";

export const ENGINE_BUILD_ARTIFACT_TYPE = "application/vnd.ai-tools.engine-build.v1+json";
export const ENGINE_BUILD_CONFIG_TYPE = "application/vnd.ai-tools.engine-build.record.v1+json";
export const ENGINE_FILE_LAYER_TYPE = "application/vnd.ai-tools.engine-build.file.v1";
export const BUILD_RECORD_FILE = "build-record.json";
/** An entry holds bin/<target> files, the record and the signature files: a handful. */
const MAX_ENTRY_LAYERS = 64;
const MAX_RECORD_BYTES = 1 << 20;

/** What is cached: the build task's result plus each binary's sha256. */
export interface CachedBuildRecord {
  version: 1;
  fingerprint: string;
  backend: string;
  /** target -> path relative to the build folder (bin/<target>); the result keeps the workspace-relative ones. */
  binaries: Record<string, string>;
  /** target -> sha256 hex of the binary. */
  sha256: Record<string, string>;
  /** The build task's result as recorded on the machine that compiled. */
  result: unknown;
}

/** `oci://HOST/REPO` + backend + fingerprint -> the entry's reference. */
export function buildCacheReference(base: string, backend: string, fingerprint: string): RegistryReference {
  const parsed = parseReference(base);
  if (parsed.tag || parsed.digest) {
    throw new RegistryError("E_REGISTRY_REFERENCE", `build cache ${base}: name a repository only (oci://HOST/REPO); entries are tagged by build fingerprint`);
  }
  return { ...parsed, tag: `${backend}-${fingerprint}` };
}

async function sha256Hex(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export interface PushBuildOptions {
  client: RegistryClient;
  reference: RegistryReference;
  /** Absolute build folder (the one holding bin/). */
  buildDir: string;
  backend: string;
  fingerprint: string;
  binaries: Record<string, string>;
  result: unknown;
  privateKey: KeyObject;
  /** A scratch folder on the same filesystem (the entry is staged and signed there). */
  scratchDir: string;
  signal?: AbortSignal;
}

export async function pushBuild(options: PushBuildOptions): Promise<{ digest: string; reference: string }> {
  const { client, reference } = options;
  const call = options.signal ? { signal: options.signal } : {};
  const staging = join(options.scratchDir, `build-cache-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(staging, { recursive: true });
  try {
    const sha256: Record<string, string> = {};
    for (const [target, path] of Object.entries(options.binaries)) {
      await mkdir(dirname(join(staging, path)), { recursive: true });
      await copyFile(join(options.buildDir, path), join(staging, path));
      sha256[target] = await sha256Hex(join(staging, path));
    }
    const record: CachedBuildRecord = { version: 1, fingerprint: options.fingerprint, backend: options.backend, binaries: options.binaries, sha256, result: options.result };
    const recordBytes = Buffer.from(JSON.stringify(record, null, 2) + "\n");
    await writeFile(join(staging, BUILD_RECORD_FILE), recordBytes);
    const signed = await signModelDirectory(staging, { privateKey: options.privateKey, subjectName: `powerinfer-build-${reference.tag}` });

    const files = [...signed.resources.map((r) => r.name), ...signed.written.filter((w) => !signed.resources.some((r) => r.name === w))].sort();
    const layers: Descriptor[] = [];
    for (const name of files) {
      const path = join(staging, name);
      const bytes = await readFile(path);
      const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
      if ((await client.statBlob(reference.repository, digest, call)) === null) {
        await client.uploadBlob(reference.repository, { digest, size: bytes.length, name, open: (start, end) => Readable.from([bytes.subarray(start, end)]) }, { ...call, skipExistenceCheck: true });
      }
      layers.push({ mediaType: ENGINE_FILE_LAYER_TYPE, digest, size: bytes.length, annotations: { [FILEPATH_ANNOTATION]: name } });
    }
    const configDigest = `sha256:${createHash("sha256").update(recordBytes).digest("hex")}`;
    if ((await client.statBlob(reference.repository, configDigest, call)) === null) {
      await client.uploadBlob(reference.repository, { digest: configDigest, size: recordBytes.length, name: BUILD_RECORD_FILE, open: (start, end) => Readable.from([recordBytes.subarray(start, end)]) }, { ...call, skipExistenceCheck: true });
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: ENGINE_BUILD_ARTIFACT_TYPE,
        config: { mediaType: ENGINE_BUILD_CONFIG_TYPE, digest: configDigest, size: recordBytes.length },
        layers,
        annotations: { "dev.ai-tools.engine.fingerprint": options.fingerprint, "dev.ai-tools.engine.backend": options.backend },
      }),
    );
    const put = await client.putManifest(reference.repository, reference.tag!, manifest, OCI_MANIFEST, call);
    return { digest: put.digest, reference: formatReference({ ...reference, digest: put.digest }) };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export interface PullBuildOptions {
  client: RegistryClient;
  reference: RegistryReference;
  /** Absolute build folder to create (replaced when present: it is a failed or partial build of the same fingerprint). */
  buildDir: string;
  fingerprint: string;
  trustedKeys: readonly TrustedKey[];
  /** The targets this build must have. */
  targets: readonly string[];
  signal?: AbortSignal;
}

/** Restores a build from the cache; `{ miss }` says why it could not (the caller compiles). */
export async function pullBuild(options: PullBuildOptions): Promise<{ record: CachedBuildRecord; digest: string } | { miss: string }> {
  const { client, reference } = options;
  const call = options.signal ? { signal: options.signal } : {};
  let manifest;
  try {
    manifest = await client.getManifest(reference.repository, reference.tag!, call);
  } catch (error) {
    if ((error as RegistryError).code === "E_REGISTRY_NOT_FOUND") return { miss: `no entry ${formatReference(reference)}` };
    throw error;
  }
  const json = manifest.json as { artifactType?: unknown; layers?: unknown };
  if (json.artifactType !== ENGINE_BUILD_ARTIFACT_TYPE || !Array.isArray(json.layers)) {
    throw new PackError("E_REGISTRY_MANIFEST_INVALID", `${formatReference(reference)} is not an engine build entry (artifactType ${JSON.stringify(json.artifactType)})`);
  }
  if (json.layers.length > MAX_ENTRY_LAYERS) throw new PackError("E_REGISTRY_LIMIT", `${formatReference(reference)} has ${json.layers.length} layers; an engine build entry has at most ${MAX_ENTRY_LAYERS}`);
  const layers = (json.layers as Descriptor[]).map((layer) => {
    const path = layer.annotations?.[FILEPATH_ANNOTATION];
    const problem = layerPathProblem(path);
    if (problem || typeof path !== "string") throw new PackError("E_REGISTRY_UNSAFE_PATH", `${formatReference(reference)}: layer ${layer.digest}: ${problem ?? "no file path"}`);
    return { path, layer };
  });

  const temp = join(dirname(options.buildDir), `.${options.fingerprint.slice(0, 12)}.cache-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(temp, { recursive: true });
  try {
    for (const { path, layer } of layers) {
      await client.getBlob(reference.repository, layer.digest, { file: join(temp, path), name: path, offset: 0, size: layer.size, ...call });
    }
    // The signature over every file, against the workspace's trusted keys (E_UNKNOWN_KEY, E_DIGEST_MISMATCH...).
    const verified = await verifyModel(temp, { trustedKeys: options.trustedKeys, provenance: "skip" });
    const recordBytes = await readFile(join(temp, BUILD_RECORD_FILE));
    if (recordBytes.length > MAX_RECORD_BYTES) throw new PackError("E_REGISTRY_LIMIT", `${BUILD_RECORD_FILE} is over ${MAX_RECORD_BYTES} bytes`);
    const record = JSON.parse(recordBytes.toString("utf8")) as CachedBuildRecord;
    if (record.fingerprint !== options.fingerprint) {
      return { miss: `the entry is for build fingerprint ${String(record.fingerprint).slice(0, 12)}, not ${options.fingerprint.slice(0, 12)}` };
    }
    for (const target of options.targets) {
      const path = record.binaries?.[target];
      const file = verified.files.find((f) => f.name === path);
      if (!path || !file) return { miss: `the entry has no ${target} binary` };
      if (file.digest !== record.sha256?.[target]) {
        throw new RegistryError("E_DIGEST_MISMATCH", `${path} in ${formatReference(reference)} is sha256:${file.digest}, the build record says sha256:${record.sha256?.[target]}`);
      }
      await chmod(join(temp, path), 0o755);
    }
    await rm(options.buildDir, { recursive: true, force: true });
    await rename(temp, options.buildDir);
    return { record, digest: manifest.digest };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
