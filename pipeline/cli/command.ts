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
  /** What the user types. */
  name: string;
  /** Where `--help` lists it. */
  group: CommandGroup;
  /**
   * Declares everything on `command` (a new commander Command of this name) but no action, and
   * returns it. `planning`: defined as a target of `plan` (no --dry-run: it is implied).
   */
  define(command: Command, context?: { planning?: boolean }): Command;
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
export const COMMAND_GROUPS = ["Build and convert", "Sign and verify", "Distribute", "Run models", "Workspace"] as const;
export type CommandGroup = (typeof COMMAND_GROUPS)[number];
