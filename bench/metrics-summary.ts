// Benchmark: `summarizeMetricsLog` (streamed, quantile sketches) on a generated 1,000,000-line metrics log next to
// two peers that compute the same per-model numbers exactly: a naive Node program (read the whole file, JSON.parse
// every line, keep every value, sort) and `jq -s` (slurp, group_by, sort). Each runs once, in its own child process
// under /usr/bin/time, which gives the wall time and the peak RSS (start-up included for all; a bare `node` start is
// shown for reference). The Node children are bundled with esbuild first, so tsx's loader is not measured. The log is
// realistic: 5 models on 4 engines, 2% errors, log-normal latencies. The quantiles of each method are checked against
// the naive (exact) ones. Prints a Markdown table; deletes the log at the end.
//
// Usage: npx tsx bench/metrics-summary.ts [--lines N]     (default 1000000)
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { MetricsRecord } from "../pipeline/metrics/record.js";
import { SUMMARY_METRICS, summarizeMetricsLog, type SummaryMetric } from "../pipeline/metrics/summary.js";
import { generateMetricsLog } from "./metrics-log.js";
import { benchScratch, timedUnderGnuTime, type Timed } from "./scratch.js";

/** What every method prints: per "model|engine", requests, errors and, per metric, mean and percentiles. */
type Stats = { n: number; mean: number; p50: number; p95: number; p99: number } | null;
type Output = Record<string, { requests: number; errors: number; metrics: Record<string, Stats> }>;
type ChildReport = { workMs: number; selfMaxRssBytes: number; out: Output };

const { values, positionals } = parseArgs({ options: { lines: { type: "string", default: "1000000" }, child: { type: "string" } }, allowPositionals: true });

// ---- children ---------------------------------------------------------------------------------------------------

async function runChild(method: string, file: string): Promise<void> {
  const started = performance.now();
  const out = method === "ours" ? await ours(file) : naive(file);
  const report: ChildReport = { workMs: performance.now() - started, selfMaxRssBytes: process.resourceUsage().maxRSS * 1024, out };
  process.stdout.write(JSON.stringify(report));
}

async function ours(file: string): Promise<Output> {
  const summary = await summarizeMetricsLog(file);
  const out: Output = {};
  for (const m of summary.models) {
    const metrics: Record<string, Stats> = {};
    for (const name of SUMMARY_METRICS) {
      const s = m.metrics[name];
      metrics[name] = s && { n: s.count, mean: s.mean, p50: s.p50, p95: s.p95, p99: s.p99 };
    }
    out[`${m.model}|${m.engine}`] = { requests: m.requests, errors: m.errors, metrics };
  }
  return out;
}

/** The obvious program: whole file in memory, every value kept, sorted (as a Buffer: the log is over V8's string limit). */
function naive(file: string): Output {
  const buf = readFileSync(file);
  const groups = new Map<string, { requests: number; errors: number; values: Record<SummaryMetric, number[]> }>();
  for (let start = 0; start < buf.length; ) {
    let end = buf.indexOf(10, start);
    if (end < 0) end = buf.length;
    const line = buf.toString("utf8", start, end);
    start = end + 1;
    if (line.trim() === "") continue;
    const r = JSON.parse(line) as MetricsRecord;
    const key = `${r.model.version ? `${r.model.name}@${r.model.version}` : r.model.name}|${r.engine.name}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { requests: 0, errors: 0, values: Object.fromEntries(SUMMARY_METRICS.map((m) => [m, []])) as unknown as Record<SummaryMetric, number[]> }));
    g.requests++;
    if (r.exitStatus !== "ok") g.errors++;
    else if (r.metrics) for (const m of SUMMARY_METRICS) if (typeof r.metrics[m] === "number") g.values[m].push(r.metrics[m]);
  }
  const out: Output = {};
  for (const [key, g] of groups) {
    const metrics: Record<string, Stats> = {};
    for (const m of SUMMARY_METRICS) {
      const s = g.values[m].sort((a, b) => a - b);
      const at = (q: number) => s[Math.max(1, Math.ceil(q * s.length)) - 1]!;
      metrics[m] = s.length === 0 ? null : { n: s.length, mean: s.reduce((a, b) => a + b, 0) / s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99) };
    }
    out[key] = { requests: g.requests, errors: g.errors, metrics };
  }
  return out;
}

/** The same numbers in jq (nearest-rank percentiles, as the others). */
const JQ_PROGRAM = `
def pct($s; $p): $s[([($p * ($s|length) | ceil), 1] | max) - 1];
def stats: if length == 0 then null else sort as $s | {n: length, mean: (add / length), p50: pct($s; 0.5), p95: pct($s; 0.95), p99: pct($s; 0.99)} end;
group_by([.model.name, .model.version, .engine.name])
| map(. as $g | ($g | map(select(.exitStatus == "ok" and .metrics != null) | .metrics)) as $ok
  | { key: ((if $g[0].model.version then "\\($g[0].model.name)@\\($g[0].model.version)" else $g[0].model.name end) + "|" + $g[0].engine.name),
      value: { requests: ($g | length), errors: ($g | map(select(.exitStatus != "ok")) | length),
               metrics: (reduce ("${SUMMARY_METRICS.join('","')}") as $m ({}; .[$m] = ($ok | map(.[$m] | numbers) | stats))) } })
| from_entries`;

// ---- parent -----------------------------------------------------------------------------------------------------


/** `argv` under /usr/bin/time: elapsed seconds and peak RSS of the process, as the kernel counts them. */
const timed = (argv: string[], timeFile: string) => timedUnderGnuTime(argv, timeFile, { stderr: "inherit" });

/** Largest relative difference of any mean/p50/p95/p99 of `got` from the exact `want` (and counts must agree). */
function maxRelDiff(got: Output, want: Output): number {
  let worst = 0;
  for (const [key, w] of Object.entries(want)) {
    const g = got[key];
    if (!g || g.requests !== w.requests || g.errors !== w.errors) throw new Error(`${key}: counts differ (${JSON.stringify(g && [g.requests, g.errors])} vs ${w.requests}, ${w.errors})`);
    for (const [metric, ws] of Object.entries(w.metrics)) {
      const gs = g.metrics[metric];
      if (!ws || !gs) {
        if (ws !== gs) throw new Error(`${key} ${metric}: null in one method only`);
        continue;
      }
      if (gs.n !== ws.n) throw new Error(`${key} ${metric}: n ${gs.n} vs ${ws.n}`);
      for (const k of ["mean", "p50", "p95", "p99"] as const) worst = Math.max(worst, Math.abs(gs[k] - ws[k]) / Math.abs(ws[k]));
    }
  }
  if (Object.keys(got).length !== Object.keys(want).length) throw new Error("model sets differ");
  return worst;
}

async function main(lines: number): Promise<void> {
  if (!Number.isInteger(lines) || lines < 1) {
    console.error("usage: npx tsx bench/metrics-summary.ts [--lines N]  (a positive integer)");
    process.exit(2);
  }
  const childBundle = join(dirname(fileURLToPath(import.meta.url)), `.metrics-summary-child-${process.pid}.mjs`);
  const { dir, cleanup } = benchScratch("metrics", [childBundle]);
  try {
    const log = join(dir, "metrics.jsonl");
    let t = performance.now();
    await generateMetricsLog(log, lines);
    const size = statSync(log).size;
    console.error(`generated ${lines} lines, ${(size / 2 ** 20).toFixed(0)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // The children as one plain-Node bundle (esbuild is only needed here, so imported here).
    const { build } = await import("esbuild");
    // Beside this script, so its external packages (DDSketch keeps protobufjs out of reach of a bundle) resolve from node_modules.
    const bundle = childBundle;
    await build({ entryPoints: [fileURLToPath(import.meta.url)], outfile: bundle, bundle: true, format: "esm", platform: "node", target: "node20", external: ["esbuild", "@datadog/sketches-js"], logLevel: "warning" });
    // Read once so every method starts from the page cache.
    readFileSync(log).length;

    const timeFile = join(dir, "time.txt");
    const rows: { name: string; m: Timed; workS: number | null; out: Output | null }[] = [];
    const node = (method: string) => {
      console.error(`running ${method}...`);
      const m = timed([process.execPath, bundle, "--child", method, log], timeFile);
      const report = JSON.parse(m.stdout) as ChildReport;
      return { m, workS: report.workMs / 1000, out: report.out };
    };
    rows.push({ name: "ai-tools `summarizeMetricsLog` (readline stream + DDSketch, 1% relative accuracy)", ...node("ours") });
    rows.push({ name: "peer: naive Node (read whole file, JSON.parse all, keep + sort every value)", ...node("naive") });
    let jqVersion: string | null = null;
    try {
      jqVersion = execFileSync("jq", ["--version"], { encoding: "utf8" }).trim();
    } catch {
      console.error("jq not found: its row is left out");
    }
    if (jqVersion) {
      console.error("running jq -s...");
      t = performance.now();
      const m = timed(["jq", "-s", "-c", JQ_PROGRAM, log], timeFile);
      rows.push({ name: `peer: \`jq -s\` (${jqVersion}: slurp, group_by, sort)`, m, workS: null, out: JSON.parse(m.stdout) as Output });
    }
    const bare = timed([process.execPath, "-e", ""], timeFile);

    const exact = rows[1]!.out!;
    const MiB = (b: number) => (b / 2 ** 20).toFixed(0);
    console.log(
      `Metrics log summary: ${lines.toLocaleString("en-US")} lines, ${MiB(size)} MiB (5 models, 2% errors) in the page cache (${tmpdir()}); ` +
        `Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; one run each\n`,
    );
    console.log("| method | wall time (process) | of which summarizing | peak RSS | lines/s | max rel. diff of mean/p50/p95/p99 vs exact |");
    console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (const r of rows) {
      const diff = r.out ? maxRelDiff(r.out, exact) : NaN;
      console.log(
        `| ${r.name} | ${r.m.wallS.toFixed(2)} s | ${r.workS === null ? "–" : `${r.workS.toFixed(2)} s`} | ${MiB(r.m.maxRssBytes)} MiB | ` +
          `${Math.round(lines / r.m.wallS).toLocaleString("en-US")} | ${r === rows[1] ? "(exact)" : `${(diff * 100).toFixed(3)} %`} |`,
      );
    }
    console.log(`| reference: bare \`node -e ""\` start | ${bare.wallS.toFixed(2)} s | – | ${MiB(bare.maxRssBytes)} MiB | – | – |`);
    console.log("\nWall time and peak RSS from /usr/bin/time (start-up included); \"of which summarizing\" is measured inside the Node child.");
  } finally {
    cleanup();
  }
}

// Last: the functions above read constants (JQ_PROGRAM) that must be initialized first.
if (values.child) await runChild(values.child, positionals[0]!);
else await main(Number(values.lines));
