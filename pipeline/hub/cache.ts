/**
 * The Hugging Face cache layout, exactly (hf-hub.md §8), so that Python's
 * huggingface_hub finds what we download and we find what it downloaded:
 *
 *   models--org--name/blobs/<sha256 for LFS | git sha1>
 *   models--org--name/snapshots/<commit>/<path>  -> relative symlink to ../../blobs/<etag>
 *   models--org--name/refs/<revision>            (the commit, no newline)
 *   models--org--name/trees/<commit>.json        (the full listing, Python >= 1.22 format)
 */
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { copyFile, mkdir, rm, symlink } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { atomicWriteFile } from "../core/files.js";
import { PipelineError } from "../core/errors.js";
import { escapeForTerminal, hasUnsafeCharacters } from "../core/escape.js";

export interface TreeFile {
  path: string;
  size: number;
  /** Git blob sha1. */
  oid: string;
  /** sha256 of the content, for LFS files. */
  lfsSha256?: string;
}

/** The blob name: sha256 for LFS files, git sha1 otherwise. */
export const etagOf = (file: TreeFile): string => file.lfsSha256 ?? file.oid;

const REPO_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const COMMIT = /^[0-9a-f]{40}$/;

export function assertRepoId(repo: string): void {
  if (!REPO_ID.test(repo) || repo.includes("..")) {
    throw new PipelineError("E_HUB_REPO_NOT_FOUND", `"${repo}" is not a Hub repository id (expected org/name)`);
  }
}

/** Paths from the server are untrusted: refuse anything that could leave the snapshot folder. */
export function assertSafeRepoPath(path: string): void {
  const bad =
    path.length === 0 ||
    path.length > 4096 ||
    path.startsWith("/") ||
    path.includes("\\") ||
    path.includes("\0") ||
    /^[A-Za-z]:/.test(path) ||
    path.split("/").some((segment) => segment === "" || segment === "." || segment === "..") ||
    // Control characters or bidirectional overrides in a name would steer the terminal that shows it.
    hasUnsafeCharacters(path);
  if (bad) throw new PipelineError("E_HUB_UNSAFE_PATH", `the Hub listed an unsafe file name "${escapeForTerminal(path.slice(0, 300))}"; refusing to write it`);
}

export function isCommit(revision: string): boolean {
  return COMMIT.test(revision);
}

export class RepoCache {
  readonly dir: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    assertRepoId(repo);
    this.dir = join(cacheDir, `models--${repo.replace(/\//g, "--")}`);
  }

  blobPath(etag: string): string {
    return join(this.dir, "blobs", etag);
  }

  /** Our resumable partial download of a blob (Python ignores extra *.incomplete files). */
  partialPath(etag: string): string {
    return join(this.dir, "blobs", `${etag}.ai-tools.incomplete`);
  }

  snapshotDir(commit: string): string {
    return join(this.dir, "snapshots", commit);
  }

  /** huggingface_hub's lock file for a blob (flock'ed, see blob-lock.ts): both clients wait on the same file. */
  lockPath(etag: string): string {
    return join(this.cacheDir, ".locks", `models--${this.repo.replace(/\//g, "--")}`, `${etag}.lock`);
  }

  /** The commit a branch or tag was last resolved to, or null. */
  readRef(revision: string): string | null {
    if (isCommit(revision)) return revision;
    try {
      const commit = readFileSync(join(this.dir, "refs", revision), "utf8").trim();
      return isCommit(commit) ? commit : null;
    } catch {
      return null;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    await atomicWriteFile(join(this.dir, "refs", revision), commit);
  }

  /** A blob of the right size is present (Python checks the same; ours were hash-verified before rename). */
  hasBlob(file: TreeFile): boolean {
    try {
      return statSync(this.blobPath(etagOf(file))).size === file.size;
    } catch {
      return false;
    }
  }

  /** The snapshot entry exists and leads to a blob of the right size. */
  hasSnapshotFile(commit: string, file: TreeFile): boolean {
    try {
      return statSync(join(this.snapshotDir(commit), file.path)).size === file.size;
    } catch {
      return false;
    }
  }

  /**
   * snapshots/<commit>/<path> -> ../../blobs/<etag> (one more ../ per subfolder). Where
   * symlinks are unavailable (or `copy`), a copy of the blob, as huggingface_hub does.
   */
  async linkSnapshot(commit: string, file: TreeFile, copy = false): Promise<void> {
    assertSafeRepoPath(file.path);
    const link = join(this.snapshotDir(commit), file.path);
    const target = relative(dirname(link), this.blobPath(etagOf(file)));
    await mkdir(dirname(link), { recursive: true });
    if (existsSync(link) || isSymlink(link)) {
      if (isSymlink(link) && readlinkSync(link) === target) return;
      await rm(link, { force: true });
    }
    if (copy) return copyFile(this.blobPath(etagOf(file)), link);
    await symlink(target, link).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code === "EEXIST") return; // a concurrent writer made the same link
      if (["EPERM", "ENOTSUP", "EOPNOTSUPP", "EINVAL"].includes(error.code ?? "")) return copyFile(this.blobPath(etagOf(file)), link);
      throw error;
    });
  }

  async writeTree(commit: string, files: readonly TreeFile[]): Promise<void> {
    const entries = Object.fromEntries(
      files.map((f) => [f.path, { size: f.size, blob_id: f.oid, ...(f.lfsSha256 ? { lfs_sha256: f.lfsSha256, lfs_size: f.size } : {}) }]),
    );
    await atomicWriteFile(join(this.dir, "trees", `${commit}.json`), JSON.stringify({ format_version: 1, files: entries }));
  }

  /** The full listing of a commit if a client recorded it, else null. */
  readTree(commit: string): TreeFile[] | null {
    try {
      const data = JSON.parse(readFileSync(join(this.dir, "trees", `${commit}.json`), "utf8")) as {
        format_version: number;
        files: Record<string, { size: number; blob_id: string; lfs_sha256?: string }>;
      };
      if (data.format_version !== 1) return null;
      return Object.entries(data.files).map(([path, f]) => {
        assertSafeRepoPath(path);
        return { path, size: f.size, oid: f.blob_id, ...(f.lfs_sha256 ? { lfsSha256: f.lfs_sha256 } : {}) };
      });
    } catch (error) {
      if (error instanceof PipelineError) throw error;
      return null;
    }
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
