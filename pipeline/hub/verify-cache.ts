/**
 * Are the cached files still the bytes the Hub listed? The cache trusts a blob by its size
 * (as huggingface_hub does), so a flipped bit on disk would go unnoticed into conversion.
 * LFS files are checked against their sha256 through the digest cache (a file unchanged
 * since its last check is not read again, see core/digest-cache.ts); other files (small
 * text: configs, tokenizers) against their git blob id, read each time.
 */
import { realpath } from "node:fs/promises";
import { digestFiles } from "../core/hash.js";
import type { DigestCache } from "../core/digest-cache.js";
import { digestOf } from "./download-blob.js";
import type { TreeFile } from "./cache.js";

export interface CachedFileCheck {
  file: TreeFile;
  path: string;
  ok: boolean;
  /** The digest found: sha256 for LFS files, the git blob id otherwise ("missing" when unreadable). */
  actual: string;
}

/** `entries`: snapshot entries (links into blobs/, or copies) or blobs themselves. */
export async function checkCachedFiles(entries: readonly { path: string; file: TreeFile }[], options: { digestCache?: DigestCache; signal?: AbortSignal } = {}): Promise<CachedFileCheck[]> {
  // The hasher never follows links: hash the blob a snapshot entry points to.
  const resolved = await Promise.all(entries.map(async (e) => ({ ...e, blob: await realpath(e.path).catch(() => e.path) })));
  const lfs = resolved.filter((e) => e.file.lfsSha256);
  const git = resolved.filter((e) => !e.file.lfsSha256);
  const checks: CachedFileCheck[] = [];
  const sha256s = await digestFiles(
    lfs.map((e) => ({ path: e.blob, size: e.file.size })),
    { ...(options.digestCache ? { cache: options.digestCache } : {}), ...(options.signal ? { signal: options.signal } : {}) },
  ).catch(() => null);
  for (const [i, entry] of lfs.entries()) {
    const actual = sha256s?.[i]?.digest ?? (await digestFiles([entry.blob]).then((d) => d[0]!.digest, () => "missing"));
    checks.push({ file: entry.file, path: entry.path, ok: actual === entry.file.lfsSha256, actual });
  }
  for (const entry of git) {
    const actual = await digestOf(entry.blob, entry.file).catch(() => "missing");
    checks.push({ file: entry.file, path: entry.path, ok: actual === entry.file.oid, actual });
  }
  return checks;
}
