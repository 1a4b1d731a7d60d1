/**
 * Typed errors with stable codes (sigstore-js style): callers and tests switch on
 * `code`, never on the message. Codes are API: add new ones, never rename.
 */
import { escapeForTerminal } from "./escape.js";
import { redact } from "./redact.js";

/**
 * Core's own codes, the ground floor's: input and configuration, child processes, the task
 * graph and its locks, file I/O, and the catch-all for a bug. Each domain declares its codes
 * the same way, next to what throws them (hub/errors.ts, gguf/errors.ts, signing/errors.ts,
 * registry/errors.ts and pack-errors.ts, config/errors.ts, model-bench/errors.ts,
 * engine-build/errors.ts, python.ts, engines/errors.ts, tasks/errors.ts); pipeline/cli/error-table.ts maps every code to its
 * exit status and README row.
 */
export const CORE_ERROR_CODES = [
  "E_USAGE",
  "E_CONFIG_MISSING",
  "E_CONFIG_SYNTAX",
  "E_CONFIG_INVALID",
  "E_TOOL_MISSING",
  "E_COMMAND_FAILED",
  "E_COMMAND_TIMEOUT",
  "E_ABORTED",
  "E_LOCK_BUSY",
  "E_GRAPH_CYCLE",
  "E_GRAPH_UNKNOWN_TASK",
  "E_DEPENDENCY_NOT_READY",
  // A task finished without an output it declares (the executor checks every task's; the build's binaries).
  "E_BUILD_OUTPUT",
  // Bytes that differ from their expected sha256: a download, a registry blob, a signed file.
  "E_DIGEST_MISMATCH",
  "E_DISK_FULL",
  // A file that is gone, or is no longer a regular file, when it is read (core/hash.ts: verify, sign, the digest cache).
  "E_MISSING_FILE",
  "E_NOT_REGULAR_FILE",
  "E_IO",
  // Anything that is not a PipelineError or a system error: a bug (errorReport).
  "E_INTERNAL",
] as const;

export type CoreErrorCode = (typeof CORE_ERROR_CODES)[number];

/**
 * Every declared code, as keys. Core lists only its own; each domain adds its list with a
 * module augmentation beside its runtime declaration:
 *
 *   export const GGUF_ERROR_CODES = ["E_GGUF_IO", ...] as const;
 *   declare module "../core/errors.js" { interface ErrorCodes extends Record<GgufErrorCode, true> {} }
 *
 * so core imports no domain, yet `new PipelineError("E_GGUF_IOO", ...)` still fails tsc.
 */
export interface ErrorCodes extends Record<CoreErrorCode, true> {}

/** A code some domain declares. */
export type ErrorCode = keyof ErrorCodes & string;

/**
 * A code declared elsewhere, named in another domain's union (VerifyErrorCode names E_IO):
 * tsc checks that it is declared, and the declaration stays in one place.
 */
export type DeclaredCode<C extends ErrorCode> = C;

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

/** What common errno codes of file operations mean, for messages a user reads. */
const ERRNO_MEANINGS: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENAMETOOLONG: "the path is too long for the system (PATH_MAX is 4096 bytes on Linux)",
  ELOOP: "too many levels of symbolic links",
  ENOTDIR: "a part of the path is not a directory",
  EISDIR: "it is a directory",
  EMFILE: "too many open files in this process",
  ENFILE: "too many open files on this system",
  ENOSPC: "no space left on the device",
  EDQUOT: "the disk quota is exceeded",
  EROFS: "the file system is read-only",
  EIO: "an input/output error (a failing disk or network file system?)",
  EBUSY: "the resource is busy",
  EXDEV: "a rename across file systems",
  ENOTEMPTY: "the directory is not empty",
  EEXIST: "it exists already",
};

/** A Node.js system error (fs, net): it has an errno code such as ENOENT and usually a syscall and path. */
export function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === "string" && /^E[A-Z0-9]+$/.test((error as NodeJS.ErrnoException).code!) && typeof (error as NodeJS.ErrnoException).syscall === "string";
}

/** A path for a message: escaped, and a very long one cut in the middle (an ENAMETOOLONG path is thousands of characters). */
export function displayPath(path: string): string {
  const shown = escapeForTerminal(path);
  return shown.length <= 240 ? shown : `${shown.slice(0, 80)}…(${shown.length} characters)…${shown.slice(-120)}`;
}

/**
 * A failed file operation as a typed error: E_DISK_FULL for a full disk or quota, else E_IO,
 * naming the path, what was being done and what the errno means. No stack: it says all.
 */
export function fileSystemError(error: NodeJS.ErrnoException, doing: string, path = error.path): PipelineError<"E_IO" | "E_DISK_FULL"> {
  const code = error.code ?? "EIO";
  const meaning = ERRNO_MEANINGS[code] ?? error.message.replace(/^[A-Z0-9]+: /, "").split(",")[0];
  const where = path ? ` ${displayPath(String(path))}` : "";
  return new PipelineError(code === "ENOSPC" || code === "EDQUOT" ? "E_DISK_FULL" : "E_IO", `cannot ${doing}${where}: ${code} (${meaning})`, { cause: error });
}

/** AI_TOOLS_DEBUG=1 (or true/yes): errors carry their stack traces. */
export function debugEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return ["1", "true", "yes", "on"].includes((env.AI_TOOLS_DEBUG ?? "").toLowerCase());
}

/**
 * How any error is reported (CLI, events): a PipelineError as it is; a system error as the
 * typed E_IO/E_DISK_FULL it stands for; anything else as E_INTERNAL. A stack trace only
 * when debugging (`debug`, default AI_TOOLS_DEBUG): it helps a developer, not a user.
 */
export function errorReport(error: unknown, options: { debug?: boolean } = {}): { code: ErrorCode; message: string; details: string[] } {
  const debug = options.debug ?? debugEnabled();
  const typed = isPipelineError(error) ? error : isSystemError(error) ? fileSystemError(error, error.syscall ?? "access") : undefined;
  // One detail line per frame: a detail is one terminal line (a newline in it would be escaped).
  const stack = debug && error instanceof Error && error.stack ? error.stack.split("\n") : [];
  if (typed) return { code: typed.code, message: typed.message, details: [...typed.details, ...stack] };
  const message = error instanceof Error ? error.message : String(error);
  return { code: "E_INTERNAL", message, details: stack.length > 0 ? stack : ["(an unexpected error: rerun with AI_TOOLS_DEBUG=1 for its stack trace, and report it)"] };
}
