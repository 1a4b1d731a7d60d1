/**
 * Task `download`: the repositories a recipe needs, from the Hugging Face Hub into the
 * shared cache (the layout huggingface_hub uses), resolved to commits once, resumable
 * and verified: a checkpoint with its activation predictor (and the activation/ folder of
 * the matching GGUF repo), or a ready-made GGUF file with its activation/. The
 * repositories download at once, and the task runs alongside the engine build.
 *
 * Before anything large is requested: a gated repository without a token is refused, and
 * a checkpoint's config.json is fetched first and checked against the architecture
 * allow-list (pipeline/config/architecture.ts), at the commit the download then uses.
 *
 * Cached files are checked against their digests, in the freshness check and before a
 * download reuses them: conversion never reads a corrupt blob (see pipeline/hub/verify-cache.ts).
 */
import { readFile } from "node:fs/promises";
import { statSync } from "node:fs";
import { join } from "node:path";
import type { TaskDefinition, TaskRunContext } from "../pipeline/core/graph.js";
import { PipelineError } from "../pipeline/core/errors.js";
import type { TreeFile } from "../pipeline/hub/cache.js";
import { hubSettings } from "../pipeline/hub/env.js";
import { downloadSnapshot, resolveSnapshotCommit, type SnapshotOptions, type SnapshotProgress, type SnapshotRequest, type SnapshotResult } from "../pipeline/hub/snapshot.js";
import { checkCachedFiles } from "../pipeline/hub/verify-cache.js";
import { DigestCache, defaultDigestCacheDir } from "../pipeline/core/digest-cache.js";
import { checkReluCheckpoint, describeCheckpoint, type CheckpointArchitecture } from "../pipeline/config/architecture.js";

export interface HubSource {
  repo: string;
  revision: string;
  allowPatterns?: readonly string[] | undefined;
  ignorePatterns?: readonly string[] | undefined;
  /** The recipe says the repo is gated: refused before any request when no token is configured. */
  gated?: boolean | undefined;
}

/** What each downloaded repository is for. */
export const SOURCE_ROLES = ["model", "predictor", "activation", "gguf"] as const;
export type SourceRole = (typeof SOURCE_ROLES)[number];

export interface DownloadSettings {
  /** Recipe name, e.g. relu-llama-2-7b. */
  model: string;
  /** The recipe file, relative to the workspace root (shown in reasons). */
  recipeFile: string;
  /** model + predictor (+ activation), or gguf. */
  sources: Partial<Record<SourceRole, HubSource>>;
  /** Check the model repo's config.json against the ReLU allow-list before downloading anything else. */
  architectureCheck?: { assumeRelu?: string | undefined };
  connectionsPerFile?: number;
  chunkSize?: number;
  /**
   * `download --verify-cache`: rehash every cached file (every byte), instead of trusting the
   * digest cache for files unchanged since their last check.
   */
  verifyCache?: boolean;
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
  /** A checkpoint's repositories. */
  model?: DownloadedRepo;
  predictor?: DownloadedRepo;
  /** Where a converted model's activation/ came from (only activation/* was taken). */
  activation?: DownloadedRepo;
  /** A ready-made GGUF repository (only the named file and activation/* were taken). */
  gguf?: DownloadedRepo;
  /** The checkpoint's config.json as the allow-list saw it. */
  architecture?: CheckpointArchitecture;
  downloadedBytes: number;
}

/** The downloaded repositories of a result, in role order. */
export function downloadedRepos(result: DownloadResult): DownloadedRepo[] {
  return SOURCE_ROLES.map((role) => result[role]).filter((r): r is DownloadedRepo => r !== undefined);
}

/** Env vars that change where bytes come from or go (the token changes neither: not an input). */
const HUB_ENV = ["HF_ENDPOINT", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"];

export function downloadTask(settings: DownloadSettings): TaskDefinition<DownloadResult> {
  const roles = SOURCE_ROLES.filter((role) => settings.sources[role] !== undefined);
  const what = settings.sources.gguf ? "ready-made GGUF" : "checkpoints";
  return {
    id: "download",
    instance: `download--${settings.model}`,
    title: `Download ${settings.model} ${what}`,
    version: 1,
    dependsOn: [],

    inputs(ctx) {
      return {
        values: Object.fromEntries(roles.map((role) => [`${settings.recipeFile}#${role}`, settings.sources[role]])),
        env: HUB_ENV.filter((name) => ctx.env[name] !== undefined),
      };
    },

    // What the converter reads: the exact files, not where or when they were fetched.
    identity: (record) => {
      const result = record.result as DownloadResult;
      const pick = (r: DownloadedRepo) => ({ repo: r.repo, commit: r.commit, files: r.files.map((f) => [f.path, f.sha256 ?? f.gitOid]) });
      return Object.fromEntries(SOURCE_ROLES.filter((role) => result[role]).map((role) => [role, pick(result[role]!)]));
    },

    // Sizes first (free), then the content digests of what conversion will read: a bit flipped in
    // a cached blob keeps its size. Cheap after the first check: the digest cache answers for
    // files unchanged since (--verify-cache reads every byte again).
    async verify(record, ctx) {
      const result = record.result as DownloadResult;
      const kind = what === "checkpoints" ? "checkpoint" : "GGUF repo";
      const entries: { path: string; file: TreeFile; repo: string }[] = [];
      for (const repo of downloadedRepos(result)) {
        for (const file of repo.files) {
          const path = join(repo.dir, file.path);
          const size = statSync(path, { throwIfNoEntry: false })?.size;
          if (size !== file.size) return `${kind} file ${repo.repo}/${file.path} ${size === undefined ? "missing from" : "changed in"} the cache`;
          entries.push({ path, repo: repo.repo, file: { path: file.path, size: file.size, oid: file.gitOid, ...(file.sha256 ? { lfsSha256: file.sha256 } : {}) } });
        }
      }
      const digestCache = settings.verifyCache ? undefined : await DigestCache.open(defaultDigestCacheDir(ctx.env));
      const checks = await checkCachedFiles(entries, digestCache ? { digestCache } : {});
      await digestCache?.save();
      const corrupt = checks.find((c) => !c.ok);
      if (corrupt) {
        const repo = entries.find((e) => e.path === corrupt.path)!.repo;
        return `${kind} file ${repo}/${corrupt.file.path} in the cache is corrupt (${corrupt.file.lfsSha256 ? "sha256" : "git blob id"} ${corrupt.actual}, the Hub lists ${corrupt.file.lfsSha256 ?? corrupt.file.oid})`;
      }
      return null;
    },

    async run(ctx) {
      const hub = hubSettings(ctx.env);
      // Gated repositories without a token: refused before any request (the Hub would answer 401 anyway, after the others started).
      if (!hub.token && !hub.offline) {
        const gated = roles.find((role) => settings.sources[role]!.gated);
        if (gated) {
          const repo = settings.sources[gated]!.repo;
          throw new PipelineError(
            "E_HUB_GATED",
            `${repo} is a gated repository (${settings.recipeFile}: ${gated}.gated): set HF_TOKEN (or run \`hf auth login\`) with a token of an account that has accepted its conditions at ${hub.endpoint}/${repo}.`,
            { details: ["Nothing was downloaded."] },
          );
        }
      }
      const progress = new Map<string, SnapshotProgress>();
      const started = performance.now();
      const report = (p: SnapshotProgress) => {
        progress.set(p.repo, p);
        ctx.progress(summarize([...progress.values()], performance.now() - started, p.file));
      };
      // One repository failing stops the others: no progress after the task has ended.
      const siblings = new AbortController();
      const signal = AbortSignal.any([ctx.signal, siblings.signal]);
      // Every cached file is checked against its digest (through the digest cache; --verify-cache: every byte).
      const digestCache = settings.verifyCache ? undefined : await DigestCache.open(defaultDigestCacheDir(ctx.env));
      const options: SnapshotOptions = {
        settings: hub,
        signal,
        onProgress: report,
        verifyCached: digestCache ?? true,
        onNote: (note) => {
          ctx.log(`note: ${note}`);
          ctx.progress({ message: `note: ${note}` });
        },
        ...(settings.connectionsPerFile ? { connectionsPerFile: settings.connectionsPerFile } : {}),
        ...(settings.chunkSize ? { chunkSize: settings.chunkSize } : {}),
      };

      // The checkpoint's revision is resolved once: the architecture check and the download see one commit.
      const requests = new Map(roles.map((role) => [role, toRequest(settings.sources[role]!)]));
      let architecture: CheckpointArchitecture | undefined;
      if (settings.architectureCheck && settings.sources.model) {
        const model = requests.get("model")!;
        model.commit = await resolveSnapshotCommit(model, options);
        architecture = await checkArchitecture(ctx, settings.sources.model, model, options, settings.architectureCheck.assumeRelu);
      }

      // The first failure is the one to report: the others may only be the aborts it caused, whatever their error type.
      let first: { error: unknown } | undefined;
      const fetch = (role: SourceRole) =>
        downloadSnapshot(requests.get(role)!, options).catch((error: unknown) => {
          let reported = error;
          if (role === "activation" && (error as PipelineError | undefined)?.code === "E_HUB_NO_MATCH") {
            const source = settings.sources.activation!;
            reported = new PipelineError("E_HUB_NO_MATCH", `${source.repo}@${source.revision} has no activation/ folder (${settings.recipeFile}: activation)`, {
              cause: error,
              details: ["Name the GGUF repo that ships activation/activation_<layer>.pt, or remove `activation` (a GPU build then offloads no FFN weights)."],
            });
          }
          if (!siblings.signal.aborted && !ctx.signal.aborted) first ??= { error: reported };
          siblings.abort();
          throw reported;
        });
      const settled = await Promise.allSettled(roles.map(fetch));
      await digestCache?.save();
      if (first) throw first.error;
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected" && !(siblings.signal.aborted && isAbort(r.reason)));
      if (failed) throw failed.reason;
      const snapshots = settled.map((r) => (r as PromiseFulfilledResult<SnapshotResult>).value);
      for (const snapshot of snapshots) {
        ctx.log(`${snapshot.repo}@${snapshot.revision} = ${snapshot.commit}: ${snapshot.files.length} files, ${snapshot.cachedFiles} already cached${snapshot.repairedFiles.length > 0 ? ` (${snapshot.repairedFiles.length} corrupt, fetched again)` : ""}, ${snapshot.downloadedBytes} bytes fetched -> ${snapshot.dir}`);
      }
      return {
        endpoint: hub.endpoint,
        cacheDir: hub.cacheDir,
        ...Object.fromEntries(roles.map((role, i) => [role, describe(snapshots[i]!)])),
        ...(architecture ? { architecture } : {}),
        downloadedBytes: snapshots.reduce((sum, s) => sum + s.downloadedBytes, 0),
      };
    },
  };
}

/**
 * config.json alone (resolve, list, one small file: the listing and the blob are reused by
 * the full download), checked against the allow-list. Throws E_MODEL_UNSUPPORTED with the
 * reason before any weights are requested.
 */
async function checkArchitecture(ctx: TaskRunContext, source: HubSource, request: SnapshotRequest, options: SnapshotOptions, assumeRelu: string | undefined): Promise<CheckpointArchitecture> {
  const label = `${source.repo}@${source.revision}`;
  ctx.progress({ message: `${label}: checking config.json` });
  const snapshot = await downloadSnapshot({ repo: request.repo, revision: request.revision, ...(request.commit ? { commit: request.commit } : {}), allowPatterns: ["config.json"] }, { ...options, onProgress: () => {} });
  let config: unknown;
  try {
    config = JSON.parse(await readFile(join(snapshot.dir, "config.json"), "utf8"));
  } catch (error) {
    throw new PipelineError("E_CONFIG_INVALID", `${label}: config.json is not JSON (${(error as Error).message}): is this a Hugging Face checkpoint?`);
  }
  const architecture = describeCheckpoint(config);
  const check = checkReluCheckpoint(architecture, { assumeRelu });
  if (!check.ok) {
    throw new PipelineError("E_MODEL_UNSUPPORTED", `refusing ${label}: config.json has ${check.reason}`, {
      details: ["Nothing but config.json was downloaded."],
    });
  }
  ctx.log(`${label} config.json: ${check.reason}`);
  return architecture;
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

/** "12.0/48.0 MiB, 3/7 files, 25.1 MiB/s, ETA 1 s; model.safetensors 8.0/40.0 MiB" over all repositories. */
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

