/**
 * The files of a model directory, as OMS enumerates them: recursive, regular files only,
 * directories are not entries, links are never followed (lstat). What is not a regular
 * file is an error: a symlink could point anywhere, inside or out.
 *
 * The walk uses the synchronous fs calls, yielding to the event loop every few
 * milliseconds: for metadata calls the promise API's thread-pool round trip costs ~10x the
 * system call itself, and a model directory can hold tens of thousands of small files.
 * readdir's entry types spare an lstat per entry where no size is needed.
 *
 * The directory may change under the walk (a re-signing run renaming its temporaries): an
 * entry that vanishes between readdir and lstat is simply not there. Any other failure is a
 * typed E_IO naming the path, never a raw system error.
 */
import { isUtf8 } from "node:buffer";
import { lstatSync, readdirSync, type Dirent } from "node:fs";
import { resolve } from "node:path";
import { displayPath } from "../core/errors.js";
import { VerifyError } from "./errors.js";
import { compareUtf8, ignoreMatcher, segmentProblem } from "./paths.js";

export interface ListedFile {
  /** Relative POSIX name: the resource name. */
  name: string;
  path: string;
  /** Bytes, from lstat; absent when the walk was asked for no sizes (the hash learns them). */
  size?: number;
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

export interface WalkOptions {
  signal?: AbortSignal;
  /**
   * lstat every file for its size (default true). Without, the entry types readdir reports
   * decide (one lstat saved per file: a third of what verifying a tiny file costs); only
   * entries of unknown type are lstat'ed.
   */
  sizes?: boolean;
}

/** Longest stretch of synchronous work before the walk yields to the event loop (Date.now(): the first touch of `performance` costs ~0.8 ms of start-up). */
const SLICE_MS = 8;

export async function listModelFiles(dir: string, ignorePaths: readonly string[], options: WalkOptions = {}): Promise<Listing> {
  const base = resolve(dir);
  const prefix = base === "/" ? "/" : `${base}/`;
  const wantSizes = options.sizes ?? true;
  const listing: Listing = { files: [], irregular: [], ignored: [] };
  const ignoredName = ignoreMatcher(ignorePaths);
  let sliceStart = Date.now();
  // Called only when the slice is used up: an awaited call per entry costs more than the entry.
  const pause = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    options.signal?.throwIfAborted();
    sliceStart = Date.now();
  };

  const visit = async (relative: string, ignored: boolean) => {
    const entries = readEntries(base, relative);
    if (entries === null) return; // removed while we walked
    let kept = 0;
    for (const { dirent, rawName } of entries) {
      if (Date.now() - sliceStart >= SLICE_MS) await pause();
      const name = relative ? `${relative}/${dirent.name}` : dirent.name;
      const path = `${prefix}${name}`;
      if (ignored || ignoredName(name)) {
        const type = typeOf(dirent, path, false);
        if (type?.kind === "directory") await visit(name, true);
        else if (type?.kind === "file") listing.ignored.push(name);
        continue;
      }
      kept++;
      if (rawName) {
        listing.irregular.push({ name, rawName: relative ? Buffer.concat([Buffer.from(`${relative}/`), rawName]) : rawName, kind: "bad-name", why: "its name is not valid UTF-8" });
        continue;
      }
      const problem = segmentProblem(dirent.name);
      if (problem) {
        listing.irregular.push({ name, kind: "bad-name", why: `its name ${problem}` });
        continue;
      }
      const type = typeOf(dirent, path, wantSizes);
      if (!type) kept--; // vanished since readdir
      else if (type.kind === "symlink") listing.irregular.push({ name, kind: "symlink", why: "is a symbolic link" });
      else if (type.kind === "directory") await visit(name, false);
      else if (type.kind === "file") listing.files.push(type.size === undefined ? { name, path } : { name, path, size: type.size });
      else listing.irregular.push({ name, kind: "special", why: "is not a regular file (device, socket or FIFO)" });
    }
    if (relative && kept === 0 && !ignored) listing.irregular.push({ name: relative, kind: "empty-directory", why: "is an empty directory (OMS cannot record it)" });
  };
  await visit("", false);
  listing.files.sort((a, b) => compareUtf8(a.name, b.name));
  return listing;
}

interface Entry {
  dirent: Dirent;
  /** Set when the name is not UTF-8 (dirent.name then holds replacement characters). */
  rawName?: Buffer;
}

/**
 * A folder's entries, or null when a subfolder vanished during the walk. Names are read as
 * text; a folder with a name that did not decode (U+FFFD) is read again as bytes, to tell a
 * real U+FFFD from bytes that are not UTF-8.
 */
function readEntries(base: string, relative: string): Entry[] | null {
  const path = relative ? `${base}/${relative}` : base;
  try {
    const entries = readdirSync(path, { withFileTypes: true });
    if (!entries.some((e) => e.name.includes("\uFFFD"))) return entries.map((dirent) => ({ dirent }));
    return (readdirSync(path, { withFileTypes: true, encoding: "buffer" }) as unknown as Dirent[]).map((raw) => {
      const bytes = raw.name as unknown as Buffer;
      const dirent = Object.assign(raw, { name: bytes.toString("utf8") });
      return isUtf8(bytes) ? { dirent } : { dirent, rawName: bytes };
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (relative && (code === "ENOENT" || code === "ENOTDIR")) return null;
    throw walkError(error as NodeJS.ErrnoException, path, "list");
  }
}

type EntryType = { kind: "file"; size?: number } | { kind: "directory" | "symlink" | "special" };
// Shared answers for what readdir's types decide: no object per entry.
const FILE: EntryType = { kind: "file" };
const DIRECTORY: EntryType = { kind: "directory" };
const SYMLINK: EntryType = { kind: "symlink" };
const SPECIAL: EntryType = { kind: "special" };

/** What an entry is: from readdir's type when it is known and no size is wanted, else lstat. Null: it vanished. */
function typeOf(dirent: Dirent, path: string, wantSize: boolean): EntryType | null {
  if (dirent.isFile() && !wantSize) return FILE;
  if (dirent.isDirectory()) return DIRECTORY;
  if (dirent.isSymbolicLink()) return SYMLINK;
  if (dirent.isFIFO() || dirent.isSocket() || dirent.isBlockDevice() || dirent.isCharacterDevice()) return SPECIAL;
  let info;
  try {
    info = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw walkError(error as NodeJS.ErrnoException, path, "inspect");
  }
  if (info.isSymbolicLink()) return SYMLINK;
  if (info.isDirectory()) return DIRECTORY;
  if (info.isFile()) return { kind: "file", size: info.size };
  return SPECIAL;
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
