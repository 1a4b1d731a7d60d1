/**
 * SHA-256 of whole files, as fast as this machine hashes, for a directory of one 13 GB
 * model as well as for one of 20,000 four-byte files:
 *
 * - Small files (up to 256 KiB, sizes known from the walk) are read synchronously with one
 *   read into one shared buffer: open, read, close and hash cost a few microseconds each,
 *   where the promise API's thread-pool round trips and a fresh buffer per file cost tens
 *   (20,000 files: 0.2 s instead of minutes of allocation and GC). The loop yields to the
 *   event loop every few milliseconds, so signals and timers still run.
 * - Large files stream through two reused 8 MiB buffers, the next read in flight while the
 *   current chunk is hashed (hashing, not I/O, is the bottleneck: signing.md §10), a few
 *   files at a time. The buffers are pooled, not allocated per file.
 *
 * A file that vanishes or cannot be read is a typed error naming it (HashError:
 * E_MISSING_FILE, E_NOT_REGULAR_FILE, E_IO), never a raw system error; the verifier
 * reports it in its own taxonomy (signing/digests.ts).
 */
import { createHash, hash as hashOnce } from "node:crypto";
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, statSync } from "node:fs";
import { lstat, open, stat } from "node:fs/promises";
import { mapLimit } from "./concurrency.js";
import type { DigestCache } from "./digest-cache.js";
import { displayPath, fileSystemError, PipelineError } from "./errors.js";
import { identityOf } from "./file-identity.js";

/**
 * Verifying and signing (`noFollow`) never follow a link swapped in since the walk; nothing
 * blocks opening a FIFO; the large-file path checks it read a regular file (a device would
 * never end).
 */
const OPEN_NO_FOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** Where links are fine (a task's input file, a model path): still never blocked by a FIFO. */
const OPEN_FOLLOW = constants.O_RDONLY | constants.O_NONBLOCK;

/** Files up to this size are read in one synchronous call. */
export const SMALL_FILE_BYTES = 256 << 10;
const CHUNK = 8 << 20;
const SLICE_MS = 8;

/** A file that could not be hashed; `files` names it (the path as given). */
export class HashError extends PipelineError<"E_MISSING_FILE" | "E_NOT_REGULAR_FILE" | "E_IO"> {
  readonly files: readonly string[];

  constructor(code: HashError["code"], message: string, options: { cause?: unknown; files: readonly string[] }) {
    super(code, message, { cause: options.cause });
    this.files = options.files;
  }
}

export interface FileDigest {
  digest: string;
  size: number;
}

/** A file to hash; `size` (from the walk) lets a small file take the fast path. */
export interface HashTarget {
  path: string;
  size?: number;
}

/** Two 8 MiB buffers per large file in flight, reused from file to file. */
const bufferPool: Buffer[][] = [];

export async function sha256OfFile(path: string, signal?: AbortSignal, options: { noFollow?: boolean } = {}): Promise<FileDigest> {
  let handle;
  try {
    handle = await open(path, options.noFollow ? OPEN_NO_FOLLOW : OPEN_FOLLOW);
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw new HashError("E_NOT_REGULAR_FILE", `${displayPath(path)} is no longer a regular file (replaced since the directory was read)`, { files: [path] });
    }
  } catch (error) {
    throw hashError(error, path);
  }
  const buffers = bufferPool.pop() ?? [Buffer.allocUnsafeSlow(CHUNK), Buffer.allocUnsafeSlow(CHUNK)];
  try {
    const hash = createHash("sha256");
    let size = 0;
    let current = 0;
    let pending = handle.read(buffers[0]!, 0, CHUNK, null);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      signal?.throwIfAborted();
      const filled = buffers[current]!;
      current ^= 1;
      pending = handle.read(buffers[current]!, 0, CHUNK, null);
      hash.update(filled.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { digest: hash.digest("hex"), size };
  } catch (error) {
    throw hashError(error, path);
  } finally {
    await handle.close();
    // An aborted read may still be in flight into these buffers only until close() returns.
    if (bufferPool.length < 8) bufferPool.push(buffers);
  }
}

/** The shared buffer of the synchronous small-file path (one caller at a time: it never awaits while using it). */
let smallBuffer: Buffer | undefined;

/**
 * A small file in one read, or null when it turned out larger than SMALL_FILE_BYTES (it grew
 * since the walk): then the caller streams it. On a regular file a read shorter than asked
 * means end of file.
 */
function sha256OfSmallFileSync(path: string, cache: DigestCache | undefined, noFollow: boolean): (FileDigest & { cached: boolean }) | null {
  let fd: number;
  try {
    if (cache) {
      // lstat when not following: a link swapped in since the walk never borrows its target's cached digest.
      const identity = identityOf(noFollow ? lstatSync(path, { bigint: true }) : statSync(path, { bigint: true }));
      const hit = cache.get(path, identity);
      if (hit) return { digest: hit, size: Number(identity.size), cached: true };
    }
    fd = openSync(path, noFollow ? OPEN_NO_FOLLOW : OPEN_FOLLOW);
  } catch (error) {
    throw hashError(error, path);
  }
  try {
    const before = cache ? identityOf(fstatSync(fd, { bigint: true })) : undefined;
    smallBuffer ??= Buffer.allocUnsafeSlow(SMALL_FILE_BYTES + 1);
    const bytesRead = readSync(fd, smallBuffer, 0, smallBuffer.length, 0);
    if (bytesRead > SMALL_FILE_BYTES) return null;
    const digest = hashOnce("sha256", smallBuffer.subarray(0, bytesRead), "hex");
    if (cache && before) {
      const after = identityOf(fstatSync(fd, { bigint: true }));
      if (JSON.stringify(before) === JSON.stringify(after)) cache.set(path, after, digest);
    }
    return { digest, size: bytesRead, cached: false };
  } catch (error) {
    throw hashError(error, path);
  } finally {
    closeSync(fd);
  }
}

export interface DigestOptions {
  cache?: DigestCache;
  signal?: AbortSignal;
  /** Large files hashed at once (default 4: reads of one overlap hashing of another). */
  concurrency?: number;
  /** How a large file is hashed when the cache has no answer (the pipeline passes its in-process memo). */
  hash?: (path: string, signal?: AbortSignal) => Promise<FileDigest>;
  /** Refuse links (E_NOT_REGULAR_FILE) instead of hashing their targets: verify and sign, whose walk saw regular files. */
  noFollow?: boolean;
}

/**
 * sha256 of each file, through the digest cache when one is given. An entry is stored
 * only when the file's identity was the same before and after hashing, so a file
 * written during the hash is never cached under the old identity.
 */
export async function digestFiles(targets: readonly (string | HashTarget)[], options: DigestOptions = {}): Promise<(FileDigest & { cached: boolean })[]> {
  const { cache, signal } = options;
  const list = targets.map((t) => (typeof t === "string" ? { path: t } : t));
  const results = new Array<FileDigest & { cached: boolean }>(list.length);
  const large: number[] = [];
  let sliceStart = performance.now();
  for (let index = 0; index < list.length; index++) {
    const target = list[index]!;
    // Unknown sizes try the one-read path too: for a large file that costs one wasted 256 KiB read.
    if (target.size !== undefined && target.size > SMALL_FILE_BYTES) {
      large.push(index);
      continue;
    }
    if (performance.now() - sliceStart >= SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
    signal?.throwIfAborted();
    const result = sha256OfSmallFileSync(target.path, cache, options.noFollow === true);
    if (result) results[index] = result;
    else large.push(index);
  }
  const hash = options.hash ?? ((path: string, signal?: AbortSignal) => sha256OfFile(path, signal, { noFollow: options.noFollow === true }));
  const identityAt = (path: string) => identityOfPath(path, options.noFollow === true);
  await mapLimit(large, options.concurrency ?? 4, async (index) => {
    signal?.throwIfAborted();
    const path = list[index]!.path;
    if (!cache) {
      results[index] = { ...(await hash(path, signal)), cached: false };
      return;
    }
    const before = await identityAt(path);
    const hit = cache.get(path, before);
    if (hit) {
      results[index] = { digest: hit, size: Number(before.size), cached: true };
      return;
    }
    const result = await hash(path, signal);
    const after = await identityAt(path);
    if (JSON.stringify(before) === JSON.stringify(after)) cache.set(path, after, result.digest);
    results[index] = { ...result, cached: false };
  });
  return results;
}

async function identityOfPath(path: string, noFollow: boolean) {
  try {
    return identityOf(noFollow ? await lstat(path, { bigint: true }) : await stat(path, { bigint: true }));
  } catch (error) {
    throw hashError(error, path);
  }
}

/** A file gone since the walk is E_MISSING_FILE (the directory is being changed), a link swapped in E_NOT_REGULAR_FILE; any other failure E_IO. */
function hashError(error: unknown, path: string): unknown {
  if (error instanceof HashError || (error as Error | undefined)?.name === "AbortError") return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") {
    return new HashError("E_MISSING_FILE", `${displayPath(path)} vanished while it was being hashed: is another process changing the directory (re-signing it)? Run again once it has finished.`, {
      cause: error,
      files: [path],
    });
  }
  if (code === "ELOOP") {
    return new HashError("E_NOT_REGULAR_FILE", `${displayPath(path)} is now a symbolic link (replaced since the directory was read); links are never followed`, { cause: error, files: [path] });
  }
  if (typeof code === "string") {
    const typed = fileSystemError(error as NodeJS.ErrnoException, "read", path);
    return new HashError("E_IO", typed.message, { cause: error, files: [path] });
  }
  return error;
}
