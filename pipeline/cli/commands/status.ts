/** `status [model]`: each step of the engine graph (or the model's graph) fresh, stale (why) or missing. */
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { buildFlags, conversionFlags, jsonFlag, keyFlags, transferFlags } from "../flags.js";
import { graphStatus, type RunFlags } from "../graph-run.js";

export const status: CliCommand<RunFlags> = {
  name: "status",
  group: "Build and convert",
  define(command) {
    command
      .description("each step: fresh, stale (why) or missing")
      .argument("[model]", "a model recipe: its whole graph (default: the engine's)");
    return keyFlags(conversionFlags(transferFlags(buildFlags(jsonFlag(command, "one task-status event per step on stdout")))), "");
  },
  async run({ args: [model], options }, io) {
    const outcome = await graphStatus({ graph: model === undefined ? "engine" : "convert", ...(model !== undefined ? { model } : {}), flags: options }, io);
    return exitForOutcome(outcome);
  },
};
