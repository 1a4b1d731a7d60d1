/**
 * Task `checkpoint`: a checkpoint and its activation predictor already on this machine
 * (recipe `model: { path }` / `predictor: { path }`, or `convert --checkpoint DIR --predictor
 * DIR`), handed to the convert step in the shape a download has. Nothing is copied.
 *
 * Its fingerprint is every file's sha256, taken through the digest cache
 * (pipeline/core/digest-cache.ts): an unchanged folder costs one stat per file, a
 * changed file makes the step (and the conversion after it) stale, naming the file. The
 * same preflight as a download: config.json against the architecture allow-list.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import { PipelineError } from "../pipeline/core/errors.js";
import { checkReluCheckpoint, describeCheckpoint, type CheckpointArchitecture } from "../pipeline/config/architecture.js";
import { DigestCache, defaultDigestCacheDir } from "../pipeline/core/digest-cache.js";
import { digestFiles } from "../pipeline/core/hash.js";

export interface LocalCheckpointSettings {
  model: string;
  /** The recipe as messages name it (a file relative to the workspace, or "--checkpoint DIR"). */
  recipeFile: string;
  /** Absolute folders. */
  modelDir: string;
  predictorDir: string;
  /** recipe model.assumeRelu. */
  assumeRelu?: string | undefined;
}

export interface LocalCheckpointFile {
  role: "model" | "predictor";
  /** Relative to its folder, "/"-separated. */
  path: string;
  size: number;
  sha256: string;
}

export interface LocalCheckpointResult {
  model: { dir: string };
  predictor: { dir: string };
  files: LocalCheckpointFile[];
  architecture: CheckpointArchitecture;
}

/** Version-control and tool caches in a checkpoint folder are not checkpoint files. */
const SKIPPED = /^\./;

/** Regular files under `dir`, sorted, "/"-separated; hidden entries (.git, .cache) skipped, links followed. */
export async function checkpointFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (current: string): Promise<void> => {
    const entries = await readdir(current, { withFileTypes: true });
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (SKIPPED.test(entry.name)) continue;
      const path = join(current, entry.name);
      const info = entry.isSymbolicLink() ? await stat(path).catch(() => null) : entry;
      if (info?.isDirectory()) await walk(path);
      else if (info?.isFile()) out.push(relative(dir, path).split("\\").join("/"));
    }
  };
  await walk(dir);
  return out;
}

export function localCheckpointTask(settings: LocalCheckpointSettings): TaskDefinition<LocalCheckpointResult> {
  const folders = { model: settings.modelDir, predictor: settings.predictorDir } as const;
  /** This process's digests, so run() does not hash again what inputs() just hashed. */
  let digested: Promise<LocalCheckpointFile[]> | undefined;

  const digestAll = async (env: NodeJS.ProcessEnv): Promise<LocalCheckpointFile[]> => {
    const listed: { role: "model" | "predictor"; path: string; abs: string }[] = [];
    for (const role of ["model", "predictor"] as const) {
      const dir = folders[role];
      const info = await stat(dir).catch(() => null);
      if (!info?.isDirectory()) {
        throw new PipelineError("E_CONFIG_MISSING", `${settings.recipeFile}: ${role}.path ${dir} ${info ? "is not a folder" : "does not exist"}`, {
          details: [role === "model" ? "It must be a Hugging Face checkpoint folder (config.json, weights, tokenizer)." : "It must hold the predictor: model_0.pt, model_1.pt, ... and config.json."],
        });
      }
      for (const path of await checkpointFiles(dir)) listed.push({ role, path, abs: join(dir, path) });
    }
    if (!listed.some((f) => f.role === "model" && f.path === "config.json")) {
      throw new PipelineError("E_CONFIG_MISSING", `${settings.recipeFile}: ${settings.modelDir} has no config.json: is it a Hugging Face checkpoint folder?`);
    }
    const cache = await DigestCache.open(defaultDigestCacheDir(env));
    const digests = await digestFiles(
      listed.map((f) => f.abs),
      { cache },
    );
    await cache.save();
    return listed.map((f, i) => ({ role: f.role, path: f.path, size: digests[i]!.size, sha256: digests[i]!.digest }));
  };

  return {
    id: "checkpoint",
    instance: `checkpoint--${settings.model}`,
    title: `Checkpoint ${settings.model} from local folders`,
    version: 1,
    dependsOn: [],

    async inputs(ctx) {
      digested = digestAll(ctx.env);
      const files = await digested;
      return {
        values: {
          [`${settings.recipeFile}#model.path`]: settings.modelDir,
          [`${settings.recipeFile}#predictor.path`]: settings.predictorDir,
          ...(settings.assumeRelu ? { [`${settings.recipeFile}#model.assumeRelu`]: settings.assumeRelu } : {}),
          // One input per file: a change is reported by file name.
          ...Object.fromEntries(files.map((f) => [`checkpoint ${f.role}/${f.path}`, f.sha256])),
        },
      };
    },

    // What the converter reads: the exact files.
    identity: (record) => (record.result as LocalCheckpointResult).files.map((f) => [`${f.role}/${f.path}`, f.sha256]),

    async run(ctx) {
      const files = await (digested ?? digestAll(ctx.env));
      let config: unknown;
      try {
        config = JSON.parse(await readFile(join(settings.modelDir, "config.json"), "utf8"));
      } catch (error) {
        throw new PipelineError("E_CONFIG_INVALID", `${join(settings.modelDir, "config.json")} is not JSON (${(error as Error).message}): is this a Hugging Face checkpoint?`);
      }
      const architecture = describeCheckpoint(config);
      const check = checkReluCheckpoint(architecture, { assumeRelu: settings.assumeRelu });
      if (!check.ok) throw new PipelineError("E_MODEL_UNSUPPORTED", `refusing ${settings.modelDir}: config.json has ${check.reason}`);
      ctx.log(`${settings.modelDir} config.json: ${check.reason}`);
      for (const role of ["model", "predictor"] as const) {
        const mine = files.filter((f) => f.role === role);
        ctx.log(`${role}: ${folders[role]}: ${mine.length} files, ${mine.reduce((sum, f) => sum + f.size, 0)} bytes`);
      }
      return { model: { dir: settings.modelDir }, predictor: { dir: settings.predictorDir }, files, architecture };
    },
  };
}
