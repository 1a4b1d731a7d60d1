/**
 * A converted, signed model directory as a CNCF ModelPack artifact (oci-models.md §1, §8):
 * the layers, the config blob and the manifest, as bytes and descriptors for a push.
 *
 * The layers are exactly the signed files plus the signature files: the directory is
 * walked with the signature's own rules (signing/walk.ts, and the ignore_paths model.sig
 * records, so a runtime-written `*.generated.gpuidx` is never packed) and must match
 * model.sig's file list and digests, or nothing is planned. Each file is one raw layer,
 * so its layer digest is the sha256 SHA256SUMS and model.sig record (hashed once, through
 * the pipeline's memo and the optional digest cache); a folder of many small files
 * (`activation/`) is one deterministic tar layer (tar-layer.ts).
 *
 * Deterministic: no wall-clock time anywhere (createdAt is the provenance's finishedOn),
 * layers sorted by path, fixed file metadata, compact JSON with fixed key order, so the
 * same folder always gives the same manifest digest.
 *
 * The facts read from model.sig and the provenance are not verified here (no trust store
 * is needed to pack); a push verifies the directory first, a pull verifies what it got.
 */
import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { sha256File } from "../core/files.js";
import { readGgufHeader } from "../gguf/reader.js";
import { parseBundle, readBundleFile } from "../signing/bundle.js";
import type { DigestCache } from "../core/digest-cache.js";
import { VerifyError } from "../signing/errors.js";
import { digestFiles, sha256OfFile } from "../core/hash.js";
import { DEFAULT_IGNORE_PATHS, parseOmsStatement, PROVENANCE_FILE, SIGNATURE_FILE, SIGNATURE_FILES, type OmsManifest, type Resource } from "../signing/oms.js";
import { compareUtf8 } from "../signing/paths.js";
import { listModelFiles } from "../signing/walk.js";
import { fileKind, folderKind, type FileKind } from "./layer-kinds.js";
import { buildModelPackConfig, ggufFacts, type GgufFacts, type ModelPackDescriptor, type ModelPackModelConfig } from "./modelpack-config.js";
import {
  AI_TOOLS_ANNOTATIONS,
  FILE_METADATA_ANNOTATION,
  FILEPATH_ANNOTATION,
  IMAGE_MANIFEST_MEDIA_TYPE,
  layerMediaType,
  MEDIATYPE_UNTESTED_ANNOTATION,
  MODEL_CONFIG_MEDIA_TYPE,
  MODEL_MANIFEST_ARTIFACT_TYPE,
  OCI_CREATED,
  OCI_REVISION,
  OCI_SOURCE,
  OCI_TITLE,
  OCI_VERSION,
  type OciDescriptor,
  type OciManifest,
} from "./oci-spec.js";
import { createDeterministicTar, TAR_DIR_MODE, TAR_FILE_MODE } from "./tar-layer.js";

export { parseModelPackManifest, MAX_MANIFEST_BYTES, MAX_LAYERS, MAX_CONFIG_BYTES, type ParsedModelPack, type ParsedLayer, type ParseManifestOptions } from "./modelpack-parse.js";

/** Folders packed as one tar layer each unless the caller says otherwise: PowerInfer's predictor activation counts. */
export const DEFAULT_TAR_FOLDERS: readonly string[] = ["activation"];

/** Where a planned tar layer can be kept as a blob (OciStore implements it). */
export interface TarLayerSink {
  /** A folder on the sink's filesystem for temporary files. */
  scratchDir(): Promise<string>;
  /** Take `path`, whose sha256 the caller just computed, as blob `digest`; returns the blob's path. */
  adopt(path: string, digest: string, size: number): Promise<string>;
}

export interface PlanOptions {
  /** Keep tar layers as blobs here (the local store); else they are temporary files, removed by dispose(). */
  store?: TarLayerSink;
  /** Where temporary tar files go when there is no store (default: the OS temp folder). */
  scratchDir?: string;
  /** Folders (relative paths) packed as one tar layer each (default DEFAULT_TAR_FOLDERS). */
  tarFolders?: readonly string[];
  /** The GGUF the config describes (default: the one the provenance's quantization names, else model.powerinfer.gguf, else the first). */
  primaryWeight?: string;
  /** Descriptor fields the directory cannot tell (vendor, authors, licenses, title, description, docURL…); these win. */
  descriptor?: Partial<ModelPackDescriptor>;
  /**
   * Hash every signed file and refuse one that changed (default true; through the pipeline's
   * memo and `digestCache`, so nothing is read twice). false trusts model.sig's digests after
   * the free checks (names, sizes): a push may, since the registry checks every uploaded byte
   * against its digest, and a re-push of an unchanged 40 GB model then reads no weights.
   */
  verifyDigests?: boolean;
  digestCache?: DigestCache;
  signal?: AbortSignal;
}

export interface PlannedLayer {
  /** The manifest's descriptor of this layer. */
  descriptor: OciDescriptor;
  /** org.cncf.model.filepath: a file, or the folder a tar layer holds. */
  filepath: string;
  packing: "raw" | "tar";
  /** Absolute path of the bytes to upload: the model file, or the tar (a store blob or a temporary file). */
  source: string;
  /** A tar layer's files with their signed digests. */
  members?: Resource[];
}

export interface ModelPackPlan {
  dir: string;
  manifest: Buffer;
  manifestDescriptor: OciDescriptor;
  config: Buffer;
  configDescriptor: OciDescriptor;
  /** In manifest order (sorted by filepath). */
  layers: PlannedLayer[];
  /** The OMS root digest model.sig signs. */
  rootDigest: string;
  /** Removes temporary tar files (blobs adopted by a store stay). */
  dispose(): Promise<void>;
}

/** Layer metadata is fixed, not the file's: the same folder must give the same manifest on any machine. */
const EPOCH = "1970-01-01T00:00:00Z";

export async function planModelPack(dir: string, options: PlanOptions = {}): Promise<ModelPackPlan> {
  const absolute = resolve(dir);
  const signaturePath = join(absolute, SIGNATURE_FILE);
  const signature = parseBundle(await readBundleFile(signaturePath), signaturePath);
  const signed = parseOmsStatement(signature.payload, signaturePath);

  // Tar folders take the signed files below them; everything else is a raw layer.
  const tarFolders = [...new Set(options.tarFolders ?? DEFAULT_TAR_FOLDERS)].map((f) => f.replace(/\/+$/, ""));
  const inFolder = (name: string) => tarFolders.find((f) => name.startsWith(`${f}/`));
  const files = await signedFiles(absolute, dir, signed, options, (name) => inFolder(name) !== undefined);
  const signatureFiles = await presentSignatureFiles(absolute);
  const temporaries: string[] = [];
  const layers: PlannedLayer[] = [];
  for (const file of [...files, ...signatureFiles]) {
    if (inFolder(file.name)) continue;
    layers.push(rawLayer(file.name, file.digest, file.size, join(absolute, file.name), fileKind(file.name)));
  }
  try {
    for (const folder of tarFolders) {
      const members = files.filter((f) => f.name.startsWith(`${folder}/`));
      if (members.length === 0) continue;
      layers.push(await tarLayer(absolute, folder, members, options, temporaries));
    }
  } catch (error) {
    for (const t of temporaries) await rm(t, { force: true });
    throw error;
  }
  layers.sort((a, b) => compareUtf8(a.filepath, b.filepath));

  const provenance = await readProvenanceFacts(join(absolute, PROVENANCE_FILE));
  const primary = choosePrimaryWeight(files.map((f) => f.name), options.primaryWeight, provenance.quantization);
  const gguf: GgufFacts | undefined = primary ? ggufFacts(await readGgufHeader(join(absolute, primary))) : undefined;

  const name = options.descriptor?.name ?? provenance.modelId ?? (signed.subjectName || basename(absolute));
  const descriptor: ModelPackDescriptor = {
    ...(provenance.createdAt ? { createdAt: provenance.createdAt } : {}),
    ...(provenance.family ? { family: provenance.family } : {}),
    name,
    ...(provenance.version ? { version: provenance.version } : {}),
    ...(provenance.sourceURL ? { sourceURL: provenance.sourceURL } : {}),
    ...(provenance.revision ? { revision: provenance.revision } : {}),
    ...options.descriptor,
  };
  const modelConfig: ModelPackModelConfig = gguf
    ? {
        ...(gguf.architecture ? { architecture: gguf.architecture } : {}),
        format: "gguf",
        ...(gguf.paramSize ? { paramSize: gguf.paramSize } : {}),
        ...(gguf.precision ? { precision: gguf.precision } : {}),
        ...(gguf.quantization ? { quantization: gguf.quantization } : {}),
      }
    : {};
  const config = compactJson(buildModelPackConfig(descriptor, modelConfig, layers.map((l) => l.descriptor.digest)));
  const configDescriptor: OciDescriptor = { mediaType: MODEL_CONFIG_MEDIA_TYPE, digest: sha256Digest(config), size: config.length };

  const provenanceFile = signatureFiles.find((f) => f.name === PROVENANCE_FILE);
  const keyHint = "hint" in signature.keyMaterial ? signature.keyMaterial.hint : undefined;
  const annotations = sortedRecord({
    [OCI_CREATED]: descriptor.createdAt,
    [OCI_TITLE]: descriptor.name,
    [OCI_VERSION]: descriptor.version,
    [OCI_SOURCE]: descriptor.sourceURL,
    [OCI_REVISION]: descriptor.revision,
    [AI_TOOLS_ANNOTATIONS.format]: gguf ? (gguf.sparse ? "PowerInfer GGUF" : "GGUF") : undefined,
    [AI_TOOLS_ANNOTATIONS.engineCommit]: provenance.engineCommit,
    [AI_TOOLS_ANNOTATIONS.provenanceDigest]: provenanceFile ? `sha256:${provenanceFile.digest}` : undefined,
    [AI_TOOLS_ANNOTATIONS.rootDigest]: `sha256:${signed.rootDigest}`,
    [AI_TOOLS_ANNOTATIONS.keyHint]: keyHint,
  });
  const manifestObject: OciManifest = {
    schemaVersion: 2,
    mediaType: IMAGE_MANIFEST_MEDIA_TYPE,
    artifactType: MODEL_MANIFEST_ARTIFACT_TYPE,
    config: configDescriptor,
    layers: layers.map((l) => l.descriptor),
    annotations,
  };
  const manifest = compactJson(manifestObject);
  return {
    dir: absolute,
    manifest,
    manifestDescriptor: { mediaType: IMAGE_MANIFEST_MEDIA_TYPE, digest: sha256Digest(manifest), size: manifest.length, artifactType: MODEL_MANIFEST_ARTIFACT_TYPE },
    config,
    configDescriptor,
    layers,
    rootDigest: signed.rootDigest,
    dispose: async () => {
      for (const t of temporaries) await rm(t, { force: true });
    },
  };
}

interface HashedFile {
  name: string;
  digest: string;
  size: number;
}

/** The directory's files, which must be exactly the signed ones with their signed sizes and digests. */
async function signedFiles(absolute: string, dir: string, signed: OmsManifest, options: PlanOptions, inTarFolder: (name: string) => boolean): Promise<HashedFile[]> {
  const ignorePaths = [...DEFAULT_IGNORE_PATHS, ...signed.ignorePaths, ...SIGNATURE_FILES];
  const { files, irregular } = await listModelFiles(absolute, ignorePaths);
  const bad = irregular.find((i) => i.kind !== "empty-directory");
  if (bad) throw new VerifyError("E_NOT_REGULAR_FILE", `${join(dir, bad.name)} ${bad.why}; only regular files can be packed`, { files: irregular.map((i) => i.name) });
  const present = new Map(files.map((f) => [f.name, f]));
  const listed = new Set(signed.resources.map((r) => r.name));
  const missing = signed.resources.filter((r) => !present.has(r.name)).map((r) => r.name);
  if (missing.length > 0) throw new VerifyError("E_MISSING_FILE", `${dir}: signed file${missing.length > 1 ? "s" : ""} missing: ${missing.join(", ")}; restore ${missing.length > 1 ? "them" : "it"} or re-sign before packing`, { files: missing });
  const extra = files.filter((f) => !listed.has(f.name)).map((f) => f.name);
  if (extra.length > 0) throw new VerifyError("E_EXTRA_FILE", `${dir}: not covered by model.sig: ${extra.join(", ")}; re-sign the model (or remove them) before packing`, { files: extra });
  const resized = signed.resources.find((r) => r.size !== undefined && present.get(r.name)!.size !== r.size);
  if (resized) throw new VerifyError("E_DIGEST_MISMATCH", `${join(dir, resized.name)} is ${present.get(resized.name)!.size} bytes, the signed file ${resized.size}; re-sign or restore it before packing`, { files: [resized.name] });

  // Files in tar folders are always hashed: they are small and read for the tar anyway, and no registry checks them one by one.
  const toHash = options.verifyDigests === false ? signed.resources.filter((r) => inTarFolder(r.name)) : signed.resources;
  // The pipeline's in-process memo first (a file convert or sign just hashed is not read again), then the digest cache.
  const sizes = new Map(signed.resources.map((r) => [join(absolute, r.name), present.get(r.name)!.size!]));
  const hashed = await digestFiles(
    toHash.map((r) => join(absolute, r.name)),
    {
      hash: async (path) => ({ digest: await sha256File(path), size: sizes.get(path)! }),
      ...(options.digestCache ? { cache: options.digestCache } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    },
  );
  await options.digestCache?.save();
  const changed = toHash.flatMap((r, i) => (hashed[i]!.digest === r.digest ? [] : [r.name]));
  if (changed.length > 0) {
    throw new VerifyError("E_DIGEST_MISMATCH", `${join(dir, changed[0]!)} does not match its signature${changed.length > 1 ? ` (and ${changed.length - 1} more)` : ""}; re-sign or restore before packing`, { files: changed });
  }
  return signed.resources.map((r) => ({ name: r.name, digest: r.digest, size: present.get(r.name)!.size! }));
}

/** model.sig (required: it was just read), the provenance and the SSH signature when present. */
async function presentSignatureFiles(absolute: string): Promise<HashedFile[]> {
  const found: HashedFile[] = [];
  for (const name of SIGNATURE_FILES) {
    const path = join(absolute, name);
    const info = await lstat(path).catch(() => null);
    if (!info) continue;
    if (!info.isFile()) throw new VerifyError("E_NOT_REGULAR_FILE", `${path} is not a regular file; only regular files can be packed`, { files: [name] });
    found.push({ name, digest: await sha256File(path), size: info.size });
  }
  return found;
}

function fileMetadata(name: string, size: number, directory: boolean): string {
  // Key order and values of modctl's FileMetadata; constant mode/owner/mtime (reproducibility SHOULDs).
  return JSON.stringify({ name, mode: directory ? TAR_DIR_MODE : TAR_FILE_MODE, uid: 0, gid: 0, size, mtime: EPOCH, typeflag: directory ? 5 : 0 });
}

function rawLayer(name: string, digest: string, size: number, source: string, kind: FileKind): PlannedLayer {
  return {
    descriptor: {
      mediaType: layerMediaType(kind.content, "raw"),
      digest: `sha256:${digest}`,
      size,
      annotations: layerAnnotations(name, fileMetadata(basename(name), size, false), kind),
    },
    filepath: name,
    packing: "raw",
    source,
  };
}

function layerAnnotations(filepath: string, metadata: string, kind: FileKind): Record<string, string> {
  return sortedRecord({ [FILEPATH_ANNOTATION]: filepath, [FILE_METADATA_ANNOTATION]: metadata, [MEDIATYPE_UNTESTED_ANNOTATION]: kind.untested ? "true" : undefined });
}

async function tarLayer(absolute: string, folder: string, members: HashedFile[], options: PlanOptions, temporaries: string[]): Promise<PlannedLayer> {
  const scratch = options.store ? await options.store.scratchDir() : (options.scratchDir ?? tmpdir());
  await mkdir(scratch, { recursive: true });
  const temp = join(scratch, `modelpack-${process.pid}-${randomBytes(4).toString("hex")}.tar`);
  temporaries.push(temp);
  await createDeterministicTar(absolute, members.map((m) => m.name), temp);
  const { digest, size } = await sha256OfFile(temp, options.signal);
  let source = temp;
  if (options.store) {
    source = await options.store.adopt(temp, `sha256:${digest}`, size);
    temporaries.splice(temporaries.indexOf(temp), 1);
  }
  const kind = folderKind(members.map((m) => m.name));
  return {
    descriptor: {
      mediaType: layerMediaType(kind.content, "tar"),
      digest: `sha256:${digest}`,
      size,
      annotations: layerAnnotations(folder, fileMetadata(basename(folder), 0, true), kind),
    },
    filepath: folder,
    packing: "tar",
    source,
    members: members.map((m) => ({ name: m.name, algorithm: "sha256", digest: m.digest, size: m.size })),
  };
}

interface ProvenanceFacts {
  modelId?: string;
  family?: string;
  version?: string;
  quantization?: string;
  sourceURL?: string;
  revision?: string;
  engineCommit?: string;
  createdAt?: string;
}

/** What the SLSA provenance says about the build (tasks/sign.ts, graphs/model.ts externalParameters); nothing when absent. */
async function readProvenanceFacts(path: string): Promise<ProvenanceFacts> {
  const exists = await lstat(path).catch(() => null);
  if (!exists) return {};
  const bundle = parseBundle(await readBundleFile(path, "provenance"), path);
  let statement: Record<string, unknown>;
  try {
    statement = JSON.parse(bundle.payload.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new VerifyError("E_MALFORMED", `${path}: the provenance statement is not JSON`);
  }
  const predicate = (statement.predicate ?? {}) as { buildDefinition?: { externalParameters?: Record<string, unknown> }; runDetails?: { builder?: { version?: Record<string, unknown> }; metadata?: { finishedOn?: unknown } } };
  const external = predicate.buildDefinition?.externalParameters ?? {};
  const model = (external.model ?? {}) as Record<string, unknown>;
  const audit = (external.audit ?? {}) as Record<string, unknown>;
  const source = (external.source ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const finishedOn = str(predicate.runDetails?.metadata?.finishedOn);
  const facts: ProvenanceFacts = {
    modelId: str(external.modelId),
    family: str(model.family),
    version: str(audit.model_version),
    quantization: str(model.quantization),
    sourceURL: str(source.uri)?.startsWith("https://") ? str(source.uri) : undefined,
    revision: str(source.revision),
    engineCommit: str(predicate.runDetails?.builder?.version?.powerinfer),
    createdAt: finishedOn && !Number.isNaN(Date.parse(finishedOn)) ? finishedOn : undefined,
  };
  return Object.fromEntries(Object.entries(facts).filter(([, v]) => v !== undefined)) as ProvenanceFacts;
}

/** The GGUF the config describes: named, else the quantized file the recipe asked for, else model.powerinfer.gguf, else the first. */
export function choosePrimaryWeight(names: readonly string[], named: string | undefined, quantization: string | undefined): string | undefined {
  if (named !== undefined) {
    if (!names.includes(named)) throw new VerifyError("E_MISSING_FILE", `primary weight ${named} is not a signed file of the model`, { files: [named] });
    return named;
  }
  const ggufs = names.filter((n) => n.endsWith(".gguf") && !n.includes("/"));
  const quantized = quantization ? ggufs.find((n) => n === `model.${quantization.toLowerCase()}.powerinfer.gguf`) : undefined;
  return quantized ?? ggufs.find((n) => n === "model.powerinfer.gguf") ?? ggufs[0];
}

function sortedRecord(record: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(record)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}

function compactJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}
