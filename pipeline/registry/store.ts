/**
 * The local content-addressed store every pull goes through, shared by all models and
 * workspaces of a user, laid out as an OCI image layout (image-spec image-layout.md), so
 * skopeo reads what we wrote (`skopeo copy oci:<store>:<ref> …`) and we read what skopeo
 * wrote:
 *
 *   <store>/oci-layout                 {"imageLayoutVersion": "1.0.0"}
 *   <store>/index.json                 tags: org.opencontainers.image.ref.name
 *   <store>/blobs/sha256/<hex>         content = its digest, mode 0444
 *   <store>/.ai-tools/partial/<hex>.partial   a download in progress (resumable)
 *   <store>/.ai-tools/locks/            one lock per blob, one for index.json
 *   <store>/.ai-tools/tmp/              tar layers being packed, blobs being written
 *
 * Location: $AI_TOOLS_OCI_STORE, else $XDG_CACHE_HOME/ai-tools/oci (~/.cache/ai-tools/oci),
 * beside the digest cache: per user, not per workspace, so a model pulled into two
 * workspaces is downloaded once. Model directories get hard links to the blobs (a copy when
 * the store is on another filesystem), hence blobs are read-only: an edit in place would
 * change every model sharing the file.
 *
 * A blob gets its name only after its sha256 matched (written under .ai-tools/, fsync,
 * rename), so anything under blobs/ is verified content and is never fetched again. A
 * download keeps its bytes in `<hex>.partial`: a rerun hashes what is there and asks only
 * for the rest. One process fetches a blob at a time (a lock per blob, the project's run
 * lock: a dead holder's lock is taken over at once); the others wait and then find it.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { chmod, mkdir, open, readFile, rename, rm, stat, constants } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve as resolvePath } from "node:path";
import { PipelineError, UsageError } from "../core/errors.js";
import { atomicWriteFile, removeTemporariesOf } from "../core/files.js";
import { acquireRunLock, type LockHolder } from "../core/run-lock.js";
import { materializeModelPack, type MaterializeOptions, type MaterializeResult } from "./materialize.js";
import type { ParsedModelPack } from "./modelpack-parse.js";
import type { TarLayerSink } from "./modelpack.js";
import { hexOf, IMAGE_INDEX_MEDIA_TYPE, OCI_REF_NAME, SHA256_DIGEST, type OciDescriptor, type OciIndex } from "./oci-spec.js";
import { PackError } from "./pack-errors.js";

export const OCI_STORE_ENV = "AI_TOOLS_OCI_STORE";
const LAYOUT_VERSION = "1.0.0";
const READ_CHUNK = 8 << 20;

export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env[OCI_STORE_ENV]) return resolvePath(env[OCI_STORE_ENV]);
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "ai-tools", "oci");
}

/** What a fill callback writes into: the partial blob, continued where it stopped. */
export interface BlobWriter {
  /** Bytes already on disk when fill was called: ask the server for `Range: bytes=<offset>-` (none when 0; nothing at all when it equals size). */
  readonly offset: number;
  /** The descriptor's size. */
  readonly size: number;
  /** Bytes on disk now. */
  readonly written: number;
  /** Append the next bytes (one call at a time, in order). More than `size` in all is refused. */
  write(chunk: Uint8Array): Promise<void>;
  /** Drop what is on disk and start from byte 0 (the server ignored the Range and sends the whole blob). */
  restart(): Promise<void>;
  signal?: AbortSignal;
}

/** Fetches the blob's bytes from `writer.offset` into the writer; may throw (the bytes written so far are kept). */
export type BlobFill = (writer: BlobWriter) => Promise<void>;

export interface IngestOptions {
  signal?: AbortSignal;
  /** Called once when another process is fetching the same blob and this one waits for it. */
  onWait?: (holder: LockHolder) => void;
}

export interface IngestResult {
  path: string;
  /** False when the blob was already in the store (or another process fetched it meanwhile). */
  fetched: boolean;
  /** Where the fetch started (bytes kept from an earlier attempt). */
  resumedFrom: number;
  /** Bytes this call wrote. */
  bytesWritten: number;
}

export class OciStore implements TarLayerSink {
  private constructor(readonly dir: string) {}

  /** Open (creating when absent) the store at `dir` (default: defaultStoreDir()). */
  static async open(dir: string = defaultStoreDir()): Promise<OciStore> {
    const store = new OciStore(resolvePath(dir));
    await mkdir(join(store.dir, "blobs", "sha256"), { recursive: true });
    const layoutFile = join(store.dir, "oci-layout");
    const layout = await readFile(layoutFile, "utf8").catch(() => null);
    if (layout === null) await atomicWriteFile(layoutFile, JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
    else {
      let version: unknown;
      try {
        version = (JSON.parse(layout) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        version = undefined;
      }
      if (version !== LAYOUT_VERSION) {
        throw new PackError("E_REGISTRY_MANIFEST_INVALID", `${layoutFile}: imageLayoutVersion ${JSON.stringify(version)}; this store reads OCI image layout ${LAYOUT_VERSION} (set ${OCI_STORE_ENV} to another folder)`);
      }
    }
    return store;
  }

  private get stateDir(): string {
    return join(this.dir, ".ai-tools");
  }

  blobPath(digest: string): string {
    return join(this.dir, "blobs", "sha256", checkedHex(digest));
  }

  partialPath(digest: string): string {
    return join(this.stateDir, "partial", `${checkedHex(digest)}.partial`);
  }

  async has(digest: string): Promise<boolean> {
    const info = await stat(this.blobPath(digest)).catch(() => null);
    return info !== null && info.isFile();
  }

  /**
   * Make blob `digest` (`size` bytes) present: at once when it is, else through `fill`,
   * under the blob's lock, continuing a partial download. The bytes are checked against
   * the digest before the blob gets its name; on a mismatch nothing is renamed and the
   * partial is removed (a resumed partial is retried once from zero first).
   */
  async ingest(digest: string, size: number, fill: BlobFill, options: IngestOptions = {}): Promise<IngestResult> {
    if (!Number.isSafeInteger(size) || size < 0) throw new PackError("E_REGISTRY_MANIFEST_INVALID", `blob ${digest}: size ${size} is not a byte count`);
    return this.underBlobLock(digest, size, options, async (partial) => {
      for (let attempt = 0; ; attempt++) {
        const result = await fillPartial(partial, digest, size, fill, options.signal);
        if (result.digest === checkedHex(digest)) return { resumedFrom: result.resumedFrom, bytesWritten: result.bytesWritten };
        await rm(partial, { force: true });
        // Bytes kept from an earlier attempt may be the culprit: one fresh try from zero.
        if (result.resumedFrom === 0 || attempt >= 1) {
          throw new PipelineError("E_DIGEST_MISMATCH", `blob ${digest}: the ${size} bytes received hash to sha256:${result.digest}. Nothing was kept; the registry's copy may be corrupt`);
        }
      }
    });
  }

  /**
   * Like ingest, for a downloader that writes the partial file itself, continuing from the
   * bytes already there and checking the digest as it goes (RegistryClient.getBlob, which
   * hashes while it writes). Reading the file again here would hash every pulled byte twice;
   * the size is still checked before the blob gets its name.
   */
  async ingestDownload(digest: string, size: number, download: (partialPath: string) => Promise<{ digest: string; size: number; resumedFrom: number }>, options: IngestOptions = {}): Promise<IngestResult> {
    return this.underBlobLock(digest, size, options, async (partial) => {
      const got = await download(partial);
      if (got.digest !== digest || got.size !== size) {
        await rm(partial, { force: true });
        throw new PipelineError("E_DIGEST_MISMATCH", `blob ${digest}: received ${got.size} bytes hashing to ${got.digest}, the descriptor says ${size} bytes; nothing was kept`);
      }
      return { resumedFrom: got.resumedFrom, bytesWritten: got.size - got.resumedFrom };
    });
  }

  /**
   * The blob at once when present; else, under its lock (16 pulls sharing the store fetch it
   * once; the others find it present), `produce` fills the partial file with checked bytes,
   * which then gets the blob's name (read-only, renamed, the folder synced).
   */
  private async underBlobLock(digest: string, size: number, options: IngestOptions, produce: (partial: string) => Promise<{ resumedFrom: number; bytesWritten: number }>): Promise<IngestResult> {
    const final = this.blobPath(digest);
    if (await this.presentWithSize(digest, size)) return { path: final, fetched: false, resumedFrom: 0, bytesWritten: 0 };
    const release = await acquireRunLock(join(this.stateDir, "locks", `${checkedHex(digest)}.lock`), {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onWait ? { onWait: options.onWait } : {}),
    });
    try {
      if (await this.presentWithSize(digest, size)) return { path: final, fetched: false, resumedFrom: 0, bytesWritten: 0 };
      const partial = this.partialPath(digest);
      await mkdir(dirname(partial), { recursive: true });
      const produced = await produce(partial);
      await chmod(partial, 0o444);
      await rename(partial, final);
      await syncDir(dirname(final));
      return { path: final, fetched: true, ...produced };
    } finally {
      await release();
    }
  }

  /** Copy a local file in as a blob (checked like any other: the digest is recomputed). */
  async ingestFile(path: string, digest?: string): Promise<IngestResult> {
    const info = await stat(path);
    const expected = digest ?? `sha256:${await sha256Of(path)}`;
    return this.ingest(expected, info.size, async (writer) => {
      for await (const chunk of createReadStream(path, { start: writer.offset, highWaterMark: 1 << 20 })) await writer.write(chunk as Buffer);
    });
  }

  /** A small blob from memory (a manifest, a config); returns its descriptor digest and size. */
  async writeBlob(bytes: Uint8Array): Promise<{ digest: string; size: number }> {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (!(await this.has(digest))) {
      const temp = join(await this.scratchDir(), `blob-${process.pid}-${randomBytes(4).toString("hex")}`);
      const handle = await open(temp, "wx", 0o444);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.blobPath(digest));
    }
    return { digest, size: bytes.length };
  }

  /** A small blob's bytes (a manifest, a config, model.sig), refusing one larger than `maxBytes` before reading it, checked against its digest. */
  async readBlob(digest: string, maxBytes: number): Promise<Buffer> {
    const path = this.blobPath(digest);
    const info = await stat(path).catch(() => null);
    if (!info) throw new PipelineError("E_MISSING_FILE", `the store ${this.dir} has no blob ${digest}`);
    if (info.size > maxBytes) throw new PackError("E_REGISTRY_LIMIT", `blob ${digest} is ${info.size} bytes; more than ${maxBytes} is not read`);
    const bytes = await readFile(path);
    // Blobs are verified when written; this catches one changed since (through a hard link made writable).
    if (createHash("sha256").update(bytes).digest("hex") !== checkedHex(digest)) {
      throw new PipelineError("E_DIGEST_MISMATCH", `the store's blob ${digest} (${path}) no longer matches its digest; evict it and pull again`);
    }
    return bytes;
  }

  /**
   * Remove a blob (one that failed verification after materialize: a model file that was
   * made writable and edited changes its blob too, through the hard link). The next
   * ingest fetches it again.
   */
  async evict(digest: string): Promise<void> {
    const release = await acquireRunLock(join(this.stateDir, "locks", `${checkedHex(digest)}.lock`));
    try {
      await rm(this.blobPath(digest), { force: true });
    } finally {
      await release();
    }
  }

  async scratchDir(): Promise<string> {
    const dir = join(this.stateDir, "tmp");
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Take a file whose sha256 the caller computed (a tar layer it just wrote) as a blob. */
  async adopt(path: string, digest: string, size: number): Promise<string> {
    const final = this.blobPath(digest);
    if (await this.presentWithSize(digest, size)) {
      await rm(path, { force: true });
      return final;
    }
    await chmod(path, 0o444);
    try {
      await rename(path, final);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
      await this.ingestFile(path, digest);
      await rm(path, { force: true });
    }
    return final;
  }

  /** Point `ref` (a tag or full reference, OCI ref.name grammar) at `descriptor`, replacing what it named. */
  async tag(ref: string, descriptor: OciDescriptor): Promise<void> {
    checkRef(ref);
    if (!SHA256_DIGEST.test(descriptor.digest)) throw new PackError("E_REGISTRY_MANIFEST_INVALID", `cannot tag ${ref}: ${descriptor.digest} is not a sha256 digest`);
    const indexFile = join(this.dir, "index.json");
    const release = await acquireRunLock(join(this.stateDir, "locks", "index.json.lock"));
    try {
      // A writer killed between write and rename left its temporary; holding the lock, no one else writes one.
      await removeTemporariesOf(indexFile);
      const index = await this.readIndex();
      const entry: OciDescriptor = {
        mediaType: descriptor.mediaType,
        digest: descriptor.digest,
        size: descriptor.size,
        ...(descriptor.artifactType ? { artifactType: descriptor.artifactType } : {}),
        annotations: { ...descriptor.annotations, [OCI_REF_NAME]: ref },
      };
      const manifests = [...index.manifests.filter((m) => m.annotations?.[OCI_REF_NAME] !== ref), entry];
      await atomicWriteFile(indexFile, JSON.stringify({ ...index, manifests }));
    } finally {
      await release();
    }
  }

  /** The descriptor `ref` names, or undefined. */
  async resolve(ref: string): Promise<OciDescriptor | undefined> {
    const index = await this.readIndex();
    // The last entry wins, as index.json is appended to by other writers (skopeo replaces, but be tolerant).
    return [...index.manifests].reverse().find((m) => m.annotations?.[OCI_REF_NAME] === ref);
  }

  /** Every tagged reference and what it points at. */
  async tags(): Promise<{ ref: string; descriptor: OciDescriptor }[]> {
    const index = await this.readIndex();
    return index.manifests.flatMap((m) => (m.annotations?.[OCI_REF_NAME] ? [{ ref: m.annotations[OCI_REF_NAME], descriptor: m }] : []));
  }

  /** Build a model directory at `toDir` from the manifest's blobs (materialize.ts). */
  materialize(manifest: ParsedModelPack, toDir: string, options: MaterializeOptions = {}): Promise<MaterializeResult> {
    return materializeModelPack(this, manifest, toDir, options);
  }

  private async readIndex(): Promise<OciIndex> {
    const file = join(this.dir, "index.json");
    const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return null;
      throw error;
    });
    if (text === null) return { schemaVersion: 2, mediaType: IMAGE_INDEX_MEDIA_TYPE, manifests: [] };
    let index: OciIndex;
    try {
      index = JSON.parse(text) as OciIndex;
    } catch (error) {
      throw new PackError("E_REGISTRY_MANIFEST_INVALID", `${file} is not JSON (${(error as Error).message}); move it aside to start an empty index`);
    }
    if (index?.schemaVersion !== 2 || !Array.isArray(index.manifests)) throw new PackError("E_REGISTRY_MANIFEST_INVALID", `${file} is not an OCI image index`);
    return index;
  }

  private async presentWithSize(digest: string, size: number): Promise<boolean> {
    const info = await stat(this.blobPath(digest)).catch(() => null);
    if (!info) return false;
    if (info.size !== size) {
      throw new PackError("E_REGISTRY_MANIFEST_INVALID", `blob ${digest} is ${info.size} bytes in the store, but the descriptor says ${size}: the manifest is wrong`);
    }
    return true;
  }
}

function checkedHex(digest: string): string {
  if (!SHA256_DIGEST.test(digest)) throw new PackError("E_REGISTRY_MANIFEST_INVALID", `${JSON.stringify(digest)} is not a sha256 digest (sha256:<64 lowercase hex>)`);
  return hexOf(digest);
}

/** OCI image-layout ref.name: components of [A-Za-z0-9] joined by one of -._:@+ or "--", separated by "/". */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

function checkRef(ref: string): void {
  if (!REF_NAME.test(ref)) throw new UsageError(`${JSON.stringify(ref)} is not a valid reference name for the store (letters, digits and -._:@+ separated by /)`);
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY).catch(() => null);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory: the rename is still atomic.
  } finally {
    await handle.close();
  }
}

/**
 * Run `fill` into the partial file, hashing the bytes already there first, then each new
 * chunk as it is written. Returns the sha256 hex of the whole file.
 */
async function fillPartial(partial: string, digest: string, size: number, fill: BlobFill, signal: AbortSignal | undefined): Promise<{ digest: string; resumedFrom: number; bytesWritten: number }> {
  // "a+": appends at the end, reads at any position; created when absent.
  const handle = await open(partial, "a+", 0o644);
  try {
    let written = (await handle.stat()).size;
    if (written > size) {
      await handle.truncate(0);
      written = 0;
    }
    let hash = createHash("sha256");
    const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(written, 1)));
    for (let position = 0; position < written; ) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, written - position), position);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
    const resumedFrom = written;
    let bytesWritten = 0;
    let busy = false;
    const writer: BlobWriter = {
      offset: resumedFrom,
      size,
      get written() {
        return written;
      },
      async write(chunk) {
        if (busy) throw new Error(`blob ${digest}: BlobWriter.write called again before the previous write finished`);
        signal?.throwIfAborted();
        if (written + chunk.length > size) {
          throw new PipelineError("E_DIGEST_MISMATCH", `blob ${digest}: more than the descriptor's ${size} bytes arrived; the registry sent another blob`);
        }
        busy = true;
        try {
          // O_APPEND: each write lands at the end; a short write (possible for huge chunks) continues.
          for (let done = 0; done < chunk.length; ) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
        } finally {
          busy = false;
        }
        hash.update(chunk);
        written += chunk.length;
        bytesWritten += chunk.length;
      },
      async restart() {
        await handle.truncate(0);
        hash = createHash("sha256");
        written = 0;
      },
      ...(signal ? { signal } : {}),
    };
    try {
      await fill(writer);
    } finally {
      // What arrived stays on disk for the next attempt, even when fill failed.
      await handle.sync().catch(() => undefined);
    }
    if (written !== size) {
      throw new PipelineError("E_DIGEST_MISMATCH", `blob ${digest}: the transfer ended after ${written} of ${size} bytes; the bytes received are kept and a rerun continues from there`);
    }
    return { digest: hash.digest("hex"), resumedFrom, bytesWritten };
  } finally {
    await handle.close();
  }
}
