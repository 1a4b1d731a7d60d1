/**
 * The graphs the CLI runs, in the order the data flows:
 * recipe -> source -> build -> checkpoint -> gguf -> bench -> signature.
 * convert = the engine steps and the checkpoint download (independent: they overlap);
 * the conversion, bench and sign steps join as they land.
 */
import type { Graph, TaskDefinition } from "./core/graph.js";
import type { EngineSettings, Workspace } from "./workspace.js";
import { upstreamTask } from "../tasks/upstream.js";
import { buildTask } from "../tasks/build.js";
import { downloadTask } from "../tasks/download.js";
import { PipelineError } from "./core/errors.js";
import type { LoadedRecipe } from "./config/recipe.js";
import { displayPath } from "./config/load-yaml.js";

export interface DownloadOptions {
  connectionsPerFile?: number;
  chunkSize?: number;
}

export function engineTasks(workspace: Workspace, settings: EngineSettings): TaskDefinition[] {
  return [upstreamTask(workspace, settings), buildTask(workspace, settings)];
}

export function engineGraph(workspace: Workspace, settings: EngineSettings): Graph {
  return { name: "engine", tasks: engineTasks(workspace, settings) };
}

function checkpointTask(workspace: Workspace, loaded: LoadedRecipe, options: DownloadOptions): TaskDefinition {
  const { recipe } = loaded;
  return downloadTask({
    model: loaded.name,
    recipeFile: displayPath(loaded.file, workspace.root),
    sources: { model: recipe.model, predictor: recipe.predictor },
    ...options,
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
  return { name: `convert ${loaded.name}`, tasks: [...engineTasks(workspace, settings), checkpointTask(workspace, loaded, options)] };
}
