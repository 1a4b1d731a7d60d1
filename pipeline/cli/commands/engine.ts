/** `engine`: fetch and build PowerInfer as configured; fresh steps are skipped. */
import { Command } from "commander";
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { buildFlags, graphFlags, type BuildFlags, type GraphFlags } from "../flags.js";
import { runGraph } from "../graph-run.js";

export type EngineFlags = GraphFlags & BuildFlags;

/** Also a target of `plan` (planning: no --dry-run, it is implied). */
export function defineEngine(options: { planning?: boolean } = {}): Command {
  const command = new Command("engine").description("fetch and build PowerInfer as configured; fresh steps are skipped");
  return buildFlags(graphFlags(command, options));
}

export const engine: CliCommand<EngineFlags> = {
  group: "Build and convert",
  define: () => defineEngine(),
  async run({ options }, io) {
    const { outcome } = await runGraph({ graph: "engine", flags: options }, io);
    return exitForOutcome(outcome);
  },
};
