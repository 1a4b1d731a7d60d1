/**
 * The report's charts as Vega-Lite specifications (compiled to SVG by svg.ts). Pure: data in, specs out.
 *
 * Light and dark: every axis, label and title is drawn in `currentColor`, so the page's text colour (which the theme
 * sets) colours them, and the series colours are mid-tones readable on white and on near-black. One SVG then serves
 * both themes, the README and the job summary.
 *
 * Mark names are part of the page's contract (tests count them): a layer named N draws `g.mark-<type>.N_marks`.
 * Data marks carry no ARIA label each (hundreds of "time: ...; value: ..." strings, a third of the page): the tables
 * under the charts hold the same numbers for screen readers; axes and legends keep theirs.
 */
import type { TopLevelSpec } from "vega-lite";
import { THROUGHPUT_METRICS, type BenchGroup } from "./bench-series.js";
import { formatBucketWidth, type Timeline, type TimelineSeries } from "./timeline.js";

/** Mid-tone series colours (contrast >= 3:1 against both #ffffff and #14161a). */
export const SERIES_COLORS = ["#4a8fd6", "#e07b39", "#3ba57a", "#c25fa8", "#8f78db", "#2ea3ad", "#b58b24"];
/** The gate's threshold and failed results. */
export const GATE_COLOR = "#e5484d";

const WIDTH = 760;
const PANEL_HEIGHT = 120;
/** A panel with one result shows a bar and a point: it needs less height. */
const SINGLE_RESULT_HEIGHT = 70;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
const MiB = 2 ** 20;

const THEME = {
  font: FONT,
  view: { stroke: null },
  axis: {
    domainColor: "currentColor",
    tickColor: "currentColor",
    labelColor: "currentColor",
    titleColor: "currentColor",
    gridColor: "currentColor",
    gridOpacity: 0.14,
    domainOpacity: 0.5,
    tickOpacity: 0.5,
    labelFontSize: 11,
    titleFontSize: 11,
    titleFontWeight: "normal",
  },
  legend: { labelColor: "currentColor", titleColor: "currentColor", labelFontSize: 11, titleFontSize: 11, titleFontWeight: "normal", orient: "right", labelLimit: 400, symbolOpacity: 1 },
  title: { color: "currentColor", anchor: "start", fontSize: 12, fontWeight: "bold", offset: 6 },
  range: { category: SERIES_COLORS },
  line: { strokeWidth: 1.6 },
  point: { size: 40 },
} as const;

/** Dates for spans of days and more, the time of day below that, seconds within an hour. */
export function timeFormat(times: readonly string[]): string {
  const ms = times.map((t) => Date.parse(t));
  const span = Math.max(...ms) - Math.min(...ms);
  return span >= 3 * 86_400_000 ? "%Y-%m-%d" : span >= 3_600_000 || span === 0 ? "%m-%d %H:%M" : "%H:%M:%S";
}

/** Four significant digits, thousands separated: 21,820 rather than 21,821.830000 when a domain has one value. */
const NUMBER_FORMAT = ",.4~r";

/** Axis and scale of the shared time axis; UTC, so a report reads the same wherever it was made. */
function timeX(field: string, title: string | null, format: string) {
  return { field, type: "temporal", scale: { type: "utc" }, title, axis: { format, labelAngle: 0, labelOverlap: "greedy", tickCount: 6 } } as const;
}

const top = (spec: object): TopLevelSpec => ({ $schema: "https://vega.github.io/schema/vega-lite/v6.json", background: "transparent", padding: 4, config: THEME, ...spec }) as TopLevelSpec;

// ---- bench ----------------------------------------------------------------------------------------------------------

/**
 * One model on one host class: a panel per throughput metric with values, x the time each result was benchmarked.
 * Each result: the median (point, joined per backend by a line) and the min-max of its runs as a bar, and the band
 * between those bars (the run-to-run spread). On the generation panel: the release gate's threshold per result (dashed,
 * from the result it was gated against to itself) and a ring around each result that failed the gate.
 */
export function benchChartSpec(group: BenchGroup): TopLevelSpec {
  const panels = THROUGHPUT_METRICS.map((metric) => {
    const rows = group.points.flatMap((p) => {
      const s = p.metrics[metric.id];
      return s ? [{ time: p.createdAt, backend: p.backend, label: p.label, build: p.engineBuild, median: s.median, min: s.min, max: s.max, runs: s.runs }] : [];
    });
    return { metric, rows };
  }).filter((p) => p.rows.length > 0);
  const backends = [...new Set(group.points.map((p) => p.backend))].sort();
  const color = { field: "backend", type: "nominal", title: "backend", scale: { domain: backends } } as const;
  const gates = group.points.flatMap((p) => (p.gate && p.gate.threshold !== null ? [{ from: p.gate.baselineCreatedAt, to: p.createdAt, threshold: p.gate.threshold, against: p.gate.baselineLabel, label: p.label }] : []));
  const failed = group.points.flatMap((p) => (p.gate?.failed && p.metrics.generation ? [{ time: p.createdAt, median: p.metrics.generation.median, label: p.label, summary: p.gate.summary }] : []));
  const format = timeFormat(group.points.map((p) => p.createdAt));

  return top({
    vconcat: panels.map(({ metric, rows }, i) => {
      const x = timeX("time", i === panels.length - 1 ? "benchmarked (UTC)" : null, format);
      const y = (field: string) => ({ field, type: "quantitative", title: "tokens/s", scale: { zero: false, nice: true }, axis: { format: NUMBER_FORMAT } }) as const;
      const name = metric.id.replace(/-/g, "_");
      const layers: object[] = [
        { name: `${name}_band`, data: { values: rows }, mark: { aria: false, type: "area", opacity: 0.2 }, encoding: { x, y: y("min"), y2: { field: "max" }, color } },
        { name: `${name}_spread`, data: { values: rows }, mark: { aria: false, type: "rule", strokeWidth: 3, opacity: 0.55 }, encoding: { x, y: y("min"), y2: { field: "max" }, color } },
        { name: `${name}_line`, data: { values: rows }, mark: { aria: false, type: "line" }, encoding: { x, y: y("median"), color } },
        {
          name: `${name}_points`,
          data: { values: rows },
          mark: { aria: false, type: "point", filled: true, opacity: 1 },
          encoding: {
            x,
            y: y("median"),
            color,
            tooltip: [
              { field: "label", title: "result" },
              { field: "median", title: "median t/s", format: ".2f" },
              { field: "min", title: "min", format: ".2f" },
              { field: "max", title: "max", format: ".2f" },
              { field: "runs", title: "runs" },
              { field: "build", title: "engine build" },
            ],
          },
        },
      ];
      if (metric.id === "generation" && gates.length > 0) {
        layers.push({
          name: "gate_threshold",
          data: { values: gates },
          mark: { aria: false, type: "rule", color: GATE_COLOR, strokeDash: [5, 3], strokeWidth: 1.5 },
          encoding: { x: timeX("from", null, format), x2: { field: "to" }, y: y("threshold"), tooltip: [{ field: "threshold", title: "gate threshold t/s", format: ".2f" }, { field: "against", title: "gated against" }] },
        });
      }
      if (metric.id === "generation" && failed.length > 0) {
        layers.push({
          name: "gate_failed",
          data: { values: failed },
          mark: { aria: false, type: "point", shape: "circle", size: 260, filled: false, color: GATE_COLOR, strokeWidth: 2, opacity: 1 },
          encoding: { x, y: y("median"), tooltip: [{ field: "label", title: "failed the gate" }, { field: "summary", title: "gate" }] },
        });
      }
      return { title: `${metric.label} (tokens/s)`, width: WIDTH, height: group.points.length === 1 ? SINGLE_RESULT_HEIGHT : PANEL_HEIGHT, layer: layers };
    }),
    resolve: { scale: { x: "shared", color: "shared" } },
  });
}

// ---- runtime metrics ------------------------------------------------------------------------------------------------

export function seriesLabel(s: Pick<TimelineSeries, "engine" | "engineVersion">): string {
  return `${s.engine} ${s.engineVersion ?? "(no version)"}`;
}

/**
 * One model from the metrics log: p50/p95/p99 of the end-to-end latency and of the time to first token per time
 * bucket, and the largest peak RSS and GPU memory per bucket, one colour per engine version.
 */
export function runtimeChartSpec(model: string, series: readonly TimelineSeries[], bucketMs: Timeline["bucketMs"]): TopLevelSpec {
  const own = series.filter((s) => s.model === model);
  const quantileRows = (pick: "latencyMs" | "timeToFirstTokenMs") =>
    own.flatMap((s) =>
      s.points.flatMap((p) => {
        const q = p[pick];
        return q ? (["p50", "p95", "p99"] as const).map((quantile) => ({ time: p.start, engine: seriesLabel(s), quantile, value: q[quantile], requests: p.requests, errors: p.errors })) : [];
      }),
    );
  const memoryRows = own.flatMap((s) =>
    s.points.flatMap((p) => [
      ...(p.peakRssBytes === null ? [] : [{ time: p.start, engine: seriesLabel(s), kind: "peak RSS", value: p.peakRssBytes / MiB }]),
      ...(p.gpuMemoryBytes === null ? [] : [{ time: p.start, engine: seriesLabel(s), kind: "GPU memory", value: p.gpuMemoryBytes / MiB }]),
    ]),
  );
  // In the timeline's order (by first appearance): an older engine build keeps the first colour.
  const engines = [...new Set(own.map(seriesLabel))];
  const color = { field: "engine", type: "nominal", title: "engine", scale: { domain: engines }, legend: { orient: "bottom", direction: "vertical" } } as const;
  const width = formatBucketWidth(bucketMs);
  const format = timeFormat(own.flatMap((s) => s.points.map((p) => p.start)));
  const panels = [
    { name: "latency", title: `end-to-end latency per ${width} (ms)`, rows: quantileRows("latencyMs"), dash: "quantile" },
    { name: "ttft", title: `time to first token per ${width} (ms)`, rows: quantileRows("timeToFirstTokenMs"), dash: "quantile" },
    { name: "memory", title: `largest peak memory per ${width} (MiB)`, rows: memoryRows, dash: "kind" },
  ].filter((p) => p.rows.length > 0);

  return top({
    vconcat: panels.map((panel, i) => {
      const x = timeX("time", i === panels.length - 1 ? `time (UTC), ${width} buckets` : null, format);
      const y = { field: "value", type: "quantitative", title: panel.name === "memory" ? "MiB" : "ms", scale: { zero: panel.name === "memory" }, axis: { format: NUMBER_FORMAT } } as const;
      const dash = { field: panel.dash, type: "nominal", title: panel.dash === "quantile" ? "quantile" : "memory", sort: panel.dash === "quantile" ? ["p50", "p95", "p99"] : ["peak RSS", "GPU memory"] } as const;
      const tooltip = [{ field: "engine" }, { field: panel.dash }, { field: "value", format: ".1f" }, { field: "time", type: "temporal", format: "%Y-%m-%d %H:%M UTC" }];
      return {
        title: panel.title,
        width: WIDTH,
        height: PANEL_HEIGHT,
        data: { values: panel.rows },
        layer: [
          { name: `${panel.name}_line`, mark: { aria: false, type: "line" }, encoding: { x, y, color, strokeDash: dash } },
          { name: `${panel.name}_points`, mark: { aria: false, type: "point", filled: true, size: 16, opacity: 1 }, encoding: { x, y, color, tooltip } },
        ],
      };
    }),
    resolve: { scale: { x: "shared", color: "shared", strokeDash: "independent" } },
  });
}
