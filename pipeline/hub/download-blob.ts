/**
 * One file into the cache's blobs/: resumable, parallel by byte range, verified.
 *
 * Bytes go into a pre-sized partial file (`blobs/<etag>.ai-tools.incomplete`) at their
 * offsets; a sidecar JSON records which chunks are complete, so a restarted run asks
 * only for the missing ranges (also after a change of chunk size: finished chunks are
 * translated to the new size). Each 206 must carry a Content-Range that starts where we
 * asked; a server that ignores Range (200) gets one stream from zero instead. A range cut
 * off mid-way resumes where it stopped, so no byte is ever written twice.
 *
 * The content digest (sha256 for LFS files, git blob sha1 otherwise) is computed while the
 * bytes stream in, for the part of the file that arrives in order (all of it on one
 * connection); finished chunks ahead of that are read back from disk as soon as the bytes
 * before them are in, and only what is still missing at the end is read in a last pass. It
 * is checked before the blob gets its final name; a mismatch deletes the partial data,
 * retries once, then fails with both digests.
 *
 * Python's huggingface_hub and ai-tools wait for each other on the same blob: see blob-lock.ts.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Limiter } from "../core/concurrency.js";
import { atomicWriteFile, removeTemporariesOf, writeAll } from "../core/files.js";
import { BackgroundHash } from "../core/background-hash.js";
import { PipelineError } from "../core/errors.js";
import { lockBlob } from "./blob-lock.js";
import { etagOf, type RepoCache, type TreeFile } from "./cache.js";
import { errorFromResponse, HubHttpError, loadGot, requestHeaders, requestSignal, withRetries, type HttpOptions } from "./http.js";

export interface BlobDownloadOptions extends HttpOptions {
  cache: RepoCache;
  commit: string;
  file: TreeFile;
  /** Bytes per range request. */
  chunkSize: number;
  /** Range requests in flight for this file. */
  connections: number;
  /** Shared cap on open connections across all files. */
  connectionLimit?: Limiter;
  /** Bytes newly received (negative when a failed attempt's bytes are discarded). */
  onBytes?: (delta: number) => void;
}

interface PartialState {
  etag: string;
  size: number;
  chunkSize: number;
  done: number[];
}

/** How the last download went, for tests and benchmarks. */
export interface BlobDownloadStats {
  resumedBytes: number;
  rangeRequests: number;
  fellBackToSingleStream: boolean;
  /** Bytes read back from disk to finish the digest (0 when everything arrived in order). */
  rehashedBytes: number;
}

class RangeIgnoredError extends Error {}

/** `org/name/path/in/repo`: how messages name the file. */
const fileLabel = (options: BlobDownloadOptions) => `${options.cache.repo}/${options.file.path}`;

/** Resolve where the bytes are: the CDN's signed URL for LFS files, the Hub itself otherwise. */
async function locate(options: BlobDownloadOptions): Promise<string> {
  const { settings } = options;
  const path = options.file.path.split("/").map(encodeURIComponent).join("/");
  let url = `${settings.endpoint}/${options.cache.repo}/resolve/${options.commit}/${path}`;
  return withRetries(
    options,
    async () => {
      for (let hops = 0; hops < 5; hops++) {
        const got = await loadGot();
        const request = requestSignal(options.signal);
        const response = await got
          .head(url, {
            headers: requestHeaders(settings, url),
            followRedirect: false,
            throwHttpErrors: false,
            retry: { limit: 0 },
            timeout: { request: options.stallMs ?? 30_000 },
            ...(request.signal ? { signal: request.signal } : {}),
          })
          .finally(request.release);
        const location = response.headers.location;
        if (response.statusCode >= 300 && response.statusCode < 400 && location) {
          const next = new URL(location, url).toString();
          // Same host (a renamed repo): keep resolving. Another host: that is the CDN.
          if (new URL(next).host !== new URL(url).host) return next;
          url = next;
          continue;
        }
        if (response.statusCode === 200) return url;
        throw errorFromResponse(response, options.cache.repo, `resolving ${fileLabel(options)}`, settings.endpoint);
      }
      throw new HubHttpError("E_HUB_BAD_RESPONSE", `resolving ${fileLabel(options)}: too many redirects`, undefined);
    },
    `resolving ${fileLabel(options)}`,
  );
}

export async function downloadBlob(options: BlobDownloadOptions): Promise<BlobDownloadStats> {
  const { cache, file } = options;
  const etag = etagOf(file);
  const stats: BlobDownloadStats = { resumedBytes: 0, rangeRequests: 0, fellBackToSingleStream: false, rehashedBytes: 0 };
  // Two processes wanting the same blob (ours or Python's): the second waits, then finds it done.
  const release = await lockBlob(cache.lockPath(etag), options.signal ? { signal: options.signal } : {});
  try {
    // A run killed while saving the sidecar left its temporary; holding the lock, no one else writes it.
    await removeTemporariesOf(sidecarPath(cache, etag));
    if (cache.hasBlob(file)) return stats;
    await mkdir(dirname(cache.blobPath(etag)), { recursive: true });
    for (let attempt = 0; ; attempt++) {
      const actual = await fetchIntoPartial(options, stats);
      if (actual === etag) break;
      await discardPartial(cache, etag);
      options.onBytes?.(-file.size);
      if (attempt >= 1) {
        throw new PipelineError("E_DIGEST_MISMATCH", `${fileLabel(options)}: downloaded bytes do not match the Hub's digest (expected ${etag}, got ${actual}), twice. Nothing was kept.`);
      }
    }
    await rename(cache.partialPath(etag), cache.blobPath(etag));
    await rm(sidecarPath(cache, etag), { force: true });
    return stats;
  } finally {
    await release();
  }
}

const sidecarPath = (cache: RepoCache, etag: string) => `${cache.partialPath(etag)}.json`;

async function discardPartial(cache: RepoCache, etag: string): Promise<void> {
  await rm(cache.partialPath(etag), { force: true });
  await rm(sidecarPath(cache, etag), { force: true });
}

/**
 * Finished chunks of an earlier run, in `chunkSize` chunks: the same chunks when the size did
 * not change; else each new chunk that lies wholly inside bytes the old chunks covered.
 */
export function translateDoneChunks(state: PartialState, chunkSize: number, size: number): number[] {
  if (state.chunkSize === chunkSize) return state.done;
  const covered = state.done.map((i) => [i * state.chunkSize, Math.min(size, (i + 1) * state.chunkSize)] as const).sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [start, end] of covered) {
    const last = merged.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  const done: number[] = [];
  for (let i = 0; i * chunkSize < size; i++) {
    const start = i * chunkSize;
    const end = Math.min(size, start + chunkSize);
    if (merged.some(([a, b]) => a <= start && end <= b)) done.push(i);
  }
  return done;
}

async function readState(cache: RepoCache, file: TreeFile, chunkSize: number): Promise<PartialState> {
  const etag = etagOf(file);
  try {
    const state = JSON.parse(await readFile(sidecarPath(cache, etag), "utf8")) as PartialState;
    // Resume only into the same blob; finished bytes survive a change of chunk size.
    if (state.etag === etag && state.size === file.size && Number.isSafeInteger(state.chunkSize) && state.chunkSize > 0 && Array.isArray(state.done)) {
      return { etag, size: file.size, chunkSize, done: translateDoneChunks(state, chunkSize, file.size) };
    }
  } catch {
    // no resumable state
  }
  await discardPartial(cache, etag);
  return { etag, size: file.size, chunkSize, done: [] };
}

/** Files from this size on are hashed on a worker thread (core/background-hash.ts); below, a thread's start-up (~25 ms) costs more than it saves. */
const BACKGROUND_HASH_BYTES = 32 << 20;

interface RunningHash {
  reset(): void;
  update(data: Buffer): Promise<void> | undefined;
  digest(): Promise<string>;
  close(): Promise<void>;
}

/** The hash on this thread. */
class InlineHash implements RunningHash {
  private hash!: Hash;

  constructor(
    private readonly algorithm: "sha256" | "sha1",
    private readonly prefix: string | undefined,
  ) {
    this.reset();
  }

  reset(): void {
    this.hash = createHash(this.algorithm);
    if (this.prefix !== undefined) this.hash.update(this.prefix);
  }

  update(data: Buffer): undefined {
    this.hash.update(data);
    return undefined;
  }

  digest(): Promise<string> {
    return Promise.resolve(this.hash.digest("hex"));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The content digest of a file being written at random offsets: bytes at the hashed frontier
 * are hashed as they arrive; finished chunks beyond it are read back from the file once the
 * frontier reaches them; the rest at the end.
 */
class StreamingDigest {
  private readonly hash: RunningHash;
  /** Bytes [0, frontier) are hashed (or handed to the hashing thread, in order). */
  frontier = 0;
  private catchingUp: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: TreeFile,
    private readonly handle: FileHandle,
    private readonly stats: BlobDownloadStats,
  ) {
    const algorithm = file.lfsSha256 ? "sha256" : "sha1";
    const prefix = file.lfsSha256 ? undefined : `blob ${file.size}\0`;
    this.hash = file.size >= BACKGROUND_HASH_BYTES ? new BackgroundHash(algorithm, prefix) : new InlineHash(algorithm, prefix);
  }

  /** Start over (the file is being rewritten from byte 0). */
  reset(): void {
    this.hash.reset();
    this.frontier = 0;
  }

  /**
   * `data` was just written at `position`. The buffer may be taken over (emptied): read its
   * length before. A promise when the hashing thread is behind: wait for it before reading on.
   */
  offer(position: number, data: Buffer): Promise<void> | undefined {
    if (position !== this.frontier) return undefined;
    this.frontier += data.length;
    return this.hash.update(data);
  }

  /** Read finished bytes at the frontier back from the file, up to the first byte not known to be written. */
  catchUp(writtenUpTo: (position: number) => number): Promise<void> {
    this.catchingUp = this.catchingUp.then(async () => {
      for (let end = writtenUpTo(this.frontier); end > this.frontier; end = writtenUpTo(this.frontier)) await this.readBack(end);
    });
    return this.catchingUp;
  }

  async finish(): Promise<string> {
    await this.catchingUp;
    await this.readBack(this.file.size);
    return this.hash.digest();
  }

  close(): Promise<void> {
    return this.hash.close();
  }

  private async readBack(end: number): Promise<void> {
    while (this.frontier < end) {
      // A buffer per read: the hashing thread takes each one over.
      const buffer = Buffer.allocUnsafeSlow(Math.min(4 << 20, end - this.frontier));
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, this.frontier);
      if (bytesRead === 0) throw Object.assign(new Error(`the partial file ended at ${this.frontier} of ${end} bytes`), { code: "E_TRUNCATED" });
      this.frontier += bytesRead;
      this.stats.rehashedBytes += bytesRead;
      await this.hash.update(buffer.subarray(0, bytesRead));
    }
  }
}

/** Downloads what the partial file lacks; returns the content digest of the complete file. */
async function fetchIntoPartial(options: BlobDownloadOptions, stats: BlobDownloadStats): Promise<string> {
  const { cache, file } = options;
  const etag = etagOf(file);
  const partial = cache.partialPath(etag);
  const chunkSize = Math.max(1, options.chunkSize);
  const state = await readState(cache, file, chunkSize);
  const chunkCount = Math.max(1, Math.ceil(file.size / chunkSize));
  const handle = await open(partial, state.done.length ? "r+" : "w+");
  let started: StreamingDigest | undefined;
  try {
    await handle.truncate(file.size);
    const hashing = (started = new StreamingDigest(file, handle, stats));
    if (file.size === 0) return await hashing.finish();
    const done = new Set(state.done);
    for (const index of done) {
      const bytes = Math.min(chunkSize, file.size - index * chunkSize);
      stats.resumedBytes += bytes;
      options.onBytes?.(bytes);
    }
    // The end of the run of finished chunks starting at `position` (or `position` itself).
    const writtenUpTo = (position: number) => {
      let end = position;
      while (end < file.size && end % chunkSize === 0 && done.has(end / chunkSize)) end = Math.min(file.size, end + chunkSize);
      return end;
    };
    await hashing.catchUp(writtenUpTo);
    const target = { url: await locate(options), expiries: 0 };
    const pending = [...Array(chunkCount).keys()].filter((i) => !done.has(i));
    // The record of finished chunks is written in the background, one write after the other: the
    // next range does not wait for it (on a busy machine each record cost a range tens of
    // milliseconds). A failed write (a full disk) stops the workers at their next range.
    let saving = Promise.resolve();
    let saveError: unknown;
    const save = () => {
      saving = saving
        .then(() => atomicWriteFile(sidecarPath(cache, etag), JSON.stringify({ ...state, done: [...done].sort((a, b) => a - b) })))
        .catch((error: unknown) => {
          saveError ??= error;
        });
    };

    const worker = async () => {
      for (let index = pending.shift(); index !== undefined; index = pending.shift()) {
        if (saveError) throw saveError;
        const start = index * chunkSize;
        const end = Math.min(file.size, start + chunkSize) - 1;
        // Bytes of this chunk on disk: a retry asks for the rest only, so nothing is written twice.
        let received = 0;
        await withRetries(
          options,
          async () => {
            const from = start + received;
            const run = () =>
              fetchRange(options, target.url, handle, from, end, (position, data) => {
                received += data.length;
                options.onBytes?.(data.length);
                return hashing.offer(position, data); // last: it may take the buffer over
              });
            stats.rangeRequests++;
            try {
              await (options.connectionLimit ? options.connectionLimit(run) : run());
            } catch (error) {
              throw await renewExpiredUrl(error, options, target);
            }
          },
          `downloading ${fileLabel(options)}`,
        );
        done.add(index);
        save();
        await hashing.catchUp(writtenUpTo);
      }
    };
    try {
      await settleAll(Array.from({ length: Math.min(options.connections, pending.length) }, worker));
      await saving;
      if (saveError) throw saveError;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOSPC") {
        // Ranges recorded so far stay recorded (settleAll waited for every worker): a rerun
        // resumes. The last record may itself have hit the full disk: the earlier ones stand.
        await saving;
        throw new PipelineError("E_DISK_FULL", `the disk holding ${cache.cacheDir} filled up while downloading ${fileLabel(options)} (${done.size} of ${chunkCount} ranges done). Free some space and rerun: the download resumes where it stopped.`, { cause: error });
      }
      if (!(error instanceof RangeIgnoredError)) throw error;
      // The server sends whole files only: one stream from zero.
      stats.fellBackToSingleStream = true;
      await saving; // no record may land after the one removed below
      await handle.truncate(0);
      await discardState(cache, etag);
      options.onBytes?.(-[...done].reduce((sum, i) => sum + Math.min(chunkSize, file.size - i * chunkSize), 0));
      await withRetries(options, () => fetchWhole(options, target.url, handle, hashing), `downloading ${fileLabel(options)}`);
    }
    await saving;
    // No fsync: it made a large download wait seconds for the disk, which curl and huggingface_hub
    // do not. A blob torn by a power loss is caught by the digest check of cached files (verify-cache.ts).
    return await hashing.finish();
  } finally {
    // The hashing thread (a large file's) ends with the download, failed or not.
    await started?.close();
    await handle.close();
  }
}

/**
 * A 403 from the CDN: its signed URL expired (they last about an hour). The first time, ask
 * the Hub for a fresh one and retry at once; when fresh URLs keep being refused, the usual
 * backoff applies, and the error that finally ends it names the file.
 */
async function renewExpiredUrl(error: unknown, options: BlobDownloadOptions, target: { url: string; expiries: number }): Promise<unknown> {
  const onCdn = new URL(target.url).host !== new URL(options.settings.endpoint).host;
  if (!(error instanceof HubHttpError) || error.status !== 403 || !onCdn) return error;
  target.expiries++;
  target.url = await locate(options);
  return new HubHttpError(
    "E_HUB_HTTP",
    `downloading ${fileLabel(options)}: the CDN refused its signed URL (403${target.expiries > 1 ? `, ${target.expiries} times, each with a fresh URL from the Hub` : ", expired?"})`,
    503,
    target.expiries === 1 ? 0 : undefined,
  );
}

async function discardState(cache: RepoCache, etag: string): Promise<void> {
  await rm(sidecarPath(cache, etag), { force: true });
}

/** Like Promise.all, but waits for every worker so finished chunks are recorded before the file closes. */
async function settleAll(workers: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(workers);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

/**
 * A GET as a stream, once its status and headers are in: no redirects, no decompression, a stall
 * timeout. node:http directly, not got: the body is all this needs, and on a 512 MiB body got's
 * stream layer cost ~10 % more time (bench/download.ts). Network errors keep their codes
 * (ECONNRESET, ...), a stall is ETIMEDOUT: both retryable (http.ts).
 */
function openStream(options: BlobDownloadOptions, url: string, extraHeaders: Record<string, string> = {}): Promise<{ stream: IncomingMessage; response: { statusCode: number; headers: IncomingHttpHeaders } }> {
  const request = requestSignal(options.signal);
  const stallMs = options.stallMs ?? 30_000;
  const send = new URL(url).protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { headers: requestHeaders(options.settings, url, extraHeaders), ...(request.signal ? { signal: request.signal } : {}) });
    req.setTimeout(stallMs, () => req.destroy(Object.assign(new Error(`no data for ${stallMs} ms (stalled connection)`), { code: "ETIMEDOUT" })));
    // After the response began, an error here also ends the body stream, which the reader sees.
    req.on("error", (error) => {
      request.release();
      reject(error);
    });
    req.once("response", (stream) => {
      stream.once("close", request.release);
      resolve({ stream, response: { statusCode: stream.statusCode ?? 0, headers: stream.headers } });
    });
    req.end();
  });
}

async function fetchRange(options: BlobDownloadOptions, url: string, handle: FileHandle, start: number, end: number, onData: (position: number, data: Buffer) => Promise<void> | undefined): Promise<void> {
  const { stream, response } = await openStream(options, url, { range: `bytes=${start}-${end}` });
  if (response.statusCode === 200) {
    stream.destroy();
    throw new RangeIgnoredError();
  }
  if (response.statusCode !== 206) {
    stream.destroy();
    throw errorFromResponse(response, options.cache.repo, `downloading ${fileLabel(options)} bytes ${start}-${end}`, options.settings.endpoint);
  }
  const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(response.headers["content-range"] ?? ""));
  if (!range || Number(range[1]) !== start || Number(range[2]) !== end) {
    stream.destroy();
    throw new HubHttpError("E_HUB_BAD_RESPONSE", `downloading ${fileLabel(options)}: asked for bytes ${start}-${end}, got Content-Range "${response.headers["content-range"] ?? ""}"`, 206);
  }
  const position = await writeBody(stream, handle, start, end + 1, onData, () => new HubHttpError("E_HUB_BAD_RESPONSE", `downloading ${fileLabel(options)}: more bytes than the range`, 206));
  if (position !== end + 1) throw Object.assign(new Error(`connection closed after ${position - start} of ${end - start + 1} bytes`), { code: "E_TRUNCATED" });
}

/** Socket chunks (~64 KiB) are written in batches of this many bytes: one write call each. */
const WRITE_BATCH = 1 << 20;

/**
 * A response body into the file from `start` on (at most up to `limit`), returning where it
 * ended. Socket chunks are gathered into 1 MiB batches, each written with one writev; up to
 * WRITES_IN_FLIGHT batches are written while the socket keeps being read (awaiting each 64 KiB
 * write before reading on made one connection 4x slower than curl; on a busy machine a
 * thread-pool write can take tens of milliseconds). `onData` sees each chunk once it is on
 * disk, in order: a byte is hashed only when it is the byte the file holds. On failure, what
 * was written is on disk and was reported before this throws (a retry resumes after it).
 */
async function writeBody(body: AsyncIterable<Buffer>, handle: FileHandle, start: number, limit: number, onData: (position: number, data: Buffer) => Promise<void> | undefined, tooMuch: () => Error): Promise<number> {
  let written = start;
  let batch: Buffer[] = [];
  let batchStart = start;
  let batchBytes = 0;
  const inFlight: Promise<void>[] = [];
  let reported: Promise<void> = Promise.resolve();
  const flush = async () => {
    if (batch.length === 0) return;
    const buffers = batch;
    const at = batchStart;
    batchStart += batchBytes;
    batch = [];
    batchBytes = 0;
    // One buffer per batch: one write call and one hash update.
    const joined = buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers);
    const write = writeAll(handle, [joined], at);
    // Reported in file order, each once it and every batch before it are on disk.
    const length = joined.length; // onData may take the buffer over
    const report = Promise.all([reported, write]).then(() => {
      const caughtUp = onData(at, joined);
      written = at + length;
      return caughtUp;
    });
    reported = report;
    inFlight.push(report);
    report.catch(() => undefined); // awaited below; a failure surfaces there
    if (inFlight.length >= WRITES_IN_FLIGHT) await inFlight.shift();
  };
  let overflow = false;
  try {
    for await (const data of body) {
      if (batchStart + batchBytes + data.length > limit) {
        overflow = true;
        throw tooMuch();
      }
      batch.push(data);
      batchBytes += data.length;
      if (batchBytes >= WRITE_BATCH) await flush();
    }
    await flush();
    await reported;
  } catch (error) {
    // The connection broke: keep what did arrive (a retry asks for the rest only).
    if (!overflow) await flush().catch(() => undefined);
    await reported.catch(() => undefined);
    throw error;
  }
  return written;
}

const WRITES_IN_FLIGHT = 16;

/** All of `buffers` at `position`: writev takes at most IOV_MAX buffers and may write short. */

async function fetchWhole(options: BlobDownloadOptions, url: string, handle: FileHandle, digest: StreamingDigest): Promise<void> {
  let received = 0;
  digest.reset();
  try {
    const { stream, response } = await openStream(options, url);
    if (response.statusCode !== 200) {
      stream.destroy();
      throw errorFromResponse(response, options.cache.repo, `downloading ${fileLabel(options)}`, options.settings.endpoint);
    }
    const end = await writeBody(stream, handle, 0, options.file.size, (position, data) => {
      received += data.length;
      options.onBytes?.(data.length);
      return digest.offer(position, data); // last: it may take the buffer over
    }, () => new HubHttpError("E_HUB_BAD_RESPONSE", `downloading ${fileLabel(options)}: more bytes than the file's ${options.file.size}`, 200));
    if (end !== options.file.size) throw Object.assign(new Error(`got ${end} of ${options.file.size} bytes`), { code: "E_TRUNCATED" });
  } catch (error) {
    options.onBytes?.(-received);
    throw error;
  }
}

/** sha256 for LFS files; git's blob sha1 (`"blob <size>\0"` + content) otherwise: what a cached file's name promises. */
export async function digestOf(path: string, file: TreeFile): Promise<string> {
  const hash = createHash(file.lfsSha256 ? "sha256" : "sha1");
  if (!file.lfsSha256) hash.update(`blob ${file.size}\0`);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
