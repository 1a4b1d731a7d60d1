/**
 * Task `download`: the model's checkpoint and its activation predictor from the
 * Hugging Face Hub into the shared cache (the layout huggingface_hub uses), resolved
 * to commits once, resumable and verified. Both repositories download at once, and
 * the task runs alongside the engine build.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import type { TaskDefinition, TaskRunContext } from "../pipeline/core/graph.js";
import type { TreeFile } from "../pipeline/hub/cache.js";
import { hubSettings } from "../pipeline/hub/env.js";
import { downloadSnapshot, type SnapshotProgress, type SnapshotRequest, type SnapshotResult } from "../pipeline/hub/snapshot.js";

export interface HubSource {
  repo: string;
  revision: string;
  allowPatterns?: string[] | undefined;
  ignorePatterns?: string[] | undefined;
}

export interface DownloadSettings {
  /** Recipe name, e.g. relu-llama-2-7b. */
  model: string;
  /** The recipe file, relative to the workspace root (shown in reasons). */
  recipeFile: string;
  sources: { model: HubSource; predictor: HubSource };
  connectionsPerFile?: number;
  chunkSize?: number;
}

export interface DownloadedRepo {
  repo: string;
  revision: string;
  commit: string;
  /** snapshots/<commit> in the Hugging Face cache: the converter's input folder. */
  dir: string;
  files: { path: string; size: number; sha256?: string; gitOid: string }[];
}

export interface DownloadResult {
  endpoint: string;
  cacheDir: string;
  model: DownloadedRepo;
  predictor: DownloadedRepo;
  downloadedBytes: number;
}

/** Env vars that change where bytes come from or go (the token changes neither: not an input). */
const HUB_ENV = ["HF_ENDPOINT", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"];

export function downloadTask(settings: DownloadSettings): TaskDefinition<DownloadResult> {
  return {
    id: "download",
    instance: `download--${settings.model}`,
    title: `Download ${settings.model} checkpoints`,
    version: 1,
    dependsOn: [],

    inputs(ctx) {
      return {
        values: {
          [`${settings.recipeFile}#model`]: settings.sources.model,
          [`${settings.recipeFile}#predictor`]: settings.sources.predictor,
        },
        env: HUB_ENV.filter((name) => ctx.env[name] !== undefined),
      };
    },

    // What the converter reads: the exact files, not where or when they were fetched.
    identity: (record) => {
      const result = record.result as DownloadResult;
      const pick = (r: DownloadedRepo) => ({ repo: r.repo, commit: r.commit, files: r.files.map((f) => [f.path, f.sha256 ?? f.gitOid]) });
      return { model: pick(result.model), predictor: pick(result.predictor) };
    },

    async verify(record) {
      const result = record.result as DownloadResult;
      for (const repo of [result.model, result.predictor]) {
        for (const file of repo.files) {
          const size = statSync(join(repo.dir, file.path), { throwIfNoEntry: false })?.size;
          if (size !== file.size) return `checkpoint file ${repo.repo}/${file.path} ${size === undefined ? "missing from" : "changed in"} the cache`;
        }
      }
      return null;
    },

    async run(ctx) {
      const hub = hubSettings(ctx.env);
      const progress = new Map<string, SnapshotProgress>();
      const started = performance.now();
      const report = (p: SnapshotProgress) => {
        progress.set(p.repo, p);
        ctx.progress(summarize([...progress.values()], performance.now() - started, p.file));
      };
      // One repository failing stops the other: no progress after the task has ended.
      const siblings = new AbortController();
      const signal = AbortSignal.any([ctx.signal, siblings.signal]);
      const fetch = (source: HubSource) =>
        downloadSnapshot(toRequest(source), {
          settings: hub,
          signal,
          onProgress: report,
          ...(settings.connectionsPerFile ? { connectionsPerFile: settings.connectionsPerFile } : {}),
          ...(settings.chunkSize ? { chunkSize: settings.chunkSize } : {}),
        });
      const settled = await Promise.allSettled(
        [settings.sources.model, settings.sources.predictor].map((source) =>
          fetch(source).catch((error: unknown) => {
            siblings.abort();
            throw error;
          }),
        ),
      );
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected" && !(siblings.signal.aborted && isAbort(r.reason)));
      if (failed) throw failed.reason;
      const [model, predictor] = settled.map((r) => (r as PromiseFulfilledResult<SnapshotResult>).value) as [SnapshotResult, SnapshotResult];
      for (const snapshot of [model, predictor]) {
        ctx.log(`${snapshot.repo}@${snapshot.revision} = ${snapshot.commit}: ${snapshot.files.length} files, ${snapshot.cachedFiles} already cached, ${snapshot.downloadedBytes} bytes fetched -> ${snapshot.dir}`);
      }
      return {
        endpoint: hub.endpoint,
        cacheDir: hub.cacheDir,
        model: describe(model),
        predictor: describe(predictor),
        downloadedBytes: model.downloadedBytes + predictor.downloadedBytes,
      };
    },
  };
}

const isAbort = (error: unknown) => (error as Error | undefined)?.name === "AbortError";

function toRequest(source: HubSource): SnapshotRequest {
  return {
    repo: source.repo,
    revision: source.revision,
    ...(source.allowPatterns ? { allowPatterns: source.allowPatterns } : {}),
    ...(source.ignorePatterns ? { ignorePatterns: source.ignorePatterns } : {}),
  };
}

function describe(snapshot: SnapshotResult): DownloadedRepo {
  const file = (f: TreeFile) => ({ path: f.path, size: f.size, gitOid: f.oid, ...(f.lfsSha256 ? { sha256: f.lfsSha256 } : {}) });
  return { repo: snapshot.repo, revision: snapshot.revision, commit: snapshot.commit, dir: snapshot.dir, files: snapshot.files.map(file) };
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** "12.0/48.0 MiB, 3/7 files, 25.1 MiB/s, ETA 1 s; model.safetensors 8.0/40.0 MiB" over both repositories. */
export function summarize(all: readonly SnapshotProgress[], elapsedMs: number, file?: SnapshotProgress["file"]): Parameters<TaskRunContext["progress"]>[0] {
  const done = all.reduce((s, p) => s + p.bytesDone, 0);
  const total = all.reduce((s, p) => s + p.bytesTotal, 0);
  const filesDone = all.reduce((s, p) => s + p.filesDone, 0);
  const filesTotal = all.reduce((s, p) => s + p.filesTotal, 0);
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const eta = rate > 0 ? Math.ceil((total - done) / rate) : undefined;
  return {
    percent: total > 0 ? Math.floor((100 * done) / total) : 100,
    message: `${mib(done)}/${mib(total)} MiB, ${filesDone}/${filesTotal} files, ${mib(rate)} MiB/s${eta !== undefined ? `, ETA ${eta} s` : ""}${file ? `; ${file.path} ${mib(file.bytesDone)}/${mib(file.size)} MiB` : ""}`,
  };
}

