/**
 * The CLI's entry point: argv -> the command (program.ts, from the registry in
 * commands/), run it, map what it throws to a message and an exit status (exit.ts). Each
 * command is a thin layer over library calls that tests make directly.
 */
import { basename } from "node:path";
// Only what every command needs loads up front: the commands load their libraries when
// they run, so `--version`, `verify` and `run` do not pay for the graph engine, the tasks
// or zod (see bench/cli-startup.mjs).
import { findRoot } from "../root.js";
import { EXIT, reportError } from "./exit.js";
import { processIo } from "./output.js";
import type { ParsedCli } from "./program.js";
import { VERSION_FLAGS, versionLine } from "./version.js";

export async function main(argv: readonly string[]): Promise<number> {
  const io = processIo(findRoot(process.env));
  // A bare --version is answered before the program loads: commander and the command
  // definitions are most of this line's start-up (bench/cli-startup.mjs).
  if (argv.length === 1 && (VERSION_FLAGS as readonly string[]).includes(argv[0]!)) {
    io.out(`${versionLine()}\n`);
    return EXIT.ok;
  }
  const { parseCli } = await import("./program.js");
  let parsed: ParsedCli;
  try {
    parsed = parseCli(argv, invokedAs(process.env, process.argv[1]));
  } catch (error) {
    return reportError(io, error, argv.includes("--json"));
  }
  if (parsed.kind === "output") {
    io.out(parsed.text);
    return EXIT.ok;
  }
  try {
    return await parsed.command.run(parsed.invocation, io);
  } catch (error) {
    return reportError(io, error, parsed.invocation.options.json === true);
  }
}

/** What the user typed, for help pages and hints: `pnpm pipeline` (the script), `pipeline` or `ai-tools` (the bins). */
function invokedAs(env: NodeJS.ProcessEnv, script: string | undefined): string {
  if (env.npm_lifecycle_event === "pipeline") return "pnpm pipeline";
  return script !== undefined && basename(script) === "pipeline" ? "pipeline" : "ai-tools";
}
