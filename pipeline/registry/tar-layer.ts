/**
 * Tar layers: a folder of many small files (a predictor's activation/) as one
 * `…weight.v1.tar` layer, written so the same files always give the same bytes, and read
 * back without trusting a single header.
 *
 * Writing (oci-models.md §8): the npm `tar` package, names sorted by UTF-8 bytes (tar
 * itself keeps readdir order), `portable` (no uid/gid/uname/atime/ctime), mtime 0, every
 * mode 0644 (`portable` keeps the file's own mode, hence onWriteEntry), no directory
 * entries. Two copies of a folder with different readdir order, modes or owners give the
 * same digest.
 *
 * Reading: tar's Parser only (never tar.x, which rewrites `..` and absolute names with a
 * warning instead of refusing them). Every member is checked before a byte of it is
 * written: a regular file or directory, a canonical relative name inside the layer's
 * folder, not seen before, and admitted by the caller (the signature's list and size).
 * Files are created exclusively (`wx`) in a folder only this process writes, and hashed as
 * they are written.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { create as createTar, Parser, type ReadEntry } from "tar";
import { PipelineError } from "../core/errors.js";
import { compareUtf8 } from "../signing/paths.js";
import { PackError } from "./pack-errors.js";
import { layerPathProblem } from "./layer-paths.js";

/** The fixed mode of every tar member (and of the folder entry in its file metadata annotation). */
export const TAR_FILE_MODE = 0o644;
export const TAR_DIR_MODE = 0o755;

/** Write `files` (paths relative to `cwd`) as a deterministic tar at `outFile`. */
export async function createDeterministicTar(cwd: string, files: readonly string[], outFile: string): Promise<void> {
  const sorted = [...files].sort(compareUtf8);
  await createTar(
    {
      file: outFile,
      cwd,
      portable: true,
      mtime: new Date(0),
      noDirRecurse: true,
      onWriteEntry(entry) {
        if (entry.stat) entry.stat.mode = (entry.stat.mode & ~0o7777) | TAR_FILE_MODE;
      },
    },
    sorted,
  );
}

export interface ExtractedMember {
  name: string;
  size: number;
  /** sha256 hex of the bytes written. */
  digest: string;
}

export interface TarExtractOptions {
  /** The layer's filepath annotation: every member lies in this folder (or is this file). */
  folder: string;
  /** Where member names are rooted (the temporary model directory). */
  targetDir: string;
  /** Throws when a member (name, size from its header) may not be written: the signature's say. */
  admit(member: { name: string; size: number }): void;
  /** What the layer is called in errors (its digest). */
  label: string;
}

const ACCEPTED_TYPES = new Set(["File", "OldFile", "Directory"]);

/** Extract a tar layer's regular files under `targetDir`, refusing anything else; returns each file with its sha256. */
export async function extractTarLayer(blobPath: string, options: TarExtractOptions): Promise<ExtractedMember[]> {
  await refuseCompressed(blobPath, options.label);
  const members: ExtractedMember[] = [];
  const files = new Set<string>();
  const dirs = new Set<string>();
  return new Promise<ExtractedMember[]>((resolve, reject) => {
    const source = createReadStream(blobPath);
    // strict: every tar warning (bad checksum, truncated archive) is an error.
    const parser = new Parser({ strict: true });
    let failed = false;
    let writing: Promise<void> = Promise.resolve();
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      source.destroy();
      reject(error instanceof PipelineError ? error : new PackError("E_REGISTRY_MANIFEST_INVALID", `tar layer ${options.label} is not a readable tar archive: ${(error as Error).message}`, { cause: error }));
    };

    parser.on("entry", (entry: ReadEntry) => {
      if (failed) return void entry.resume();
      try {
        const name = checkMember(entry, options, files, dirs);
        if (entry.type === "Directory") {
          dirs.add(name);
          entry.resume();
          writing = writing.then(() => mkdir(join(options.targetDir, name), { recursive: true }).then(() => undefined));
          writing.catch(fail);
          return;
        }
        files.add(name);
        options.admit({ name, size: entry.size });
        // Entries arrive one after another; each is written before the parser moves on.
        writing = writing.then(() => writeMember(entry, join(options.targetDir, name)).then((digest) => void members.push({ name, size: entry.size, digest })));
        writing.catch(fail);
      } catch (error) {
        entry.resume();
        fail(error);
      }
    });
    parser.on("error", fail);
    parser.on("end", () => {
      writing.then(() => {
        if (!failed) resolve(members);
      }, fail);
    });
    source.on("error", fail);
    source.pipe(parser);
  });
}

/** The member's canonical name, or the reason it may not be extracted. */
function checkMember(entry: ReadEntry, options: TarExtractOptions, files: Set<string>, dirs: Set<string>): string {
  const where = `tar layer ${options.label} (${options.folder})`;
  const raw = entry.path;
  if (!ACCEPTED_TYPES.has(entry.type)) {
    throw new PackError("E_REGISTRY_UNSAFE_PATH", `${where}: member ${JSON.stringify(raw)} is a ${entry.type}${entry.linkpath ? ` to ${JSON.stringify(entry.linkpath)}` : ""}; a model layer holds regular files only`);
  }
  const name = entry.type === "Directory" && raw.endsWith("/") ? raw.slice(0, -1) : raw;
  const problem = layerPathProblem(name);
  if (problem) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${where}: member name ${JSON.stringify(raw)} ${problem}`);
  const inside = name === options.folder || name.startsWith(`${options.folder}/`);
  if (!inside) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${where}: member ${JSON.stringify(name)} lies outside the layer's folder ${options.folder}/`);
  if (files.has(name) || (entry.type !== "Directory" && dirs.has(name))) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${where}: member ${JSON.stringify(name)} appears twice`);
  // A file may not sit where a folder of another member is, nor below a file.
  const parents = name.split("/").slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join("/"));
  const blocked = parents.find((p) => files.has(p));
  if (blocked) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${where}: member ${JSON.stringify(name)} would lie below the file ${blocked}`);
  if (entry.type === "Directory" && files.has(name)) throw new PackError("E_REGISTRY_UNSAFE_PATH", `${where}: folder ${JSON.stringify(name)} has the name of a file`);
  for (const p of parents) dirs.add(p);
  return name;
}

async function writeMember(entry: ReadEntry, path: string): Promise<string> {
  await mkdir(join(path, ".."), { recursive: true });
  const hash = createHash("sha256");
  // "wx": never through an existing name (a link planted by an earlier member cannot exist, but this costs nothing).
  const out = createWriteStream(path, { flags: "wx", mode: TAR_FILE_MODE });
  await new Promise<void>((resolve, reject) => {
    out.on("error", reject);
    entry.on("error", reject);
    entry.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      if (!out.write(chunk)) {
        entry.pause();
        out.once("drain", () => entry.resume());
      }
    });
    entry.on("end", () => out.end(() => resolve()));
  });
  return hash.digest("hex");
}

/** tar's Parser would gunzip or unzstd a layer silently: a `.tar` layer must be a plain tar. */
async function refuseCompressed(path: string, label: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    await handle.read(head, 0, 4, 0);
    const gzip = head[0] === 0x1f && head[1] === 0x8b;
    const zstd = head.readUInt32LE(0) === 0xfd2fb528;
    if (gzip || zstd) {
      throw new PackError("E_REGISTRY_MANIFEST_INVALID", `tar layer ${label} is ${gzip ? "gzip" : "zstd"}-compressed, but its media type says plain tar`);
    }
  } finally {
    await handle.close();
  }
}
