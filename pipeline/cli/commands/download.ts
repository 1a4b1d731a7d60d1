/** `download <model>`: only the checkpoint (and predictor, activation statistics), into the Hugging Face cache. */
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { checkpointFlags, graphFlags, modelOrCheckpoint, transferFlags } from "../flags.js";
import { runGraph, type RunFlags } from "../graph-run.js";

export const download: CliCommand<RunFlags> = {
  name: "download",
  group: "Build and convert",
  define(command, context) {
    command.description("only the model's checkpoint and predictor, into the Hugging Face cache").argument("[model]", "a model recipe (see `models`) or a recipe file (.yaml)");
    return checkpointFlags(transferFlags(graphFlags(command, context)));
  },
  async run({ args: [model], options }, io) {
    const named = modelOrCheckpoint("download", model, options);
    const { outcome } = await runGraph({ graph: "download", ...(named !== undefined ? { model: named } : {}), flags: options }, io);
    return exitForOutcome(outcome);
  },
};
