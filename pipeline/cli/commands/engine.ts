/** `engine`: fetch and build PowerInfer as configured; fresh steps are skipped. */
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { buildFlags, graphFlags, type BuildFlags, type GraphFlags } from "../flags.js";
import { runGraph } from "../graph-run.js";

export type EngineFlags = GraphFlags & BuildFlags;

export const engine: CliCommand<EngineFlags> = {
  name: "engine",
  group: "Build and convert",
  define: (command, context) => buildFlags(graphFlags(command.description("fetch and build PowerInfer as configured; fresh steps are skipped"), context)),
  async run({ options }, io) {
    const { outcome } = await runGraph({ graph: "engine", flags: options }, io);
    return exitForOutcome(outcome);
  },
};
