/**
 * The graphs the CLI runs, in the order the data flows:
 * recipe -> source -> build -> checkpoint -> gguf -> bench -> signature.
 * Model steps (download, convert, bench, sign) join `convert` as their tasks land.
 */
import type { Graph } from "./core/graph.js";
import type { EngineSettings, Workspace } from "./workspace.js";
import { upstreamTask } from "../tasks/upstream.js";
import { buildTask } from "../tasks/build.js";
import { UsageError } from "./core/errors.js";

export function engineTasks(workspace: Workspace, settings: EngineSettings) {
  return [upstreamTask(workspace, settings), buildTask(workspace, settings)];
}

export function engineGraph(workspace: Workspace, settings: EngineSettings): Graph {
  return { name: "engine", tasks: engineTasks(workspace, settings) };
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function convertGraph(workspace: Workspace, settings: EngineSettings, model: string): Graph {
  if (!MODEL_NAME.test(model)) {
    throw new UsageError(`model name "${model}" is not valid: use letters, digits, ".", "_" and "-" (e.g. tiny-relu-llama)`);
  }
  return { name: `convert ${model}`, tasks: [...engineTasks(workspace, settings)] };
}
