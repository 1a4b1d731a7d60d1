/**
 * The commands that run a graph (engine, convert, download, bench, plan, status, sign of a
 * converted model, release) share this: open the workspace, load the engine settings and
 * the recipe, build the graph, check the task names given to --only/--from/--force against
 * it, run it under a reporter with Ctrl-C handling. Everything heavy loads here, lazily.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../core/errors.js";
import type { PipelineEvent, TaskErrorEvent, TaskPlanEvent } from "../core/events.js";
import type { GraphOutcome } from "../core/executor.js";
import type { Graph } from "../core/graph.js";
import { PACKAGE_ROOT } from "../root.js";
import type { EngineSettings, Workspace } from "../workspace.js";
import { EXIT } from "./exit.js";
import type { BuildFlags, CheckpointFlags, ConversionFlags, GraphFlags, KeyFlags, TransferFlags } from "./flags.js";
import { printEvent, type CliIo } from "./output.js";

export type RunFlags = Partial<GraphFlags> & BuildFlags & TransferFlags & ConversionFlags & KeyFlags & CheckpointFlags;

export interface GraphRequest {
  /** engine: upstream -> build; download: the checkpoint only; convert: the whole model graph. */
  graph: "engine" | "download" | "convert";
  model?: string;
  flags: RunFlags;
  /** plan, status, --dry-run: decide, run nothing. */
  planning?: boolean;
}

export interface OpenedGraph {
  workspace: Workspace;
  settings: EngineSettings;
  graph: Graph;
}

/** The workspace, its engine settings and the graph the request names. */
export async function openGraph(request: GraphRequest, io: CliIo): Promise<OpenedGraph> {
  const [{ engineGraph }, { loadEngineSettings, openWorkspace }] = await Promise.all([import("../graphs/engine.js"), import("../workspace.js")]);
  const { flags } = request;
  const workspace = openWorkspace(io.root, io.env);
  const settings = await loadEngineSettings(workspace, {
    upstreamUrl: flags.upstreamUrl,
    backend: flags.backend,
    jobs: flags.jobs,
    native: flags.native,
    cudaArch: flags.cudaArch,
    resetUpstream: flags.resetUpstream ?? false,
    ...(flags.buildCache ? { buildCache: flags.buildCache } : {}),
    ...(flags.key ? { signingKeyFile: flags.key } : {}),
  });
  if ((request.model === undefined && !flags.checkpoint) || request.graph === "engine") return { workspace, settings, graph: engineGraph(workspace, settings) };
  // Model steps (and their dependencies: the Hub client, GGUF, Python) load only when a model is named.
  const [{ loadRecipe }, { localCheckpointRecipe }, { convertGraph, downloadGraph }] = await Promise.all([
    import("../config/recipe.js"),
    import("../config/local-recipe.js"),
    import("../graphs/model.js"),
  ]);
  // A recipe by name or by file, or one made from --checkpoint/--predictor/--name.
  const recipe = flags.checkpoint
    ? await localCheckpointRecipe({ name: flags.name!, checkpoint: flags.checkpoint, predictor: flags.predictor! })
    : await loadRecipe(await recipeRoot(workspace.root), request.model!);
  const options = {
    ...(flags.connections ? { connectionsPerFile: flags.connections } : {}),
    ...(flags.chunkSize ? { chunkSize: flags.chunkSize * 2 ** 20 } : {}),
    ...(flags.verifyCache ? { verifyCache: true } : {}),
    ...(flags.python ? { python: flags.python } : {}),
    ...(flags.allowUnsafeOuttype ? { allowUnsafeOuttype: true } : {}),
    ...(flags.key ? { signingKeyFile: flags.key } : {}),
    ...(flags.allowInsecureKeyPermissions ? { allowInsecureKeyPermissions: true } : {}),
  };
  const graph = request.graph === "download" ? downloadGraph(workspace, recipe, options) : convertGraph(workspace, settings, recipe, options);
  return { workspace, settings, graph };
}

/** --only, --from and --force name steps of this graph; an unknown name lists the real ones. */
export function checkTaskNames(graph: Graph, flags: Pick<GraphFlags, "only" | "from" | "force">): void {
  const ids = graph.tasks.map((t) => t.id);
  const named: [string, string | undefined][] = [
    ["--only", flags.only],
    ["--from", flags.from],
    ...(Array.isArray(flags.force) ? flags.force.map((task) => ["--force", task] as [string, string]) : []),
  ];
  for (const [flag, task] of named) {
    if (task !== undefined && !ids.includes(task)) throw new UsageError(`${flag} ${task}: ${graph.name} has no step "${task}"; its steps are ${ids.join(", ")}`);
  }
}

/** Runs (or, planning, decides) the graph with the reporter that suits the output; Ctrl-C stops it. */
export async function runGraph(request: GraphRequest, io: CliIo, extra: { force?: true | string[]; only?: string } = {}): Promise<OpenedGraph & { outcome: GraphOutcome }> {
  return interruptible(io, request.flags.json ?? false, async (signal) => {
    const opened = await openGraph(request, io);
    const flags = { ...request.flags, ...extra };
    checkTaskNames(opened.graph, flags);
    const { executeGraph } = await import("../core/executor.js");
    const planning = request.planning ?? flags.dryRun ?? false;
    const { onEvent, close } = await pickReporter(io, flags.json ?? false, planning);
    let lastEvent: PipelineEvent | undefined;
    const { workspace, graph } = opened;
    const outcome = await executeGraph(graph, {
      root: workspace.root,
      stateDir: workspace.stateDir,
      logDir: workspace.logDir,
      env: workspace.env,
      dryRun: planning,
      force: flags.force ?? false,
      only: flags.only,
      from: flags.from,
      noWait: flags.wait === false,
      signal,
      onEvent: (event) => {
        lastEvent = event;
        onEvent(event);
      },
    });
    await close(lastEvent);
    return { ...opened, outcome };
  });
}

/** `status`: each step fresh, stale (why) or missing, in graph order. */
export async function graphStatus(request: GraphRequest, io: CliIo): Promise<GraphOutcome> {
  const json = request.flags.json ?? false;
  return interruptible(io, json, async (signal) => {
    const { workspace, graph } = await openGraph(request, io);
    const [{ executeGraph }, { failureLines }] = await Promise.all([import("../core/executor.js"), import("./reporters/format.js")]);
    const plans: TaskPlanEvent[] = [];
    const printFailure = (event: TaskErrorEvent) => {
      if (json) io.out(JSON.stringify(event) + "\n");
      else for (const line of failureLines(event)) io.err(line);
    };
    const outcome = await executeGraph(graph, {
      root: workspace.root,
      stateDir: workspace.stateDir,
      logDir: workspace.logDir,
      env: workspace.env,
      dryRun: true,
      signal,
      onEvent: (event) => (event.event === "task-plan" ? plans.push(event) : event.event === "task-error" && printFailure(event)),
    });
    // In graph order, not in the order the concurrent checks finished.
    const order = graph.tasks.map((t) => t.id);
    for (const plan of plans.sort((a, b) => order.indexOf(a.task) - order.indexOf(b.task))) {
      const state = plan.action === "skip" ? "fresh" : plan.reasons[0] === "no record of a successful run" ? "missing" : "stale";
      if (json) printEvent(io, { event: "task-status", task: plan.task, state, reasons: plan.action === "skip" ? [] : plan.reasons });
      else io.out(`${plan.task.padEnd(10)} ${state}${state === "stale" ? ` (${plan.reasons.join("; ")})` : ""}\n`);
    }
    return outcome;
  });
}

/** The first Ctrl-C (or SIGTERM) stops running steps; a second quits at once. */
async function interruptible<T>(io: CliIo, json: boolean, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    if (!json) io.err(`\n${signal}: stopping running steps (press Ctrl-C again to quit at once)...`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function pickReporter(io: CliIo, json: boolean, planning: boolean) {
  if (json) {
    const { jsonReporter } = await import("./reporters/json.js");
    return { onEvent: jsonReporter(io.out), close: async () => undefined };
  }
  // A pty with no size (some CI runners) would make listr2 wrap every character.
  const interactive = process.stdout.isTTY && (process.stdout.columns ?? 0) > 0 && !io.env.CI && io.env.TERM !== "dumb";
  if (interactive && !planning) {
    const { ttyReporter } = await import("./reporters/tty.js");
    const { reporter, close } = ttyReporter(io.err);
    return { onEvent: reporter, close };
  }
  const { plainReporter } = await import("./reporters/plain.js");
  return { onEvent: plainReporter((line) => io.out(line + "\n"), { showPlan: planning }), close: async () => undefined };
}

/** The workspace's recipes, else (installed as a package, no recipes of its own) the packaged ones. */
export async function recipeRoot(root: string): Promise<string> {
  const { RECIPE_DIR } = await import("../config/recipe.js");
  return existsSync(join(root, RECIPE_DIR)) ? root : PACKAGE_ROOT;
}

/** The recipe name when `dir` is models/powerinfer/<name> of this workspace and <name> has a recipe. */
export async function convertedModelOf(root: string, dir: string): Promise<string | undefined> {
  const { resolve, relative, sep } = await import("node:path");
  const parts = relative(join(root, "models", "powerinfer"), resolve(dir)).split(sep);
  if (parts.length !== 1 || !parts[0] || parts[0].startsWith("..")) return undefined;
  const { RECIPE_DIR } = await import("../config/recipe.js");
  return existsSync(join(await recipeRoot(root), RECIPE_DIR, `${parts[0]}.yaml`)) ? parts[0] : undefined;
}
