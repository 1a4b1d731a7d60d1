/**
 * The one way the library runs a child process: argv arrays (never a shell string),
 * a timeout, an AbortSignal, line callbacks for progress, a full log file, and a kill
 * that reaches the whole process tree.
 *
 * Written over node:child_process rather than zx/execa (node-stack.md §4): zx always
 * goes through bash with `set -euo pipefail`, and execa signals only the direct child.
 * We start every child in its own process group (`detached: true`) and kill the group,
 * so `cmake --build` takes its make and compiler processes down with it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, readdirSync, readFileSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { AbortedError, CommandFailedError, ToolMissingError } from "./errors.js";
import { redact } from "./redact.js";

export interface RunCommandOptions {
  cwd?: string;
  /** The complete environment of the child (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called for every line the child prints, in order per stream. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
  /** Append everything the child prints to this file (created with its folder). */
  logFile?: string;
  /**
   * Keep stdout in the result (for short probes such as `git rev-parse`). "raw" keeps it
   * unmasked (a credential helper's JSON answer, which masking would corrupt); logs and error
   * tails stay masked either way.
   */
  captureStdout?: boolean | "raw";
  /** Send stdout to /dev/null instead of the log (a benchmark's generated text: each token a pipe write). */
  discardStdout?: boolean;
  /** Return the result instead of throwing when the exit code is not 0. */
  allowFailure?: boolean;
  /** How to install the program when it is not on PATH (used in ToolMissingError). */
  installHint?: string;
  /** Lines kept for error messages. */
  tailLines?: number;
  /** Time between SIGTERM and SIGKILL when stopping the process group. */
  killGraceMs?: number;
  /** Called with the child's pid once it runs (to sample its resource use). */
  onSpawn?: (pid: number) => void;
  /** Written to the child's stdin, which is then closed (default: no stdin). */
  input?: string;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  tail: string[];
  /** The first lines that look like errors: with -j2 the real one is often far above the tail. */
  errorLines: string[];
  durationMs: number;
}

const ERROR_LINE = /\b(error|fatal)\b|\*\*\*|No rule to make target/i;
const ERROR_LINES_KEPT = 10;

const liveGroups = new Set<number>();
let exitHookInstalled = false;

/** Last-resort cleanup: a crashing parent must not leave compilers running. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pid of liveGroups) killGroup(pid, "SIGKILL");
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * Told about the process group of every child started in its async context. A step's run
 * lock is one: it records the groups, because a parent that dies without running any code
 * (SIGKILL, the OOM killer) cannot stop them, and a child in a group of its own outlives
 * it. Whoever takes the lock over stops them first.
 */
export interface ChildGroupTracker {
  /** Called synchronously right after the spawn, before anything else can run. */
  started(pgid: number): void;
  ended(pgid: number): void;
}

const trackers = new AsyncLocalStorage<ChildGroupTracker>();

/** Runs `fn` so that every runCommand inside it, however deep, reports its child's group to `tracker`. */
export function withChildGroupTracker<T>(tracker: ChildGroupTracker, fn: () => Promise<T>): Promise<T> {
  return trackers.run(tracker, fn);
}

/** `/proc/<pid>/stat` fields after the command name: [0] state, [2] pgrp, [19] start time. Null without /proc or the process. */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: the fields start after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Whether /proc describes processes here (Linux); without it the helpers below know less. */
export const HAS_PROC = procStat(process.pid) !== null;

/**
 * When the process started (clock ticks after boot; Linux only, else undefined). Together
 * with the pid it names one process: a later process given the same pid starts later.
 */
export function processStartTime(pid: number): number | undefined {
  const fields = procStat(pid);
  const ticks = fields ? Number(fields[19]) : NaN;
  return Number.isFinite(ticks) ? ticks : undefined;
}

/**
 * Whether `pid` runs. A zombie does not: it has exited and waits to be reaped, which an
 * orphan's adoptive parent (PID 1 in many containers) may never do.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return procStat(pid)?.[0] !== "Z";
}

/** Pids of the processes (not zombies) in process group `pgid`. Without /proc: the group id itself while the group exists. */
export function processGroupMembers(pgid: number): number[] {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return [];
  }
  if (!HAS_PROC) return [pgid];
  const members: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const fields = procStat(Number(name));
    if (fields && fields[0] !== "Z" && Number(fields[2]) === pgid) members.push(Number(name));
  }
  return members;
}

/** Shell-like rendering of argv for logs and errors, with credentials masked. */
export function formatArgv(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): string {
  return redact(argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" "), env);
}

/** A child started by startProcess: its streams, and a kill that reaches its whole group. */
export interface StartedProcess {
  child: ChildProcess & { stdout: NodeJS.ReadableStream; stderr: NodeJS.ReadableStream };
  /** Signals the child's process group (nothing when it is already gone). */
  killGroup(signal: NodeJS.Signals): void;
  /** Resolves when the child has exited and its streams are closed. */
  closed: Promise<void>;
}

/**
 * A child whose output the caller reads as it comes (an engine streaming tokens, a `--help`
 * read for its flags) or that the caller feeds on stdin (a lock holder): started like
 * runCommand's, in its own process group, known to the exit hook and to the step's group
 * tracker, so a crash or a killed step never leaves it running. runCommand is for commands
 * that run to completion; this is for the ones the caller drives.
 */
export function startProcess(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: "pipe" | "ignore" } = {}): StartedProcess {
  const [program, ...args] = argv;
  if (!program) throw new Error("startProcess: empty argv");
  installExitHook();
  const child = spawn(program, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: [options.stdin ?? "ignore", "pipe", "pipe"], detached: true });
  const tracker = trackers.getStore();
  const pid = child.pid;
  if (pid !== undefined) {
    liveGroups.add(pid);
    tracker?.started(pid);
  }
  const closed = new Promise<void>((resolve) =>
    child.once("close", () => {
      if (pid !== undefined) {
        liveGroups.delete(pid);
        tracker?.ended(pid);
      }
      resolve();
    }),
  );
  return {
    child: child as StartedProcess["child"],
    killGroup: (signal) => pid !== undefined && killGroup(pid, signal),
    closed,
  };
}

export async function runCommand(argv: readonly string[], options: RunCommandOptions = {}): Promise<CommandResult> {
  const [program, ...args] = argv;
  if (!program) throw new Error("runCommand: empty argv");
  options.signal?.throwIfAborted();
  installExitHook();

  const env = options.env ?? process.env;
  const tailLimit = options.tailLines ?? 30;
  const tail: string[] = [];
  const errorLines: string[] = [];
  const stdoutLines: string[] = [];
  let log: WriteStream | undefined;
  if (options.logFile) {
    mkdirSync(dirname(options.logFile), { recursive: true });
    log = createWriteStream(options.logFile, { flags: "a" });
    log.write(`$ ${formatArgv(argv, env)}${options.cwd ? `   (in ${options.cwd})` : ""}\n`);
  }

  const started = performance.now();
  const child: ChildProcess = spawn(program, args, {
    cwd: options.cwd,
    env,
    stdio: [options.input === undefined ? "ignore" : "pipe", options.discardStdout ? "ignore" : "pipe", "pipe"],
    detached: true,
  });
  // Before any await: from here on a parent killed outright leaves a group its successor can find.
  const tracker = trackers.getStore();
  if (child.pid !== undefined) tracker?.started(child.pid);

  let timedOut = false;
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    killGroup(child.pid, "SIGTERM");
    killTimer = setTimeout(() => child.pid !== undefined && killGroup(child.pid, "SIGKILL"), options.killGraceMs ?? 3000);
    killTimer.unref();
  };
  const onAbort = () => {
    aborted = true;
    stop();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const timeout =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          stop();
        }, options.timeoutMs);

  const readLines = (stream: NodeJS.ReadableStream, name: "stdout" | "stderr") => {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on("line", (raw) => {
      const line = redact(raw, env);
      log?.write(line + "\n");
      tail.push(line);
      if (errorLines.length < ERROR_LINES_KEPT && ERROR_LINE.test(line)) errorLines.push(line);
      if (tail.length > tailLimit) tail.shift();
      if (name === "stdout" && options.captureStdout) stdoutLines.push(options.captureStdout === "raw" ? raw : line);
      options.onLine?.(line, name);
    });
  };
  if (child.stdin) {
    // A child that exits without reading its input must not crash us with EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input);
  }
  if (child.stdout) readLines(child.stdout, "stdout");
  if (child.stderr) readLines(child.stderr, "stderr");

  const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | Error>((resolve) => {
    child.once("error", (error) => resolve(error));
    child.once("spawn", () => {
      if (child.pid === undefined) return;
      liveGroups.add(child.pid);
      options.onSpawn?.(child.pid);
    });
    child.once("close", (code, signal) => resolve({ code, signal }));
  });

  if (timeout) clearTimeout(timeout);
  options.signal?.removeEventListener("abort", onAbort);
  if (child.pid !== undefined) {
    // The direct child is gone; its group may not be (a daemonised grandchild).
    if (aborted || timedOut) killGroup(child.pid, "SIGKILL");
    liveGroups.delete(child.pid);
    tracker?.ended(child.pid);
  }
  if (killTimer) clearTimeout(killTimer);
  const durationMs = performance.now() - started;
  if (log) await new Promise<void>((resolve) => log.end(resolve));

  if (outcome instanceof Error) {
    if ((outcome as NodeJS.ErrnoException).code === "ENOENT") {
      throw new ToolMissingError(program, options.installHint ?? "Install it or put it on PATH.");
    }
    throw outcome;
  }
  if (aborted) throw new AbortedError(`interrupted: ${formatArgv(argv, env)}`);
  if (timedOut) {
    throw new CommandFailedError(argv, outcome.code, outcome.signal, tail, options.logFile, { timedOutAfterMs: options.timeoutMs, errorLines });
  }
  const exitCode = outcome.code ?? 128;
  if ((exitCode !== 0 || outcome.signal) && !options.allowFailure) {
    throw new CommandFailedError(argv, outcome.code, outcome.signal, tail, options.logFile, { errorLines });
  }
  return { exitCode, stdout: stdoutLines.join("\n"), tail, errorLines, durationMs };
}
