/**
 * A file's identity: (device, inode, size, mtime ns, ctime ns), as exact strings (bigint
 * stats). Any write, rename or chmod changes ctime, which user space cannot set back, so
 * an unchanged identity means unchanged content for the digest caches (digest-cache.ts,
 * files.ts) and the hasher's before/after check (hash.ts).
 */
import { stat } from "node:fs/promises";
import type { BigIntStats } from "node:fs";

export interface FileIdentity {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

export async function fileIdentity(path: string): Promise<FileIdentity> {
  return identityOf(await stat(path, { bigint: true }));
}

export function identityOf(s: BigIntStats): FileIdentity {
  return { dev: String(s.dev), ino: String(s.ino), size: String(s.size), mtimeNs: String(s.mtimeNs), ctimeNs: String(s.ctimeNs) };
}
