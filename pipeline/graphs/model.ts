/**
 * The model graphs, in the order the data flows:
 * recipe -> source -> build -> checkpoint -> gguf -> [gpu split] -> bench -> signature.
 * convert = the engine steps, the checkpoint (downloaded or generated) and the
 * conversion; independent steps overlap (the build runs while checkpoints download).
 * Bench and sign join as they land. A recipe with `gpuSplit` adds `gpu-split` (the
 * per-host-class GPU indexes, tasks/gpu-split.ts) before sign, so they are signed.
 *
 * A ready-made GGUF recipe has the same graph and task ids: `download` takes the named
 * file and activation/ from the GGUF repo, and its `convert` (tasks/fetch-gguf.ts)
 * validates and places the file instead of running a converter. A recipe the pinned
 * engine cannot run is refused here, by name, before anything runs.
 */
import type { Graph, TaskDefinition } from "../core/graph.js";
import type { EngineSettings, Workspace } from "../workspace.js";
import { engineTasks } from "./engine.js";
import { downloadTask } from "../../tasks/download.js";
import { generateTask } from "../../tasks/generate.js";
import { convertTask } from "../../tasks/convert.js";
import { fetchGgufTask } from "../../tasks/fetch-gguf.js";
import { quantizeTask } from "../../tasks/quantize.js";
import { benchTask } from "../../tasks/bench.js";
import { signTask } from "../../tasks/sign.js";
import { gpuSplitTask } from "../../tasks/gpu-split.js";
import { PipelineError } from "../core/errors.js";
import { dirname, resolve } from "node:path";
import { ACTIVATION_ALLOW_PATTERNS, isLocalSource, type LoadedRecipe, type LocalSource } from "../config/recipe.js";
import { displayPath } from "../config/load-yaml.js";
import { localCheckpointTask } from "../../tasks/local-checkpoint.js";
import { hubSettings } from "../hub/env.js";

export interface DownloadOptions {
  connectionsPerFile?: number;
  chunkSize?: number;
  /** --verify-cache: rehash every cached checkpoint file instead of trusting the digest cache. */
  verifyCache?: boolean;
  /** --python: the interpreter for the generator and the converter. */
  python?: string;
  allowUnsafeOuttype?: boolean;
  /** --key: the signing key file (else env, else the development key). */
  signingKeyFile?: string;
  allowInsecureKeyPermissions?: boolean;
}

/** How messages and step inputs name the recipe: its file relative to the workspace, or the flags it was made from. */
const recipeLabel = (workspace: Workspace, loaded: LoadedRecipe) => loaded.shownAs ?? displayPath(loaded.file, workspace.root);

/** A local source's folder: absolute, or relative to the recipe file's folder. */
export function localFolder(loaded: LoadedRecipe, source: LocalSource): string {
  return resolve(dirname(loaded.file), source.path);
}

/**
 * The checkpoint: downloaded from the Hub (original weights + predictor, or a ready-made GGUF),
 * taken from folders on this machine, or generated here for the offline demo model.
 */
function checkpointTask(workspace: Workspace, loaded: LoadedRecipe, options: DownloadOptions): TaskDefinition {
  const { recipe } = loaded;
  const recipeFile = recipeLabel(workspace, loaded);
  if (recipe.generate) return generateTask(workspace, { model: loaded.name, recipeFile, ...recipe.generate, ...(options.python ? { python: options.python } : {}) });
  if (isLocalSource(recipe.model) && isLocalSource(recipe.predictor)) {
    return localCheckpointTask({ model: loaded.name, recipeFile, modelDir: localFolder(loaded, recipe.model), predictorDir: localFolder(loaded, recipe.predictor), assumeRelu: recipe.model.assumeRelu });
  }
  const { connectionsPerFile, chunkSize, verifyCache } = options;
  const transfer = { ...(connectionsPerFile ? { connectionsPerFile } : {}), ...(chunkSize ? { chunkSize } : {}), ...(verifyCache ? { verifyCache } : {}) };
  if (recipe.gguf) {
    const { repo, revision, file, gated } = recipe.gguf;
    return downloadTask({ model: loaded.name, recipeFile, sources: { gguf: { repo, revision, gated, allowPatterns: [file, ...ACTIVATION_ALLOW_PATTERNS] } }, ...transfer });
  }
  const activation = recipe.activation ? { activation: { ...recipe.activation, allowPatterns: [...ACTIVATION_ALLOW_PATTERNS] } } : {};
  const [model, predictor] = [recipe.model, recipe.predictor];
  // The recipe schema has checked: both Hub repos here.
  if (isLocalSource(model) || isLocalSource(predictor) || !model || !predictor) throw new PipelineError("E_CONFIG_INVALID", `${recipeFile}: model and predictor must both be Hub repos or both folders`);
  return downloadTask({
    model: loaded.name,
    recipeFile,
    sources: { model, predictor, ...activation },
    architectureCheck: { assumeRelu: model.assumeRelu },
    ...transfer,
  });
}

/** A recipe the pinned engine cannot run at all (top-level `unsupported`): refused by name, for `download` too. */
function refuseUnsupported(workspace: Workspace, loaded: LoadedRecipe): void {
  const reason = loaded.recipe.unsupported;
  if (reason === undefined) return;
  throw new PipelineError("E_MODEL_UNSUPPORTED", `${loaded.name} cannot run on the pinned engine: ${reason}`, {
    details: [`(${recipeLabel(workspace, loaded)}, unsupported) \`pnpm pipeline models\` lists the models it runs.`],
  });
}

export function downloadGraph(workspace: Workspace, loaded: LoadedRecipe, options: DownloadOptions = {}): Graph {
  refuseUnsupported(workspace, loaded);
  return { name: `download ${loaded.name}`, tasks: [checkpointTask(workspace, loaded, options)] };
}

export function convertGraph(workspace: Workspace, settings: EngineSettings, loaded: LoadedRecipe, options: DownloadOptions = {}): Graph {
  refuseUnsupported(workspace, loaded);
  const unsupported = loaded.recipe.convert?.unsupported;
  if (unsupported) {
    throw new PipelineError("E_MODEL_UNSUPPORTED", `${loaded.name} cannot be converted by the pinned engine: ${unsupported}`, {
      details: [`(${recipeLabel(workspace, loaded)}, convert.unsupported) \`pnpm pipeline download ${loaded.name}\` still fetches its checkpoints.`],
    });
  }
  const recipeFile = recipeLabel(workspace, loaded);
  const { recipe } = loaded;
  const audit = { model_version: recipe.audit.model_version, ...(recipe.audit.source_repo ? { source_repo: recipe.audit.source_repo } : {}) };
  const checkpoint = checkpointTask(workspace, loaded, options);
  const convert = recipe.gguf
    ? fetchGgufTask({ model: loaded.name, recipeFile, gguf: recipe.gguf, family: recipe.family, generation: recipe.generation, runtime: recipe.runtime, audit })
    : convertTask(workspace, settings, {
        model: loaded.name,
        recipeFile,
        convert: recipe.convert!,
        generation: recipe.generation,
        runtime: recipe.runtime,
        checkpointTask: checkpoint.id,
        audit,
        ...(options.python ? { python: options.python } : {}),
        ...(options.allowUnsafeOuttype ? { allowUnsafeOuttype: true } : {}),
      });
  const quantize = recipe.convert?.quantize ? [quantizeTask({ model: loaded.name, recipeFile, type: recipe.convert.quantize })] : [];
  const bench = benchTask({ model: loaded.name, recipeFile, bench: recipe.bench });
  // Only recipes that ask for it get the step (and need its Python: torch, cvxopt).
  const gpuSplit = recipe.gpuSplit
    ? [
        gpuSplitTask(workspace, settings, {
          model: loaded.name,
          recipeFile,
          hosts: recipe.gpuSplit.hosts,
          ctxSize: recipe.gpuSplit.ctxSize ?? recipe.generation.ctx_size ?? 512,
          ...(recipe.runtime.vram_budget_gb !== undefined ? { vramBudgetGib: recipe.runtime.vram_budget_gb } : {}),
          ...(options.python ? { python: options.python } : {}),
        }),
      ]
    : [];
  const sign = signTask({
    model: loaded.name,
    recipeFile,
    modelVersion: recipe.audit.model_version,
    checkpointTask: checkpoint.id,
    contentTasks: ["convert", ...quantize.map((q) => q.id), ...gpuSplit.map((g) => g.id), bench.id],
    externalParameters: externalParameters(loaded, hubSettings(workspace.env).endpoint),
    ...(recipe.audit.checksum ? { expectedChecksum: recipe.audit.checksum } : {}),
    ...(options.signingKeyFile ? { keyFile: options.signingKeyFile } : {}),
    ...(options.allowInsecureKeyPermissions ? { allowInsecureKeyPermissions: true } : {}),
  });
  return { name: `convert ${loaded.name}`, tasks: [...engineTasks(workspace, settings), checkpoint, convert, ...quantize, ...gpuSplit, bench, sign] };
}

/** SLSA externalParameters: what the user asked for (the recipe), not what it resolved to. */
function externalParameters(loaded: LoadedRecipe, hub: string): Record<string, unknown> {
  const { recipe } = loaded;
  const audit = { model_version: recipe.audit.model_version, ...(recipe.audit.source_repo ? { source_repo: recipe.audit.source_repo } : {}) };
  if (recipe.gguf) {
    const { repo, revision, file, type } = recipe.gguf;
    return {
      recipe: loaded.name,
      modelId: loaded.name,
      source: { uri: `${hub}/${repo}`, revision, file },
      options: { readyMade: true, ...(recipe.gpuSplit ? { gpuSplit: recipe.gpuSplit } : {}) },
      model: { format: "gguf", quantization: type, family: recipe.family },
      audit,
    };
  }
  const convert = recipe.convert!;
  const where = (source: NonNullable<typeof recipe.model | typeof recipe.predictor>) =>
    isLocalSource(source) ? { uri: `file://${localFolder(loaded, source)}` } : { uri: `${hub}/${source.repo}`, revision: source.revision };
  const source = recipe.model ? where(recipe.model) : { uri: `file:${recipe.generate!.script}`, revision: `seed ${recipe.generate!.seed}` };
  return {
    recipe: loaded.name,
    modelId: loaded.name,
    source,
    ...(recipe.predictor ? { predictor: where(recipe.predictor) } : {}),
    ...(recipe.activation ? { activation: { uri: `${hub}/${recipe.activation.repo}`, revision: recipe.activation.revision } } : {}),
    options: { outtype: convert.outtype, vocabtype: convert.vocabtype ?? null, quantize: convert.quantize ?? null, ...(recipe.gpuSplit ? { gpuSplit: recipe.gpuSplit } : {}) },
    model: { format: "gguf", quantization: convert.quantize ?? convert.outtype, family: recipe.family },
    audit,
  };
}
