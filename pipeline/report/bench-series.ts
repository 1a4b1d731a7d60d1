/**
 * Bench results as the report shows them: one group per model and host class (results are comparable only within a
 * host class), in time order, each result with its spread over the measured runs and the release gate it had to pass
 * against the previous result of the same backend (the gate itself is pipeline/model-bench/compare.ts). Pure: no I/O.
 */
import { compareResults, type Verdict } from "../model-bench/compare.js";
import type { Aggregate, BenchResult } from "../model-bench/result.js";

/** Where a result was found: a model folder, a release manifest, a development-key manifest under build/, or --baseline. */
export type BenchSourceKind = "model" | "release" | "development" | "baseline";

export interface FoundBench {
  result: BenchResult;
  kind: BenchSourceKind;
  /** The manifest's version (manifests/<model>/<version>/bench.json), where the path says it. */
  version: string | null;
  /** Every path (relative to the workspace where inside it) holding these exact bytes. */
  paths: string[];
}

/** The throughput metrics charted, with the bench.json aggregate each comes from. */
export const THROUGHPUT_METRICS = [
  { id: "generation", label: "generation", aggregate: "evalTokensPerSecond" },
  { id: "prompt", label: "prompt processing", aggregate: "promptTokensPerSecond" },
  { id: "end-to-end", label: "end-to-end", aggregate: "endToEndTokensPerSecond" },
] as const;
export type ThroughputMetric = (typeof THROUGHPUT_METRICS)[number]["id"];

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Measured runs with a value. */
  runs: number;
}

export interface GateCheck {
  /** createdAt and label of the result this one was gated against. */
  baselineCreatedAt: string;
  baselineLabel: string;
  comparable: boolean;
  /** Baseline median generation tokens/s x (1 - maxRegressionPercent / 100): below it (and beyond the noise) fails. */
  threshold: number | null;
  failed: boolean;
  /** The generation row's verdict; null when not compared. */
  verdict: Verdict | null;
  /** The gate's one-line verdict, as `bench --compare` prints it. */
  summary: string;
}

export interface BenchPoint {
  createdAt: string;
  /** The version where known, else what the source is ("working copy", "baseline"). */
  label: string;
  kind: BenchSourceKind;
  backend: string;
  engineBuild: string;
  paths: string[];
  metrics: Record<ThroughputMetric, Spread | null>;
  peakRssBytes: number | null;
  /** Null for the first result of its backend in the group. */
  gate: GateCheck | null;
}

export interface BenchGroup {
  model: string;
  hostClass: string;
  /** Oldest first. */
  points: BenchPoint[];
}

const KIND_LABEL: Record<BenchSourceKind, string> = { model: "working copy", release: "release", development: "development", baseline: "baseline" };

function spread(a: Aggregate | null): Spread | null {
  return a && { median: a.median, min: a.min, max: a.max, runs: a.samples.length };
}

/** The version where known (marked when a development key signed it: not a release), else where it came from. */
export function pointLabel(found: Pick<FoundBench, "kind" | "version">): string {
  if (found.version === null) return KIND_LABEL[found.kind];
  return found.kind === "development" ? `${found.version} (development key)` : found.version;
}

/** Groups by model and host class (sorted), each oldest first, with the gate against the previous result of the same backend. */
export function groupBenchResults(found: readonly FoundBench[], options: { maxRegressionPercent: number }): BenchGroup[] {
  const groups = new Map<string, FoundBench[]>();
  for (const f of found) {
    const key = `${f.result.model.name}\u0000${f.result.host.hostClass}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  return [...groups.values()]
    .map((members) => {
      const sorted = [...members].sort((a, b) => Date.parse(a.result.createdAt) - Date.parse(b.result.createdAt));
      const previous = new Map<string, FoundBench>();
      const points = sorted.map((f): BenchPoint => {
        const r = f.result;
        const before = previous.get(r.engine.backend);
        previous.set(r.engine.backend, f);
        return {
          createdAt: r.createdAt,
          label: pointLabel(f),
          kind: f.kind,
          backend: r.engine.backend,
          engineBuild: `${r.engine.buildNumber} (${r.engine.buildCommit.slice(0, 7)})`,
          paths: f.paths,
          metrics: Object.fromEntries(THROUGHPUT_METRICS.map((m) => [m.id, spread(r.aggregates[m.aggregate])])) as Record<ThroughputMetric, Spread | null>,
          peakRssBytes: r.aggregates.peakRssBytes?.median ?? null,
          gate: before ? gateCheck(before, f, options.maxRegressionPercent) : null,
        };
      });
      return { model: sorted[0]!.result.model.name, hostClass: sorted[0]!.result.host.hostClass, points };
    })
    .sort((a, b) => cmp(a.model, b.model) || cmp(a.hostClass, b.hostClass));
}

function gateCheck(baseline: FoundBench, next: FoundBench, maxRegressionPercent: number): GateCheck {
  const c = compareResults(baseline.result, next.result, { maxRegressionPercent });
  const row = c.rows.find((r) => r.metric === "evalTokensPerSecond");
  const base = baseline.result.aggregates.evalTokensPerSecond;
  return {
    baselineCreatedAt: baseline.result.createdAt,
    baselineLabel: pointLabel(baseline),
    comparable: c.comparable,
    threshold: c.comparable && base ? base.median * (1 - maxRegressionPercent / 100) : null,
    failed: c.failed,
    verdict: c.comparable ? (row?.verdict ?? null) : null,
    summary: c.summary,
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
