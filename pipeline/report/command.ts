/**
 * `ai-tools report`: gather, render, write one HTML file (temp + rename: a reader never sees half a report), then say
 * what is in it (a line, or with --json one `report` event). Self-contained: it takes plain options and an io object,
 * so any argv parser can call it. Exit 0 once the report is written, whatever it shows (a failed verification or gate
 * is the report's content, not the command's failure; `verify` and `bench --compare` are the gates).
 */
import { join, relative, resolve } from "node:path";
import { atomicWriteFile } from "../core/files.js";
import { EVENT_SCHEMA_VERSION } from "../core/events.js";
import { gatherReportData } from "./gather.js";
import { renderReport } from "./render.js";

export const DEFAULT_REPORT_FILE = join("build", "report", "index.html");

export interface ReportCommandOptions {
  /** Where to write the page; default <workspace>/build/report/index.html. */
  out?: string;
  /** Model names; each entry may hold several, comma-separated. Empty: every model. */
  models?: readonly string[];
  metricsLog?: string;
  /** bench.json files or folders of them (repeatable --baseline). */
  baselines?: readonly string[];
  maxRegressionPercent?: number;
  trustedKeys?: string;
  json: boolean;
}

export interface ReportIo {
  out(text: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** The workspace root. */
  root: string;
  /** The command line as typed, for the report's footer. */
  command?: string;
  signal?: AbortSignal;
}

/** `--models a,b --models c` -> [a, b, c]. */
export function splitModelList(values: readonly string[] = []): string[] {
  return [...new Set(values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean))];
}

export async function runReport(options: ReportCommandOptions, io: ReportIo): Promise<number> {
  const file = options.out ? resolve(options.out) : join(io.root, DEFAULT_REPORT_FILE);
  const data = await gatherReportData({
    root: io.root,
    env: io.env,
    models: splitModelList(options.models),
    command: io.command ?? "ai-tools report",
    ...(options.metricsLog !== undefined ? { metricsLog: options.metricsLog } : {}),
    ...(options.baselines ? { baselines: options.baselines } : {}),
    ...(options.maxRegressionPercent !== undefined ? { maxRegressionPercent: options.maxRegressionPercent } : {}),
    ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
    ...(io.signal ? { signal: io.signal } : {}),
  });
  const { html, charts } = await renderReport(data);
  await atomicWriteFile(file, html);

  const bytes = Buffer.byteLength(html);
  const points = data.bench.groups.flatMap((g) => g.points);
  const gateFailures = data.bench.groups.flatMap((g) =>
    g.points.filter((p) => p.gate?.failed).map((p) => ({ model: g.model, hostClass: g.hostClass, result: p.label, createdAt: p.createdAt, summary: p.gate!.summary })),
  );
  const models = data.models.map((m) => ({
    name: m.name,
    verification: m.verification.status,
    ...(m.verification.status === "failed" || m.verification.status === "not-checked" ? { code: m.verification.code } : {}),
    ...(m.verification.status === "verified" ? { keyId: m.verification.keyId } : {}),
    drift: m.drift.checked ? m.drift.drift : null,
  }));
  if (options.json) {
    io.out(
      JSON.stringify({
        v: EVENT_SCHEMA_VERSION,
        time: new Date().toISOString(),
        event: "report",
        file,
        bytes,
        charts,
        bench: { results: points.length, groups: data.bench.groups.map((g) => ({ model: g.model, hostClass: g.hostClass, results: g.points.length })), gateFailures },
        metrics: data.metrics && { file: data.metrics.file, lines: data.metrics.summary.lines, records: data.metrics.summary.records, malformed: data.metrics.summary.malformed.count, bucketMs: data.metrics.timeline.bucketMs, series: data.metrics.timeline.series.length },
        models,
        problems: data.problems,
      }) + "\n",
    );
    return 0;
  }
  const shown = relative(process.cwd(), file) || file;
  const failed = models.filter((m) => m.verification === "failed");
  const drifted = models.filter((m) => m.drift === true);
  io.out(`wrote ${shown} (${(bytes / 1024).toFixed(0)} KiB, ${charts} chart${charts === 1 ? "" : "s"}, self-contained: open it in a browser)\n`);
  io.out(`  bench: ${points.length} result${points.length === 1 ? "" : "s"} in ${data.bench.groups.length} model/host class group${data.bench.groups.length === 1 ? "" : "s"}${gateFailures.length > 0 ? `, ${gateFailures.length} failing the release gate` : ""}\n`);
  if (data.metrics) io.out(`  metrics: ${data.metrics.summary.records} requests from ${data.metrics.file}${data.metrics.summary.malformed.count > 0 ? ` (${data.metrics.summary.malformed.count} malformed lines)` : ""}\n`);
  io.out(
    `  models: ${models.length} folder${models.length === 1 ? "" : "s"}, ${models.filter((m) => m.verification === "verified").length} verified` +
      `${failed.length > 0 ? `, ${failed.length} failed (${failed.map((m) => `${m.name} ${m.code}`).join(", ")})` : ""}` +
      `${drifted.length > 0 ? `, ${drifted.length} drifted (${drifted.map((m) => m.name).join(", ")})` : ""}\n`,
  );
  for (const p of data.problems) io.err(`warning: ${p.path} left out [${p.code}]: ${p.message}`);
  return 0;
}
