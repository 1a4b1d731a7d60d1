/**
 * The engine's own timings, from its two sources: the `llama_print_timings` block `main` prints on stderr, and the
 * `-ld DIR` YAML log. Pure: no I/O. Both give the same `Timings` shape.
 *
 * The engine prints `inf`, `nan` and `-nan` (e.g. `-n 0/1`: eval `0.00 ms / 1 runs`, `inf tokens per second`) and,
 * rarely, negative times. A non-finite value becomes `null` and a negative one is kept, and each is named in
 * `warnings`: no field that users compare ever holds a silent NaN. A block with lines missing (the engine crashed
 * or was killed before printing it) is a `BenchError` E_BENCH_NO_TIMINGS that names the missing lines.
 */
import { isMap, isScalar, isSeq, parseDocument, type Document, type Node } from "yaml";
import { PipelineError } from "../core/errors.js";
import type { BenchErrorCode } from "./errors.js";

export type { BenchErrorCode } from "./errors.js";

export class BenchError extends PipelineError<BenchErrorCode> {
  /** E_BENCH_NO_TIMINGS: the timings lines (`load`, `sample`, `prompt eval`, `eval`, `total`) or log keys that were absent or unreadable. */
  readonly missing: readonly string[];
  /** Schema errors: the key paths of the problems, e.g. `runs[0].timings.evalMs`, `[1].n_gen`. */
  readonly paths: readonly string[];

  constructor(
    code: BenchErrorCode,
    message: string,
    options: { missing?: readonly string[]; paths?: readonly string[]; details?: readonly string[]; cause?: unknown } = {},
  ) {
    super(code, message, { cause: options.cause, details: options.details });
    this.missing = options.missing ?? [];
    this.paths = options.paths ?? [];
  }
}

/** A key path as users read it: `runs[0].timings.evalMs`, `[1].n_gen`; "" for the document itself. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** A zod error (or anything with `issues`) as a BenchError naming every key path. */
export function schemaError(
  code: BenchErrorCode,
  what: string,
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): BenchError {
  const lines = issues.map((issue) => {
    const path = formatKeyPath(issue.path);
    return `${path === "" ? "(document)" : path}: ${issue.message}`;
  });
  const message = lines.length === 1 ? `${what} is invalid: ${lines[0]}` : `${what} is invalid (${lines.length} problems): ${lines.slice(0, 3).join("; ")}${lines.length > 3 ? "; ..." : ""}`;
  return new BenchError(code, message, { paths: issues.map((issue) => formatKeyPath(issue.path)), details: lines.length === 1 ? [] : lines });
}

export interface Timings {
  /** Model load time, ms. */
  loadMs: number | null;
  /** Sampling time, ms, over `sampleRuns` sampled tokens. */
  sampleMs: number | null;
  sampleRuns: number;
  /** Prompt processing time, ms, over `promptTokens` tokens. */
  promptEvalMs: number | null;
  promptTokens: number;
  /** Generation time, ms, over `evalRuns` tokens: n - 1 (the first token comes from prompt eval), at least 1. */
  evalMs: number | null;
  evalRuns: number;
  /** Wall time from context creation to the end (not in the -ld YAML log: null there). */
  totalMs: number | null;
  promptTokensPerSecond: number | null;
  evalTokensPerSecond: number | null;
  /** Generation ms per token (the eval line's "ms per token"). */
  msPerToken: number | null;
  /** Every value that is null (non-finite or absent), negative, or otherwise suspicious, in words. */
  warnings: string[];
}

/** A number as the engine's printf writes it, `inf`/`nan`/`-nan` included; undefined when it is no number at all. */
function engineNumber(text: string): number | undefined {
  if (/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/.test(text)) return Number(text);
  if (/^[+-]?(?:inf(?:inity)?)$/i.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (/^[+-]?nan(?:\([^)]*\))?$/i.test(text)) return Number.NaN;
  return undefined;
}

/** A field value: non-finite -> null with a warning, negative -> kept with a warning. */
function checked(value: number, raw: string, label: string, warnings: string[]): number | null {
  if (!Number.isFinite(value)) {
    warnings.push(`${label} is ${raw}: recorded as null`);
    return null;
  }
  if (value < 0) warnings.push(`${label} is negative (${raw}): kept as reported`);
  return value;
}

const TIMING_LINES = ["load", "sample", "prompt eval", "eval", "total"] as const;
type TimingLine = (typeof TIMING_LINES)[number];
const WITH_COUNT: ReadonlySet<TimingLine> = new Set(["sample", "prompt eval", "eval"]);

interface LineValues {
  ms: number;
  msRaw: string;
  count?: number;
  perTokenMs?: number;
  perTokenRaw?: string;
  perSecond?: number;
  perSecondRaw?: string;
}

const LINE_KIND = /llama_print_timings:\s+(load|sample|prompt eval|eval|total) time\b(.*)$/;
const LINE_VALUES = /^\s*=\s*(\S+) ms(?:\s*\/\s*(\S+) (?:runs|tokens)\s*\(\s*(\S+) ms per token,\s*(\S+) tokens per second\))?\s*$/;

function parseLineValues(kind: TimingLine, rest: string): LineValues | undefined {
  const m = LINE_VALUES.exec(rest);
  if (!m) return undefined;
  const ms = engineNumber(m[1]!);
  if (ms === undefined) return undefined;
  if (m[2] === undefined) return WITH_COUNT.has(kind) ? undefined : { ms, msRaw: m[1]! };
  if (!/^-?\d+$/.test(m[2])) return undefined;
  const perTokenMs = engineNumber(m[3]!);
  const perSecond = engineNumber(m[4]!);
  if (perTokenMs === undefined || perSecond === undefined) return undefined;
  return { ms, msRaw: m[1]!, count: Number(m[2]), perTokenMs, perTokenRaw: m[3]!, perSecond, perSecondRaw: m[4]! };
}

/**
 * The timings block from `main`'s stderr (or stdout and stderr together): `\r\n`, other log lines in between and
 * text before `llama_print_timings:` on the same line are fine. Where the output holds several blocks, the last
 * value of each line is used (and a warning says so).
 * @throws BenchError E_BENCH_NO_TIMINGS when a line is missing or unreadable; `missing` names them.
 */
export function parseTimings(stderr: string): Timings {
  const found = new Map<TimingLine, { values: LineValues | undefined; line: string }>();
  const seen = new Map<TimingLine, number>();
  for (const line of stderr.split(/\r\n|\r|\n/)) {
    const m = LINE_KIND.exec(line);
    if (!m) continue;
    const kind = m[1] as TimingLine;
    seen.set(kind, (seen.get(kind) ?? 0) + 1);
    found.set(kind, { values: parseLineValues(kind, m[2]!), line: line.trim() });
  }

  const absent = TIMING_LINES.filter((kind) => !found.has(kind));
  const unreadable = TIMING_LINES.filter((kind) => found.has(kind) && found.get(kind)!.values === undefined);
  if (absent.length === TIMING_LINES.length) {
    throw new BenchError(
      "E_BENCH_NO_TIMINGS",
      "no llama_print_timings block in the engine's output: it probably exited (crashed or was killed) before printing it",
      { missing: [...TIMING_LINES] },
    );
  }
  if (absent.length > 0 || unreadable.length > 0) {
    const parts: string[] = [];
    if (absent.length) parts.push(`missing the ${absent.map((k) => `"${k} time"`).join(", ")} line${absent.length > 1 ? "s" : ""}`);
    if (unreadable.length) parts.push(`cannot read the ${unreadable.map((k) => `"${k} time"`).join(", ")} line${unreadable.length > 1 ? "s" : ""}`);
    throw new BenchError("E_BENCH_NO_TIMINGS", `incomplete llama_print_timings block: ${parts.join("; ")} (did the engine crash mid-run?)`, {
      missing: [...absent, ...unreadable],
      details: unreadable.map((k) => `unreadable: ${found.get(k)!.line}`),
    });
  }

  const warnings: string[] = [];
  const blocks = Math.max(...seen.values());
  if (blocks > 1) warnings.push(`the output holds ${blocks} timings blocks: the last value of each line is used`);
  const v = (kind: TimingLine) => found.get(kind)!.values!;
  const load = v("load");
  const sample = v("sample");
  const prompt = v("prompt eval");
  const evalLine = v("eval");
  const total = v("total");

  const timings: Timings = {
    loadMs: checked(load.ms, load.msRaw, "load time", warnings),
    sampleMs: checked(sample.ms, sample.msRaw, "sample time", warnings),
    sampleRuns: sample.count!,
    promptEvalMs: checked(prompt.ms, prompt.msRaw, "prompt eval time", warnings),
    promptTokens: prompt.count!,
    evalMs: checked(evalLine.ms, evalLine.msRaw, "eval time", warnings),
    evalRuns: evalLine.count!,
    totalMs: checked(total.ms, total.msRaw, "total time", warnings),
    promptTokensPerSecond: checked(prompt.perSecond!, prompt.perSecondRaw!, "prompt eval tokens per second", warnings),
    evalTokensPerSecond: checked(evalLine.perSecond!, evalLine.perSecondRaw!, "eval tokens per second", warnings),
    msPerToken: checked(evalLine.perTokenMs!, evalLine.perTokenRaw!, "eval ms per token", warnings),
    warnings,
  };
  addHints(timings);
  return timings;
}

/** Explanations for the known causes of odd values. */
function addHints(t: Timings): void {
  if (t.evalTokensPerSecond === null && t.evalMs === 0 && t.evalRuns <= 1) {
    t.warnings.push("no generated token was timed (-n 0 or 1: the engine reports 1 eval run in 0 ms); use -n 2 or more to measure generation");
  }
}

// ---- the -ld YAML log -----------------------------------------------------------------------------------------------

export interface LogYaml {
  timings: Timings;
  /** Always a string: an all-digit hash would otherwise read as a number (the text as written is kept). */
  buildCommit: string | null;
  buildNumber: number | null;
  threads: number | null;
  seed: number | null;
  modelDesc: string | null;
  /** The model path as given with -m. */
  model: string | null;
  nPredict: number | null;
  ctxSize: number | null;
  temp: number | null;
  topP: number | null;
  /** GiB; -1 = all free VRAM. */
  vramBudget: number | null;
  /** How many prompt tokens (the length of prompt_tokens). */
  promptTokenCount: number | null;
  /** How many output tokens (the length of output_tokens). */
  outputTokenCount: number | null;
}

const LOG_TIMING_KEYS = ["t_load_us", "t_sample_us", "t_p_eval_us", "t_eval_us", "n_sample", "n_p_eval", "n_eval"] as const;
const LOG_SCALAR_KEYS = [
  ...LOG_TIMING_KEYS,
  "ts_p_eval",
  "ts_eval",
  "ts_sample",
  "mst_eval",
  "mst_p_eval",
  "mst_sample",
  "build_commit",
  "build_number",
  "threads",
  "seed",
  "model_desc",
  "model",
  "n_predict",
  "ctx_size",
  "temp",
  "top_p",
  "vram_budget",
] as const;
/** One-line flow sequences whose length is all we need: counted, not parsed. */
const LOG_COUNTED_KEYS = ["prompt_tokens", "output_tokens"] as const;

type LogDoc = Document.Parsed;

/** The last value of each top-level key (the log repeats `cpu_has_blas`; later wins, as in toJS). */
function topLevel(doc: LogDoc): Map<string, Node | null> | undefined {
  if (!isMap(doc.contents)) return undefined;
  const out = new Map<string, Node | null>();
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    out.set(key, (pair.value as Node | null) ?? null);
  }
  return out;
}

/**
 * The `-ld DIR` YAML log of one run. Parsed with `uniqueKeys: false` (the engine writes `cpu_has_blas` twice). The
 * log writes generated text unquoted (`output: ...`), which can be invalid YAML: then only the scalar keys read here
 * are parsed, line by line, and a warning says so. Times are in microseconds there and converted to ms.
 * @throws BenchError E_BENCH_LOG_INVALID (not YAML, not a mapping), E_BENCH_NO_TIMINGS (timing keys missing or unreadable).
 */
export function parseLogYaml(text: string): LogYaml {
  const warnings: string[] = [];
  // Only the top-level scalar lines this reads are parsed: the log's generated text and
  // token lists are most of the file (tens of ms of YAML parsing per run at -n 2500, on
  // the benchmark's clock) and can be invalid YAML. The whole document is the fallback.
  const wanted = new Set<string>(LOG_SCALAR_KEYS);
  const kept = text.split(/\r\n|\r|\n/).filter((line) => {
    const m = /^([A-Za-z_][\w-]*):(?:\s|$)/.exec(line);
    return m !== null && wanted.has(m[1]!);
  });
  let doc = parseDocument(kept.join("\n"), { uniqueKeys: false, prettyErrors: false });
  if (kept.length === 0 || doc.errors.length > 0) {
    doc = parseDocument(text, { uniqueKeys: false, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new BenchError("E_BENCH_LOG_INVALID", `the -ld YAML log is not valid YAML: ${doc.errors[0]!.message.split("\n")[0]!}`, { cause: doc.errors[0] });
    }
  } else if (/^output: /m.test(text) && parseDocument(text.split(/\r\n|\r|\n/).filter((l) => l.startsWith("output: ")).join("\n")).errors.length > 0) {
    // The engine writes generated text unquoted: note it, since other readers of the log will trip on it.
    warnings.push("the YAML log does not parse as a whole (its unquoted generated text); its timing and build keys were read line by line");
  }
  const map = topLevel(doc);
  if (map === undefined) throw new BenchError("E_BENCH_LOG_INVALID", "the -ld YAML log is not a YAML mapping");

  const scalar = (key: string) => {
    const node = map.get(key);
    return isScalar(node) ? node : undefined;
  };
  /** A number or a printf'd non-finite; undefined when absent or not a number; raw is the text as written. */
  const num = (key: string): { value: number; raw: string } | undefined => {
    const node = scalar(key);
    if (node === undefined) return undefined;
    if (typeof node.value === "number") return { value: node.value, raw: node.source ?? String(node.value) };
    if (typeof node.value === "string") {
      const value = engineNumber(node.value.trim());
      return value === undefined ? undefined : { value, raw: node.value.trim() };
    }
    return undefined;
  };
  const optionalNumber = (key: string): number | null => {
    const n = num(key);
    return n !== undefined && Number.isFinite(n.value) ? n.value : null;
  };
  const optionalString = (key: string): string | null => {
    const node = scalar(key);
    if (node === undefined || node.value === null || node.value === undefined) return null;
    return typeof node.value === "string" ? node.value : (node.source ?? String(node.value));
  };
  const seqLength = (key: (typeof LOG_COUNTED_KEYS)[number]): number | null => {
    const line = text.split(/\r\n|\r|\n/).find((l) => l.startsWith(`${key}:`));
    const list = line && /^[\w]+:\s*\[(.*)\]\s*$/.exec(line);
    if (!list) return null;
    return list[1]!.trim() === "" ? 0 : list[1]!.split(",").length;
  };

  const missing = LOG_TIMING_KEYS.filter((key) => {
    const n = num(key);
    return n === undefined || (key.startsWith("n_") && !Number.isInteger(n.value));
  });
  if (missing.length > 0) {
    throw new BenchError(
      "E_BENCH_NO_TIMINGS",
      missing.length === LOG_TIMING_KEYS.length
        ? "the -ld YAML log has no timings (the engine probably exited before writing them)"
        : `the -ld YAML log lacks timing key${missing.length > 1 ? "s" : ""} ${missing.join(", ")} (missing or not a number)`,
      { missing },
    );
  }
  const get = (key: (typeof LOG_TIMING_KEYS)[number]) => num(key)!;
  const usToMs = (key: (typeof LOG_TIMING_KEYS)[number], label: string): number | null => {
    const { value, raw } = get(key);
    return checked(value / 1000, raw, label, warnings);
  };
  /** ts_* / mst_* as logged, else derived from the time and count. */
  const rate = (key: string, derived: number, label: string): number | null => {
    const n = num(key);
    if (n !== undefined) return checked(n.value, n.raw, label, warnings);
    return checked(derived, String(derived), label, warnings);
  };

  const nSample = get("n_sample").value;
  const nPromptEval = get("n_p_eval").value;
  const nEval = get("n_eval").value;
  const tPromptEvalUs = get("t_p_eval_us").value;
  const tEvalUs = get("t_eval_us").value;
  const timings: Timings = {
    loadMs: usToMs("t_load_us", "load time"),
    sampleMs: usToMs("t_sample_us", "sample time"),
    sampleRuns: nSample,
    promptEvalMs: usToMs("t_p_eval_us", "prompt eval time"),
    promptTokens: nPromptEval,
    evalMs: usToMs("t_eval_us", "eval time"),
    evalRuns: nEval,
    totalMs: null,
    promptTokensPerSecond: rate("ts_p_eval", (1e6 * nPromptEval) / tPromptEvalUs, "prompt eval tokens per second"),
    evalTokensPerSecond: rate("ts_eval", (1e6 * nEval) / tEvalUs, "eval tokens per second"),
    msPerToken: rate("mst_eval", tEvalUs / 1000 / nEval, "eval ms per token"),
    warnings,
  };
  warnings.push("total time is not in the -ld YAML log: recorded as null");
  addHints(timings);

  const buildNumber = optionalNumber("build_number");
  return {
    timings,
    buildCommit: optionalString("build_commit"),
    buildNumber: buildNumber !== null && Number.isInteger(buildNumber) ? buildNumber : null,
    threads: optionalNumber("threads"),
    seed: optionalNumber("seed"),
    modelDesc: optionalString("model_desc"),
    model: optionalString("model"),
    nPredict: optionalNumber("n_predict"),
    ctxSize: optionalNumber("ctx_size"),
    temp: optionalNumber("temp"),
    topP: optionalNumber("top_p"),
    vramBudget: optionalNumber("vram_budget"),
    promptTokenCount: seqLength("prompt_tokens"),
    outputTokenCount: seqLength("output_tokens"),
  };
}
