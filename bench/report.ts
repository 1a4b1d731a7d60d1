// Benchmark: `ai-tools report --metrics-log` on a generated metrics log (bench/metrics-log.ts: 5 models, 4 engines,
// ~11.6 days for 1,000,000 lines), the whole CLI as a user runs it (start-up, the streamed pass that fills the
// summary's DDSketches and the time buckets' sketches, six charts compiled to SVG, the page written). Next to it, from
// the same run and on the same file:
//   - reference: `ai-tools metrics summary` (the same stream and sketch without the time series and charts: the floor);
//   - peer: the obvious exact program (read the whole file, JSON.parse every line, keep every latency and time to first
//     token per model, engine version and time bucket of the report's width, sort), which computes the numbers the
//     charts draw and nothing more.
// Each runs once per log size in its own process under /usr/bin/time (wall time and peak RSS, start-up included), at
// two sizes, so the table shows whether memory grows with the log. Prints a Markdown table; deletes its files.
//
// Usage: npx tsx bench/report.ts [--lines N[,N...]]     (default 100000,1000000)
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { generateMetricsLog } from "./metrics-log.js";
import { benchScratch, timedUnderGnuTime, type Timed } from "./scratch.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(repo, "bin", "ai-tools.mjs");
const { values } = parseArgs({ options: { lines: { type: "string", default: "100000,1000000" } } });
const sizes = values.lines.split(",").map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error("usage: npx tsx bench/report.ts [--lines N[,N...]]  (positive integers)");
  process.exit(2);
}

/** The exact peer, as a plain Node script (no tsx, no bundle: what someone would write by hand). */
const NAIVE = `
import { readFileSync } from "node:fs";
const buf = readFileSync(process.argv[2]);
const bucketMs = Number(process.argv[3]);
const groups = new Map();
for (let start = 0; start < buf.length; ) {
  let end = buf.indexOf(10, start);
  if (end < 0) end = buf.length;
  const line = buf.toString("utf8", start, end);
  start = end + 1;
  if (line.trim() === "") continue;
  const r = JSON.parse(line);
  if (r.exitStatus !== "ok" || !r.metrics) continue;
  const key = [r.model.name, r.model.version, r.engine.name, r.engine.version, Math.floor(Date.parse(r.time) / bucketMs)].join("|");
  let g = groups.get(key);
  if (!g) groups.set(key, (g = { total: [], ttft: [] }));
  g.total.push(r.metrics.totalMs);
  if (typeof r.metrics.timeToFirstTokenMs === "number") g.ttft.push(r.metrics.timeToFirstTokenMs);
}
const at = (s, q) => s[Math.max(1, Math.ceil(q * s.length)) - 1];
const out = {};
for (const [key, g] of groups) {
  const t = g.total.sort((a, b) => a - b);
  const f = g.ttft.sort((a, b) => a - b);
  out[key] = [at(t, 0.5), at(t, 0.95), at(t, 0.99), at(f, 0.5), at(f, 0.95), at(f, 0.99)];
}
process.stdout.write(JSON.stringify({ buckets: Object.keys(out).length }));
`;

/** CPU time (user + system) is what a quiet machine's wall time comes near: the work is one thread. */
const timed = (argv: string[], timeFile: string, env: NodeJS.ProcessEnv) => timedUnderGnuTime(argv, timeFile, { env });

const { dir, cleanup } = benchScratch("report");

try {
  // An empty workspace: the log is what is measured. The bundle is brought up to date before anything is timed.
  const workspace = join(dir, "workspace");
  const env = { ...process.env, AI_TOOLS_ROOT: workspace, CI: "true", XDG_CACHE_HOME: join(dir, "cache") };
  spawnSync(process.execPath, [cli, "--version"], { env, stdio: "ignore" });
  const naive = join(dir, "naive.mjs");
  writeFileSync(naive, NAIVE);
  const timeFile = join(dir, "time.txt");
  const rows: string[] = [];
  for (const lines of sizes) {
    const log = join(dir, `metrics-${lines}.jsonl`);
    const started = performance.now();
    await generateMetricsLog(log, lines);
    const mib = statSync(log).size / 2 ** 20;
    console.error(`generated ${lines} lines (${mib.toFixed(0)} MiB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    readFileSync(log).length; // into the page cache, for every method alike

    console.error("running ai-tools report...");
    const out = join(dir, "report.html");
    const report = timed([process.execPath, cli, "report", "--metrics-log", log, "--out", out, "--json"], timeFile, env);
    const event = JSON.parse(report.stdout) as { charts: number; bytes: number; metrics: { records: number; bucketMs: number; series: number } };
    console.error("running ai-tools metrics summary...");
    const summary = timed([process.execPath, cli, "metrics", "summary", log], timeFile, env);
    console.error("running the naive exact peer...");
    const peer = timed([process.execPath, naive, log, String(event.metrics.bucketMs)], timeFile, env);
    const size = `${lines.toLocaleString("en-US")} lines (${mib.toFixed(0)} MiB)`;
    const row = (name: string, m: Timed) =>
      `| ${size} | ${name} | ${m.wallS.toFixed(2)} s | ${m.cpuS.toFixed(2)} s | ${(m.maxRssBytes / 2 ** 20).toFixed(0)} MiB | ${Math.round(lines / m.wallS).toLocaleString("en-US")} |`;
    rows.push(
      row(`ai-tools \`report --metrics-log\` (${event.charts} charts, ${event.metrics.series} series in ${event.metrics.bucketMs / 60_000} min buckets, ${(event.bytes / 1024).toFixed(0)} KiB page)`, report),
      row("reference: ai-tools `metrics summary` (same stream and sketch, no time series or charts)", summary),
      row(`peer: naive exact Node (whole file, every value kept and sorted, ${(JSON.parse(peer.stdout) as { buckets: number }).buckets} buckets; no page)`, peer),
    );
    rmSync(log, { force: true });
  }
  console.log(
    `ai-tools report on a metrics log; Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
      `load average ${loadavg()[0]!.toFixed(1)} at the end; one run each, the log in the page cache\n`,
  );
  console.log("| log | method | wall time | CPU time | peak RSS | lines/s |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const r of rows) console.log(r);
  console.log("\nWall time, CPU time (user + system) and peak RSS from /usr/bin/time, Node start-up included.");
} finally {
  cleanup();
}
