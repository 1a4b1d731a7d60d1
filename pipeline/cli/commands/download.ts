/** `download <model>`: only the checkpoint (and predictor, activation statistics), into the Hugging Face cache. */
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { graphFlags, transferFlags } from "../flags.js";
import { runGraph, type RunFlags } from "../graph-run.js";

export const download: CliCommand<RunFlags> = {
  name: "download",
  group: "Build and convert",
  define(command, context) {
    command.description("only the model's checkpoint and predictor, into the Hugging Face cache").argument("<model>", "a model recipe (see `models`)");
    return transferFlags(graphFlags(command, context));
  },
  async run({ args: [model], options }, io) {
    const { outcome } = await runGraph({ graph: "download", model: model!, flags: options }, io);
    return exitForOutcome(outcome);
  },
};
