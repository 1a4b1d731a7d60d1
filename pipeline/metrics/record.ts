/**
 * One line of the `ai-tools run` metrics log (JSON Lines, schemaVersion 1): which model, engine build, policy and
 * host served one request, how it went, and its RequestMetrics. Prompt and output text are kept out unless the
 * caller asks (`logPrompts`): prompts are user data, while their sizes are enough for capacity questions.
 */
import { appendFile, mkdir } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { EngineProbe, RequestMetrics } from "../../engines/types.js";
import { redact } from "../core/redact.js";
import type { RenderedPolicy } from "../policy/types.js";

export const METRICS_SCHEMA_VERSION = 1 as const;

/** "ok", or the stable code (E_...) of the error that ended the request. */
export type ExitStatus = "ok" | (string & {});

export interface MetricsRecord {
  schemaVersion: typeof METRICS_SCHEMA_VERSION;
  /** When the request ended, ISO 8601 UTC. */
  time: string;
  model: {
    name: string;
    /** The policy's audit.model_version; null when the policy has none. */
    version: string | null;
    /** Lowercase sha256 hex of the model file where known. */
    checksum: string | null;
    /** null for engines that take no file (openai). */
    path: string | null;
  };
  engine: { name: string; version: string | null; commit: string | null };
  policyHash: string;
  host: { name: string; physicalCores: number; gpus: { count: number; names: string[] } };
  exitStatus: ExitStatus;
  /** null when the request failed before the engine reported any. */
  metrics: RequestMetrics | null;
  /** Unicode code points of the prompt and of the generated text (always kept, unlike the text). */
  promptChars: number;
  outputChars: number;
  /** Only with logPrompts; cut to MAX_LOGGED_TEXT_CHARS code points (promptChars tells the full size). */
  prompt?: string;
  output?: string;
}

/**
 * Logged text is cut to this many code points: at up to 6 bytes each in JSON (\uXXXX), prompt + output stay under
 * 512 KiB, the size Node's appendFile writes in one write() (see appendMetricsRecord).
 */
export const MAX_LOGGED_TEXT_CHARS = 32_768;

/** Node's fs appendFile/writeFile split data into write() calls of at most 512 KiB (kWriteFileMaxChunkSize). */
export const MAX_RECORD_LINE_BYTES = 512 * 1024;

export interface BuildMetricsRecordInput {
  policy: RenderedPolicy;
  /** The engine's probe (version and commit as it reported them). */
  probe: Pick<EngineProbe, "name" | "version" | "commit">;
  prompt: string;
  /** The generated text; "" when the request failed. */
  output: string;
  metrics: RequestMetrics | null;
  /** The error that ended the request, if any: its `code` (PipelineError) becomes exitStatus. */
  error?: unknown;
  /** Store prompt and output text (default false: only their sizes). */
  logPrompts?: boolean;
  /** Overrides the name derived from the policy (openai model, model file name, else the engine). */
  modelName?: string;
  now?: Date;
}

const SHA256_HEX = /^(?:sha256:)?([0-9a-fA-F]{64})$/;

/** Pure: the record for one request. */
export function buildMetricsRecord(input: BuildMetricsRecordInput): MetricsRecord {
  const { policy, probe } = input;
  const checksum = policy.audit?.checksum ? (SHA256_HEX.exec(policy.audit.checksum)?.[1]?.toLowerCase() ?? null) : null;
  const record: MetricsRecord = {
    schemaVersion: METRICS_SCHEMA_VERSION,
    time: (input.now ?? new Date()).toISOString(),
    model: {
      name: input.modelName ?? policy.openai?.model ?? (policy.modelPath ? basename(policy.modelPath) : policy.engine),
      version: policy.audit?.model_version ?? null,
      checksum,
      path: policy.modelPath,
    },
    engine: { name: probe.name, version: probe.version, commit: probe.commit },
    policyHash: policy.policyHash,
    host: {
      name: policy.host.name,
      physicalCores: policy.host.physicalCores,
      gpus: { count: policy.host.gpus.length, names: policy.host.gpus.map((gpu) => gpu.name) },
    },
    exitStatus: input.error === undefined ? "ok" : errorCode(input.error),
    metrics: input.metrics,
    promptChars: codePoints(input.prompt),
    outputChars: codePoints(input.output),
  };
  if (input.logPrompts) {
    record.prompt = truncateCodePoints(input.prompt, MAX_LOGGED_TEXT_CHARS);
    record.output = truncateCodePoints(input.output, MAX_LOGGED_TEXT_CHARS);
  }
  return record;
}

/** PipelineError-style `code` ("E_..."), else E_UNEXPECTED: a log line must always say that the request failed. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E_[A-Z0-9_]+$/.test(code) ? code : "E_UNEXPECTED";
}

function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function truncateCodePoints(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = 0;
  let n = 0;
  for (const ch of text) {
    if (n++ === max) break;
    end += ch.length;
  }
  return text.slice(0, end);
}

/** Every string in `value` redacted (before serializing: a secret with `"` or `\` would not match its JSON-escaped form). */
function redactStrings<T>(value: T, env: NodeJS.ProcessEnv): T {
  if (typeof value === "string") return redact(value, env) as T;
  if (Array.isArray(value)) return value.map((v) => redactStrings(v, env)) as T;
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactStrings(v, env)])) as T;
  }
  return value;
}

/** Pure: the record as one JSON line (with "\n"), secrets redacted. */
export function serializeMetricsRecord(record: MetricsRecord, env: NodeJS.ProcessEnv = process.env): string {
  return `${JSON.stringify(redactStrings(record, env))}\n`;
}

/**
 * Appends the record to `file` (JSON Lines) as one line, creating parent folders.
 *
 * Concurrent `ai-tools run` processes share one log, so each line goes out in a single appendFile call: the file is
 * opened O_APPEND and a buffer under 512 KiB is written by one write(2). On Linux local filesystems (ext4, xfs, btrfs,
 * tmpfs) such a write moves to the end of the file and copies the data under the inode lock, so lines from different
 * writers never interleave; PIPE_BUF (4 KiB) bounds atomicity only for pipes and FIFOs, not regular files. Not so on
 * NFS (O_APPEND is emulated client-side): keep the log on a local disk. Lines that would need a second write() are
 * refused rather than risk interleaving.
 * @throws RangeError when the line is over MAX_RECORD_LINE_BYTES (only possible with unbounded caller text).
 */
export async function appendMetricsRecord(file: string, record: MetricsRecord, options: { env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  const line = Buffer.from(serializeMetricsRecord(record, options.env ?? process.env), "utf8");
  if (line.length > MAX_RECORD_LINE_BYTES) {
    throw new RangeError(`metrics record is ${line.length} bytes, over the ${MAX_RECORD_LINE_BYTES} that one write() appends`);
  }
  await mkdir(dirname(file), { recursive: true });
  await appendFile(file, line, { flag: "a" });
}
