/**
 * Per-model summary of a metrics log: requests, errors, and mean/p50/p95/p99 of the latency, speed and memory
 * metrics. The log is read as a stream, one line at a time, into quantile sketches: memory depends on the number of
 * models, not of lines, so a log of millions of requests summarizes in a few tens of MB. Lines that are not a
 * version-1 record are counted and located, never fatal: one torn or hand-edited line must not hide the rest.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { METRICS_SCHEMA_VERSION, type MetricsRecord } from "./record.js";
import { createSketch, type QuantileSketch } from "./sketch.js";

export const SUMMARY_METRICS = ["timeToFirstTokenMs", "totalMs", "generationTokensPerSecond", "promptTokensPerSecond", "peakRssBytes"] as const;
export type SummaryMetric = (typeof SUMMARY_METRICS)[number];

/** Quantiles are within SKETCH_RELATIVE_ACCURACY (1%) of a value at that rank; count, mean, min and max are exact. */
export interface MetricStats {
  count: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p95: number;
  p99: number;
}

export interface ModelSummary {
  /** name@version (name alone when the record has no version). */
  model: string;
  engine: string;
  requests: number;
  /** Requests whose exitStatus is not "ok"; errorCodes breaks them down. */
  errors: number;
  errorCodes: Record<string, number>;
  /** Over successful requests only (a timed-out request says nothing about speed); null: no value recorded. */
  metrics: Record<SummaryMetric, MetricStats | null>;
}

export interface MetricsSummary {
  /** Non-empty lines read. */
  lines: number;
  records: number;
  malformed: { count: number; /** The first MAX_MALFORMED_REPORTED, in file order. */ first: { line: number; reason: string }[] };
  /** Sorted by model, then engine. */
  models: ModelSummary[];
}

export const MAX_MALFORMED_REPORTED = 10;

/** The fields the summary reads; the rest of a record is not checked (it may grow within schema version 1). */
type SummaryInput = Pick<MetricsRecord, "model" | "engine" | "exitStatus" | "metrics">;

/** A line the summary accepted: the fields it checked, and the rest of the record unchecked. */
export type AcceptedRecord = SummaryInput & { readonly [field: string]: unknown };

export interface AccumulatorOptions {
  /** Records for which this is false are left out of the summary (not counted as malformed either). */
  include?: (record: AcceptedRecord) => boolean;
  /** Each record the summary counted, after it did: for readers that need more from the same pass (time series). */
  onRecord?: (record: AcceptedRecord) => void;
}

interface Group {
  model: string;
  engine: string;
  requests: number;
  errors: number;
  errorCodes: Record<string, number>;
  sketches: Record<SummaryMetric, QuantileSketch>;
}

/** Pure core of the summary: feed it lines or records, then read result(). */
export class MetricsAccumulator {
  private readonly groups = new Map<string, Group>();
  private lines = 0;
  private records = 0;
  private malformedCount = 0;
  private readonly malformedFirst: { line: number; reason: string }[] = [];

  constructor(private readonly options: AccumulatorOptions = {}) {}

  /** One line of the log; `lineNumber` is 1-based, for the malformed report. Blank lines are skipped. */
  addLine(text: string, lineNumber: number): void {
    if (text.trim() === "") return;
    this.lines++;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return this.malformed(lineNumber, "not JSON");
    }
    const problem = checkRecord(value);
    if (problem) return this.malformed(lineNumber, problem);
    this.addRecord(value as AcceptedRecord);
  }

  addRecord(record: SummaryInput): void {
    if (this.options.include && !this.options.include(record)) return;
    this.tally(record);
    this.options.onRecord?.(record);
  }

  private tally(record: SummaryInput): void {
    this.records++;
    const model = record.model.version ? `${record.model.name}@${record.model.version}` : record.model.name;
    const key = `${model}\u0000${record.engine.name}`;
    let group = this.groups.get(key);
    if (!group) {
      const sketches = Object.fromEntries(SUMMARY_METRICS.map((m) => [m, createSketch()])) as Record<SummaryMetric, QuantileSketch>;
      group = { model, engine: record.engine.name, requests: 0, errors: 0, errorCodes: {}, sketches };
      this.groups.set(key, group);
    }
    group.requests++;
    if (record.exitStatus !== "ok") {
      group.errors++;
      group.errorCodes[record.exitStatus] = (group.errorCodes[record.exitStatus] ?? 0) + 1;
      return;
    }
    const metrics = record.metrics;
    if (!metrics) return;
    for (const name of SUMMARY_METRICS) {
      const value = metrics[name];
      // Infinity (1 token in 0 ms) is null once in JSON; left out here too for records passed in memory.
      if (typeof value === "number" && Number.isFinite(value) && value >= 0) group.sketches[name].accept(value);
    }
  }

  result(): MetricsSummary {
    const models = [...this.groups.values()]
      .sort((a, b) => (a.model === b.model ? cmp(a.engine, b.engine) : cmp(a.model, b.model)))
      .map(
        (g): ModelSummary => ({
          model: g.model,
          engine: g.engine,
          requests: g.requests,
          errors: g.errors,
          errorCodes: { ...g.errorCodes },
          metrics: Object.fromEntries(SUMMARY_METRICS.map((m) => [m, stats(g.sketches[m])])) as Record<SummaryMetric, MetricStats | null>,
        }),
      );
    return {
      lines: this.lines,
      records: this.records,
      malformed: { count: this.malformedCount, first: [...this.malformedFirst] },
      models,
    };
  }

  private malformed(line: number, reason: string): void {
    this.malformedCount++;
    if (this.malformedFirst.length < MAX_MALFORMED_REPORTED) this.malformedFirst.push({ line, reason });
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function stats(sketch: QuantileSketch): MetricStats | null {
  if (sketch.count === 0) return null;
  return {
    count: sketch.count,
    mean: sketch.sum / sketch.count,
    min: sketch.min,
    max: sketch.max,
    p50: sketch.getValueAtQuantile(0.5),
    p95: sketch.getValueAtQuantile(0.95),
    p99: sketch.getValueAtQuantile(0.99),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Why `value` is not a record the summary can use, or null. Hand-written rather than zod: it runs once per line, and
 * checks only what the summary reads.
 */
function checkRecord(value: unknown): string | null {
  if (!isObject(value)) return "not a JSON object";
  if (value.schemaVersion !== METRICS_SCHEMA_VERSION) return `schemaVersion is not ${METRICS_SCHEMA_VERSION}`;
  const { model, engine, exitStatus, metrics } = value;
  if (!isObject(model) || typeof model.name !== "string" || model.name === "") return "model.name missing";
  if (model.version !== null && typeof model.version !== "string") return "model.version not a string or null";
  if (!isObject(engine) || typeof engine.name !== "string" || engine.name === "") return "engine.name missing";
  if (typeof exitStatus !== "string" || exitStatus === "") return "exitStatus missing";
  if (metrics === null) return null;
  if (!isObject(metrics)) return "metrics not an object or null";
  for (const name of SUMMARY_METRICS) {
    const v = metrics[name];
    if (v !== undefined && v !== null && !(typeof v === "number" && Number.isFinite(v) && v >= 0)) return `metrics.${name} not a number >= 0`;
  }
  return null;
}

/** Pure: the summary of records already in memory (e.g. for a Prometheus textfile of one run). */
export function summarizeRecords(records: Iterable<SummaryInput>): MetricsSummary {
  const acc = new MetricsAccumulator();
  for (const record of records) acc.addRecord(record);
  return acc.result();
}

/**
 * Streams `file` line by line (never whole) into a summary.
 * @throws the read error (ENOENT, ...) or, when `signal` aborts, an AbortError.
 */
export async function summarizeMetricsLog(file: string, options: { signal?: AbortSignal } & AccumulatorOptions = {}): Promise<MetricsSummary> {
  options.signal?.throwIfAborted();
  const input = createReadStream(file, { signal: options.signal });
  const lines = createInterface({ input, crlfDelay: Infinity });
  const acc = new MetricsAccumulator(options);
  let lineNumber = 0;
  // Synchronous 'line' handling, not `for await`: the fastest way through readline, and nothing here awaits.
  lines.on("line", (line) => acc.addLine(line, ++lineNumber));
  await new Promise<void>((resolve, reject) => {
    // Read errors (ENOENT, abort) reach the stream and, forwarded, the interface: without a listener they would throw.
    input.once("error", reject);
    lines.once("error", reject);
    lines.once("close", resolve);
  });
  return acc.result();
}

const MiB = 2 ** 20;
const METRIC_LABELS: Record<SummaryMetric, { label: string; scale: number }> = {
  timeToFirstTokenMs: { label: "time to first token (ms)", scale: 1 },
  totalMs: { label: "total (ms)", scale: 1 },
  generationTokensPerSecond: { label: "generation (tokens/s)", scale: 1 },
  promptTokensPerSecond: { label: "prompt (tokens/s)", scale: 1 },
  peakRssBytes: { label: "peak RSS (MiB)", scale: 1 / MiB },
};

function num(x: number): string {
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** Columns padded to width; the columns in `right` (numbers, and their headers) right-aligned. */
function table(header: string[], rows: string[][], right: readonly number[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** Pure: the summary as text for a terminal (JSON output is the summary object itself: it holds only plain data). */
export function formatSummaryTable(summary: MetricsSummary): string {
  const out: string[] = [];
  let head = `${summary.records} records`;
  if (summary.malformed.count > 0) {
    const at = summary.malformed.first.map((m) => `${m.line} (${m.reason})`).join(", ");
    head += `, ${summary.malformed.count} malformed line${summary.malformed.count === 1 ? "" : "s"}: ${at}${summary.malformed.count > summary.malformed.first.length ? ", ..." : ""}`;
  }
  out.push(head);
  if (summary.models.length === 0) return `${out.join("\n")}\n`;
  const errorText = (m: ModelSummary) =>
    Object.entries(m.errorCodes)
      .sort(([, a], [, b]) => b - a)
      .map(([code, n]) => `${code} ${n}`)
      .join(", ");
  out.push("", table(["model", "engine", "requests", "errors", "error codes"], summary.models.map((m) => [m.model, m.engine, String(m.requests), String(m.errors), errorText(m)]), [2, 3]));
  const rows: string[][] = [];
  for (const m of summary.models) {
    for (const name of SUMMARY_METRICS) {
      const s = m.metrics[name];
      if (!s) continue;
      const { label, scale } = METRIC_LABELS[name];
      rows.push([m.model, m.engine, label, String(s.count), num(s.mean * scale), num(s.p50 * scale), num(s.p95 * scale), num(s.p99 * scale)]);
    }
  }
  if (rows.length > 0) out.push("", table(["model", "engine", "metric", "n", "mean", "p50", "p95", "p99"], rows, [3, 4, 5, 6, 7]));
  return `${out.join("\n")}\n`;
}
