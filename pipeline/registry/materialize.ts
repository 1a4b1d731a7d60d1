/**
 * A model directory from a ModelPack manifest whose blobs are in the store: each raw layer
 * linked (hard link; a copy across filesystems) to its file path, each tar layer extracted
 * member by member (tar-layer.ts), every file bound to model.sig (the manifest travels
 * with its signature as a layer), all in a temporary folder next to the target that gets
 * the target's name only once everything held, including the caller's `verify` hook (the
 * full signature check). A failure removes the temporary folder: nothing unverified is
 * left under models/. A killed run's temporary folder is removed by the next materialize
 * of the same target.
 *
 * The binding is checked twice: layer digests against the signed digests before anything
 * is written (bindLayersToSignature, which a pull can also run as soon as it has model.sig,
 * before fetching any weights), and every extracted tar member's bytes after writing.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { copyFile, link, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { PipelineError, UsageError } from "../core/errors.js";
import { isProcessAlive } from "../core/process.js";
import { MAX_BUNDLE_BYTES, parseBundle } from "../signing/bundle.js";
import { VerifyError } from "../signing/errors.js";
import { parseOmsStatement, SIGNATURE_FILE, SIGNATURE_FILES, type OmsManifest, type Resource } from "../signing/oms.js";
import type { ParsedLayer, ParsedModelPack } from "./modelpack-parse.js";
import { hexOf } from "./oci-spec.js";
import { extractTarLayer } from "./tar-layer.js";

/** The store as materialize needs it (OciStore). */
export interface BlobSource {
  blobPath(digest: string): string;
  has(digest: string): Promise<boolean>;
  readBlob(digest: string, maxBytes: number): Promise<Buffer>;
}

export interface MaterializeOptions {
  /** Replace a directory already at the target (it is moved aside, then removed). Default: refuse. */
  replace?: boolean;
  /** Runs on the complete temporary directory before it gets its name (e.g. verifyModel); a throw discards it. */
  verify?: (dir: string) => Promise<unknown>;
}

export interface MaterializedFile {
  name: string;
  digest: string;
  size: number;
  via: "link" | "copy" | "tar";
}

export interface MaterializeResult {
  dir: string;
  files: MaterializedFile[];
  /** The signed statement's root digest (what `verify` will report). */
  rootDigest: string;
}

/**
 * Checks a pulled manifest's layers against the signed file list, before any weight is
 * fetched: each raw layer of a signed file has its signed digest and size (a layer
 * swapped for another file is refused), no layer is unsigned (signature files aside),
 * and every signed file has a raw layer or lies in a tar layer's folder.
 */
export function bindLayersToSignature(manifest: ParsedModelPack, signed: OmsManifest): Map<string, Resource> {
  const expected = new Map(signed.resources.map((r) => [r.name, r]));
  const covered = new Set<string>();
  const tarFolders: string[] = [];
  for (const layer of manifest.layers) {
    if (layer.packing === "tar") {
      tarFolders.push(layer.filepath);
      continue;
    }
    if ((SIGNATURE_FILES as readonly string[]).includes(layer.filepath)) continue;
    const resource = expected.get(layer.filepath);
    if (!resource) {
      throw new VerifyError("E_EXTRA_FILE", `layer ${layer.descriptor.digest} (${layer.filepath}) is not a file model.sig signs; refusing the manifest`, { files: [layer.filepath] });
    }
    const digest = hexOf(layer.descriptor.digest);
    if (digest !== resource.digest || (resource.size !== undefined && resource.size !== layer.descriptor.size)) {
      throw new VerifyError(
        "E_DIGEST_MISMATCH",
        `layer for ${layer.filepath} is sha256:${digest} (${layer.descriptor.size} bytes), but model.sig signs sha256:${resource.digest}${resource.size === undefined ? "" : ` (${resource.size} bytes)`}: the layer is another file; refusing the manifest`,
        { files: [layer.filepath] },
      );
    }
    covered.add(layer.filepath);
  }
  const missing = signed.resources.filter((r) => !covered.has(r.name) && !tarFolders.some((f) => r.name.startsWith(`${f}/`))).map((r) => r.name);
  if (missing.length > 0) {
    throw new VerifyError("E_MISSING_FILE", `the manifest has no layer for signed file${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`, { files: missing });
  }
  return expected;
}

/** The signed statement inside the manifest's model.sig layer (not verified: the caller's verify does that). */
export async function signedManifestOf(store: BlobSource, manifest: ParsedModelPack): Promise<OmsManifest> {
  const layer = manifest.layers.find((l) => l.packing === "raw" && l.filepath === SIGNATURE_FILE);
  if (!layer) {
    throw new VerifyError("E_NO_SIGNATURE", `manifest ${manifest.digest} has no ${SIGNATURE_FILE} layer: nothing binds its layers to a signature`);
  }
  const label = `${SIGNATURE_FILE} (${layer.descriptor.digest})`;
  const bytes = await store.readBlob(layer.descriptor.digest, MAX_BUNDLE_BYTES);
  return parseOmsStatement(parseBundle(bytes, label).payload, label);
}

export async function materializeModelPack(store: BlobSource, manifest: ParsedModelPack, toDir: string, options: MaterializeOptions = {}): Promise<MaterializeResult> {
  const target = resolve(toDir);
  const absent: ParsedLayer[] = [];
  for (const layer of manifest.layers) if (!(await store.has(layer.descriptor.digest))) absent.push(layer);
  if (absent.length > 0) {
    throw new PipelineError("E_MISSING_FILE", `the store has no blob for ${absent.map((l) => `${l.filepath} (${l.descriptor.digest})`).join(", ")}: ingest every layer before materializing`);
  }
  const signed = await signedManifestOf(store, manifest);
  const expected = bindLayersToSignature(manifest, signed);

  const exists = await stat(target).catch(() => null);
  if (exists && !options.replace) throw new UsageError(`${toDir} already exists; remove it or materialize with replace`);
  await mkdir(dirname(target), { recursive: true });
  await removeStaleTemporaries(target);
  const temp = join(dirname(target), `.${basename(target)}.pull-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(temp);
  try {
    const files: MaterializedFile[] = [];
    for (const layer of manifest.layers.filter((l) => l.packing === "raw")) {
      const via = await linkOrCopy(store.blobPath(layer.descriptor.digest), join(temp, layer.filepath));
      files.push({ name: layer.filepath, digest: hexOf(layer.descriptor.digest), size: layer.descriptor.size, via });
    }
    for (const layer of manifest.layers.filter((l) => l.packing === "tar")) {
      const members = await extractTarLayer(store.blobPath(layer.descriptor.digest), {
        folder: layer.filepath,
        targetDir: temp,
        label: layer.descriptor.digest,
        admit({ name, size }) {
          const resource = expected.get(name);
          if (!resource) throw new VerifyError("E_EXTRA_FILE", `tar layer ${layer.filepath} (${layer.descriptor.digest}) holds ${name}, which model.sig does not sign`, { files: [name] });
          if (resource.size !== undefined && resource.size !== size) {
            throw new VerifyError("E_DIGEST_MISMATCH", `tar layer ${layer.filepath}: ${name} is ${size} bytes, the signed file ${resource.size}`, { files: [name] });
          }
        },
      });
      for (const member of members) {
        const resource = expected.get(member.name)!;
        if (member.digest !== resource.digest) {
          throw new VerifyError("E_DIGEST_MISMATCH", `tar layer ${layer.filepath}: ${member.name} is sha256:${member.digest}, but model.sig signs sha256:${resource.digest}`, { files: [member.name] });
        }
        files.push({ ...member, via: "tar" });
      }
    }
    const placed = new Set(files.map((f) => f.name));
    const missing = signed.resources.filter((r) => !placed.has(r.name)).map((r) => r.name);
    if (missing.length > 0) throw new VerifyError("E_MISSING_FILE", `the tar layers lack signed file${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`, { files: missing });

    await options.verify?.(temp);
    await moveIntoPlace(temp, target, Boolean(exists));
    return { dir: target, files, rootDigest: signed.rootDigest };
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** A hard link shares the verified blob (no copy, no space); across filesystems, a copy. */
async function linkOrCopy(blob: string, path: string): Promise<"link" | "copy"> {
  await mkdir(dirname(path), { recursive: true });
  try {
    await link(blob, path);
    return "link";
  } catch (error) {
    // EXDEV: another filesystem; EPERM/EMLINK: no hard links there (some FUSE and network filesystems), or too many.
    if (!["EXDEV", "EPERM", "EMLINK", "ENOTSUP"].includes((error as NodeJS.ErrnoException).code ?? "")) throw error;
    await copyFile(blob, path, constants.COPYFILE_EXCL);
    return "copy";
  }
}

async function moveIntoPlace(temp: string, target: string, replace: boolean): Promise<void> {
  if (!replace) {
    await rename(temp, target);
    return;
  }
  const aside = `${join(dirname(target), `.${basename(target)}.old-${process.pid}-${randomBytes(4).toString("hex")}`)}`;
  await rename(target, aside);
  try {
    await rename(temp, target);
  } catch (error) {
    await rename(aside, target).catch(() => undefined);
    throw error;
  }
  await rm(aside, { recursive: true, force: true });
}

/** `.<name>.pull-<pid>-<hex>` and `.<name>.old-<pid>-<hex>` of processes that are gone. */
async function removeStaleTemporaries(target: string): Promise<void> {
  const prefix = `.${basename(target)}.`;
  const names = await readdir(dirname(target)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const match = /^(pull|old)-(\d+)-[0-9a-f]{8}$/.exec(name.slice(prefix.length));
    if (match && !isProcessAlive(Number(match[2]))) await rm(join(dirname(target), name), { recursive: true, force: true });
  }
}
