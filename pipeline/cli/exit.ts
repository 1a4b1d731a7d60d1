/** How an outcome or an error maps to an exit status (exit-status.ts; each code's: error-table.ts). */
import { errorReport, isPipelineError, type ErrorCode } from "../core/errors.js";
import { terminalSafe } from "../core/escape.js";
import type { GraphOutcome } from "../core/executor.js";
import { ERROR_TABLE } from "./error-table.js";
import { EXIT } from "./exit-status.js";
import { printEvent, type CliIo } from "./output.js";

export { EXIT, EXIT_MEANINGS, type ExitStatus } from "./exit-status.js";

/** A failed step is exit 1, unless it failed only because another run holds it (`--no-wait`: E_LOCK_BUSY's 75). */
export function exitForOutcome(outcome: GraphOutcome): number {
  if (outcome.status === "aborted") return EXIT.interrupted;
  if (outcome.status === "success") return EXIT.ok;
  const busy = [...outcome.tasks.values()].some((o) => o.status === "failed" && isPipelineError(o.error) && exitForErrorCode(o.error.code) === EXIT.busy);
  return busy ? EXIT.busy : EXIT.failed;
}

/** The exit status of an error code, from its row in the error table; a code no domain declares is a failure. */
export function exitForErrorCode(code: string): number {
  return Object.hasOwn(ERROR_TABLE, code) ? ERROR_TABLE[code as ErrorCode].exit : EXIT.failed;
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
