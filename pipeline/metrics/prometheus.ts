/**
 * The summary in Prometheus text exposition format (0.0.4), for node_exporter's textfile collector: a `.prom` file in
 * its --collector.textfile.directory, replaced whole. Counters and quantiles cover the whole log, so they only grow
 * while the log is appended to; rotating the log resets them, which Prometheus reads as a counter reset.
 */
import { atomicWriteFile } from "../core/files.js";
import type { MetricsRecord } from "./record.js";
import { summarizeRecords, type MetricsSummary, type ModelSummary, type SummaryMetric } from "./summary.js";

const QUANTILES = [
  ["0.5", "p50"],
  ["0.95", "p95"],
  ["0.99", "p99"],
] as const;

/** Each summary metric as a Prometheus summary, in base units (seconds, bytes) as Prometheus naming asks. */
const SUMMARIES: { metric: SummaryMetric; name: string; help: string; scale: number }[] = [
  { metric: "totalMs", name: "ai_tools_request_duration_seconds", help: "Duration of successful requests, start to last token.", scale: 1e-3 },
  { metric: "timeToFirstTokenMs", name: "ai_tools_time_to_first_token_seconds", help: "Time from the start of a successful request to its first generated text.", scale: 1e-3 },
  { metric: "generationTokensPerSecond", name: "ai_tools_generation_tokens_per_second", help: "Generation speed of successful requests.", scale: 1 },
  { metric: "promptTokensPerSecond", name: "ai_tools_prompt_tokens_per_second", help: "Prompt processing speed of successful requests.", scale: 1 },
  { metric: "peakRssBytes", name: "ai_tools_peak_rss_bytes", help: "Peak resident memory of the engine during successful requests.", scale: 1 },
];

/** Label values: backslash, double quote and line feed escaped (the only escapes the format has). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text: backslash and line feed escaped (quotes stay as they are there). */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Go ParseFloat spellings: the format's parsers reject JavaScript's "Infinity". */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function labels(pairs: Record<string, string>): string {
  const body = Object.entries(pairs)
    .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
    .join(",");
  return body ? `{${body}}` : "";
}

function family(name: string, type: "counter" | "gauge" | "summary", help: string, samples: string[]): string[] {
  return [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`, ...samples];
}

/** Pure: the exposition text (every family's HELP and TYPE, then its samples; one trailing newline). */
export function renderPrometheusText(summary: MetricsSummary): string {
  const base = (m: ModelSummary) => ({ model: m.model, engine: m.engine });
  const out: string[] = [
    ...family(
      "ai_tools_requests_total",
      "counter",
      "Requests recorded in the metrics log, failed ones included.",
      summary.models.map((m) => `ai_tools_requests_total${labels(base(m))} ${m.requests}`),
    ),
    ...family(
      "ai_tools_request_errors_total",
      "counter",
      "Requests that ended with an error.",
      summary.models.map((m) => `ai_tools_request_errors_total${labels(base(m))} ${m.errors}`),
    ),
  ];
  for (const { metric, name, help, scale } of SUMMARIES) {
    const samples: string[] = [];
    for (const m of summary.models) {
      const s = m.metrics[metric];
      // A summary with no observations: no quantiles, zero sum and count (as client libraries expose it).
      if (s) for (const [q, key] of QUANTILES) samples.push(`${name}${labels({ ...base(m), quantile: q })} ${formatValue(s[key] * scale)}`);
      samples.push(`${name}_sum${labels(base(m))} ${formatValue(s ? s.mean * s.count * scale : 0)}`);
      samples.push(`${name}_count${labels(base(m))} ${s ? s.count : 0}`);
    }
    out.push(...family(name, "summary", help, samples));
  }
  out.push(
    ...family("ai_tools_metrics_log_malformed_lines", "gauge", "Lines of the metrics log that are not a record.", [
      `ai_tools_metrics_log_malformed_lines ${summary.malformed.count}`,
    ]),
  );
  return `${out.join("\n")}\n`;
}

/**
 * Writes the textfile for a summary, or for records in memory (summarized first). Atomic (temporary sibling, then
 * rename): the collector never scrapes half a file, and the temporary name does not end in .prom, so it is never read.
 */
export async function writePrometheusTextfile(file: string, source: MetricsSummary | readonly MetricsRecord[]): Promise<void> {
  const summary = Array.isArray(source) ? summarizeRecords(source as readonly MetricsRecord[]) : (source as MetricsSummary);
  await atomicWriteFile(file, renderPrometheusText(summary));
}
