/**
 * A repository snapshot in the shared cache: resolve the revision once, list the
 * commit's files, keep those the patterns select, download what the cache lacks
 * (several files at once, several ranges per large file, one connection cap), and
 * link them into snapshots/<commit>/. A pinned commit that is fully cached costs no
 * request at all; HF_HUB_OFFLINE=1 uses only the cache.
 */
import { readdirSync, readlinkSync, statSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import pLimit from "p-limit";
import { PipelineError } from "../core/errors.js";
import { listFiles, resolveRevision } from "./api.js";
import { isCommit, RepoCache, type TreeFile } from "./cache.js";
import { downloadBlob } from "./download-blob.js";
import type { HttpOptions } from "./http.js";
import { pathFilter } from "./patterns.js";

export interface SnapshotRequest {
  repo: string;
  /** Branch, tag or 40-hex commit. */
  revision: string;
  allowPatterns?: readonly string[];
  ignorePatterns?: readonly string[];
}

export interface SnapshotProgress {
  repo: string;
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** The file this update is about, with its own progress. */
  file?: { path: string; bytesDone: number; size: number };
}

export interface SnapshotOptions extends HttpOptions {
  /** Bytes per range request (default 16 MiB). */
  chunkSize?: number;
  /** Range requests in flight per file (default 4). */
  connectionsPerFile?: number;
  /** Files downloaded at once (default 4). */
  fileConcurrency?: number;
  /** Open connections across all files (default 8). */
  maxConnections?: number;
  onProgress?: (progress: SnapshotProgress) => void;
}

export interface SnapshotResult {
  repo: string;
  revision: string;
  commit: string;
  /** snapshots/<commit>: the folder to hand to the converter. */
  dir: string;
  files: TreeFile[];
  /** Bytes fetched over the network in this call. */
  downloadedBytes: number;
  /** Files that were already in the cache. */
  cachedFiles: number;
}

export const DEFAULT_CHUNK_SIZE = 16 << 20;

export async function downloadSnapshot(request: SnapshotRequest, options: SnapshotOptions): Promise<SnapshotResult> {
  const { settings } = options;
  const cache = new RepoCache(settings.cacheDir, request.repo);
  const label = `${request.repo}@${request.revision}`;

  const commit = settings.offline
    ? (cache.readRef(request.revision) ?? offlineMiss(label, "the revision was never resolved here"))
    : isCommit(request.revision)
      ? request.revision
      : await resolveRevision(options, request.repo, request.revision);

  let files = cache.readTree(commit);
  if (!files) {
    if (settings.offline) files = filesInSnapshot(cache, commit);
    else {
      files = await listFiles(options, request.repo, commit);
      await cache.writeTree(commit, files);
    }
  }

  const keep = pathFilter(request.allowPatterns, request.ignorePatterns);
  const selected = files.filter((f) => keep(f.path));
  for (const pattern of request.allowPatterns ?? []) {
    // A literal name that matches nothing is a typo in the recipe, not an empty selection.
    if (!/[*?[]/.test(pattern) && !files.some((f) => f.path === pattern)) {
      throw new PipelineError("E_HUB_ENTRY_NOT_FOUND", `${label}: the pattern "${pattern}" names a file the repository does not have`);
    }
  }
  if (selected.length === 0) {
    throw new PipelineError("E_HUB_NO_MATCH", `${label}: no file matches allow ${JSON.stringify(request.allowPatterns ?? [])} / ignore ${JSON.stringify(request.ignorePatterns ?? [])} (the commit has ${files.length} files)`);
  }

  const missing = selected.filter((f) => !cache.hasSnapshotFile(commit, f));
  if (settings.offline && missing.length > 0) {
    offlineMiss(label, `missing: ${missing.slice(0, 5).map((f) => f.path).join(", ")}${missing.length > 5 ? ` and ${missing.length - 5} more` : ""}`);
  }
  const toFetch = missing.filter((f) => !cache.hasBlob(f));
  await checkDiskSpace(settings.cacheDir, toFetch, label);

  const progress: SnapshotProgress = {
    repo: request.repo,
    filesDone: selected.length - toFetch.length,
    filesTotal: selected.length,
    bytesDone: selected.filter((f) => !toFetch.includes(f)).reduce((sum, f) => sum + f.size, 0),
    bytesTotal: selected.reduce((sum, f) => sum + f.size, 0),
  };
  options.onProgress?.({ ...progress });
  let downloadedBytes = 0;
  const connectionLimit = pLimit(options.maxConnections ?? 8);
  const fileLimit = pLimit(options.fileConcurrency ?? 4);
  const results = await Promise.allSettled(
    toFetch.map((file) =>
      fileLimit(async () => {
        let fileDone = 0;
        const about = () => ({ path: file.path, bytesDone: fileDone, size: file.size });
        options.onProgress?.({ ...progress, file: about() });
        const stats = await downloadBlob({
          ...options,
          cache,
          commit,
          file,
          chunkSize: options.chunkSize ?? DEFAULT_CHUNK_SIZE,
          connections: options.connectionsPerFile ?? 4,
          connectionLimit,
          onBytes: (delta) => {
            progress.bytesDone += delta;
            fileDone += delta;
            options.onProgress?.({ ...progress, file: about() });
          },
        });
        downloadedBytes += file.size - stats.resumedBytes;
        progress.filesDone++;
        options.onProgress?.({ ...progress, file: about() });
      }),
    ),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;

  for (const file of selected) await cache.linkSnapshot(commit, file, settings.disableSymlinks);
  await cache.writeRef(request.revision, commit);
  return { repo: request.repo, revision: request.revision, commit, dir: cache.snapshotDir(commit), files: selected, downloadedBytes, cachedFiles: selected.length - toFetch.length };
}

function offlineMiss(label: string, why: string): never {
  throw new PipelineError("E_HUB_OFFLINE_MISS", `HF_HUB_OFFLINE is set and ${label} is not fully cached (${why}). Unset HF_HUB_OFFLINE to download it.`);
}

/** Without a recorded listing, the snapshot folder itself: each link names its blob. */
function filesInSnapshot(cache: RepoCache, commit: string): TreeFile[] {
  const root = cache.snapshotDir(commit);
  const files: TreeFile[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isSymbolicLink()) {
        const etag = basename(readlinkSync(path));
        const size = statSync(path, { throwIfNoEntry: false })?.size;
        if (size === undefined) continue;
        const rel = relative(root, path);
        files.push(/^[0-9a-f]{64}$/.test(etag) ? { path: rel, size, oid: "", lfsSha256: etag } : { path: rel, size, oid: etag });
      }
    }
  };
  walk(root);
  return files;
}

async function checkDiskSpace(cacheDir: string, files: readonly TreeFile[], label: string): Promise<void> {
  const needed = files.reduce((sum, f) => sum + f.size, 0);
  if (needed === 0) return;
  let dir = cacheDir;
  for (;;) {
    try {
      const fs = await statfs(dir);
      const free = fs.bavail * fs.bsize;
      if (needed > free) {
        throw new PipelineError("E_DISK_FULL", `${label} needs ${gib(needed)} in ${cacheDir}, but only ${gib(free)} is free. Free some space or point HF_HUB_CACHE at a larger disk.`);
      }
      return;
    } catch (error) {
      if (error instanceof PipelineError) throw error;
      if (dirname(dir) === dir) return;
      dir = dirname(dir); // the cache folder does not exist yet
    }
  }
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

