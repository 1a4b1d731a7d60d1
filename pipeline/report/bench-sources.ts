/**
 * Every bench.json the report can find: the model folders (models/powerinfer/<model>/bench.json), the release
 * manifests (manifests/<model>/<version>/bench.json), the development-key manifests under build/manifests/, and the
 * --baseline files or folders given. Identical files (a model's bench.json and its manifest copy) count once. A broken
 * file found by looking around is reported and skipped; a broken file the user named is an error.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join, relative, resolve, sep } from "node:path";
import { UsageError, isPipelineError } from "../core/errors.js";
import { parseBenchResult } from "../model-bench/result.js";
import type { BenchSourceKind, FoundBench } from "./bench-series.js";

export interface SourceProblem {
  path: string;
  code: string;
  message: string;
}

export interface FoundBenchResults {
  found: FoundBench[];
  problems: SourceProblem[];
}

/** When two kinds hold the same bytes, the first of these names the result. */
const KIND_ORDER: readonly BenchSourceKind[] = ["release", "development", "baseline", "model"];

/** Folders a --baseline folder is searched through, at most this deep (a release download, a copied manifests/ tree). */
const MAX_BASELINE_DEPTH = 6;

interface Candidate {
  path: string;
  kind: BenchSourceKind;
  /** The model its folder names (models/powerinfer/<model>/, manifests/<model>/...), where the path says. */
  folderModel?: string;
  /** A --baseline file named on the command line: errors are fatal. */
  named: boolean;
}

export async function findBenchResults(root: string, options: { baselines?: readonly string[]; models?: readonly string[] } = {}): Promise<FoundBenchResults> {
  const candidates: Candidate[] = [];
  for (const dir of await subdirectories(join(root, "models", "powerinfer"))) candidates.push({ path: join(dir, "bench.json"), kind: "model", folderModel: basename(dir), named: false });
  for (const [top, kind] of [
    [join(root, "manifests"), "release"],
    [join(root, "build", "manifests"), "development"],
  ] as const) {
    for (const model of await subdirectories(top)) {
      for (const version of await subdirectories(model)) candidates.push({ path: join(version, "bench.json"), kind, folderModel: basename(model), named: false });
    }
  }
  for (const given of options.baselines ?? []) {
    const info = await stat(given).catch(() => null);
    if (!info) throw new UsageError(`--baseline ${given}: no such file or folder`, ["Give a bench.json, or a folder holding some (e.g. a copied manifests/ tree)."]);
    if (info.isDirectory()) for (const path of await benchFilesUnder(given, MAX_BASELINE_DEPTH)) candidates.push({ path, kind: "baseline", named: false });
    else candidates.push({ path: given, kind: "baseline", named: true });
  }

  const byDigest = new Map<string, FoundBench & { rank: number }>();
  const problems: SourceProblem[] = [];
  const wanted = options.models && options.models.length > 0 ? new Set(options.models) : null;
  for (const c of candidates) {
    // Another model's folder is not read (nor its broken files reported) when --models leaves it out.
    if (wanted && c.folderModel !== undefined && !wanted.has(c.folderModel)) continue;
    if (!c.named && !existsSync(c.path)) continue;
    const shown = showPath(root, c.path);
    let bytes: Buffer;
    let result;
    try {
      bytes = await readFile(c.path);
      result = parseBenchResult(bytes.toString("utf8"), shown);
    } catch (error) {
      if (c.named) throw error;
      problems.push({ path: shown, code: isPipelineError(error) ? error.code : "E_IO", message: (error as Error).message });
      continue;
    }
    if (wanted && !wanted.has(result.model.name)) continue;
    const digest = createHash("sha256").update(bytes).digest("hex");
    const version = versionFromPath(c.path, result.model.name);
    const rank = KIND_ORDER.indexOf(c.kind);
    const seen = byDigest.get(digest);
    if (!seen) byDigest.set(digest, { result, kind: c.kind, version, paths: [shown], rank });
    else {
      if (!seen.paths.includes(shown)) seen.paths.push(shown);
      seen.version ??= version;
      if (rank < seen.rank) Object.assign(seen, { kind: c.kind, rank });
    }
  }
  const found = [...byDigest.values()].map(({ rank: _rank, ...f }) => f);
  return { found, problems };
}

/** `<...>/<model>/<version>/bench.json` (the manifests layout) names the version; any other path names none. */
export function versionFromPath(path: string, model: string): string | null {
  const parts = resolve(path).split(sep);
  const [file, version, folder] = [parts.at(-1), parts.at(-2), parts.at(-3)];
  return file === "bench.json" && folder === model && version ? version : null;
}

/** Relative to the workspace where inside it, else as given. */
export function showPath(root: string, path: string): string {
  const rel = relative(root, resolve(path));
  return rel.startsWith("..") || rel === "" ? path : rel;
}

async function subdirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => join(dir, e.name))
    .sort();
}

/** bench.json and <anything>-bench.json (a release asset's name) below `dir`, sorted; links are not followed. */
async function benchFilesUnder(dir: string, depth: number): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory() && depth > 0 && e.name !== "node_modules" && !e.name.startsWith(".")) out.push(...(await benchFilesUnder(path, depth - 1)));
    else if (e.isFile() && (e.name === "bench.json" || e.name.endsWith("-bench.json"))) out.push(path);
  }
  return out.sort();
}
