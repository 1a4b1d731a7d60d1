/**
 * What a task is, and what a graph of tasks is. A task declares its dependencies, the
 * inputs it reads (config values, env vars, tool versions, files) and the outputs it
 * writes; the executor decides from these alone whether it is fresh.
 */
import type { CommandResult, RunCommandOptions } from "./process.js";
import type { Sha256Hex } from "./fingerprint.js";
import type { TaskRecord } from "./state.js";
import { PipelineError } from "./errors.js";

export interface TaskInputs {
  /** Config values and options, by a name that says where they come from. */
  values?: Record<string, unknown>;
  /** Names of environment variables the task reads (recorded as digests only). */
  env?: readonly string[];
  /** Tool identities, e.g. { cmake: "cmake version 3.25.1" }. */
  tools?: Record<string, string>;
  /** Files (relative to the workspace root) whose content the task reads. */
  files?: readonly string[];
}

export interface OutputDecl {
  /** Relative to the workspace root. */
  path: string;
  /** Record the content digest (sha256) too, not only size and mtime. */
  hash?: boolean;
}

export interface ProgressUpdate {
  percent?: number;
  message?: string;
}

interface TaskContextBase {
  root: string;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  /** Records of the dependencies, by task id. */
  deps: ReadonlyMap<string, TaskRecord>;
}

export type TaskPlanContext = TaskContextBase;

export interface TaskRunContext extends TaskContextBase {
  fingerprint: Sha256Hex;
  /** The full log of this run. */
  logFile: string;
  log(line: string): void;
  progress(update: ProgressUpdate): void;
  /** runCommand with this task's log file, abort signal and env filled in. */
  run(argv: readonly string[], options?: RunCommandOptions): Promise<CommandResult>;
}

export interface TaskDefinition<Result = unknown> {
  id: string;
  /** Key of the state record and the run lock; defaults to `id`. Model-specific tasks add the model. */
  instance?: string;
  title: string;
  /** Bump when the task's behaviour changes so that old records go stale. */
  version: number;
  dependsOn: readonly string[];
  inputs(ctx: TaskPlanContext): Promise<TaskInputs> | TaskInputs;
  outputs?(fingerprint: Sha256Hex): OutputDecl[] | Promise<OutputDecl[]>;
  /** Extra freshness check of outputs the generic snapshot cannot judge (a git checkout). */
  verify?(record: TaskRecord, ctx: TaskPlanContext): Promise<string | null>;
  /**
   * What dependents depend on: by default the fingerprint and output digests. A task
   * whose result is the same whatever its own inputs (a checkout at a commit) narrows it.
   */
  identity?(record: TaskRecord): unknown;
  run(ctx: TaskRunContext): Promise<Result>;
}

export interface Graph {
  name: string;
  tasks: readonly TaskDefinition[];
}

export function instanceOf(task: TaskDefinition): string {
  return task.instance ?? task.id;
}

/** Tasks in dependency order; throws E_GRAPH_CYCLE / E_GRAPH_UNKNOWN_TASK. */
export function topologicalOrder(graph: Graph): TaskDefinition[] {
  const byId = new Map(graph.tasks.map((t) => [t.id, t]));
  if (byId.size !== graph.tasks.length) throw new PipelineError("E_GRAPH_CYCLE", `graph ${graph.name} has duplicate task ids`);
  const order: TaskDefinition[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (task: TaskDefinition, path: string[]) => {
    const seen = state.get(task.id);
    if (seen === "done") return;
    if (seen === "visiting") {
      throw new PipelineError("E_GRAPH_CYCLE", `graph ${graph.name} has a cycle: ${[...path, task.id].join(" -> ")}`);
    }
    state.set(task.id, "visiting");
    for (const dep of task.dependsOn) {
      const target = byId.get(dep);
      if (!target) throw new PipelineError("E_GRAPH_UNKNOWN_TASK", `task ${task.id} depends on unknown task ${dep}`);
      visit(target, [...path, task.id]);
    }
    state.set(task.id, "done");
    order.push(task);
  };
  for (const task of graph.tasks) visit(task, []);
  return order;
}

/** `task` and every task that depends on it, directly or not. */
export function downstreamOf(graph: Graph, taskId: string): Set<string> {
  const result = new Set([taskId]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const task of graph.tasks) {
      if (!result.has(task.id) && task.dependsOn.some((d) => result.has(d))) {
        result.add(task.id);
        grew = true;
      }
    }
  }
  return result;
}
