/**
 * `bench <model>`: measure the converted model again (the convert graph with its bench
 * step forced), then print the result, or with --compare the gate's verdict (exit 1 on a
 * real regression).
 */
import { join } from "node:path";
import type { CliCommand } from "../command.js";
import { EXIT, exitForOutcome } from "../exit.js";
import { buildFlags, conversionFlags, gateFlags, graphFlags, keyFlags, transferFlags, type GateFlags } from "../flags.js";
import { runGraph, type RunFlags } from "../graph-run.js";
import { printEvent, type CliIo } from "../output.js";

export type BenchFlags = RunFlags & GateFlags;

export const bench: CliCommand<BenchFlags> = {
  name: "bench",
  group: "Build and convert",
  define(command, context) {
    command.description("measure the converted model again (bench.json); --compare old.json gates against an earlier result").argument("<model>", "a model recipe (see `models`)");
    return gateFlags(keyFlags(conversionFlags(transferFlags(buildFlags(graphFlags(command, context)))), "; else build/keys/development.key"));
  },
  async run({ args: [model], options }, io) {
    // The point is a fresh number, even when nothing changed.
    const force = options.force === true ? true : [...(options.force ?? []), "bench"];
    const { outcome, workspace } = await runGraph({ graph: "convert", model: model!, flags: options }, io, { force });
    if (outcome.status !== "success" || options.dryRun) return exitForOutcome(outcome);
    return reportBench(io, workspace.root, model!, options);
  },
};

/** The model's bench.json, or with --compare (--baseline) the comparison and the gate's verdict. */
export async function reportBench(io: CliIo, root: string, model: string, flags: GateFlags & { json?: boolean }): Promise<number> {
  const [{ readFile, appendFile }, { parseBenchResult }, compare] = await Promise.all([import("node:fs/promises"), import("../../model-bench/result.js"), import("../../model-bench/compare.js")]);
  const file = join(root, "models", "powerinfer", model, "bench.json");
  const fresh = parseBenchResult(await readFile(file, "utf8"), file);
  const summaryFile = flags.markdown ? io.env.GITHUB_STEP_SUMMARY : undefined;
  const baseline = flags.compare ?? flags.baseline;
  if (!baseline) {
    if (flags.json) printEvent(io, { event: "bench-result", result: fresh });
    else io.out((flags.markdown ? compare.formatResultMarkdown(fresh) : compare.formatResultTable(fresh)) + "\n");
    if (summaryFile) await appendFile(summaryFile, compare.formatResultMarkdown(fresh) + "\n");
    return EXIT.ok;
  }
  const old = parseBenchResult(await readFile(baseline, "utf8"), baseline);
  const result = compare.compareResults(old, fresh, { maxRegressionPercent: flags.maxRegression, forceCompare: flags.forceCompare ?? false });
  const text = flags.markdown ? compare.formatComparisonMarkdown(result) : compare.formatComparisonTable(result);
  if (flags.json) printEvent(io, { event: "bench-comparison", ...result });
  else io.out(text + "\n");
  if (summaryFile) await appendFile(summaryFile, text + "\n");
  return result.failed ? EXIT.failed : EXIT.ok;
}
