/**
 * Latency and time to first token over time, per model and engine version, from the records of a metrics log, in
 * bounded memory. Records fall into time buckets aligned to the epoch; whenever the log spans more than
 * MAX_TIME_BUCKETS of them, the width grows to the next of 1 min, 5 min, 15 min, 1 h, 3 h, 6 h, 12 h, 1 d, 7 d, 28 d
 * (then x4 each time) and the buckets are merged exactly (each width is a multiple of the one before, and the quantile
 * sketches merge). So memory depends on the number of series, never on the number of lines or the time span. Pure: the
 * caller streams the log (pipeline/metrics/summary.ts does, in the same pass as the summary).
 */
import type { MetricsRecord } from "../metrics/record.js";
import { createSketch, type QuantileSketch } from "../metrics/sketch.js";

export const MAX_TIME_BUCKETS = 60;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Each a whole multiple of the one before, so a bucket always falls into exactly one wider bucket. */
const BUCKET_LADDER_MS = [MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY, 28 * DAY];

/** The bucket width after `width`: the next step of the ladder, then four times wider each time. */
export function nextBucketWidth(width: number): number {
  return BUCKET_LADDER_MS.find((w) => w > width) ?? width * 4;
}

export interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
}

export interface TimelinePoint {
  /** Start of the bucket, ISO 8601 UTC. */
  start: string;
  requests: number;
  /** Requests whose exitStatus is not "ok". */
  errors: number;
  /** totalMs of the successful requests; null when none recorded one. */
  latencyMs: Quantiles | null;
  timeToFirstTokenMs: Quantiles | null;
  /** The largest value of any request in the bucket (a peak is a maximum); null when none recorded one. */
  peakRssBytes: number | null;
  gpuMemoryBytes: number | null;
}

export interface TimelineSeries {
  /** As `metrics summary` names it: name@version (name alone without a version). */
  model: string;
  engine: string;
  /** The engine's version as the record has it (e.g. "build 1590 (d3ebd7c)"); null when it reported none. */
  engineVersion: string | null;
  /** In time order; buckets without a request are left out. */
  points: TimelinePoint[];
}

export interface Timeline {
  bucketMs: number;
  /** Sorted by model, engine, then when each engine version first served (then by version). */
  series: TimelineSeries[];
  /** Records left out because their `time` is missing or not a date. */
  untimed: number;
}

/** What a time series reads of a record (a line the summary accepted: `time` is not checked there). */
export type TimedRecord = Pick<MetricsRecord, "model" | "engine" | "exitStatus" | "metrics"> & { readonly time?: unknown };

interface Bucket {
  requests: number;
  errors: number;
  latency: QuantileSketch;
  ttft: QuantileSketch;
  peakRss: number | null;
  gpuMemory: number | null;
}

interface Series {
  /** name@version, as the summary names it. */
  model: string;
  modelVersion: string | null;
  engine: string;
  engineVersion: string | null;
  buckets: Map<number, Bucket>;
}

const newBucket = (): Bucket => ({ requests: 0, errors: 0, latency: createSketch(), ttft: createSketch(), peakRss: null, gpuMemory: null });
const larger = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.max(a, b));
const usable = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

/**
 * The time of an ISO 8601 string in ms, parsing only when the minute changes: a log's records come in time order, about
 * 60 a minute at one request a second, and every bucket is whole minutes. (Date.parse on every line was a third of the
 * time series' cost on a million lines.)
 */
class MinuteClock {
  private prefix = "";
  private minuteMs = Number.NaN;

  /** ms since the epoch, truncated to the minute where the string is UTC with seconds ("...T12:34:56[.fff]Z"). */
  parse(text: string): number {
    if (text.length >= 20 && text.charCodeAt(text.length - 1) === 90 /* Z */ && text.charCodeAt(16) === 58 /* : */) {
      if (text.startsWith(this.prefix) && this.prefix !== "") return this.minuteMs;
      const ms = Date.parse(text);
      if (!Number.isFinite(ms)) return ms;
      this.prefix = text.slice(0, 16);
      this.minuteMs = Math.floor(ms / MINUTE) * MINUTE;
      return this.minuteMs;
    }
    return Date.parse(text);
  }
}

export class MetricsTimeline {
  private width = BUCKET_LADDER_MS[0]!;
  private first = Infinity;
  private last = -Infinity;
  private untimed = 0;
  /** By model name, then a short list (versions, engines): no key string built per record. */
  private readonly byName = new Map<string, Series[]>();
  private readonly clock = new MinuteClock();

  constructor(private readonly maxBuckets = MAX_TIME_BUCKETS) {}

  add(record: TimedRecord): void {
    const time = typeof record.time === "string" ? this.clock.parse(record.time) : Number.NaN;
    if (!Number.isFinite(time)) {
      this.untimed++;
      return;
    }
    let index = Math.floor(time / this.width);
    if (index < this.first || index > this.last) {
      this.first = Math.min(this.first, index);
      this.last = Math.max(this.last, index);
      if (this.last - this.first + 1 > this.maxBuckets) {
        this.widen();
        index = Math.floor(time / this.width);
      }
    }
    const series = this.seriesOf(record);
    let bucket = series.buckets.get(index);
    if (!bucket) series.buckets.set(index, (bucket = newBucket()));
    bucket.requests++;
    if (record.exitStatus !== "ok") {
      bucket.errors++;
      return;
    }
    const m = record.metrics;
    if (!m) return;
    if (usable(m.totalMs)) bucket.latency.accept(m.totalMs);
    if (usable(m.timeToFirstTokenMs)) bucket.ttft.accept(m.timeToFirstTokenMs);
    if (usable(m.peakRssBytes)) bucket.peakRss = larger(bucket.peakRss, m.peakRssBytes);
    if (usable(m.gpuMemoryBytes)) bucket.gpuMemory = larger(bucket.gpuMemory, m.gpuMemoryBytes);
  }

  private seriesOf(record: TimedRecord): Series {
    const { name, version } = record.model;
    const engineVersion = record.engine.version ?? null;
    let list = this.byName.get(name);
    if (!list) this.byName.set(name, (list = []));
    for (const s of list) if (s.modelVersion === version && s.engine === record.engine.name && s.engineVersion === engineVersion) return s;
    const series: Series = { model: version ? `${name}@${version}` : name, modelVersion: version, engine: record.engine.name, engineVersion, buckets: new Map() };
    list.push(series);
    return series;
  }

  /** Wider buckets until the span fits; every bucket merged into the one that now holds its time. */
  private widen(): void {
    const old = this.width;
    while (Math.floor(this.last * old / this.width) - Math.floor(this.first * old / this.width) + 1 > this.maxBuckets) this.width = nextBucketWidth(this.width);
    const factor = this.width / old;
    this.first = Math.floor(this.first / factor);
    this.last = Math.floor(this.last / factor);
    for (const series of this.allSeries()) {
      const merged = new Map<number, Bucket>();
      for (const [index, bucket] of series.buckets) {
        const target = Math.floor(index / factor);
        const into = merged.get(target);
        if (!into) merged.set(target, bucket);
        else {
          into.requests += bucket.requests;
          into.errors += bucket.errors;
          into.latency.merge(bucket.latency);
          into.ttft.merge(bucket.ttft);
          into.peakRss = larger(into.peakRss, bucket.peakRss);
          into.gpuMemory = larger(into.gpuMemory, bucket.gpuMemory);
        }
      }
      series.buckets = merged;
    }
  }

  private allSeries(): Series[] {
    return [...this.byName.values()].flat();
  }

  result(): Timeline {
    const quantiles = (s: QuantileSketch): Quantiles | null =>
      s.count === 0 ? null : { p50: s.getValueAtQuantile(0.5), p95: s.getValueAtQuantile(0.95), p99: s.getValueAtQuantile(0.99) };
    const firstBucket = (s: Series) => Math.min(...s.buckets.keys());
    const series = this.allSeries()
      .sort((a, b) => cmp(a.model, b.model) || cmp(a.engine, b.engine) || firstBucket(a) - firstBucket(b) || cmp(a.engineVersion ?? "", b.engineVersion ?? ""))
      .map(
        (s): TimelineSeries => ({
          model: s.model,
          engine: s.engine,
          engineVersion: s.engineVersion,
          points: [...s.buckets]
            .sort(([a], [b]) => a - b)
            .map(([index, b]) => ({
              start: new Date(index * this.width).toISOString(),
              requests: b.requests,
              errors: b.errors,
              latencyMs: quantiles(b.latency),
              timeToFirstTokenMs: quantiles(b.ttft),
              peakRssBytes: b.peakRss,
              gpuMemoryBytes: b.gpuMemory,
            })),
        }),
      );
    return { bucketMs: this.width, series, untimed: this.untimed };
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** "1 min", "15 min", "3 h", "1 d", "28 d": the width as the charts label it. */
export function formatBucketWidth(ms: number): string {
  if (ms % DAY === 0) return `${ms / DAY} d`;
  if (ms % HOUR === 0) return `${ms / HOUR} h`;
  return `${ms / MINUTE} min`;
}
