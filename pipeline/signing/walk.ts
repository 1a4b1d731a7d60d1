/**
 * The files of a model directory, as OMS enumerates them: recursive, regular files only,
 * directories are not entries, links are never followed (lstat). What is not a regular
 * file is an error: a symlink could point anywhere, inside or out.
 *
 * The walk uses the synchronous fs calls, yielding to the event loop every few
 * milliseconds: for metadata calls the promise API's thread-pool round trip costs ~10x the
 * system call itself, and a model directory can hold tens of thousands of small files.
 *
 * The directory may change under the walk (a re-signing run renaming its temporaries): an
 * entry that vanishes between readdir and lstat is simply not there. Any other failure is a
 * typed E_IO naming the path, never a raw system error.
 */
import { lstatSync, readdirSync, type Dirent } from "node:fs";
import { join } from "node:path";
import { displayPath } from "../core/errors.js";
import { VerifyError } from "./errors.js";
import { compareUtf8, isIgnored, nameProblem } from "./paths.js";

export interface ListedFile {
  /** Relative POSIX name: the resource name. */
  name: string;
  path: string;
  size: number;
}

export interface Irregular {
  name: string;
  /** The name's bytes, when they are not UTF-8 (`name` then holds replacement characters). */
  rawName?: Buffer;
  kind: "symlink" | "special" | "empty-directory" | "bad-name";
  why: string;
}

export interface Listing {
  /** Regular files, sorted by UTF-8 bytes. */
  files: ListedFile[];
  /** Everything that cannot be a resource. */
  irregular: Irregular[];
  /** Regular files under the ignore paths (not checked; listed for reports). */
  ignored: string[];
}

/** Longest stretch of synchronous work before the walk yields to the event loop. */
const SLICE_MS = 8;

export async function listModelFiles(dir: string, ignorePaths: readonly string[], options: { signal?: AbortSignal } = {}): Promise<Listing> {
  const listing: Listing = { files: [], irregular: [], ignored: [] };
  let sliceStart = performance.now();
  const pause = async () => {
    if (performance.now() - sliceStart < SLICE_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    options.signal?.throwIfAborted();
    sliceStart = performance.now();
  };

  const visit = async (relative: string, ignored: boolean) => {
    const entries = readEntries(dir, relative);
    if (entries === null) return; // removed while we walked
    let kept = 0;
    for (const entry of entries) {
      await pause();
      const raw = entry.name as unknown as Buffer;
      const decoded = raw.toString("utf8");
      const name = relative ? `${relative}/${decoded}` : decoded;
      const path = join(dir, name);
      if (ignored || isIgnored(name, ignorePaths)) {
        const info = lstat(path);
        if (info?.isDirectory()) await visit(name, true);
        else if (info?.isFile()) listing.ignored.push(name);
        continue;
      }
      kept++;
      if (!Buffer.from(decoded, "utf8").equals(raw)) {
        listing.irregular.push({ name, rawName: relative ? Buffer.concat([Buffer.from(`${relative}/`), raw]) : raw, kind: "bad-name", why: "its name is not valid UTF-8" });
        continue;
      }
      const problem = nameProblem(name);
      if (problem) {
        listing.irregular.push({ name, kind: "bad-name", why: `its name ${problem}` });
        continue;
      }
      const info = lstat(path);
      if (!info) kept--; // vanished since readdir
      else if (info.isSymbolicLink()) listing.irregular.push({ name, kind: "symlink", why: "is a symbolic link" });
      else if (info.isDirectory()) await visit(name, false);
      else if (info.isFile()) listing.files.push({ name, path, size: info.size });
      else listing.irregular.push({ name, kind: "special", why: "is not a regular file (device, socket or FIFO)" });
    }
    if (relative && kept === 0 && !ignored) listing.irregular.push({ name: relative, kind: "empty-directory", why: "is an empty directory (OMS cannot record it)" });
  };
  await visit("", false);
  listing.files.sort((a, b) => compareUtf8(a.name, b.name));
  return listing;
}

/** A folder's entries (names as bytes), or null when a subfolder vanished during the walk. */
function readEntries(dir: string, relative: string): Dirent[] | null {
  const path = relative ? join(dir, relative) : dir;
  try {
    return readdirSync(path, { withFileTypes: true, encoding: "buffer" }) as unknown as Dirent[];
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (relative && (code === "ENOENT" || code === "ENOTDIR")) return null;
    throw walkError(error as NodeJS.ErrnoException, path, "list");
  }
}

/** lstat, or null for an entry that vanished since its folder was read. */
function lstat(path: string) {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw walkError(error as NodeJS.ErrnoException, path, "inspect");
  }
}

function walkError(error: NodeJS.ErrnoException, path: string, doing: string): VerifyError {
  const code = error.code ?? "EIO";
  const hint =
    code === "ENAMETOOLONG"
      ? "The directory nests too deep for a path to name its files: a model directory this deep is not a model; remove the nesting."
      : code === "EACCES" || code === "EPERM"
        ? "Make the directory readable by this user."
        : "Check the disk and the directory, then rerun.";
  return new VerifyError("E_IO", `cannot ${doing} ${displayPath(path)}: ${code}${error.message.includes(",") ? ` (${error.message.split(",")[0]!.replace(/^[A-Z0-9]+: /, "")})` : ""}`, { cause: error, details: [hint] });
}
