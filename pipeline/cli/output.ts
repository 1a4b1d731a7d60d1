/**
 * Where a command writes: results on stdout, diagnostics on stderr, and with `--json`
 * one event per line on stdout, each a member of the versioned event union (events.ts).
 */
import { EVENT_SCHEMA_VERSION } from "../core/events.js";
import type { CommandEventPayload, OutputEvent } from "./events.js";

/** What a command gets to talk to the world; tests pass their own. */
export interface CliIo {
  /** stdout: results (text or JSON lines). */
  out(text: string): void;
  /** stderr: one line of diagnostics. */
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** The workspace root (AI_TOOLS_ROOT, or the nearest folder with the engine config, or cwd). */
  root: string;
}

/** process.stdout/stderr, for the real CLI. */
export function processIo(root: string): CliIo {
  // A reader that goes away (`| head`) must not crash a run that is building: stop
  // writing to it and carry on.
  let stdoutClosed = false;
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    stdoutClosed = true;
  });
  return {
    out: (text) => {
      if (!stdoutClosed) process.stdout.write(text);
    },
    err: (line) => process.stderr.write(line + "\n"),
    env: process.env,
    root,
  };
}

/** One `--json` line: the payload with the schema version and the time in front. */
export function printEvent(io: Pick<CliIo, "out">, payload: CommandEventPayload): void {
  const event = { v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), ...payload } as OutputEvent;
  io.out(JSON.stringify(event) + "\n");
}

/** A path as the user would type it: relative to the workspace root when inside it. */
export function shownPath(root: string, path: string): string {
  return path.startsWith(root + "/") ? path.slice(root.length + 1) : path;
}

/** Decimal units, as the tables print them: 460.9 kB, 1.34 GB. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}
