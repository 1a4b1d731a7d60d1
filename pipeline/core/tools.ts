/**
 * Toolchain identity: which cmake, compiler, git, nvcc a task will run, and their
 * versions. These go into fingerprints (Nx #36932: a swapped compiler must rebuild).
 * Versions are cached by (real path, size, mtime) so a no-op run spawns nothing.
 */
import { readFileSync } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import which from "which";
import { atomicWriteFile } from "./files.js";
import { runCommand } from "./process.js";
import { ToolMissingError } from "./errors.js";

export interface ToolSpec {
  /** Program name or path, e.g. "cmake" or $CXX. */
  command: string;
  /** How to install it, for the error when it is missing. */
  installHint: string;
  versionArgs?: string[];
  /** Picks the version line from the output; defaults to the first non-empty line. */
  versionLine?: RegExp;
}

export interface ToolInfo {
  command: string;
  path: string;
  version: string;
}

interface CacheEntry {
  size: number;
  mtimeMs: number;
  args: string;
  version: string;
}

export class ToolProbe {
  private cache: Record<string, CacheEntry>;
  private dirty = false;

  constructor(
    private readonly cacheFile: string | undefined,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.cache = {};
    if (cacheFile) {
      try {
        this.cache = JSON.parse(readFileSync(cacheFile, "utf8")) as Record<string, CacheEntry>;
      } catch {
        // no cache yet
      }
    }
  }

  /** The resolved tool, or null when it is not on PATH. */
  async find(spec: ToolSpec): Promise<ToolInfo | null> {
    const found = await which(spec.command, { nothrow: true, path: this.env.PATH ?? "" });
    if (!found) return null;
    const path = await realpath(found);
    const info = await stat(path);
    const args = (spec.versionArgs ?? ["--version"]).join(" ");
    const key = `${found}\0${path}`;
    const cached = this.cache[key];
    if (cached && cached.size === info.size && cached.mtimeMs === Math.trunc(info.mtimeMs) && cached.args === args) {
      return { command: spec.command, path: found, version: cached.version };
    }
    const result = await runCommand([found, ...(spec.versionArgs ?? ["--version"])], {
      captureStdout: true,
      allowFailure: true,
      timeoutMs: 20_000,
      env: this.env,
    });
    const lines = [...result.stdout.split("\n"), ...result.tail].map((l) => l.trim()).filter(Boolean);
    const version = (spec.versionLine ? lines.find((l) => spec.versionLine!.test(l)) : lines[0]) ?? "unknown";
    this.cache[key] = { size: info.size, mtimeMs: Math.trunc(info.mtimeMs), args, version };
    this.dirty = true;
    return { command: spec.command, path: found, version };
  }

  async require(spec: ToolSpec): Promise<ToolInfo> {
    const tool = await this.find(spec);
    if (!tool) throw new ToolMissingError(spec.command, spec.installHint);
    return tool;
  }

  async save(): Promise<void> {
    if (!this.dirty || !this.cacheFile) return;
    await atomicWriteFile(this.cacheFile, JSON.stringify(this.cache, null, 2) + "\n");
    this.dirty = false;
  }
}
