/**
 * SHA-256 of whole files, as fast as this machine hashes: large sequential reads into two
 * reused buffers, the next read in flight while the current chunk is hashed (hashing, not
 * I/O, is the bottleneck: signing.md §10). Files are hashed a few at a time so small
 * files do not wait behind a large one.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

const CHUNK = 8 << 20;

export async function sha256OfFile(path: string, signal?: AbortSignal): Promise<{ digest: string; size: number }> {
  const handle = await open(path, "r");
  try {
    const hash = createHash("sha256");
    const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
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
  } finally {
    await handle.close();
  }
}

/** Runs `work` over `items` with at most `limit` in flight, results in input order. By hand: p-limit would be the verify entry point's only dependency. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  });
  await Promise.all(lanes);
  return results;
}

export interface DigestOptions {
  cache?: import("./digest-cache.js").DigestCache;
  signal?: AbortSignal;
  /** Files hashed at once (default 4: reads of one overlap hashing of another). */
  concurrency?: number;
  /** How a file is hashed when the cache has no answer (the pipeline passes its in-process memo). */
  hash?: (path: string, signal?: AbortSignal) => Promise<{ digest: string; size: number }>;
}

/**
 * sha256 of each file, through the digest cache when one is given. An entry is stored
 * only when the file's identity was the same before and after hashing, so a file
 * written during the hash is never cached under the old identity.
 */
export async function digestFiles(paths: readonly string[], options: DigestOptions = {}): Promise<{ digest: string; size: number; cached: boolean }[]> {
  const { cache, signal } = options;
  const hash = options.hash ?? sha256OfFile;
  const { fileIdentity } = await import("./digest-cache.js");
  return mapLimit(paths, options.concurrency ?? 4, async (path) => {
    signal?.throwIfAborted();
    if (!cache) return { ...(await hash(path, signal)), cached: false };
    const before = await fileIdentity(path);
    const hit = cache.get(path, before);
    if (hit) return { digest: hit, size: Number(before.size), cached: true };
    const result = await hash(path, signal);
    const after = await fileIdentity(path);
    if (JSON.stringify(before) === JSON.stringify(after)) cache.set(path, after, result.digest);
    return { ...result, cached: false };
  });
}
