/** `convert <model>`: the model graph, from the engine to the signed, benchmarked model. */
import { Command } from "commander";
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { buildFlags, conversionFlags, graphFlags, keyFlags, transferFlags } from "../flags.js";
import { runGraph, type RunFlags } from "../graph-run.js";

export function defineConvert(options: { planning?: boolean } = {}): Command {
  const command = new Command("convert")
    .description("the model pipeline: engine, checkpoint (downloaded, or generated for tiny-relu-llama), conversion [, quantize] [, gpu-split], bench, sign; fresh steps are skipped")
    .argument("<model>", "a model recipe (see `models`)");
  return keyFlags(conversionFlags(transferFlags(buildFlags(graphFlags(command, options)))), "; else build/keys/development.key");
}

export const convert: CliCommand<RunFlags> = {
  group: "Build and convert",
  define: () => defineConvert(),
  async run({ args: [model], options }, io) {
    const { outcome } = await runGraph({ graph: "convert", model: model!, flags: options }, io);
    return exitForOutcome(outcome);
  },
};
