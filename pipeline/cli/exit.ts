/**
 * Exit statuses, and how an outcome or an error maps to one. The help page's "Exit codes"
 * line is generated from EXIT_MEANINGS.
 */
import { errorReport, isPipelineError } from "../core/errors.js";
import { terminalSafe } from "../core/escape.js";
import type { GraphOutcome } from "../core/executor.js";
import { printEvent, type CliIo } from "./output.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, drift: 3, busy: 75, interrupted: 130 } as const;

export const EXIT_MEANINGS: Readonly<Record<(typeof EXIT)[keyof typeof EXIT], string>> = {
  0: "ok",
  1: "a step, the verification, the engine or the bench gate failed",
  2: "bad usage or configuration",
  3: "drift found (drift)",
  75: "busy (--no-wait)",
  130: "interrupted",
};

export function exitForOutcome(outcome: GraphOutcome): number {
  if (outcome.status === "aborted") return EXIT.interrupted;
  if (outcome.status === "success") return EXIT.ok;
  const busy = [...outcome.tasks.values()].some((o) => o.status === "failed" && isPipelineError(o.error) && o.error.code === "E_LOCK_BUSY");
  return busy ? EXIT.busy : EXIT.failed;
}

/** Bad flags, bad configuration, an unknown engine or model: the user's to fix, exit 2. */
export function exitForErrorCode(code: string): number {
  if (code === "E_ENGINE_ABORTED") return EXIT.interrupted;
  const usage = ["E_USAGE", "E_ENGINE_UNKNOWN", "E_MODEL_UNSUPPORTED", "E_TRUST_CONFIG", "E_REGISTRY_REFERENCE", "E_REGISTRY_INSECURE"];
  return usage.includes(code) || code.startsWith("E_CONFIG") || code.startsWith("E_GRAPH") ? EXIT.usage : EXIT.failed;
}

/** An error before or around the work (bad flags, bad config, an engine that failed): its lines, its exit status. */
export function reportError(io: CliIo, error: unknown, json: boolean): number {
  // Typed system errors, no stack trace unless AI_TOOLS_DEBUG=1, every line safe for a terminal.
  const { code, message, details } = errorReport(error);
  if (code === "E_ENGINE_ABORTED") {
    // Ctrl-C during generation: the reason, no error banner.
    io.err(`\n${terminalSafe(message)}`);
    return EXIT.interrupted;
  }
  if (json) printEvent(io, { event: "error", code, message, details });
  io.err(`error [${code}]: ${terminalSafe(message)}`);
  for (const detail of details) io.err(`  ${terminalSafe(detail)}`);
  return exitForErrorCode(code);
}
