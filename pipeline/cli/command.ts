/**
 * What a command module is: its commander definition (name, arguments, flags with their
 * choices, conflicts and environment fallbacks, descriptions: the help page is generated
 * from these) and what it does. Modules load at start-up to build the command table, so
 * they import only light things at the top; libraries load inside run().
 */
import type { Command } from "commander";
import type { CliIo } from "./output.js";

// `any` by default: the registry holds commands whose flags differ; each module types its own.
export interface CliCommand<Options = any> {
  /** Where `--help` lists it. */
  group: CommandGroup;
  /** A new commander Command with everything declared but no action (plan builds its targets twice). */
  define(): Command;
  /** Does the work; the exit status comes back. Errors thrown here are reported by main. */
  run(invocation: Invocation<Options>, io: CliIo): Promise<number>;
}

/** The parsed command line of one command. */
export interface Invocation<Options> {
  /** Command names from the top, e.g. ["plan", "convert"] or ["verify"]. */
  path: string[];
  /** Its arguments, in declaration order. */
  args: string[];
  options: Options;
}

/** The sections of `--help`, in this order. */
export const COMMAND_GROUPS = ["Build and convert", "Sign and verify", "Run models", "Workspace"] as const;
export type CommandGroup = (typeof COMMAND_GROUPS)[number];
