/** Everything a report shows, gathered (build.ts) before anything is drawn (charts.ts, html.ts). */
import type { BenchGroup } from "./bench-series.js";
import type { SourceProblem } from "./bench-sources.js";
import type { ModelDirectory } from "./model-directories.js";
import type { Timeline } from "./timeline.js";
import type { MetricsSummary } from "../metrics/summary.js";

export interface ReportData {
  title: string;
  generatedAt: string;
  toolVersion: string;
  /** The workspace root, as shown. */
  workspace: string;
  /** How the report was made (the command line), for the footer. */
  command: string;
  chartLibraries: { vega: string; vegaLite: string };
  /** The release gate's threshold (bench --max-regression). */
  maxRegressionPercent: number;
  bench: { groups: BenchGroup[] };
  metrics: { file: string; summary: MetricsSummary; timeline: Timeline } | null;
  models: ModelDirectory[];
  trustNotes: string[];
  /** Files found but not usable (a broken bench.json), each with its error code. */
  problems: SourceProblem[];
}
