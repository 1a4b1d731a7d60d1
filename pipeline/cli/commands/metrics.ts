/** `metrics summary <log>`: p50/p95/p99 per model from a metrics log (`run --metrics-log`). */
import { Command } from "commander";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { jsonFlag } from "../flags.js";
import { printEvent } from "../output.js";

export const metrics: CliCommand<{ json?: boolean }> = {
  name: "metrics",
  group: "Run models",
  define(command) {
    const summary = new Command("summary").description("p50/p95/p99 per model from a metrics log").argument("<log>", "a metrics log (JSON lines, from run --metrics-log)");
    return command.description("metrics logs: summary <log>").addCommand(jsonFlag(summary, "one metrics-summary event on stdout"));
  },
  async run({ args: [log], options }, io) {
    const { summarizeMetricsLog, formatSummaryTable } = await import("../../metrics/summary.js");
    const summary = await summarizeMetricsLog(log!);
    if (options.json) printEvent(io, { event: "metrics-summary", ...summary });
    else io.out(formatSummaryTable(summary) + "\n");
    return EXIT.ok;
  },
};
