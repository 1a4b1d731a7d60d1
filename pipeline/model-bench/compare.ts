/**
 * The regression gate: a new bench.json against a baseline, and the text and Markdown tables for both a comparison
 * and a single result. Pure: no I/O.
 *
 * Only eval tokens/s gates. It fails when its median drops by more than `maxRegressionPercent` AND the two sample
 * ranges [min, max] do not overlap (the drop exceeds the run-to-run noise). Results from another host class, backend,
 * model or benchmark setting are not compared at all (comparable false, failed false, reason) unless forceCompare.
 */
import { UsageError } from "../core/errors.js";
import { fileTypeName } from "../gguf/validate.js";
import { AGGREGATE_METRICS, type Aggregate, type AggregateMetric, type BenchResult } from "./result.js";

export type Verdict = "ok" | "regression" | "improvement" | "noise";

export interface MetricInfo {
  label: string;
  unit: string;
  higherIsBetter: boolean;
  /** Only gating metrics can fail the comparison. */
  gating: boolean;
}

export const METRICS: Readonly<Record<AggregateMetric, MetricInfo>> = Object.freeze({
  evalTokensPerSecond: { label: "eval tokens/s", unit: "t/s", higherIsBetter: true, gating: true },
  promptTokensPerSecond: { label: "prompt tokens/s", unit: "t/s", higherIsBetter: true, gating: false },
  endToEndTokensPerSecond: { label: "end-to-end tokens/s", unit: "t/s", higherIsBetter: true, gating: false },
  msPerToken: { label: "ms per token", unit: "ms", higherIsBetter: false, gating: false },
  loadMs: { label: "load time (ms)", unit: "ms", higherIsBetter: false, gating: false },
  totalMs: { label: "total time (ms)", unit: "ms", higherIsBetter: false, gating: false },
  peakRssBytes: { label: "peak RSS", unit: "bytes", higherIsBetter: false, gating: false },
});

export interface ComparisonRow {
  metric: AggregateMetric;
  label: string;
  /** Baseline median. */
  old: number;
  /** New median. */
  new: number;
  /** new / old medians; null where the old median is 0. */
  ratio: number | null;
  /** (new - old) / old in percent; null where the old median is 0. */
  changePercent: number | null;
  oldRange: [min: number, max: number];
  newRange: [min: number, max: number];
  /** ok: within the threshold; noise: beyond it but the ranges overlap; regression/improvement: beyond both. */
  verdict: Verdict;
  gating: boolean;
}

export interface ComparedSide {
  createdAt: string;
  buildCommit: string;
  buildNumber: number;
  hostClass: string;
  backend: string;
  runs: number;
}

export interface Comparison {
  /** false: not compared (rows empty); see reason. true when forced despite differences (forced, reason say which). */
  comparable: boolean;
  /** Why not comparable (or, when forced, what differs), e.g. "different host class: X vs Y". */
  reason?: string;
  forced: boolean;
  maxRegressionPercent: number;
  rows: ComparisonRow[];
  /** true only when compared and eval tokens/s regressed beyond the threshold and the noise (or is gone). */
  failed: boolean;
  /** One line: the gate's verdict in words. */
  summary: string;
  /** Differences that do not prevent comparing (engine build, model file). */
  notes: string[];
  old: ComparedSide;
  new: ComparedSide;
}

export interface CompareOptions {
  /** Default 10. */
  maxRegressionPercent?: number;
  /** Compare even across host classes, backends, models and settings. Default false. */
  forceCompare?: boolean;
}

function side(r: BenchResult): ComparedSide {
  return {
    createdAt: r.createdAt,
    buildCommit: r.engine.buildCommit,
    buildNumber: r.engine.buildNumber,
    hostClass: r.host.hostClass,
    backend: r.engine.backend,
    runs: r.runs.length,
  };
}

function show(value: unknown): string {
  return value === undefined ? "(unset)" : typeof value === "string" ? JSON.stringify(value) : String(value);
}

/** What makes two results incomparable. */
function differences(a: BenchResult, b: BenchResult): string[] {
  const out: string[] = [];
  if (a.host.hostClass !== b.host.hostClass) out.push(`different host class: ${a.host.hostClass} vs ${b.host.hostClass}`);
  if (a.engine.backend !== b.engine.backend) out.push(`different backend/preset: ${a.engine.backend} vs ${b.engine.backend}`);
  if (a.model.name !== b.model.name) out.push(`different model: ${a.model.name} vs ${b.model.name}`);
  if (a.model.sparse !== b.model.sparse) out.push(`different model format: ${a.model.sparse ? "sparse" : "dense"} vs ${b.model.sparse ? "sparse" : "dense"}`);
  if (a.model.fileType !== b.model.fileType) out.push(`different model file type: ${show(a.model.fileType)} vs ${show(b.model.fileType)}`);
  const settings = (["threads", "nPredict", "ctxSize", "prompt", "promptTokens", "vramBudgetGiB"] as const).filter(
    // promptTokens is compared only where both record it (it is optional).
    (k) => a.settings[k] !== b.settings[k] && !(k === "promptTokens" && (a.settings[k] === undefined || b.settings[k] === undefined)),
  );
  if (settings.length) out.push(`different settings: ${settings.map((k) => `${k} ${show(a.settings[k])} vs ${show(b.settings[k])}`).join(", ")}`);
  return out;
}

function notesFor(a: BenchResult, b: BenchResult): string[] {
  const out: string[] = [];
  if (a.engine.buildCommit !== b.engine.buildCommit || a.engine.buildNumber !== b.engine.buildNumber) {
    out.push(`engine build ${a.engine.buildNumber} (${a.engine.buildCommit}) -> ${b.engine.buildNumber} (${b.engine.buildCommit})`);
  } else if (a.engine.binarySha256 !== b.engine.binarySha256) {
    out.push(`engine binary changed (${a.engine.binarySha256.slice(0, 12)} -> ${b.engine.binarySha256.slice(0, 12)}) at the same commit`);
  }
  if (a.model.sha256 !== b.model.sha256) out.push(`model file changed (${a.model.sha256.slice(0, 12)} -> ${b.model.sha256.slice(0, 12)})`);
  return out;
}

function compareMetric(metric: AggregateMetric, a: Aggregate, b: Aggregate, thresholdPercent: number): ComparisonRow {
  const info = METRICS[metric];
  const ratio = a.median === 0 ? null : b.median / a.median;
  const changePercent = ratio === null ? null : (ratio - 1) * 100;
  const overlap = a.min <= b.max && b.min <= a.max;
  // Direction of the change, + better / - worse, and whether it is beyond the threshold.
  const delta = b.median - a.median;
  const better = info.higherIsBetter ? delta > 0 : delta < 0;
  const beyond = changePercent === null ? delta !== 0 : Math.abs(changePercent) > thresholdPercent;
  const verdict: Verdict = !beyond ? "ok" : overlap ? "noise" : better ? "improvement" : "regression";
  return {
    metric,
    label: info.label,
    old: a.median,
    new: b.median,
    ratio,
    changePercent,
    oldRange: [a.min, a.max],
    newRange: [b.min, b.max],
    verdict,
    gating: info.gating,
  };
}

/**
 * Compare `next` against the baseline `old`.
 * @throws UsageError when maxRegressionPercent is not a finite number >= 0.
 */
export function compareResults(old: BenchResult, next: BenchResult, options: CompareOptions = {}): Comparison {
  const maxRegressionPercent = options.maxRegressionPercent ?? 10;
  const forceCompare = options.forceCompare ?? false;
  if (!Number.isFinite(maxRegressionPercent) || maxRegressionPercent < 0) {
    throw new UsageError(`the maximum regression must be a percentage >= 0, not ${maxRegressionPercent}`);
  }
  const base = { maxRegressionPercent, notes: notesFor(old, next), old: side(old), new: side(next) };
  const diffs = differences(old, next);
  if (diffs.length > 0 && !forceCompare) {
    const reason = diffs.join("; ");
    return { ...base, comparable: false, reason, forced: false, rows: [], failed: false, summary: `not compared: ${reason} (--force-compare compares anyway)` };
  }
  const forced = diffs.length > 0;
  const reason = forced ? diffs.join("; ") : undefined;

  const rows: ComparisonRow[] = [];
  const skipped: string[] = [];
  for (const metric of AGGREGATE_METRICS) {
    const a = old.aggregates[metric];
    const b = next.aggregates[metric];
    if (a && b) rows.push(compareMetric(metric, a, b, maxRegressionPercent));
    else if (a || b) skipped.push(`${METRICS[metric].label}: no finite samples in the ${a ? "new" : "baseline"} result, not compared`);
  }
  const notes = [...base.notes, ...skipped];
  const withReason = reason === undefined ? {} : { reason };

  const gateOld = old.aggregates.evalTokensPerSecond;
  const gateNew = next.aggregates.evalTokensPerSecond;
  if (!gateOld) {
    return { ...base, notes, comparable: false, reason: "the baseline has no eval tokens/s samples", forced, rows, failed: false, summary: "not compared: the baseline has no eval tokens/s samples" };
  }
  if (!gateNew) {
    return { ...base, notes, comparable: true, ...withReason, forced, rows, failed: true, summary: "FAILED: the new result has no eval tokens/s samples (every run reported inf/nan)" };
  }
  const gate = rows.find((row) => row.metric === "evalTokensPerSecond")!;
  const pct = gate.changePercent === null ? "n/a" : `${gate.changePercent >= 0 ? "+" : ""}${gate.changePercent.toFixed(1)}%`;
  const failed = gate.verdict === "regression";
  const summary = failed
    ? `FAILED: eval tokens/s ${fmt(gate.old)} -> ${fmt(gate.new)} (${pct}), beyond the ${maxRegressionPercent}% threshold and the run-to-run noise`
    : gate.verdict === "noise"
      ? `ok: eval tokens/s ${pct}, beyond ${maxRegressionPercent}% but within the run-to-run noise (sample ranges overlap)`
      : gate.verdict === "improvement"
        ? `ok: eval tokens/s improved ${pct}`
        : `ok: eval tokens/s ${pct}, within ${maxRegressionPercent}%`;
  return { ...base, notes, comparable: true, ...withReason, forced, rows, failed, summary: forced ? `${summary} (forced despite: ${reason})` : summary };
}

// ---- formatting -------------------------------------------------------------------------------------------------

/** Two decimals, as the engine prints its timings. */
function fmt(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : String(n);
}

function bytes(n: number): string {
  if (Math.abs(n) < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(Math.abs(value) < 10 ? 2 : 1)} ${units[unit]}`;
}

function value(metric: AggregateMetric, n: number): string {
  return METRICS[metric].unit === "bytes" ? bytes(n) : fmt(n);
}

function range(metric: AggregateMetric, r: readonly [number, number]): string {
  return `${value(metric, r[0])}..${value(metric, r[1])}`;
}

function percent(row: ComparisonRow): string {
  return row.changePercent === null ? "n/a" : `${row.changePercent >= 0 ? "+" : ""}${row.changePercent.toFixed(1)}%`;
}

/** Right-aligned numeric columns, left-aligned text; columns separated by two spaces. */
function alignedTable(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

function md(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}

function sideLabel(s: ComparedSide): string {
  return `build ${s.buildNumber} (${s.buildCommit}), ${s.runs} run${s.runs === 1 ? "" : "s"}, ${s.createdAt}`;
}

const VERDICT_MARK: Readonly<Record<Verdict, string>> = { ok: "ok", noise: "noise", improvement: "improvement", regression: "REGRESSION" };

/** The comparison as aligned text lines joined with "\n" (no trailing newline). */
export function formatComparisonTable(c: Comparison): string {
  const lines = [`baseline: ${sideLabel(c.old)}`, `new:      ${sideLabel(c.new)}`];
  if (!c.comparable) {
    lines.push(c.summary);
  } else {
    lines.push("");
    lines.push(
      ...alignedTable(
        ["metric", "old (median)", "new (median)", "change", "old range", "new range", "verdict"],
        c.rows.map((r) => [
          `${r.label}${r.gating ? " *" : ""}`,
          value(r.metric, r.old),
          value(r.metric, r.new),
          percent(r),
          range(r.metric, r.oldRange),
          range(r.metric, r.newRange),
          VERDICT_MARK[r.verdict],
        ]),
        [false, true, true, true, true, true, false],
      ),
    );
    lines.push("", `* gates (threshold ${c.maxRegressionPercent}%); ${c.summary}`);
  }
  for (const note of c.notes) lines.push(`note: ${note}`);
  return lines.join("\n");
}

const VERDICT_EMOJI: Readonly<Record<Verdict, string>> = { ok: "✅ ok", noise: "〰️ noise", improvement: "🚀 improvement", regression: "❌ regression" };

/** The comparison as a GitHub job-summary Markdown section (no trailing newline). */
export function formatComparisonMarkdown(c: Comparison): string {
  const lines = [`### Benchmark comparison: ${c.failed ? "❌ failed" : c.comparable ? "✅ passed" : "⚠️ not compared"}`, ""];
  lines.push(`- baseline: ${md(sideLabel(c.old))}, host \`${md(c.old.hostClass)}\`, ${md(c.old.backend)}`);
  lines.push(`- new: ${md(sideLabel(c.new))}, host \`${md(c.new.hostClass)}\`, ${md(c.new.backend)}`);
  lines.push("");
  if (c.comparable) {
    lines.push("| metric | old (median) | new (median) | change | old range | new range | verdict |");
    lines.push("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (const r of c.rows) {
      lines.push(
        `| ${md(r.label)}${r.gating ? " **(gate)**" : ""} | ${value(r.metric, r.old)} | ${value(r.metric, r.new)} | ${percent(r)} | ${range(r.metric, r.oldRange)} | ${range(r.metric, r.newRange)} | ${VERDICT_EMOJI[r.verdict]} |`,
      );
    }
    lines.push("");
  }
  lines.push(md(c.summary));
  if (c.notes.length) {
    lines.push("");
    for (const note of c.notes) lines.push(`- ${md(note)}`);
  }
  return lines.join("\n");
}

function resultFacts(r: BenchResult): [string, string][] {
  const gpus = r.host.gpus.map((g) => `${g.name} (${bytes(g.memoryBytes)}, driver ${g.driver})`).join(", ");
  const s = r.settings;
  return [
    ["model", `${r.model.name} (${r.model.sparse ? "sparse, PWRI" : "dense"}${r.model.fileType === undefined ? "" : `, ${fileTypeName(r.model.fileType)}`}), sha256 ${r.model.sha256.slice(0, 12)}`],
    ["engine", `build ${r.engine.buildNumber} (${r.engine.buildCommit}), ${r.engine.backend}`],
    ["host", `${r.host.cpuModel}, ${r.host.physicalCores} cores / ${r.host.logicalCores} threads, ${bytes(r.host.memoryBytes)}${gpus ? `, ${gpus}` : ""}`],
    ["host class", r.host.hostClass],
    [
      "settings",
      `-t ${s.threads} -n ${s.nPredict} -c ${s.ctxSize} --seed ${s.seed} --temp ${s.temp} --top-p ${s.topP}${s.vramBudgetGiB === undefined ? "" : ` --vram-budget ${s.vramBudgetGiB}`}, ${s.warmupRuns} warm-up + ${s.runs} measured run${s.runs === 1 ? "" : "s"}${s.promptTokens === undefined ? "" : `, ${s.promptTokens} prompt tokens`}`,
    ],
    ...(s.profile === "paper" ? [["profile", `paper (${s.prompts?.length ?? 1} prompts in turn, end-to-end tokens/s as the authors report it)`] as [string, string]] : []),
    ...gpuFacts(r),
    ["created", r.createdAt],
  ];
}

/** What the GPU runs really did (offloaded FFN, VRAM used, the index): a GPU number without it means little. */
function gpuFacts(r: BenchResult): [string, string][] {
  const log = r.runs.find((run) => run.gpuLog)?.gpuLog;
  if (!log || (r.engine.backend === "cpu" && !log.offloadedFfnMiB)) return [];
  const parts = [
    log.offloadedFfnMiB === null ? "" : `offloaded ${log.offloadedFfnMiB.toFixed(2)} MiB of FFN weights`,
    log.vramUsedMB === null ? "" : `VRAM used ${log.vramUsedMB} MB`,
    log.offloadedLayers ? `${log.offloadedLayers.layers}/${log.offloadedLayers.of} layers within the budget` : "",
    log.gpuIndex ? `GPU index ${log.gpuIndex}` : "",
  ].filter(Boolean);
  return [["GPU", parts.join(", ") + (log.offloadedFfnMiB === 0 ? " (no FFN offload: the GPU split did not happen)" : "")]];
}

function resultRows(r: BenchResult): string[][] {
  const rows: string[][] = [];
  for (const metric of AGGREGATE_METRICS) {
    const a = r.aggregates[metric];
    const label = METRICS[metric].label;
    if (!a) rows.push([label, "n/a", "", "", "", "", "0"]);
    else rows.push([label, value(metric, a.median), value(metric, a.min), value(metric, a.max), value(metric, a.mean), value(metric, a.stddev), String(a.samples.length)]);
  }
  return rows;
}

function resultWarnings(r: BenchResult): string[] {
  const seen = new Map<string, number>();
  for (const run of r.runs) for (const w of run.timings.warnings) seen.set(w, (seen.get(w) ?? 0) + 1);
  return [...seen].map(([w, n]) => (r.runs.length > 1 ? `${w} (${n} of ${r.runs.length} runs)` : w));
}

const RESULT_HEADER = ["metric", "median", "min", "max", "mean", "stddev", "n"];

/** One result as aligned text lines joined with "\n" (no trailing newline). */
export function formatResultTable(result: BenchResult): string {
  const facts = resultFacts(result);
  const width = Math.max(...facts.map(([k]) => k.length));
  const lines = facts.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  lines.push("", ...alignedTable(RESULT_HEADER, resultRows(result), [false, true, true, true, true, true, true]));
  for (const w of resultWarnings(result)) lines.push(`warning: ${w}`);
  return lines.join("\n");
}

/** One result as a GitHub job-summary Markdown section (no trailing newline). */
export function formatResultMarkdown(result: BenchResult): string {
  const lines = [`### Benchmark: ${md(result.model.name)}`, ""];
  for (const [k, v] of resultFacts(result)) lines.push(`- **${k}**: ${md(v)}`);
  lines.push("", `| ${RESULT_HEADER.join(" | ")} |`, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const row of resultRows(result)) lines.push(`| ${row.map(md).join(" | ")} |`);
  const warnings = resultWarnings(result);
  if (warnings.length) {
    lines.push("");
    for (const w of warnings) lines.push(`> ⚠️ ${md(w)}`);
  }
  return lines.join("\n");
}
