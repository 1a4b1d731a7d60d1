/**
 * One file into the cache's blobs/: resumable, parallel by byte range, verified.
 *
 * Bytes go into a pre-sized partial file (`blobs/<etag>.ai-tools.incomplete`) at their
 * offsets; a sidecar JSON records which chunks are complete, so a restarted run asks
 * only for the missing ranges. Each 206 must carry a Content-Range that starts where
 * we asked; a server that ignores Range (200) gets one stream from zero instead. The
 * content digest (sha256 for LFS files, git blob sha1 otherwise) of the completed file
 * is checked before the blob gets its final name (ranges arrive out of order, so it is
 * computed once over the finished file rather than while streaming); a mismatch
 * deletes the partial data, retries once, then fails with both digests.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { Response } from "got";
import type pLimit from "p-limit";
import { atomicWriteFile, removeTemporariesOf } from "../core/files.js";
import { PipelineError } from "../core/errors.js";
import { acquireRunLock } from "../core/run-lock.js";
import { etagOf, type RepoCache, type TreeFile } from "./cache.js";
import { errorFromResponse, HubHttpError, loadGot, requestHeaders, withRetries, type HttpOptions } from "./http.js";

export interface BlobDownloadOptions extends HttpOptions {
  cache: RepoCache;
  commit: string;
  file: TreeFile;
  /** Bytes per range request. */
  chunkSize: number;
  /** Range requests in flight for this file. */
  connections: number;
  /** Shared cap on open connections across all files. */
  connectionLimit?: ReturnType<typeof pLimit>;
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
}

class RangeIgnoredError extends Error {}

/** Resolve where the bytes are: the CDN's signed URL for LFS files, the Hub itself otherwise. */
async function locate(options: BlobDownloadOptions): Promise<string> {
  const { settings } = options;
  const path = options.file.path.split("/").map(encodeURIComponent).join("/");
  let url = `${settings.endpoint}/${options.cache.repo}/resolve/${options.commit}/${path}`;
  return withRetries(options, async () => {
    for (let hops = 0; hops < 5; hops++) {
      const got = await loadGot();
      const response = await got.head(url, {
        headers: requestHeaders(settings, url),
        followRedirect: false,
        throwHttpErrors: false,
        retry: { limit: 0 },
        timeout: { request: options.stallMs ?? 30_000 },
        signal: options.signal,
      });
      const location = response.headers.location;
      if (response.statusCode >= 300 && response.statusCode < 400 && location) {
        const next = new URL(location, url).toString();
        // Same host (a renamed repo): keep resolving. Another host: that is the CDN.
        if (new URL(next).host !== new URL(url).host) return next;
        url = next;
        continue;
      }
      if (response.statusCode === 200) return url;
      throw errorFromResponse(response, options.cache.repo, `resolving ${options.file.path}`);
    }
    throw new HubHttpError("E_HUB_BAD_RESPONSE", `resolving ${options.file.path}: too many redirects`, undefined);
  });
}

export async function downloadBlob(options: BlobDownloadOptions): Promise<BlobDownloadStats> {
  const { cache, file } = options;
  const etag = etagOf(file);
  const stats: BlobDownloadStats = { resumedBytes: 0, rangeRequests: 0, fellBackToSingleStream: false };
  // Two processes wanting the same blob: the second waits, then finds it done.
  const release = await acquireRunLock(cache.lockPath(etag), { signal: options.signal });
  try {
    // A run killed while saving the sidecar left its temporary; holding the lock, no one else writes it.
    await removeTemporariesOf(sidecarPath(cache, etag));
    if (cache.hasBlob(file)) return stats;
    await mkdir(dirname(cache.blobPath(etag)), { recursive: true });
    for (let attempt = 0; ; attempt++) {
      await fetchIntoPartial(options, stats);
      const actual = await digestOf(cache.partialPath(etag), file);
      if (actual === etag) break;
      await discardPartial(cache, etag);
      options.onBytes?.(-file.size);
      if (attempt >= 1) {
        throw new PipelineError("E_DIGEST_MISMATCH", `${cache.repo}/${file.path}: downloaded bytes do not match the Hub's digest (expected ${etag}, got ${actual}), twice. Nothing was kept.`);
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

async function readState(cache: RepoCache, file: TreeFile, chunkSize: number): Promise<PartialState> {
  const etag = etagOf(file);
  try {
    const state = JSON.parse(await readFile(sidecarPath(cache, etag), "utf8")) as PartialState;
    // Resume only into the same blob with the same chunking; anything else starts over.
    if (state.etag === etag && state.size === file.size && state.chunkSize === chunkSize && Array.isArray(state.done)) return state;
  } catch {
    // no resumable state
  }
  await discardPartial(cache, etag);
  return { etag, size: file.size, chunkSize, done: [] };
}

async function fetchIntoPartial(options: BlobDownloadOptions, stats: BlobDownloadStats): Promise<void> {
  const { cache, file } = options;
  const etag = etagOf(file);
  const partial = cache.partialPath(etag);
  const chunkSize = Math.max(1, options.chunkSize);
  const state = await readState(cache, file, chunkSize);
  const chunkCount = Math.max(1, Math.ceil(file.size / chunkSize));
  const handle = await open(partial, state.done.length ? "r+" : "w+");
  try {
    await handle.truncate(file.size);
    if (file.size === 0) return;
    const done = new Set(state.done);
    for (const index of done) {
      const bytes = Math.min(chunkSize, file.size - index * chunkSize);
      stats.resumedBytes += bytes;
      options.onBytes?.(bytes);
    }
    let url = await locate(options);
    const pending = [...Array(chunkCount).keys()].filter((i) => !done.has(i));
    let saving = Promise.resolve();
    const save = () => (saving = saving.then(() => atomicWriteFile(sidecarPath(cache, etag), JSON.stringify({ ...state, done: [...done].sort((a, b) => a - b) }))));

    const worker = async () => {
      for (let index = pending.shift(); index !== undefined; index = pending.shift()) {
        const start = index * chunkSize;
        const end = Math.min(file.size, start + chunkSize) - 1;
        await withRetries(options, async () => {
          let received = 0;
          try {
            const run = () => fetchRange(options, url, handle, start, end, (n) => {
              received += n;
              options.onBytes?.(n);
            });
            stats.rangeRequests++;
            await (options.connectionLimit ? options.connectionLimit(run) : run());
          } catch (error) {
            options.onBytes?.(-received);
            // A signed CDN URL expires after about an hour: ask the Hub for a fresh one.
            if (error instanceof HubHttpError && error.status === 403 && new URL(url).host !== new URL(options.settings.endpoint).host) {
              url = await locate(options);
              throw new HubHttpError("E_HUB_HTTP", "signed URL expired", 503, 0);
            }
            throw error;
          }
        });
        done.add(index);
        await save();
      }
    };
    try {
      await settleAll(Array.from({ length: Math.min(options.connections, pending.length) }, worker));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOSPC") {
        // Ranges recorded so far stay recorded (settleAll waited for every worker): a rerun
        // resumes. The last record may itself have hit the full disk: the earlier ones stand.
        await saving.catch(() => undefined);
        throw new PipelineError("E_DISK_FULL", `the disk holding ${cache.cacheDir} filled up while downloading ${cache.repo}/${file.path} (${done.size} of ${chunkCount} ranges done). Free some space and rerun: the download resumes where it stopped.`, { cause: error });
      }
      if (!(error instanceof RangeIgnoredError)) throw error;
      // The server sends whole files only: one stream from zero.
      stats.fellBackToSingleStream = true;
      await handle.truncate(0);
      await discardState(cache, etag);
      options.onBytes?.(-[...done].reduce((sum, i) => sum + Math.min(chunkSize, file.size - i * chunkSize), 0));
      await withRetries(options, () => fetchWhole(options, url, handle));
    }
    await saving;
    await handle.sync();
  } finally {
    await handle.close();
  }
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

/** A GET as a stream, once its status and headers are in: no redirects, no decompression, a stall timeout. */
async function openStream(options: BlobDownloadOptions, url: string, extraHeaders: Record<string, string> = {}) {
  const got = await loadGot();
  const stream = got.stream(url, {
    headers: requestHeaders(options.settings, url, extraHeaders),
    followRedirect: false,
    throwHttpErrors: false,
    decompress: false,
    retry: { limit: 0 },
    timeout: { socket: options.stallMs ?? 30_000 },
    signal: options.signal,
  });
  const response = await new Promise<Response>((resolve, reject) => {
    stream.once("response", resolve);
    stream.once("error", reject);
  });
  return { stream, response };
}

async function fetchRange(options: BlobDownloadOptions, url: string, handle: FileHandle, start: number, end: number, onData: (n: number) => void): Promise<void> {
  const { stream, response } = await openStream(options, url, { range: `bytes=${start}-${end}` });
  if (response.statusCode === 200) {
    stream.destroy();
    throw new RangeIgnoredError();
  }
  if (response.statusCode !== 206) {
    stream.destroy();
    throw errorFromResponse(response, options.cache.repo, `downloading ${options.file.path} bytes ${start}-${end}`);
  }
  const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(response.headers["content-range"] ?? ""));
  if (!range || Number(range[1]) !== start || Number(range[2]) !== end) {
    stream.destroy();
    throw new HubHttpError("E_HUB_BAD_RESPONSE", `downloading ${options.file.path}: asked for bytes ${start}-${end}, got Content-Range "${response.headers["content-range"] ?? ""}"`, 206);
  }
  let position = start;
  for await (const data of stream as AsyncIterable<Buffer>) {
    if (position + data.length > end + 1) throw new HubHttpError("E_HUB_BAD_RESPONSE", `downloading ${options.file.path}: more bytes than the range`, 206);
    await handle.write(data, 0, data.length, position);
    position += data.length;
    onData(data.length);
  }
  if (position !== end + 1) throw Object.assign(new Error(`connection closed after ${position - start} of ${end - start + 1} bytes`), { code: "E_TRUNCATED" });
}

async function fetchWhole(options: BlobDownloadOptions, url: string, handle: FileHandle): Promise<void> {
  let received = 0;
  try {
    const { stream, response } = await openStream(options, url);
    if (response.statusCode !== 200) {
      stream.destroy();
      throw errorFromResponse(response, options.cache.repo, `downloading ${options.file.path}`);
    }
    for await (const data of stream as AsyncIterable<Buffer>) {
      await handle.write(data, 0, data.length, received);
      received += data.length;
      options.onBytes?.(data.length);
    }
    if (received !== options.file.size) throw Object.assign(new Error(`got ${received} of ${options.file.size} bytes`), { code: "E_TRUNCATED" });
  } catch (error) {
    options.onBytes?.(-received);
    throw error;
  }
}

/** sha256 for LFS files; git's blob sha1 (`"blob <size>\0"` + content) otherwise. */
export async function digestOf(path: string, file: TreeFile): Promise<string> {
  const hash = createHash(file.lfsSha256 ? "sha256" : "sha1");
  if (!file.lfsSha256) hash.update(`blob ${file.size}\0`);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
