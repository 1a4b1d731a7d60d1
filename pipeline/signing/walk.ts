/**
 * The files of a model directory, as OMS enumerates them: recursive, regular files only,
 * directories are not entries, links are never followed (lstat). What is not a regular
 * file is an error: a symlink could point anywhere, inside or out.
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { compareUtf8, isIgnored, nameProblem } from "./paths.js";

export interface ListedFile {
  /** Relative POSIX name: the resource name. */
  name: string;
  path: string;
  size: number;
}

export interface Irregular {
  name: string;
  kind: "symlink" | "special" | "empty-directory" | "bad-name";
  why: string;
}

/** Regular files (sorted by UTF-8 bytes) and everything that cannot be a resource. */
export async function listModelFiles(dir: string, ignorePaths: readonly string[]): Promise<{ files: ListedFile[]; irregular: Irregular[] }> {
  const files: ListedFile[] = [];
  const irregular: Irregular[] = [];
  const visit = async (relative: string) => {
    const entries = await readdir(relative ? join(dir, relative) : dir, { withFileTypes: true, encoding: "buffer" });
    let kept = 0;
    for (const entry of entries) {
      const raw = entry.name;
      const decoded = raw.toString("utf8");
      const name = relative ? `${relative}/${decoded}` : decoded;
      if (isIgnored(name, ignorePaths)) continue;
      kept++;
      if (!Buffer.from(decoded, "utf8").equals(raw)) {
        irregular.push({ name, kind: "bad-name", why: "its name is not valid UTF-8" });
        continue;
      }
      const problem = nameProblem(name);
      if (problem) {
        irregular.push({ name, kind: "bad-name", why: `its name ${problem}` });
        continue;
      }
      const path = join(dir, name);
      const info = await lstat(path);
      if (info.isSymbolicLink()) irregular.push({ name, kind: "symlink", why: "is a symbolic link" });
      else if (info.isDirectory()) await visit(name);
      else if (info.isFile()) files.push({ name, path, size: info.size });
      else irregular.push({ name, kind: "special", why: "is not a regular file (device, socket or FIFO)" });
    }
    if (relative && kept === 0) irregular.push({ name: relative, kind: "empty-directory", why: "is an empty directory (OMS cannot record it)" });
  };
  await visit("");
  files.sort((a, b) => compareUtf8(a.name, b.name));
  return { files, irregular };
}
