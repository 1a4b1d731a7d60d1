/**
 * `report`: one self-contained HTML page (no server, no network) of bench results per model
 * and host class with the release gate, runtime metrics over time from a metrics log, and
 * verification, drift and provenance per model folder.
 */
import { Option } from "commander";
import type { CliCommand } from "../command.js";
import { collect } from "../flags.js";

interface ReportFlags {
  out?: string;
  models?: string[];
  metricsLog?: string;
  baseline?: string[];
  maxRegression: number;
  trustedKeys?: string;
  json?: boolean;
}

export const report: CliCommand<ReportFlags> = {
  name: "report",
  group: "Workspace",
  define(command) {
    return command
      .description("one offline HTML page: bench results with the release gate, runtime metrics over time, verification, drift and provenance per model")
      .option("--out <file>", "where to write the page (default build/report/index.html)")
      .addOption(new Option("--models <names>", "only these models (comma-separated, repeatable)").argParser(collect))
      .addOption(new Option("--metrics-log <file>", "the runtime metrics log (JSON lines of `run`/`serve`)").env("AI_TOOLS_METRICS_LOG"))
      .addOption(new Option("--baseline <bench.json|dir>", "more bench results to draw, e.g. the last release's (repeatable)").argParser(collect))
      .addOption(new Option("--max-regression <pct>", "the release gate's threshold drawn on the charts").argParser(Number).default(10))
      .option("--trusted-keys <file>", "the trust store for the verification column")
      .option("--json", "one report event on stdout");
  },
  async run({ options }, io) {
    const { runReport } = await import("../../report/command.js");
    return runReport(
      {
        json: options.json ?? false,
        ...(options.out ? { out: options.out } : {}),
        ...(options.models ? { models: options.models } : {}),
        ...(options.metricsLog ? { metricsLog: options.metricsLog } : {}),
        ...(options.baseline ? { baselines: options.baseline } : {}),
        maxRegressionPercent: options.maxRegression,
        ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
      },
      { ...io, command: `ai-tools ${process.argv.slice(2).join(" ")}` },
    );
  },
};
