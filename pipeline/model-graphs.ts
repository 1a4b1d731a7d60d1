/**
 * The model graphs, in the order the data flows:
 * recipe -> source -> build -> checkpoint -> gguf -> bench -> signature.
 * convert = the engine steps, the checkpoint (downloaded or generated) and the
 * conversion; independent steps overlap (the build runs while checkpoints download).
 * Bench and sign join as they land.
 */
import type { Graph, TaskDefinition } from "./core/graph.js";
import type { EngineSettings, Workspace } from "./workspace.js";
import { engineTasks } from "./graphs.js";
import { downloadTask } from "../tasks/download.js";
import { generateTask } from "../tasks/generate.js";
import { convertTask } from "../tasks/convert.js";
import { quantizeTask } from "../tasks/quantize.js";
import { benchTask } from "../tasks/bench.js";
import { signTask } from "../tasks/sign.js";
import { PipelineError } from "./core/errors.js";
import type { LoadedRecipe } from "./config/recipe.js";
import { displayPath } from "./config/load-yaml.js";

export interface DownloadOptions {
  connectionsPerFile?: number;
  chunkSize?: number;
  /** --python: the interpreter for the generator and the converter. */
  python?: string;
  allowUnsafeOuttype?: boolean;
  /** --key: the signing key file (else env, else the development key). */
  signingKeyFile?: string;
  allowInsecureKeyPermissions?: boolean;
}

/** The checkpoint: downloaded from the Hub, or generated here for the offline demo model. */
function checkpointTask(workspace: Workspace, loaded: LoadedRecipe, options: DownloadOptions): TaskDefinition {
  const { recipe } = loaded;
  const recipeFile = displayPath(loaded.file, workspace.root);
  if (recipe.generate) return generateTask(workspace, { model: loaded.name, recipeFile, ...recipe.generate, ...(options.python ? { python: options.python } : {}) });
  const { connectionsPerFile, chunkSize } = options;
  return downloadTask({
    model: loaded.name,
    recipeFile,
    sources: { model: recipe.model!, predictor: recipe.predictor! },
    ...(connectionsPerFile ? { connectionsPerFile } : {}),
    ...(chunkSize ? { chunkSize } : {}),
  });
}

export function downloadGraph(workspace: Workspace, loaded: LoadedRecipe, options: DownloadOptions = {}): Graph {
  return { name: `download ${loaded.name}`, tasks: [checkpointTask(workspace, loaded, options)] };
}

export function convertGraph(workspace: Workspace, settings: EngineSettings, loaded: LoadedRecipe, options: DownloadOptions = {}): Graph {
  const unsupported = loaded.recipe.convert.unsupported;
  if (unsupported) {
    throw new PipelineError("E_CONFIG_INVALID", `${loaded.name} cannot be converted by the pinned engine: ${unsupported}`, {
      details: [`(${displayPath(loaded.file, workspace.root)}, convert.unsupported) \`pnpm pipeline download ${loaded.name}\` still fetches its checkpoints.`],
    });
  }
  const checkpoint = checkpointTask(workspace, loaded, options);
  const convert = convertTask(workspace, settings, {
    model: loaded.name,
    recipeFile: displayPath(loaded.file, workspace.root),
    convert: loaded.recipe.convert,
    generation: loaded.recipe.generation,
    runtime: loaded.recipe.runtime,
    checkpointTask: checkpoint.id,
    audit: { model_version: loaded.recipe.audit.model_version, source_repo: loaded.recipe.audit.source_repo },
    ...(options.python ? { python: options.python } : {}),
    ...(options.allowUnsafeOuttype ? { allowUnsafeOuttype: true } : {}),
  });
  const quantize = loaded.recipe.convert.quantize
    ? [quantizeTask({ model: loaded.name, recipeFile: displayPath(loaded.file, workspace.root), type: loaded.recipe.convert.quantize })]
    : [];
  const bench = benchTask({ model: loaded.name, recipeFile: displayPath(loaded.file, workspace.root), bench: loaded.recipe.bench });
  const sign = signTask({
    model: loaded.name,
    recipeFile: displayPath(loaded.file, workspace.root),
    modelVersion: loaded.recipe.audit.model_version,
    checkpointTask: checkpoint.id,
    contentTasks: ["convert", ...quantize.map((q) => q.id), bench.id],
    externalParameters: externalParameters(loaded),
    ...(loaded.recipe.audit.checksum ? { expectedChecksum: loaded.recipe.audit.checksum } : {}),
    ...(options.signingKeyFile ? { keyFile: options.signingKeyFile } : {}),
    ...(options.allowInsecureKeyPermissions ? { allowInsecureKeyPermissions: true } : {}),
  });
  return { name: `convert ${loaded.name}`, tasks: [...engineTasks(workspace, settings), checkpoint, convert, ...quantize, bench, sign] };
}

/** SLSA externalParameters: what the user asked for (the recipe), not what it resolved to. */
function externalParameters(loaded: LoadedRecipe): Record<string, unknown> {
  const { recipe } = loaded;
  const source = recipe.model
    ? { uri: `https://huggingface.co/${recipe.model.repo}`, revision: recipe.model.revision }
    : { uri: `file:${recipe.generate!.script}`, revision: `seed ${recipe.generate!.seed}` };
  return {
    recipe: loaded.name,
    modelId: loaded.name,
    source,
    ...(recipe.predictor ? { predictor: { uri: `https://huggingface.co/${recipe.predictor.repo}`, revision: recipe.predictor.revision } } : {}),
    options: { outtype: recipe.convert.outtype, vocabtype: recipe.convert.vocabtype ?? null, quantize: recipe.convert.quantize ?? null },
    model: { format: "gguf", quantization: recipe.convert.quantize ?? recipe.convert.outtype, family: recipe.family },
    audit: { model_version: recipe.audit.model_version, source_repo: recipe.audit.source_repo },
  };
}
