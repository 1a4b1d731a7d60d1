/**
 * A repository snapshot in the shared cache: resolve the revision once, list the
 * commit's files, keep those the patterns select, download what the cache lacks
 * (several files at once, several ranges per large file, one connection cap), and
 * link them into snapshots/<commit>/. A pinned commit that is fully cached costs no
 * request at all; HF_HUB_OFFLINE=1 uses only the cache.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { rm, statfs } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import { limiter } from "../core/concurrency.js";
import { PipelineError } from "../core/errors.js";
import { listFiles, resolveRevision } from "./api.js";
import type { DigestCache } from "../core/digest-cache.js";
import { etagOf, isCommit, RepoCache, type TreeFile } from "./cache.js";
import { checkCachedFiles } from "./verify-cache.js";
import { downloadBlob } from "./download-blob.js";
import type { HttpOptions } from "./http.js";
import { fnmatchToRegExp, pathFilter } from "./patterns.js";

export interface SnapshotRequest {
  repo: string;
  /** Branch, tag or 40-hex commit. */
  revision: string;
  /** The commit `revision` was already resolved to (resolveSnapshotCommit): not asked again. */
  commit?: string;
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
  /**
   * Check the content digest of every selected file already in the cache (a cached blob is
   * otherwise trusted by its size): through this digest cache when given (cheap for files
   * unchanged since they were last checked), by reading every byte when `true`. A blob that
   * fails is deleted and downloaded again.
   */
  verifyCached?: DigestCache | true;
  /** What the download did that a log should say (a corrupt blob replaced). */
  onNote?: (note: string) => void;
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
  /** Cached files whose bytes did not match their digest, downloaded again (with verifyCached). */
  repairedFiles: string[];
  /** Bytes read back from disk to finish digests (0 when every byte arrived in order and was hashed in flight). */
  rehashedBytes: number;
}

export const DEFAULT_CHUNK_SIZE = 16 << 20;

/**
 * The commit a request's revision names: a 40-hex revision as it is, offline the cached
 * ref, else one question to the Hub. Resolve once and pass the commit on (`request.commit`)
 * to every download of the same repository: a branch that moves in between must not mix commits.
 */
export async function resolveSnapshotCommit(request: SnapshotRequest, options: HttpOptions): Promise<string> {
  if (request.commit) return request.commit;
  if (isCommit(request.revision)) return request.revision;
  const cache = new RepoCache(options.settings.cacheDir, request.repo);
  if (options.settings.offline) return cache.readRef(request.revision) ?? offlineMiss(`${request.repo}@${request.revision}`, "the revision was never resolved here");
  return resolveRevision(options, request.repo, request.revision);
}

export async function downloadSnapshot(request: SnapshotRequest, options: SnapshotOptions): Promise<SnapshotResult> {
  const { settings } = options;
  const cache = new RepoCache(settings.cacheDir, request.repo);
  const label = `${request.repo}@${request.revision}`;
  const commit = await resolveSnapshotCommit(request, options);

  let files = cache.readTree(commit);
  // Offline without the commit's listing, only the snapshot folder says what there is: it cannot
  // say what is missing, so the request's patterns are checked against it (offlineCompleteness).
  const listed = files !== null;
  if (!files) {
    if (settings.offline) files = filesInSnapshot(cache, commit);
    else {
      files = await listFiles(options, request.repo, commit);
      await cache.writeTree(commit, files);
    }
  }

  const keep = pathFilter(request.allowPatterns, request.ignorePatterns);
  const selected = files.filter((f) => keep(f.path));
  if (settings.offline && !listed) {
    const gaps = offlineCompleteness(request, files, selected);
    if (gaps.length > 0) offlineMiss(label, `the cached snapshot has no listing of the commit (trees/${commit}.json), and ${gaps.join("; ")}`);
  }
  for (const pattern of request.allowPatterns ?? []) {
    // A literal name that matches nothing is a typo in the recipe, not an empty selection.
    if (!/[*?[]/.test(pattern) && !files.some((f) => f.path === pattern)) {
      throw new PipelineError("E_HUB_ENTRY_NOT_FOUND", `${label}: the pattern "${pattern}" names a file the repository does not have`);
    }
  }
  if (selected.length === 0) {
    throw new PipelineError("E_HUB_NO_MATCH", `${label}: no file matches allow ${JSON.stringify(request.allowPatterns ?? [])} / ignore ${JSON.stringify(request.ignorePatterns ?? [])} (the commit has ${files.length} files)`);
  }

  const repairedFiles = options.verifyCached ? await removeCorruptBlobs(cache, commit, selected, options) : [];
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
  let rehashedBytes = 0;
  const connectionLimit = limiter(options.maxConnections ?? 8);
  const fileLimit = limiter(options.fileConcurrency ?? 4);
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
        rehashedBytes += stats.rehashedBytes;
        progress.filesDone++;
        options.onProgress?.({ ...progress, file: about() });
      }),
    ),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;

  for (const file of selected) await cache.linkSnapshot(commit, file, settings.disableSymlinks);
  await cache.writeRef(request.revision, commit);
  return { repo: request.repo, revision: request.revision, commit, dir: cache.snapshotDir(commit), files: selected, downloadedBytes, cachedFiles: selected.length - toFetch.length, repairedFiles, rehashedBytes };
}

/**
 * Cached blobs of `files` whose content does not match their digest: deleted (blob and
 * snapshot entry), so that the download fetches them again. Their paths are returned.
 */
async function removeCorruptBlobs(cache: RepoCache, commit: string, files: readonly TreeFile[], options: SnapshotOptions): Promise<string[]> {
  const present = files.filter((f) => cache.hasBlob(f));
  const digestCache = options.verifyCached === true ? undefined : options.verifyCached;
  const checks = await checkCachedFiles(present.map((f) => ({ path: cache.blobPath(etagOf(f)), file: f })), digestCache ? { digestCache } : {});
  const repaired: string[] = [];
  for (const { file, actual } of checks.filter((c) => !c.ok)) {
    options.onNote?.(`${cache.repo}/${file.path}: the cached blob is corrupt (${file.lfsSha256 ? "sha256" : "git blob id"} ${actual}, expected ${etagOf(file)}): downloading it again`);
    await rm(cache.blobPath(etagOf(file)), { force: true });
    await rm(join(cache.snapshotDir(commit), file.path), { force: true });
    repaired.push(file.path);
  }
  await digestCache?.save();
  return repaired;
}

/**
 * What an offline request cannot be sure of without the commit's listing: every allow
 * pattern must match a cached file, a sharded checkpoint must have all its shards
 * (`-00002-of-00003`), and the files a `*.index.json` weight map names must be there.
 */
export function offlineCompleteness(request: SnapshotRequest, files: readonly TreeFile[], selected: readonly TreeFile[]): string[] {
  const gaps: string[] = [];
  for (const pattern of request.allowPatterns ?? []) {
    const matcher = fnmatchToRegExp(pattern);
    if (!files.some((f) => matcher.test(f.path))) gaps.push(`nothing cached matches the recipe's pattern "${pattern}"`);
  }
  const present = new Set(files.map((f) => f.path));
  const keep = pathFilter(request.allowPatterns, request.ignorePatterns);
  const missingShards = new Set<string>();
  for (const file of selected) {
    const shard = /^(.*-)(\d{5})-of-(\d{5})(\.[^/]+)$/.exec(file.path);
    if (shard) {
      const total = Number(shard[3]);
      for (let n = 1; n <= total; n++) {
        const name = `${shard[1]}${String(n).padStart(5, "0")}-of-${shard[3]}${shard[4]}`;
        if (!present.has(name) && keep(name)) missingShards.add(name);
      }
    }
  }
  for (const index of selected.filter((f) => f.path.endsWith(".index.json"))) {
    for (const name of weightMapFiles(index)) if (!present.has(name) && keep(name)) missingShards.add(name);
  }
  if (missingShards.size > 0) {
    const names = [...missingShards].sort();
    gaps.push(`the checkpoint's shards are incomplete: missing ${names.slice(0, 5).join(", ")}${names.length > 5 ? ` and ${names.length - 5} more` : ""}`);
  }
  return gaps;
}

/** The files a `model.safetensors.index.json` (or `pytorch_model.bin.index.json`) maps weights to, relative to the repo. */
function weightMapFiles(index: TreeFile & { localPath?: string }): string[] {
  try {
    const data = JSON.parse(readFileSync(index.localPath!, "utf8")) as { weight_map?: Record<string, unknown> };
    const folder = index.path.includes("/") ? index.path.slice(0, index.path.lastIndexOf("/") + 1) : "";
    return [...new Set(Object.values(data.weight_map ?? {}).filter((v): v is string => typeof v === "string").map((v) => folder + v))];
  } catch {
    return [];
  }
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
        const listed: TreeFile & { localPath: string } = /^[0-9a-f]{64}$/.test(etag) ? { path: rel, size, oid: "", lfsSha256: etag, localPath: path } : { path: rel, size, oid: etag, localPath: path };
        files.push(listed);
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

