/** `download <model>`: only the checkpoint (and predictor, activation statistics), into the Hugging Face cache. */
import { Command } from "commander";
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { graphFlags, transferFlags } from "../flags.js";
import { runGraph, type RunFlags } from "../graph-run.js";

export function defineDownload(options: { planning?: boolean } = {}): Command {
  const command = new Command("download")
    .description("only the model's checkpoint and predictor, into the Hugging Face cache")
    .argument("<model>", "a model recipe (see `models`)");
  return transferFlags(graphFlags(command, options));
}

export const download: CliCommand<RunFlags> = {
  group: "Build and convert",
  define: () => defineDownload(),
  async run({ args: [model], options }, io) {
    const { outcome } = await runGraph({ graph: "download", model: model!, flags: options }, io);
    return exitForOutcome(outcome);
  },
};
