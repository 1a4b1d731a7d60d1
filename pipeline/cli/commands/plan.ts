/** `plan <command> [model]`: what engine, convert, download or bench would run and why; runs nothing. */
import { Command } from "commander";
import type { CliCommand } from "../command.js";
import { exitForOutcome } from "../exit.js";
import { runGraph, type RunFlags } from "../graph-run.js";
import { defineBench } from "./bench.js";
import { defineConvert } from "./convert.js";
import { defineDownload } from "./download.js";
import { defineEngine } from "./engine.js";

export const plan: CliCommand<RunFlags> = {
  group: "Build and convert",
  define() {
    const command = new Command("plan").description("what <command> would run and why, without side effects");
    // The targets with their own flags (and help pages: `plan convert --help`).
    for (const target of [defineEngine, defineConvert, defineDownload, defineBench]) command.addCommand(target({ planning: true }));
    return command;
  },
  async run({ path, args: [model], options }, io) {
    const target = path[1];
    const graph = target === "engine" ? "engine" : target === "download" ? "download" : "convert";
    const { outcome } = await runGraph({ graph, ...(model !== undefined ? { model } : {}), flags: options, planning: true }, io);
    return exitForOutcome(outcome);
  },
};
