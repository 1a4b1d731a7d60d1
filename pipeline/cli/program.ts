/**
 * argv -> the command to run and its parsed arguments and flags, through commander: the
 * program is built from the registry (commands/index.ts), so help pages, flag checks and
 * usage errors all come from the command definitions. Parsing runs nothing (tests parse
 * the workflows' and editor tasks' command lines with it).
 */
import { Command, CommanderError } from "commander";
import { UsageError } from "../core/errors.js";
import { COMMAND_GROUPS, type CliCommand, type Invocation } from "./command.js";
import * as registry from "./commands/index.js";
import { EXIT_MEANINGS } from "./exit.js";
import { isEnvReadByLibrary } from "./flags.js";
import { packageInfo, VERSION_FLAGS, versionLine } from "./version.js";

/** Every command, in help order: by group, then by name (code-unit order: localeCompare would load ICU's collator at start-up). */
const COMMANDS: readonly CliCommand[] = (Object.values(registry) as CliCommand[]).sort(
  (a, b) => COMMAND_GROUPS.indexOf(a.group) - COMMAND_GROUPS.indexOf(b.group) || (a.name < b.name ? -1 : 1),
);

/** The commands' names, in help order. */
export function commandNames(): string[] {
  return COMMANDS.map((c) => c.name);
}

export type ParsedCli =
  /** A command to run. */
  | { kind: "command"; command: CliCommand; invocation: Invocation<Record<string, unknown>> }
  /** --help, --version: the text to print (exit 0). */
  | { kind: "output"; text: string };

/**
 * @param name how the user called the CLI, for help pages and hints ("ai-tools", "pnpm pipeline").
 * @throws UsageError (E_USAGE) naming the flag or argument and the help page to read.
 */
export function parseCli(argv: readonly string[], name = "ai-tools"): ParsedCli {
  // pnpm passes a literal "--" first for `pnpm pipeline -- x`; npm needs it. No command: the overview.
  const args = argv[0] === "--" ? argv.slice(1) : [...argv];
  if (args.length === 0) args.push("--help");
  // Only the command the line names is defined (commander is slow cold: defining all of them
  // costs more start-up than the rest of `--version`); the overview and errors need them all.
  const named = COMMANDS.find((c) => c.name === args[0]);
  const program = named ? buildProgram(name, [named], false) : buildProgram(name, args.length === 1 && (VERSION_FLAGS as readonly string[]).includes(args[0]!) ? [] : COMMANDS);
  const printed: string[] = [];
  let invoked: { cli: CliCommand; leaf: Command } | undefined;
  forEachCommand(program, (command, path) => {
    command.exitOverride((error) => {
      throw error.exitCode === 0 ? error : usageError(error, command, path, name);
    });
    command.configureOutput({ writeOut: (text) => printed.push(text), writeErr: (text) => printed.push(text), outputError: () => undefined });
    if (command.commands.length === 0 && path.length > 0) {
      const cli = COMMANDS.find((c) => c.name === path[0])!;
      command.action(() => {
        invoked = { cli, leaf: command };
      });
    }
  });
  try {
    program.parse(placeOptionalValues(program, args), { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode === 0) return { kind: "output", text: printed.join("") };
    throw error;
  }
  const { cli, leaf } = invoked!;
  const options: Record<string, unknown> = { ...leaf.opts() };
  for (const option of leaf.options) {
    if (isEnvReadByLibrary(option) && leaf.getOptionValueSource(option.attributeName()) === "env") delete options[option.attributeName()];
  }
  return { kind: "command", command: cli, invocation: { path: pathOf(leaf), args: (leaf.processedArgs as (string | undefined)[]).filter((a) => a !== undefined), options } };
}

/** The program with `commands`; `root`: also what only the top level prints (its page, the version). */
function buildProgram(name: string, commands: readonly CliCommand[], root = true): Command {
  const program = new Command(name);
  if (root) {
    const pkg = packageInfo();
    program
      .description(pkg.description)
      .version(versionLine(pkg), VERSION_FLAGS.join(", "), "the version")
      .helpOption("-h, --help", "this page (`<command> --help`: the command's page)")
      .addHelpText("after", `\nExit codes: ${Object.entries(EXIT_MEANINGS).map(([code, meaning]) => `${code} ${meaning}`).join(", ")}.`);
  }
  for (const cli of commands) program.addCommand(cli.define(new Command(cli.name)).helpGroup(`${cli.group}:`));
  if (root) program.commandsGroup(`${COMMAND_GROUPS.at(-1)}:`).helpCommand("help [command]", "a command's page (same as <command> --help)");
  else program.helpCommand(false);
  forEachCommand(program, (command, path) => {
    if (path.length > 0) command.helpOption("-h, --help", "this page");
  });
  return program;
}

/** Which commands declare `flag`: `convert --prompt` says that `run` takes it. */
function commandsTaking(flag: string): string[] {
  const owners: string[] = [];
  forEachCommand(buildProgram("ai-tools", COMMANDS), (command, path) => {
    if (command.options.some((o) => o.long === flag || o.short === flag)) owners.push(path.join(" "));
  });
  return owners;
}

function forEachCommand(command: Command, visit: (command: Command, path: string[]) => void, path: string[] = []): void {
  visit(command, path);
  for (const sub of command.commands) forEachCommand(sub, visit, [...path, sub.name()]);
}

function pathOf(command: Command): string[] {
  const path: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) path.unshift(c.name());
  return path;
}

/**
 * `--force [task]` takes the next word as its task only when the command would otherwise
 * get an argument too many: `convert m --force build` and `convert --force build m` force
 * build, `convert --force m` forces every step of m. Commander alone always takes the word,
 * so a bare flag that must not take it moves behind the arguments.
 */
function placeOptionalValues(program: Command, args: string[]): string[] {
  let leaf = program;
  let start = 0;
  while (start < args.length) {
    const sub = leaf.commands.find((c) => c.name() === args[start]);
    if (!sub) break;
    leaf = sub;
    start++;
  }
  const find = (arg: string) => leaf.options.find((o) => o.long === arg || o.short === arg);
  const positional = new Set<number>();
  const bare: number[] = [];
  for (let i = start; i < args.length && args[i] !== "--"; i++) {
    const option = find(args[i]!);
    if (option?.optional) bare.push(i);
    else if (option?.required) i++;
    else if (!args[i]!.startsWith("-")) positional.add(i);
  }
  // Words beyond the command's arguments: the first ones after a bare flag are its values.
  let spare = positional.size - leaf.registeredArguments.length;
  const moved: number[] = [];
  for (const i of bare) {
    if (!positional.has(i + 1)) continue;
    if (spare > 0) spare--;
    else moved.push(i);
  }
  if (moved.length === 0) return args;
  const end = args.includes("--") ? args.indexOf("--") : args.length;
  const kept = args.slice(0, end).filter((_, i) => !moved.includes(i));
  return [...kept, ...moved.map((i) => args[i]!), ...args.slice(end)];
}

/** Commander's complaint as one line that names the flag or argument and the help page to read. */
function usageError(error: CommanderError, command: Command, path: string[], name: string): UsageError {
  const where = path.join(" ");
  const help = `See \`${[name, ...path].join(" ")} --help\`.`;
  const plain = error.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ").replace(/\.$/, "");
  const quoted = /'([^']+)'/.exec(error.message)?.[1];
  switch (error.code) {
    case "commander.unknownCommand": {
      const suggestion = /\(Did you mean (\S+)\?\)/.exec(error.message)?.[1];
      return new UsageError(`unknown command "${command.args[0]}"${suggestion ? ` (did you mean ${suggestion}?)` : ""}; commands are ${commandNames().join(", ")}. ${help}`);
    }
    case "commander.unknownOption": {
      const flag = quoted!.split("=")[0]!;
      const elsewhere = commandsTaking(flag).filter((p) => p !== where);
      const suggestion = /\(Did you mean (\S+)\?\)/.exec(error.message)?.[1];
      const hint = elsewhere.length > 0 ? ` (${elsewhere.slice(0, 4).join(", ")}${elsewhere.length > 4 ? ", ..." : ""} ${elsewhere.length === 1 ? "takes" : "take"} it${where ? "" : ", after the command"})` : suggestion ? ` (did you mean ${suggestion}?)` : "";
      return new UsageError(`${where ? `${where} does not take` : "unknown option"} ${flag}${hint}. ${help}`);
    }
    case "commander.missingArgument": {
      const argument = command.registeredArguments.find((a) => a.name() === quoted);
      return new UsageError(`${where} needs <${quoted}>${argument?.description ? `: ${argument.description}` : ""}. ${help}`);
    }
    case "commander.excessArguments": {
      const expected = command.registeredArguments.length;
      return new UsageError(`${where} takes ${expected === 0 ? "no arguments" : `${expected} argument${expected === 1 ? "" : "s"}`}; got "${command.args.join(" ")}". ${help}`);
    }
    case "commander.missingMandatoryOptionValue":
      return new UsageError(`${where} needs ${quoted}. ${help}`);
    case "commander.help":
      // A command with subcommands, given none.
      return new UsageError(`${where} needs a command: ${command.commands.map((c) => c.name()).join(", ")}. ${help}`);
    default:
      return new UsageError(`${where ? `${where}: ` : ""}${plain}. ${help}`);
  }
}
