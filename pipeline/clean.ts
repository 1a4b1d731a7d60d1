/**
 * `pnpm pipeline clean [<model>] [--cache] [--dry-run]`: what is safe to delete, then
 * (unless --dry-run) deleting it, with the bytes freed.
 *
 * Always: temporaries an interrupted writer left (`*.tmp-<pid>...`), engine build folders
 * the build record no longer names, benchmark run logs. With a model: its outputs
 * (models/powerinfer/<m>/, its step records, generated checkpoint, development manifests).
 * With --cache: partial Hub downloads (`*.ai-tools.incomplete`), and with a model its Hub
 * repositories too. Nothing a running step holds (a live run lock) is touched.
 */
import { existsSync, readdirSync, readFileSync, lstatSync } from "node:fs";
import { rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join, relative } from "node:path";
import { isProcessAlive, processGroupMembers } from "./core/process.js";

export interface CleanItem {
  path: string;
  bytes: number;
  why: string;
}

export interface CleanOptions {
  root: string;
  model?: string;
  cache?: boolean;
  /** The Hugging Face hub cache folder (hubSettings().cacheDir). */
  hubCacheDir?: string;
  /** The model's Hub repositories, for --cache with a model. */
  modelRepos?: string[];
}

const TEMPORARY = /\.tmp-\d+(-[0-9a-f]{8})?$|^\.model\.powerinfer\.gguf\.tmp-\d+$/;

function sizeOf(path: string): number {
  const info = lstatSync(path, { throwIfNoEntry: false });
  if (!info) return 0;
  if (!info.isDirectory()) return info.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

function walk(dir: string, visit: (path: string, name: string, isDir: boolean) => boolean | void): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const descend = visit(path, entry.name, entry.isDirectory());
    if (entry.isDirectory() && !entry.isSymbolicLink() && descend !== false) walk(path, visit);
  }
}

/** Step instances whose run lock is held by a live process, or whose dead holder's commands still run: their files stay. */
function busyInstances(stateDir: string): Set<string> {
  const busy = new Set<string>();
  if (!existsSync(stateDir)) return busy;
  for (const name of readdirSync(stateDir)) {
    if (!name.endsWith(".running")) continue;
    try {
      const holder = JSON.parse(readFileSync(join(stateDir, name), "utf8")) as { pid: number; host?: string; children?: { pgid: number }[] };
      // Another host's pid cannot be checked from here (shared storage): assume it runs.
      const elsewhere = holder.host !== undefined && holder.host !== hostname();
      const orphansRun = (holder.children ?? []).some((c) => processGroupMembers(c.pgid).length > 0);
      if (elsewhere || isProcessAlive(holder.pid) || orphansRun) busy.add(name.slice(0, -".running".length));
    } catch {
      // Unreadable: not a running step's lock.
    }
  }
  return busy;
}

export function planClean(options: CleanOptions): { items: CleanItem[]; kept: string[] } {
  const { root } = options;
  const items: CleanItem[] = [];
  const kept: string[] = [];
  const stateDir = join(root, "build", "state");
  const busy = busyInstances(stateDir);
  const add = (path: string, why: string) => {
    if (existsSync(path) && !items.some((i) => path.startsWith(i.path + "/") || i.path === path)) items.push({ path, bytes: sizeOf(path), why });
  };

  // Temporaries left by interrupted writers.
  for (const dir of [join(root, "models"), join(root, "build"), join(root, "manifests")]) {
    walk(dir, (path, name, isDir) => {
      if (name === "powerinfer" && path === join(root, "build", "powerinfer")) return false; // CMake trees: not ours to scan
      if (TEMPORARY.test(name)) {
        // The writer's pid is in the name: a live writer's temporary is work in progress.
        const pid = Number(/tmp-(\d+)/.exec(name)![1]);
        if (isProcessAlive(pid)) kept.push(`${relative(root, path)} (pid ${pid} is writing it)`);
        else add(path, "left by an interrupted run");
        return false;
      }
      return isDir;
    });
  }

  // Engine builds the record no longer names (a changed flag or toolchain builds into a new folder).
  const buildRoot = join(root, "build", "powerinfer");
  if (existsSync(buildRoot)) {
    let current: string | null = null;
    try {
      current = (JSON.parse(readFileSync(join(stateDir, "build.lock.json"), "utf8")) as { result: { buildDir: string } }).result.buildDir;
    } catch {
      // No record: every build folder is stale, unless a build is running.
    }
    if (busy.has("build")) kept.push(`${relative(root, buildRoot)}/ (a build is running)`);
    else for (const name of readdirSync(buildRoot)) {
      const path = join(buildRoot, name);
      if (relative(root, path) !== current) add(path, "engine build the build record no longer uses");
    }
  }
  add(join(root, "build", "bench-logs", ...(options.model ? [options.model] : [])), "benchmark run logs (bench.json keeps the results)");

  if (options.model) {
    const m = options.model;
    const instances = ["generate", "download", "convert", "quantize", "bench", "sign"].map((t) => `${t}--${m}`);
    const running = instances.filter((i) => busy.has(i));
    if (running.length > 0) kept.push(`${m}: ${running.join(", ")} running`);
    else {
      add(join(root, "models", "powerinfer", m), `outputs of ${m}`);
      add(join(root, "build", "generated", m), `generated checkpoint of ${m}`);
      add(join(root, "build", "manifests", m), `development-key manifests of ${m}`);
      for (const instance of instances) add(join(stateDir, `${instance}.lock.json`), "step record (the step reruns next time)");
    }
  }

  if (options.cache && options.hubCacheDir) {
    walk(options.hubCacheDir, (path, name, isDir) => {
      if (name.endsWith(".ai-tools.incomplete")) add(path, "partial Hub download");
      return isDir;
    });
    for (const repo of options.modelRepos ?? []) add(join(options.hubCacheDir, `models--${repo.replace(/\//g, "--")}`), `Hub cache of ${repo}`);
  }
  return { items, kept };
}

export async function executeClean(items: readonly CleanItem[]): Promise<number> {
  let freed = 0;
  for (const item of items) {
    await rm(item.path, { recursive: true, force: true });
    freed += item.bytes;
  }
  return freed;
}
