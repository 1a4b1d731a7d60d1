/**
 * The engine graph: source -> build. The model graphs (pipeline/graphs/model.ts) add
 * the checkpoint, conversion and later steps on top of these two tasks; they are
 * loaded only when a model is named, to keep engine runs' start-up small.
 */
import type { Graph, TaskDefinition } from "../core/graph.js";
import type { EngineSettings, Workspace } from "../workspace.js";
import { upstreamTask } from "../../tasks/upstream.js";
import { buildTask } from "../../tasks/build.js";
import { buildServerTask } from "../../tasks/build-server.js";

export function engineTasks(workspace: Workspace, settings: EngineSettings): TaskDefinition[] {
  return [upstreamTask(workspace, settings), buildTask(workspace, settings)];
}

export function engineGraph(workspace: Workspace, settings: EngineSettings): Graph {
  return { name: "engine", tasks: engineTasks(workspace, settings) };
}

/** The engine graph plus its HTTP server, which `ai-tools serve` builds on demand. */
export function serveGraph(workspace: Workspace, settings: EngineSettings): Graph {
  return { name: "serve", tasks: [...engineTasks(workspace, settings), buildServerTask(workspace, settings)] };
}
