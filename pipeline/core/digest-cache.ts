/**
 * The verified-digest cache for runtime start-up: a second verification of an unchanged
 * model reads no weights. An entry is keyed by (device, inode, size, mtime ns, ctime ns);
 * any write, rename or chmod changes ctime, which user space cannot set back, so a
 * changed file is always rehashed. The cache file carries an HMAC under a per-user key
 * (mode 0600 beside it): an edited cache is ignored, and deleting either file only costs
 * one full hash.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { FileIdentity } from "./file-identity.js";

interface CacheEntry extends FileIdentity {
  sha256: string;
}

const VERSION = 1;
/** Entries beyond this are dropped oldest first: the cache stays a few hundred KB. */
const MAX_ENTRIES = 4096;

export function defaultDigestCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "ai-tools");
}

export class DigestCache {
  private entries = new Map<string, CacheEntry>();
  private dirty = false;

  private constructor(
    private readonly file: string,
    private readonly key: Buffer,
    private readonly racyWindowMs: number,
  ) {}

  /**
   * `racyWindowMs`: a file whose ctime is this close to now is not cached (git's "racy"
   * rule): on a filesystem with coarse timestamps it could change again within the same
   * tick and keep its identity. Default 2 s.
   */
  static async open(dir: string = defaultDigestCacheDir(), options: { racyWindowMs?: number } = {}): Promise<DigestCache> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const keyFile = join(dir, "digest-cache.key");
    let key = await readFile(keyFile).catch(() => null);
    if (!key || key.length !== 32) {
      key = randomBytes(32);
      await writeFile(`${keyFile}.tmp-${process.pid}`, key, { mode: 0o600 });
      await rename(`${keyFile}.tmp-${process.pid}`, keyFile);
    }
    const cache = new DigestCache(join(dir, "digests.json"), key, options.racyWindowMs ?? 2000);
    await cache.load();
    return cache;
  }

  private mac(body: string): Buffer {
    return createHmac("sha256", this.key).update(body).digest();
  }

  private async load(): Promise<void> {
    const text = await readFile(this.file, "utf8").catch(() => null);
    if (!text) return;
    try {
      const { body, mac } = JSON.parse(text) as { body: string; mac: string };
      const expected = this.mac(body);
      const given = Buffer.from(mac, "hex");
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return;
      const parsed = JSON.parse(body) as { version: number; entries: [string, CacheEntry][] };
      if (parsed.version === VERSION) this.entries = new Map(parsed.entries);
    } catch {
      // An unreadable cache is an empty cache.
    }
  }

  /** The digest recorded for exactly this file identity, else undefined. */
  get(path: string, identity: FileIdentity): string | undefined {
    const entry = this.entries.get(path);
    if (!entry) return undefined;
    const same = entry.dev === identity.dev && entry.ino === identity.ino && entry.size === identity.size && entry.mtimeNs === identity.mtimeNs && entry.ctimeNs === identity.ctimeNs;
    return same ? entry.sha256 : undefined;
  }

  set(path: string, identity: FileIdentity, sha256: string): void {
    if (BigInt(Date.now()) * 1_000_000n - BigInt(identity.ctimeNs) < BigInt(this.racyWindowMs) * 1_000_000n) return;
    this.entries.delete(path);
    this.entries.set(path, { ...identity, sha256 });
    while (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.dirty = true;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    const body = JSON.stringify({ version: VERSION, entries: [...this.entries] });
    const temp = `${this.file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    await writeFile(temp, JSON.stringify({ body, mac: this.mac(body).toString("hex") }), { mode: 0o600 });
    await chmod(temp, 0o600);
    await rename(temp, this.file);
    this.dirty = false;
  }
}
