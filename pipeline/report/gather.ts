/**
 * Gathers what a report shows from a workspace: the bench results, the metrics log (one streamed pass for the summary
 * table and the time series), and per model folder its verification, drift and provenance.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { version as vegaVersion } from "vega";
import { version as vegaLiteVersion } from "vega-lite";
import { UsageError } from "../core/errors.js";
import { summarizeMetricsLog, type AcceptedRecord } from "../metrics/summary.js";
import { PACKAGE_ROOT } from "../root.js";
import { groupBenchResults } from "./bench-series.js";
import { findBenchResults, showPath } from "./bench-sources.js";
import { inspectModelDirectories, listModelDirectories } from "./model-directories.js";
import type { ReportData } from "./report-data.js";
import { MetricsTimeline } from "./timeline.js";

export interface GatherOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  /** Only these models (model folder names, bench.json model names, metrics log model names). */
  models?: readonly string[];
  /** A metrics log (JSON Lines from `ai-tools run --metrics-log`). */
  metricsLog?: string;
  /** More bench.json files, or folders holding them. */
  baselines?: readonly string[];
  /** The release gate's threshold; default 10 (as `bench --compare`). */
  maxRegressionPercent?: number;
  trustedKeys?: string;
  /** The command line, shown in the footer. */
  command: string;
  now?: Date;
  signal?: AbortSignal;
}

export async function gatherReportData(options: GatherOptions): Promise<ReportData> {
  const { root, env } = options;
  const models = options.models && options.models.length > 0 ? options.models : undefined;
  if (options.metricsLog !== undefined) {
    const info = existsSync(options.metricsLog) ? statSync(options.metricsLog) : null;
    if (!info?.isFile()) throw new UsageError(`--metrics-log ${options.metricsLog}: no such file`, ["Give the JSON Lines file that `ai-tools run --metrics-log FILE` (or AI_TOOLS_METRICS_LOG) writes."]);
  }
  const maxRegressionPercent = options.maxRegressionPercent ?? 10;

  const bench = await findBenchResults(root, { ...(options.baselines ? { baselines: options.baselines } : {}), ...(models ? { models } : {}) });
  options.signal?.throwIfAborted();

  let metrics: ReportData["metrics"] = null;
  const seenInLog = new Set<string>();
  if (options.metricsLog !== undefined) {
    const timeline = new MetricsTimeline();
    const include = models
      ? (record: AcceptedRecord) => {
          const match = logModelNames(record).find((n) => models.includes(n));
          if (match !== undefined) seenInLog.add(match);
          return match !== undefined;
        }
      : undefined;
    const summary = await summarizeMetricsLog(options.metricsLog, { ...(options.signal ? { signal: options.signal } : {}), ...(include ? { include } : {}), onRecord: (r) => timeline.add(r) });
    metrics = { file: showPath(root, options.metricsLog), summary, timeline: timeline.result() };
  }

  if (models) {
    const folders = new Set(await listModelDirectories(root, models));
    const benched = new Set(bench.found.map((f) => f.result.model.name));
    const unknown = models.filter((m) => !folders.has(m) && !benched.has(m) && !seenInLog.has(m));
    if (unknown.length > 0) {
      const known = [...new Set([...(await listModelDirectories(root)), ...benched])].sort();
      throw new UsageError(`--models ${unknown.join(", ")}: no model folder, bench result or metrics log record has ${unknown.length === 1 ? "this name" : "these names"}`, [
        known.length > 0 ? `Models in this workspace: ${known.join(", ")}.` : "This workspace has no models yet (models/powerinfer/ is empty).",
      ]);
    }
  }

  const inspected = await inspectModelDirectories({ root, env, ...(models ? { models } : {}), ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}) });
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };
  return {
    title: `ai-tools report: ${basename(root)}`,
    generatedAt: (options.now ?? new Date()).toISOString(),
    toolVersion: pkg.version,
    workspace: root,
    command: options.command,
    chartLibraries: { vega: vegaVersion, vegaLite: vegaLiteVersion },
    maxRegressionPercent,
    bench: { groups: groupBenchResults(bench.found, { maxRegressionPercent }) },
    metrics,
    models: inspected.models,
    trustNotes: inspected.trustNotes,
    problems: bench.problems,
  };
}

/** The names --models matches a log record by: its model name, name@version, and the model folder of its path. */
export function logModelNames(record: AcceptedRecord): string[] {
  const { name, version } = record.model;
  const path = (record.model as { path?: unknown }).path;
  return [name, ...(version ? [`${name}@${version}`] : []), ...(typeof path === "string" && path !== "" ? [basename(dirname(path))] : [])];
}
