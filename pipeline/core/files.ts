/**
 * File helpers the engine relies on for "nothing half-written": atomic writes, and
 * snapshots of declared outputs (size + mtime, plus content digest where a task asks).
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { sha256OfFile } from "./hash.js";
import { fileIdentity } from "./file-identity.js";
import type { Sha256Hex } from "./fingerprint.js";

/** Write to a temporary sibling, then rename: readers see the old or the new file, never half. */
export async function atomicWriteFile(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(temp, data, mode === undefined ? undefined : { mode });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Remove the temporaries atomicWriteFile left for `path` (`<path>.tmp-<pid>-<hex>`) when its
 * writer was killed between writing and renaming: those of writer `pid`, or all of them.
 * Only for a caller that holds whatever serialises the writers of `path` (a dead holder's
 * lock just taken over, a blob lock): a live writer's temporary must not vanish under it.
 */
export async function removeTemporariesOf(path: string, pid?: number): Promise<string[]> {
  const prefix = `${basename(path)}.tmp-`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  const stale = names.filter((n) => {
    const writer = n.startsWith(prefix) ? /^(\d+)-[0-9a-f]{8}$/.exec(n.slice(prefix.length)) : null;
    return writer !== null && (pid === undefined || Number(writer[1]) === pid);
  });
  for (const name of stale) await rm(join(dirname(path), name), { force: true });
  return stale;
}

/**
 * Digests this process already computed, by file identity (device, inode, size, mtime in ns).
 * A step that hashes what it wrote (convert: the model, for policy.yaml's checksum), the
 * executor's output snapshot and the sign step would otherwise read a 13 GB model three times
 * in one run. The identity survives a rename (temporary -> final) and changes with any write;
 * this is for files the pipeline itself produces under its step locks. Verification never
 * uses it (see core/digest-cache.ts for its rules).
 */
const producedDigests = new Map<string, Sha256Hex>();
const MAX_PRODUCED_DIGESTS = 4096;

/** fileIdentity without ctime: a rename (temporary -> final) changes ctime, not the content. */
async function identityKey(path: string): Promise<string> {
  const { dev, ino, size, mtimeNs } = await fileIdentity(path);
  return `${dev}:${ino}:${size}:${mtimeNs}`;
}

export async function sha256File(path: string): Promise<Sha256Hex> {
  const before = await identityKey(path);
  const known = producedDigests.get(before);
  if (known) return known;
  const digest = (await sha256OfFile(path)).digest as Sha256Hex;
  // Remembered only if nothing wrote to the file while it was read.
  if ((await identityKey(path)) === before) {
    if (producedDigests.size >= MAX_PRODUCED_DIGESTS) producedDigests.delete(producedDigests.keys().next().value!);
    producedDigests.set(before, digest);
  }
  return digest;
}

export interface OutputSnapshot {
  type: "file" | "dir";
  size: number;
  mtimeMs: number;
  sha256?: Sha256Hex;
}

export async function snapshotOutput(path: string, hash: boolean): Promise<OutputSnapshot> {
  const info = await stat(path);
  if (info.isDirectory()) return { type: "dir", size: 0, mtimeMs: 0 };
  const snapshot: OutputSnapshot = { type: "file", size: info.size, mtimeMs: Math.trunc(info.mtimeMs) };
  if (hash) snapshot.sha256 = await sha256File(path);
  return snapshot;
}

/**
 * Does `path` still hold what was recorded? Returns null when it does, else why not.
 * Size + mtime decide; a recorded digest rescues a file that was only touched.
 */
export async function checkOutput(path: string, recorded: OutputSnapshot): Promise<"missing" | "modified" | null> {
  const info = await stat(path).catch(() => null);
  if (!info) return "missing";
  if (recorded.type === "dir") return info.isDirectory() ? null : "modified";
  if (!info.isFile()) return "modified";
  if (info.size === recorded.size && Math.trunc(info.mtimeMs) === recorded.mtimeMs) return null;
  if (recorded.sha256 && info.size === recorded.size && (await sha256File(path)) === recorded.sha256) return null;
  return "modified";
}

/** Writes every buffer at `position` on, continuing after short writes (at most 512 buffers per writev: IOV_MAX is 1024 on Linux). */
export async function writeAll(handle: FileHandle, buffers: readonly Buffer[], position: number): Promise<void> {
  let pending = [...buffers];
  let offset = position;
  while (pending.length > 0) {
    const slice = pending.slice(0, 512);
    const { bytesWritten } = await handle.writev(slice, offset);
    offset += bytesWritten;
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (skip >= buffer.length) skip -= buffer.length;
      else {
        rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
        skip = 0;
      }
    }
    pending = rest;
  }
}
