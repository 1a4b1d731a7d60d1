/**
 * The report as one self-contained HTML page: styles, the theme switch and the charts (SVG) inline, nothing fetched
 * (a Content-Security-Policy forbids it), so it opens offline and as a CI artifact. Light and dark follow the system
 * unless the switch picks one. Pure: data and rendered charts in, a string out; every value is escaped.
 */
import { createHash } from "node:crypto";
import type { BenchGroup, BenchPoint, Spread } from "./bench-series.js";
import { THROUGHPUT_METRICS } from "./bench-series.js";
import { seriesLabel } from "./charts.js";
import type { DriftCell, ModelDirectory } from "./model-directories.js";
import type { ReportData } from "./report-data.js";
import type { MetricStats } from "../metrics/summary.js";

export interface RenderedChart {
  /** "bench" or "runtime". */
  kind: string;
  /** The model (and host class) it shows, for the figure's data attributes. */
  model: string;
  hostClass?: string;
  svg: string;
}

const LIGHT = "--bg:#ffffff;--fg:#1c1f24;--muted:#5d6470;--border:#dadee4;--panel:#f5f6f8;--ok:#17743a;--ok-bg:#e3f3e8;--bad:#b8222a;--bad-bg:#fce6e6;--warn:#8a5a00;--warn-bg:#fff1cc;--link:#0a5cc2;";
const DARK = "--bg:#14161a;--fg:#e3e6ea;--muted:#9aa1ad;--border:#33373e;--panel:#1c1f24;--ok:#6fd08f;--ok-bg:#173222;--bad:#ff8a8a;--bad-bg:#3c1a1c;--warn:#f0c05a;--warn-bg:#3a2e10;--link:#7cb4ff;";

const STYLE = `
:root{color-scheme:light;${LIGHT}}
:root[data-theme="dark"]{color-scheme:dark;${DARK}}
@media (prefers-color-scheme:dark){:root[data-theme="auto"]{color-scheme:dark;${DARK}}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header.top{display:flex;justify-content:space-between;align-items:flex-start;gap:1rem;padding:1.2rem 2rem .8rem;border-bottom:1px solid var(--border)}
h1{font-size:1.35rem;margin:0 0 .2rem}
h2{font-size:1.15rem;margin:2rem 0 .6rem;padding-bottom:.3rem;border-bottom:1px solid var(--border)}
h3{font-size:1rem;margin:1.4rem 0 .4rem}
main{padding:0 2rem 2rem;max-width:1400px}
nav{padding:.5rem 2rem;display:flex;gap:1.2rem;border-bottom:1px solid var(--border);background:var(--panel)}
a{color:var(--link)}
.meta,.note,figcaption{color:var(--muted)}
.note{font-size:.9em}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
button#theme{font:inherit;color:var(--fg);background:var(--panel);border:1px solid var(--border);border-radius:6px;padding:.3rem .7rem;cursor:pointer}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1.2rem 0}
.card{border:1px solid var(--border);background:var(--panel);border-radius:8px;padding:.6rem .9rem;min-width:10.5rem}
.card b{display:block;font-size:1.35rem}
figure.chart{margin:.6rem 0 1rem;padding:.6rem;border:1px solid var(--border);border-radius:8px;overflow-x:auto}
figure.chart svg{max-width:100%;height:auto;display:block}
figcaption{font-size:.88em;margin-top:.3rem}
.key{display:inline-block;width:1.6em;height:0;border-top:2px dashed #e5484d;vertical-align:middle;margin:0 .25em}
.key.ring{width:.8em;height:.8em;border:2px solid #e5484d;border-radius:50%}
.scroll{overflow-x:auto;margin:.4rem 0 1rem}
table{border-collapse:collapse;font-size:.92em;width:100%}
th,td{border-bottom:1px solid var(--border);padding:.32rem .5rem;text-align:left;vertical-align:top}
th{font-weight:600;background:var(--panel)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name,td.nowrap{white-space:nowrap}
td.gate{min-width:14rem}
td.result{min-width:10rem}
.paths{font-size:.8em;overflow-wrap:anywhere;color:var(--muted)}
.card b.alert{color:var(--bad)}
.pill{display:inline-block;border-radius:999px;padding:0 .55em;font-size:.85em;font-weight:600;white-space:nowrap}
.ok{color:var(--ok);background:var(--ok-bg)}
.bad{color:var(--bad);background:var(--bad-bg)}
.warn{color:var(--warn);background:var(--warn-bg)}
.muted{color:var(--muted)}
ul.diff{margin:.2rem 0 0;padding-left:1.1rem;font-size:.88em;color:var(--muted)}
footer{padding:1rem 2rem 2rem;color:var(--muted);font-size:.85em;border-top:1px solid var(--border)}
`;

const SCRIPT = `(() => {
  const root = document.documentElement;
  const button = document.getElementById("theme");
  const order = ["auto", "light", "dark"];
  const key = "ai-tools-report-theme";
  let theme = "auto";
  try { theme = localStorage.getItem(key) || "auto"; } catch (e) {}
  if (!order.includes(theme)) theme = "auto";
  const apply = () => { root.dataset.theme = theme; button.textContent = "Theme: " + theme; };
  button.addEventListener("click", () => {
    theme = order[(order.indexOf(theme) + 1) % order.length];
    try { localStorage.setItem(key, theme); } catch (e) {}
    apply();
  });
  apply();
})();`;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
const e = escapeHtml;

function num(x: number): string {
  const a = Math.abs(x);
  return a >= 1000 ? Math.round(x).toLocaleString("en-US") : a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}
const mib = (bytes: number) => `${num(bytes / 2 ** 20)} MiB`;
/** "2025-11-20 10:02 UTC": minutes are enough to tell results apart. */
const utc = (iso: string) => `${new Date(iso).toISOString().slice(0, 16).replace("T", " ")} UTC`;
/** Hex digests of 40+ characters shortened to 12 (the full text stays in a tooltip). */
const shortDigests = (text: string) => text.replace(/\b([0-9a-f]{12})[0-9a-f]{28,52}\b/g, "$1…");
const table = (cls: string, head: string, rows: readonly string[]) => `<div class="scroll"><table class="${cls}"><thead>${head}</thead><tbody>${rows.join("\n")}</tbody></table></div>`;
const pill = (cls: string, text: string) => `<span class="pill ${cls}">${e(text)}</span>`;
const short = (digest: string | null | undefined, n = 12) => (digest ? digest.slice(0, n) : "?");

export function renderReportHtml(data: ReportData, charts: readonly RenderedChart[]): string {
  const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
  // Nothing may load, and only the page's own style element and script run (allowed by their hashes).
  const csp = `default-src 'none'; style-src ${hash(STYLE)}; script-src ${hash(SCRIPT)}`;
  const chartFor = (kind: string, model: string, hostClass?: string) => charts.find((c) => c.kind === kind && c.model === model && c.hostClass === hostClass);
  return `<!doctype html>
<html lang="en" data-theme="auto">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="generator" content="ai-tools ${e(data.toolVersion)}">
<title>${e(data.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header class="top">
<div><h1>${e(data.title)}</h1><p class="meta">Generated ${e(utc(data.generatedAt))} by ai-tools ${e(data.toolVersion)} in <code>${e(data.workspace)}</code></p></div>
<button id="theme" type="button" title="Colour theme: follow the system, light or dark">Theme: auto</button>
</header>
<nav><a href="#bench">Benchmarks</a><a href="#runtime">Runtime metrics</a><a href="#models">Models</a>${data.problems.length > 0 ? `<a href="#problems">Problems</a>` : ""}</nav>
<main>
${overview(data)}
${benchSection(data, chartFor)}
${runtimeSection(data, chartFor)}
${modelsSection(data)}
${problemsSection(data)}
</main>
<footer>${e(data.command)} · charts: Vega-Lite ${e(data.chartLibraries.vegaLite)} / Vega ${e(data.chartLibraries.vega)}, rendered to SVG when the report was made; this page loads nothing.</footer>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function overview(data: ReportData): string {
  const verified = data.models.filter((m) => m.verification.status === "verified").length;
  const failedVerification = data.models.filter((m) => m.verification.status === "failed").length;
  const drifted = data.models.filter((m) => m.drift.checked && m.drift.drift).length;
  const gateFailures = data.bench.groups.flatMap((g) => g.points).filter((p) => p.gate?.failed).length;
  const results = data.bench.groups.reduce((n, g) => n + g.points.length, 0);
  const card = (value: string, label: string, alert = false) => `<div class="card"><b${alert ? ' class="alert"' : ""}>${e(value)}</b>${e(label)}</div>`;
  return `<section id="overview" class="cards">
${card(String(results), `bench results, ${data.bench.groups.length} model/host class${data.bench.groups.length === 1 ? "" : "es"}`)}
${card(String(gateFailures), "results failing the release gate", gateFailures > 0)}
${card(`${verified} / ${data.models.length}`, "model folders verified", failedVerification > 0)}
${card(String(drifted), "model folders drifted", drifted > 0)}
${card(data.metrics ? data.metrics.summary.records.toLocaleString("en-US") : "–", data.metrics ? "requests in the metrics log" : "no metrics log (--metrics-log)")}
</section>`;
}

// ---- bench --------------------------------------------------------------------------------------------------------

type ChartLookup = (kind: string, model: string, hostClass?: string) => RenderedChart | undefined;

function benchSection(data: ReportData, chartFor: ChartLookup): string {
  const { groups } = data.bench;
  const intro = `<p class="note">Each result: the median of its measured runs (point) and their min–max (bar; the shaded band joins them): the run-to-run spread. <span class="key"></span> the release gate's threshold: generation tokens/s may drop at most ${e(String(data.maxRegressionPercent))}% below the previous result of the same backend (and beyond the spread) before the gate fails; <span class="key ring"></span> a result that failed it. Results are compared only within a host class.</p>`;
  if (groups.length === 0) return `<section id="bench"><h2>Benchmarks</h2><p class="muted">No bench results found (models/powerinfer/*/bench.json, manifests/*/*/bench.json, build/manifests/*/*/bench.json, --baseline).</p></section>`;
  const parts = groups.map((g) => {
    const chart = chartFor("bench", g.model, g.hostClass);
    return `<h3>${e(g.model)} <span class="muted">on</span> <code>${e(g.hostClass)}</code></h3>
<figure class="chart" data-chart="bench" data-model="${e(g.model)}" data-host-class="${e(g.hostClass)}">${chart?.svg ?? ""}
<figcaption>${g.points.length} result${g.points.length === 1 ? "" : "s"}, ${e(utc(g.points[0]!.createdAt))} to ${e(utc(g.points.at(-1)!.createdAt))}</figcaption></figure>
${benchTable(g)}`;
  });
  return `<section id="bench"><h2>Benchmarks</h2>${intro}\n${parts.join("\n")}</section>`;
}

function spreadCell(s: Spread | null): string {
  return s ? `<td class="num">${num(s.median)}<div class="note">${num(s.min)}–${num(s.max)}, n=${s.runs}</div></td>` : `<td class="num muted">n/a</td>`;
}

function gateCell(p: BenchPoint): string {
  if (!p.gate) return `<td class="gate muted">first ${e(p.backend)} result</td>`;
  const cls = p.gate.failed ? "bad" : !p.gate.comparable ? "warn" : "ok";
  const word = p.gate.failed ? "failed" : !p.gate.comparable ? "not compared" : "passed";
  return `<td class="gate">${pill(cls, word)} <span class="note">vs ${e(p.gate.baselineLabel)}: ${e(p.gate.summary)}</span></td>`;
}

function benchTable(g: BenchGroup): string {
  const head = `<tr><th>result</th><th>benchmarked (UTC)</th><th>backend</th><th>engine build</th>${THROUGHPUT_METRICS.map((m) => `<th class="num">${e(m.label)}<br>t/s, min–max</th>`).join("")}<th>gate</th></tr>`;
  const rows = g.points.map(
    (p) =>
      `<tr data-result="${e(p.label)}"><td class="result">${e(p.label)}<div class="paths mono">${p.paths.map(e).join("<br>")}</div></td><td class="nowrap">${e(utc(p.createdAt).replace(" UTC", ""))}</td><td>${e(p.backend)}</td><td class="mono nowrap">${e(p.engineBuild)}</td>${THROUGHPUT_METRICS.map((m) => spreadCell(p.metrics[m.id])).join("")}${gateCell(p)}</tr>`,
  );
  return table("bench", head, rows);
}

// ---- runtime ------------------------------------------------------------------------------------------------------

function runtimeSection(data: ReportData, chartFor: ChartLookup): string {
  const m = data.metrics;
  if (!m) return `<section id="runtime"><h2>Runtime metrics</h2><p class="muted">No metrics log given: <code>--metrics-log FILE</code> (what <code>ai-tools run --metrics-log</code> writes).</p></section>`;
  const { summary, timeline } = m;
  const malformed =
    summary.malformed.count > 0
      ? ` ${pill("warn", `${summary.malformed.count} malformed line${summary.malformed.count === 1 ? "" : "s"}`)} <span class="note">first at ${summary.malformed.first.map((x) => `${x.line} (${e(x.reason)})`).join(", ")}</span>`
      : "";
  const untimed = timeline.untimed > 0 ? ` ${pill("warn", `${timeline.untimed} without a valid time`)} <span class="note">(in the tables, not the charts)</span>` : "";
  const models = [...new Set(timeline.series.map((s) => s.model))];
  const parts = models.map((model) => {
    const chart = chartFor("runtime", model);
    const engines = timeline.series.filter((s) => s.model === model).map(seriesLabel);
    return `<h3>${e(model)}</h3>
<figure class="chart" data-chart="runtime" data-model="${e(model)}">${chart?.svg ?? ""}
<figcaption>${e(engines.join(", "))}; p50 solid, p95 and p99 dashed; successful requests only.</figcaption></figure>`;
  });
  const stat = (s: MetricStats | null, scale = 1) => (s ? `<td class="num">${num(s.p50 * scale)} / ${num(s.p95 * scale)} / ${num(s.p99 * scale)}</td>` : `<td class="num muted">n/a</td>`);
  const rows = summary.models.map((s) => {
    const codes = Object.entries(s.errorCodes)
      .sort(([, a], [, b]) => b - a)
      .map(([code, n]) => `${code} ${n}`)
      .join(", ");
    const rss = s.metrics.peakRssBytes;
    return `<tr><td>${e(s.model)}</td><td>${e(s.engine)}</td><td class="num">${s.requests.toLocaleString("en-US")}</td><td class="num">${s.errors}${codes ? `<div class="note">${e(codes)}</div>` : ""}</td>${stat(s.metrics.totalMs)}${stat(s.metrics.timeToFirstTokenMs)}${stat(s.metrics.generationTokensPerSecond)}<td class="num">${rss ? `${mib(rss.p95)} / ${mib(rss.max)}` : `<span class="muted">n/a</span>`}</td></tr>`;
  });
  return `<section id="runtime"><h2>Runtime metrics</h2>
<p class="note">From <code>${e(m.file)}</code>: ${summary.lines.toLocaleString("en-US")} lines, ${summary.records.toLocaleString("en-US")} requests${malformed}${untimed}. Streamed in one pass; quantiles from the same DDSketch as <code>ai-tools metrics summary</code> (within 1%).</p>
${parts.join("\n")}
${table("runtime", `<tr><th>model</th><th>engine</th><th class="num">requests</th><th class="num">errors</th><th class="num">latency ms<br>p50 / p95 / p99</th><th class="num">first token ms<br>p50 / p95 / p99</th><th class="num">generation t/s<br>p50 / p95 / p99</th><th class="num">peak RSS<br>p95 / max</th></tr>`, rows)}</section>`;
}

// ---- models -------------------------------------------------------------------------------------------------------

function modelsSection(data: ReportData): string {
  if (data.models.length === 0) return `<section id="models"><h2>Models</h2><p class="muted">No model folders (models/powerinfer/*).</p></section>`;
  const notes = data.trustNotes.map((n) => `<p class="note">${e(n)}</p>`).join("");
  return `<section id="models"><h2>Models</h2>${notes}
<h3>Verification</h3>${verificationTable(data.models)}
<h3>Drift from what was signed</h3>${driftTable(data.models)}
<h3>Provenance</h3>${provenanceTable(data.models)}</section>`;
}

function verificationTable(models: readonly ModelDirectory[]): string {
  const rows = models.map((m) => {
    const v = m.verification;
    const [status, key, detail] =
      v.status === "verified"
        ? [pill("ok", "verified"), `key <code>${e(v.keyId)}</code>`, `${v.files} files, root sha256 <span class="mono">${e(short(v.rootDigest, 16))}</span>, ${v.provenanceVerified ? "provenance verified" : "no provenance"}`]
        : v.status === "failed"
          ? [pill("bad", "failed"), `<code class="code">${e(v.code)}</code>`, e(v.message)]
          : v.status === "unsigned"
            ? [pill("warn", "unsigned"), "", "no model.sig"]
            : [pill("warn", "not checked"), `<code class="code">${e(v.code)}</code>`, e(v.message)];
    return `<tr data-model="${e(m.name)}" data-status="${v.status}"><td class="name"><code>${e(m.dir)}</code></td><td>${status}</td><td class="nowrap">${key}</td><td class="note">${detail}</td></tr>`;
  });
  return table("verification", `<tr><th>model folder</th><th>status</th><th>key / error code</th><th>detail</th></tr>`, rows);
}

function driftCell(cell: DriftCell): string {
  const cls = cell.status === "ok" ? "ok" : cell.status === "drift" ? "bad" : "warn";
  const diffs = cell.differences.map((d) => {
    const change = d.expected !== null || d.actual !== null ? `${d.expected ?? "?"} → ${d.actual ?? "?"}` : "";
    return `<li title="${e(change)}"><span class="mono">${e(d.item)}</span>${change ? `: ${e(shortDigests(change))}` : ""}</li>`;
  });
  return `<td>${pill(cls, cell.status)}${diffs.length > 0 ? `<ul class="diff">${diffs.join("")}</ul>` : ""}</td>`;
}

function driftTable(models: readonly ModelDirectory[]): string {
  const rows = models.map((m) => {
    const d = m.drift;
    const cells = d.checked ? `${driftCell(d.subjects.model)}${driftCell(d.subjects.policy)}${driftCell(d.subjects.engine)}` : `<td colspan="3">${pill("warn", "not checked")} <code>${e(d.code)}</code> <span class="note">${e(d.message)}</span></td>`;
    return `<tr data-model="${e(m.name)}" data-drift="${d.checked ? String(d.drift) : "unknown"}"><td class="name"><code>${e(m.name)}</code></td>${cells}</tr>`;
  });
  return table("drift", `<tr><th>model</th><th>model files</th><th>policy</th><th>engine build</th></tr>`, rows);
}

function provenanceTable(models: readonly ModelDirectory[]): string {
  const rows = models.map((m) => {
    const p = m.provenance;
    if (!p) return `<tr data-model="${e(m.name)}"><td class="name"><code>${e(m.name)}</code></td><td colspan="5" class="muted">no provenance.sigstore.json</td></tr>`;
    const verified = m.verification.status === "verified" && m.verification.provenanceVerified;
    const source = `${e(p.source ?? "?")}${p.sourceCommit ? ` @ <span class="mono">${e(short(p.sourceCommit))}</span>` : p.sourceRevision ? ` (${e(p.sourceRevision)})` : ""}`;
    const engine = `<span class="mono">${e(short(p.engineCommit))}</span>${p.engineBackend ? `, ${e(p.engineBackend)}` : ""}${p.engineBuildNumber !== null ? `, build ${p.engineBuildNumber}` : ""}`;
    return `<tr data-model="${e(m.name)}"><td class="name"><code>${e(m.name)}</code><br>${verified ? pill("ok", "verified") : pill("warn", "not verified")}</td><td>${source}</td><td>${engine}</td><td>${e(p.converter ?? "?")}</td><td class="note">${e(p.builderId ?? "?")}${p.developmentKey ? " (development key)" : ""}</td><td class="nowrap">${p.finishedOn ? e(utc(p.finishedOn)) : "?"}</td></tr>`;
  });
  return table("provenance", `<tr><th>model</th><th>source at commit</th><th>engine commit</th><th>converter</th><th>builder</th><th>built</th></tr>`, rows);
}

function problemsSection(data: ReportData): string {
  if (data.problems.length === 0) return "";
  const rows = data.problems.map((p) => `<tr><td><code>${e(p.path)}</code></td><td><code>${e(p.code)}</code></td><td class="note">${e(p.message)}</td></tr>`);
  return `<section id="problems"><h2>Problems</h2><p class="note">Files found but left out of the report.</p>${table("problems", "<tr><th>file</th><th>code</th><th>why</th></tr>", rows)}</section>`;
}
