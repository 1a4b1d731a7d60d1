/** `convert <model>`: the model graph, from the engine to the signed, benchmarked model. */
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { buildFlags, checkpointFlags, conversionFlags, graphFlags, keyFlags, modelOrCheckpoint, transferFlags } from "../flags.js";
import { runGraph, type RunFlags } from "../graph-run.js";

export const convert: CliCommand<RunFlags> = {
  name: "convert",
  group: "Build and convert",
  define(command, context) {
    command
      .description("the model pipeline: engine, checkpoint (downloaded, or generated for tiny-relu-llama), conversion [, quantize] [, gpu-split], bench, sign; fresh steps are skipped")
      .argument("[model]", "a model recipe (see `models`) or a recipe file (.yaml)");
    return checkpointFlags(keyFlags(conversionFlags(transferFlags(buildFlags(graphFlags(command, context)))), "; else build/keys/development.key"));
  },
  async run({ args: [model], options }, io) {
    const named = modelOrCheckpoint("convert", model, options);
    const { outcome } = await runGraph({ graph: "convert", ...(named !== undefined ? { model: named } : {}), flags: options }, io);
    return exitForOutcome(outcome);
  },
};
