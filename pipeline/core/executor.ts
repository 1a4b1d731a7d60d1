/**
 * Runs a graph: each task starts as soon as its dependencies are done (independent
 * tasks overlap), is skipped when its fingerprint and outputs match its record, and
 * is recorded only after it succeeded. Failures are values: a failed task blocks its
 * dependents and the rest of the graph still runs. Nothing here prints; every
 * observable step is an event.
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AbortedError, CommandFailedError, PipelineError, errorReport } from "./errors.js";
import { terminalSafe } from "./escape.js";
import type { EventPayload, EventSink, PipelineEvent } from "./events.js";
import { EVENT_SCHEMA_VERSION } from "./events.js";
import { checkOutput, removeTemporariesOf, sha256File, snapshotOutput, type OutputSnapshot } from "./files.js";
import { canonicalJson, diffInputs, fingerprintOf, sha256Hex, type InputRecord, type Sha256Hex } from "./fingerprint.js";
import {
  downstreamOf,
  instanceOf,
  topologicalOrder,
  type Graph,
  type TaskDefinition,
  type TaskInputs,
  type TaskPlanContext,
  type TaskRunContext,
} from "./graph.js";
import { runCommand, withChildGroupTracker } from "./process.js";
import { acquireRunLock, type RunLockRelease } from "./run-lock.js";
import { RECORD_SCHEMA, StateStore, type TaskRecord } from "./state.js";

export interface ExecuteOptions {
  /** Workspace root: outputs and inputs are relative to it. */
  root: string;
  stateDir: string;
  logDir: string;
  onEvent: EventSink;
  dryRun?: boolean;
  /** true: every task; a list: those tasks. */
  force?: boolean | readonly string[];
  /** Run only this task; its dependencies must already be fresh. */
  only?: string;
  /** Force this task and everything downstream of it. */
  from?: string;
  noWait?: boolean;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export type TaskOutcome =
  | { status: "ran"; record: TaskRecord }
  | { status: "fresh"; record: TaskRecord }
  | { status: "planned"; action: "run" | "skip"; reasons: string[]; record: TaskRecord | null }
  | { status: "failed"; error: unknown }
  | { status: "blocked"; by: string }
  | { status: "aborted" };

export interface GraphOutcome {
  status: "success" | "failed" | "aborted";
  tasks: Map<string, TaskOutcome>;
}

interface Evaluation {
  action: "run" | "skip";
  reasons: string[];
  fingerprint: Sha256Hex;
  inputs: InputRecord;
  record: TaskRecord | null;
}

const PROGRESS_INTERVAL_MS = 100;
const HASHED_VALUE_LIMIT = 200;

export async function executeGraph(graph: Graph, options: ExecuteOptions): Promise<GraphOutcome> {
  const started = performance.now();
  const env = options.env ?? process.env;
  const signal = options.signal ?? new AbortController().signal;
  const state = new StateStore(options.stateDir);
  const emit = (payload: EventPayload) =>
    options.onEvent({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), ...payload } as PipelineEvent);

  const order = topologicalOrder(graph);
  const byId = new Map(order.map((t) => [t.id, t]));
  for (const name of [options.only, options.from, ...(Array.isArray(options.force) ? options.force : [])]) {
    if (name !== undefined && !byId.has(name)) {
      throw new PipelineError("E_GRAPH_UNKNOWN_TASK", `graph ${graph.name} has no task "${name}" (tasks: ${order.map((t) => t.id).join(", ")})`);
    }
  }
  const selected = options.only ? order.filter((t) => t.id === options.only) : order;
  const forced = new Set<string>(
    options.force === true ? order.map((t) => t.id) : Array.isArray(options.force) ? options.force : [],
  );
  if (options.from) for (const id of downstreamOf(graph, options.from)) forced.add(id);

  emit({
    event: "graph-start",
    graph: graph.name,
    dryRun: Boolean(options.dryRun),
    tasks: selected.map((t) => ({ id: t.id, title: t.title, dependsOn: [...t.dependsOn] })),
  });

  const forcedReason = () => (options.from ? `forced (--from ${options.from})` : "forced (--force)");
  const outcomes = new Map<string, Promise<TaskOutcome>>();
  const planContext = (deps: Map<string, TaskRecord>): TaskPlanContext => ({ root: options.root, signal, env, deps });

  /** Dependency identity as dependents record it. */
  const dependencyKey = (task: TaskDefinition, record: TaskRecord): string => {
    const identity = task.identity
      ? task.identity(record)
      : {
          fingerprint: record.fingerprint,
          outputs: Object.fromEntries(Object.entries(record.outputs).map(([p, o]) => [p, o.sha256 ?? o.size])),
        };
    return sha256Hex(canonicalJson(identity));
  };

  const recordInputs = async (task: TaskDefinition, inputs: TaskInputs, deps: Map<string, TaskRecord>): Promise<InputRecord> => {
    const record: InputRecord = {};
    for (const [name, value] of Object.entries(inputs.values ?? {})) {
      const json = canonicalJson(value);
      record[`value:${name}`] = json.length > HASHED_VALUE_LIMIT ? `sha256:${sha256Hex(json)}` : json;
    }
    for (const name of inputs.env ?? []) {
      const value = env[name];
      record[`env:${name}`] = value === undefined ? "(unset)" : `sha256:${sha256Hex(value)}`;
    }
    for (const [name, version] of Object.entries(inputs.tools ?? {})) record[`tool:${name}`] = version;
    for (const file of inputs.files ?? []) {
      record[`file:${file}`] = await sha256File(join(options.root, file)).catch(() => "(missing)");
    }
    for (const depId of task.dependsOn) {
      const dep = deps.get(depId);
      const depTask = byId.get(depId);
      if (dep && depTask) record[`dep:${depId}`] = dependencyKey(depTask, dep);
    }
    return record;
  };

  const evaluate = async (task: TaskDefinition, deps: Map<string, TaskRecord>): Promise<Evaluation> => {
    const ctx = planContext(deps);
    const inputs = await recordInputs(task, await task.inputs(ctx), deps);
    const fingerprint = fingerprintOf(task.id, task.version, inputs);
    const record = await state.read(instanceOf(task));
    const result = (action: "run" | "skip", reasons: string[]): Evaluation => ({ action, reasons, fingerprint, inputs, record });
    if (forced.has(task.id)) return result("run", [forcedReason()]);
    if (!record) return result("run", ["no record of a successful run"]);
    if (record.fingerprint !== fingerprint) {
      const reasons = diffInputs(record.inputs, inputs);
      return result("run", reasons.length ? reasons : [`task ${task.id} changed (version ${task.version})`]);
    }
    const outputReasons: string[] = [];
    for (const [path, snapshot] of Object.entries(record.outputs)) {
      const problem = await checkOutput(join(options.root, path), snapshot);
      if (problem) outputReasons.push(`output ${path} ${problem}`);
    }
    const custom = await task.verify?.(record, ctx);
    if (custom) outputReasons.push(custom);
    return outputReasons.length ? result("run", outputReasons) : result("skip", ["fresh"]);
  };

  const runTask = async (task: TaskDefinition, deps: Map<string, TaskRecord>): Promise<TaskOutcome> => {
    const instance = instanceOf(task);
    const taskStarted = performance.now();
    let release: RunLockRelease | undefined;
    let logFile: string | undefined;
    try {
      if (options.dryRun) {
        const evaluation = await evaluate(task, deps);
        emit({ event: "task-plan", task: task.id, action: evaluation.action, reasons: evaluation.reasons });
        return { status: "planned", action: evaluation.action, reasons: evaluation.reasons, record: evaluation.record };
      }
      release = await acquireRunLock(join(options.stateDir, `${instance}.running`), {
        noWait: options.noWait,
        signal,
        onWait: (holder) => emit({ event: "task-wait", task: task.id, holder }),
      });
      // The lock records the process group of every command the step starts (its probes
      // too): a run that takes it over after this process died stops them first.
      const lock = release;
      // A run killed while writing this step's record left its temporary; the lock makes us its only writer.
      await removeTemporariesOf(state.recordPath(instance));
      // Decided under the lock: a concurrent run may just have done this work.
      const evaluation = await withChildGroupTracker(lock, () => evaluate(task, deps));
      if (evaluation.action === "skip" && evaluation.record) {
        emit({ event: "task-skip", task: task.id, reason: "fresh", detail: "fresh" });
        return { status: "fresh", record: evaluation.record };
      }
      signal.throwIfAborted();
      logFile = join(options.logDir, `${instance}.log`);
      mkdirSync(options.logDir, { recursive: true });
      writeFileSync(logFile, `# ${task.title} (${task.id}) started ${new Date().toISOString()}\n# why: ${evaluation.reasons.join("; ")}\n`);
      emit({ event: "task-start", task: task.id, reasons: evaluation.reasons, logPath: logFile });
      await state.remove(instance);

      const context = runContext(task, deps, evaluation.fingerprint, logFile);
      const result = await withChildGroupTracker(lock, () => task.run(context));
      const outputs: Record<string, OutputSnapshot> = {};
      for (const decl of (await task.outputs?.(evaluation.fingerprint)) ?? []) {
        outputs[decl.path] = await snapshotOutput(join(options.root, decl.path), decl.hash ?? false).catch((error: unknown) => {
          throw new PipelineError("E_BUILD_OUTPUT", `task ${task.id} finished but did not produce ${decl.path}`, { cause: error });
        });
      }
      const durationMs = performance.now() - taskStarted;
      const record: TaskRecord = {
        schema: RECORD_SCHEMA,
        task: task.id,
        instance,
        fingerprint: evaluation.fingerprint,
        inputs: evaluation.inputs,
        outputs,
        result,
        startedAt: new Date(Date.now() - durationMs).toISOString(),
        finishedAt: new Date().toISOString(),
        durationMs: Math.round(durationMs),
      };
      await state.write(record);
      emit({ event: "task-end", task: task.id, durationMs: Math.round(durationMs), fingerprint: evaluation.fingerprint });
      return { status: "ran", record };
    } catch (error) {
      if (signal.aborted || error instanceof AbortedError || (error as Error).name === "AbortError") return { status: "aborted" };
      emit(errorEvent(task.id, error, performance.now() - taskStarted, logFile));
      return { status: "failed", error };
    } finally {
      await release?.();
    }
  };

  const runContext = (task: TaskDefinition, deps: Map<string, TaskRecord>, fingerprint: Sha256Hex, logFile: string): TaskRunContext => {
    let lastProgress = 0;
    let lastPercent: number | undefined;
    return {
      ...planContext(deps),
      fingerprint,
      logFile,
      log: (line) => appendFileSync(logFile, line + "\n"),
      progress: ({ percent, message }) => {
        const now = performance.now();
        if (percent === lastPercent && now - lastProgress < PROGRESS_INTERVAL_MS) return;
        lastProgress = now;
        lastPercent = percent;
        emit({ event: "task-progress", task: task.id, ...(percent === undefined ? {} : { percent }), ...(message === undefined ? {} : { message }) });
      },
      run: (argv, runOptions = {}) => runCommand(argv, { env, signal, logFile, ...runOptions }),
    };
  };

  const outcomeOf = (task: TaskDefinition): Promise<TaskOutcome> => {
    let promise = outcomes.get(task.id);
    if (promise) return promise;
    promise = (async (): Promise<TaskOutcome> => {
      const deps = new Map<string, TaskRecord>();
      for (const depId of task.dependsOn) {
        const depTask = byId.get(depId)!;
        const outcome = selected.includes(depTask) ? await outcomeOf(depTask) : await externalDependency(depTask);
        if (outcome.status === "ran" || outcome.status === "fresh") deps.set(depId, outcome.record);
        else if (outcome.status === "planned") {
          if (outcome.action === "run") {
            const reasons = forced.has(task.id) ? [forcedReason()] : [`dependency ${depId} will run first`];
            emit({ event: "task-plan", task: task.id, action: "run", reasons });
            return { status: "planned", action: "run", reasons, record: null };
          }
          deps.set(depId, outcome.record!);
        } else if (outcome.status === "aborted") return { status: "aborted" };
        else {
          const by = outcome.status === "blocked" ? outcome.by : depId;
          if (selected.includes(task)) emit({ event: "task-skip", task: task.id, reason: "blocked", detail: `not run: dependency ${depId} failed` });
          return { status: "blocked", by };
        }
      }
      if (signal.aborted) return { status: "aborted" };
      return runTask(task, deps);
    })();
    outcomes.set(task.id, promise);
    return promise;
  };

  /** With --only, dependencies are not run: they must already be fresh. */
  const externalDependency = async (task: TaskDefinition): Promise<TaskOutcome> => {
    const deps = new Map<string, TaskRecord>();
    for (const depId of task.dependsOn) {
      const outcome = await externalDependency(byId.get(depId)!);
      if (outcome.status !== "fresh") return outcome;
      deps.set(depId, outcome.record);
    }
    const evaluation = await evaluate(task, deps);
    if (evaluation.action === "skip" && evaluation.record) return { status: "fresh", record: evaluation.record };
    const error = new PipelineError(
      "E_DEPENDENCY_NOT_READY",
      `--only ${options.only} needs ${task.id} to be fresh, but it is not (${evaluation.reasons.join("; ")}). Run without --only first.`,
    );
    emit(errorEvent(options.only ?? task.id, error, 0, undefined));
    return { status: "failed", error };
  };

  const results = new Map<string, TaskOutcome>();
  await Promise.all(selected.map(async (task) => results.set(task.id, await outcomeOf(task))));

  const all = [...results.values()];
  const count = (status: TaskOutcome["status"]) => all.filter((o) => o.status === status).length;
  const status = signal.aborted || count("aborted") > 0 ? "aborted" : count("failed") + count("blocked") > 0 ? "failed" : "success";
  emit({
    event: "graph-end",
    graph: graph.name,
    status,
    durationMs: Math.round(performance.now() - started),
    counts: {
      ran: count("ran"),
      fresh: count("fresh"),
      failed: count("failed"),
      blocked: count("blocked"),
      planned: all.filter((o) => o.status === "planned" && o.action === "run").length,
    },
  });
  return { status, tasks: results };
}

function errorEvent(task: string, error: unknown, durationMs: number, logFile: string | undefined): EventPayload {
  // A raw system error becomes the typed E_IO it stands for; stacks only with AI_TOOLS_DEBUG=1.
  const report = errorReport(error);
  const base = {
    event: "task-error" as const,
    task,
    code: report.code,
    // Messages quote file names, command output and server answers: nothing in them may steer a terminal.
    message: terminalSafe(report.message),
    details: report.details.map(terminalSafe),
    durationMs: Math.round(durationMs),
  };
  if (error instanceof CommandFailedError) {
    return { ...base, command: error.displayArgv, exitCode: error.exitCode, tail: [...error.tail], errorLines: [...error.errorLines], logPath: error.logPath ?? logFile };
  }
  return logFile ? { ...base, logPath: logFile } : base;
}
