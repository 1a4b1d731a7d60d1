/** `plan <command> [model]`: what engine, convert, download or bench would run and why; runs nothing. */
import { Command } from "commander";
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { runGraph, type RunFlags } from "../graph-run.js";
import { bench } from "./bench.js";
import { convert } from "./convert.js";
import { download } from "./download.js";
import { engine } from "./engine.js";

export const plan: CliCommand<RunFlags> = {
  name: "plan",
  group: "Build and convert",
  define(command) {
    command.description("what <command> would run and why, without side effects");
    // The targets with their own flags (and help pages: `plan convert --help`).
    for (const target of [engine, convert, download, bench]) command.addCommand(target.define(new Command(target.name), { planning: true }));
    return command;
  },
  async run({ path, args: [model], options }, io) {
    const target = path[1];
    const graph = target === "engine" ? "engine" : target === "download" ? "download" : "convert";
    const { outcome } = await runGraph({ graph, ...(model !== undefined ? { model } : {}), flags: options, planning: true }, io);
    return exitForOutcome(outcome);
  },
};
