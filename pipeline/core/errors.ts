/**
 * Typed errors with stable codes (sigstore-js style): callers and tests switch on
 * `code`, never on the message. Codes are API: add new ones, never rename.
 */
import { redact } from "./redact.js";
import type { VerifyErrorCode } from "../signing/errors.js";
import type { PackErrorCode } from "../registry/pack-errors.js";
import type { RegistryErrorCode } from "../registry/errors.js";
export type ErrorCode =
  | "E_USAGE"
  | "E_CONFIG_MISSING"
  | "E_CONFIG_SYNTAX"
  | "E_CONFIG_INVALID"
  | "E_TOOL_MISSING"
  | "E_COMMAND_FAILED"
  | "E_COMMAND_TIMEOUT"
  | "E_ABORTED"
  | "E_LOCK_BUSY"
  | "E_GRAPH_CYCLE"
  | "E_GRAPH_UNKNOWN_TASK"
  | "E_DEPENDENCY_NOT_READY"
  | "E_UPSTREAM_DIRTY"
  | "E_UPSTREAM_PIN_MISMATCH"
  | "E_UPSTREAM_FETCH"
  | "E_BUILD_OUTPUT"
  | "E_BUILD_BACKEND"
  | "E_HUB_REPO_NOT_FOUND"
  | "E_HUB_REVISION_NOT_FOUND"
  | "E_HUB_ENTRY_NOT_FOUND"
  | "E_HUB_GATED"
  | "E_HUB_AUTH"
  | "E_HUB_RATE_LIMITED"
  | "E_HUB_HTTP"
  | "E_HUB_BAD_RESPONSE"
  | "E_HUB_UNSAFE_PATH"
  | "E_HUB_OFFLINE_MISS"
  | "E_HUB_NO_MATCH"
  | "E_DIGEST_MISMATCH"
  | "E_DISK_FULL"
  | "E_PYTHON_UNSUITABLE"
  | "E_CONVERT_OUTPUT"
  | "E_GPU_SPLIT"
  | "E_UNSAFE_OUTTYPE"
  | "E_MODEL_UNSUPPORTED"
  | "E_GGUF_IO"
  | "E_GGUF_TRUNCATED"
  | "E_GGUF_MAGIC"
  | "E_GGUF_VERSION"
  | "E_GGUF_LIMIT"
  | "E_GGUF_INVALID"
  | "E_BENCH_NO_TIMINGS"
  | "E_BENCH_LOG_INVALID"
  | "E_BENCH_LLAMA_BENCH_INVALID"
  | "E_BENCH_RESULT_INVALID"
  // Signing (the verifier's own codes are VerifyErrorCode, pipeline/signing/errors.ts).
  | "E_SIGNING_KEY"
  | "E_SIGN_INPUT"
  | VerifyErrorCode
  // Runtime (engines/, pipeline/policy).
  | "E_ENGINE_UNKNOWN"
  | "E_ENGINE_UNAVAILABLE"
  | "E_ENGINE_FAILED"
  | "E_ENGINE_TIMEOUT"
  | "E_ENGINE_AUTH"
  | "E_ENGINE_HTTP"
  | "E_ENGINE_ABORTED"
  // Registry: transport (pipeline/registry/errors.ts) and packing (pack-errors.ts).
  | RegistryErrorCode
  | PackErrorCode;

export class PipelineError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  /** Extra lines a reporter prints under the message (hints, tool output). */
  readonly details: readonly string[];

  constructor(code: C, message: string, options: { cause?: unknown; details?: readonly string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? [];
  }
}

export class UsageError extends PipelineError<"E_USAGE"> {
  constructor(message: string, details?: readonly string[]) {
    super("E_USAGE", message, { details });
  }
}

export class ToolMissingError extends PipelineError<"E_TOOL_MISSING"> {
  constructor(
    readonly tool: string,
    readonly installHint: string,
  ) {
    super("E_TOOL_MISSING", `${tool} was not found on PATH. ${installHint}`);
  }
}

/** A child process exited non-zero, was killed by a signal, or timed out. */
export class CommandFailedError extends PipelineError<"E_COMMAND_FAILED" | "E_COMMAND_TIMEOUT"> {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    /** The last lines the command printed (stdout and stderr interleaved). */
    readonly tail: readonly string[],
    readonly logPath: string | undefined,
    extra: { timedOutAfterMs?: number; errorLines?: readonly string[] } = {},
  ) {
    const { timedOutAfterMs } = extra;
    const how =
      timedOutAfterMs !== undefined
        ? `timed out after ${Math.round(timedOutAfterMs / 1000)} s`
        : signal
          ? `was killed by ${signal}`
          : `exited with code ${exitCode}`;
    super(timedOutAfterMs !== undefined ? "E_COMMAND_TIMEOUT" : "E_COMMAND_FAILED", `${argv[0]} ${how}`);
    this.errorLines = extra.errorLines ?? [];
    this.timedOutAfterMs = timedOutAfterMs;
  }

  /** Set when the command was stopped for running past its timeout. */
  readonly timedOutAfterMs: number | undefined;

  /** The first lines of the output that look like errors (they may precede the tail). */
  readonly errorLines: readonly string[];

  /** The command as it may be shown: credentials in URLs masked. */
  get displayArgv(): string[] {
    return this.argv.map((a) => redact(a));
  }
}

export class AbortedError extends PipelineError<"E_ABORTED"> {
  constructor(message = "interrupted") {
    super("E_ABORTED", message);
  }
}

export function isPipelineError(error: unknown): error is PipelineError {
  return error instanceof PipelineError;
}

/** Exhaustiveness guard for switches over discriminated unions. */
export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}
