/**
 * The CLI's shape: help pages are generated from the command definitions (per command, no
 * usage text written by hand anywhere), main.ts only wires things together, and a usage
 * error is one line (or, with --json, one error event) and exit 2 from the real binary.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import * as registry from "../pipeline/cli/commands/index.js";
import { commandNames, parseCli } from "../pipeline/cli/program.js";
import { parseEvents } from "./helpers/events.js";
import { CLI, PROJECT_ROOT } from "./helpers/workspace.js";

const CLI_DIR = join(PROJECT_ROOT, "pipeline", "cli");
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));

function helpOf(path: string[]): string {
  const parsed = parseCli([...path, "--help"]);
  if (parsed.kind !== "output") throw new Error(`${path.join(" ")} --help did not print`);
  return parsed.text.replace(/\s+/g, " ");
}

/** Every command and subcommand as defined, with its path. */
function definitions(): { path: string[]; command: Command }[] {
  const all: { path: string[]; command: Command }[] = [];
  const visit = (command: Command, path: string[]) => {
    all.push({ path, command });
    for (const sub of command.commands) visit(sub, [...path, sub.name()]);
  };
  for (const cli of Object.values(registry)) visit(cli.define(new Command(cli.name)), [cli.name]);
  return all;
}

describe("help pages", () => {
  it("the overview lists every registered command with its description", () => {
    const page = helpOf([]);
    expect(page).toMatch(/^Usage: ai-tools \[options\] \[command\]/);
    for (const { path, command } of definitions().filter((d) => d.path.length === 1)) {
      expect(page, path[0]).toContain(` ${path[0]} `);
      expect(page, path[0]).toContain(command.description().split(" ").slice(0, 4).join(" "));
    }
    // One registry line per command: no name twice, none renamed by its definition.
    expect(new Set(commandNames()).size).toBe(commandNames().length);
    for (const cli of Object.values(registry)) expect(cli.define(new Command(cli.name)).name()).toBe(cli.name);
  });

  it("each command's page is its own: its arguments and flags, as declared, and no other command's", () => {
    const everyFlag = new Set(definitions().flatMap((d) => d.command.options.map((o) => o.long!)));
    for (const { path, command } of definitions()) {
      const page = helpOf(path);
      expect(page, path.join(" ")).toContain(`Usage: ai-tools ${path.join(" ")}`);
      expect(page, path.join(" ")).toContain(command.description().split(" ").slice(0, 4).join(" "));
      for (const argument of command.registeredArguments) expect(page, `${path.join(" ")} <${argument.name()}>`).toContain(argument.description.split(" ").slice(0, 3).join(" "));
      for (const option of command.options) {
        expect(page, `${path.join(" ")} ${option.flags}`).toContain(option.flags);
        expect(page, `${path.join(" ")} ${option.flags}`).toContain(option.description.split(" ").slice(0, 3).join(" "));
        if (option.envVar) expect(page).toContain(`env: ${option.envVar}`);
        for (const choice of option.argChoices ?? []) expect(page).toContain(`"${choice}"`);
      }
      const own = new Set(command.options.map((o) => o.long));
      // Descriptions (its own, its subcommands') may mention another command's flag in words.
      const prose = [command, ...command.commands].map((c) => c.description()).join(" ");
      const foreign = [...everyFlag].filter((flag) => !own.has(flag) && new RegExp(`(^|\\s)${flag}(\\s|$|[ ,=<\\[])`).test(page) && !prose.includes(flag));
      expect(foreign, `${path.join(" ")}: flags of other commands on its page`).toEqual([]);
    }
  });

  it("`help <command>` and `<command> --help` print the same page", () => {
    expect(helpOf(["help", "sign"])).toBe(helpOf(["sign"]));
  });

  it("no usage text is written by hand: no string in pipeline/cli lists commands or flags", () => {
    const names = new Set(commandNames());
    const problems: string[] = [];
    for (const file of sources(CLI_DIR)) {
      const text = readFileSync(file, "utf8");
      for (const [literal] of text.matchAll(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g)) {
        const commands = new Set([...literal.matchAll(/\b[a-z][a-z-]+\b/g)].map((m) => m[0]).filter((w) => names.has(w)));
        const flags = new Set(literal.match(/--[a-z][a-z-]+/g) ?? []);
        if (commands.size >= 6 || flags.size >= 5 || /\bUsage:|^.Options:|Commands:/m.test(literal)) {
          problems.push(`${relative(PROJECT_ROOT, file)}: ${literal.slice(0, 100)}`);
        }
      }
      // Nor a hand-kept list of them: ["engine", "convert", ...].
      for (const [list] of text.matchAll(/\[[^\]]*\]/g)) {
        const listed = new Set([...list.matchAll(/"([a-z-]+)"/g)].map((m) => m[1]!).filter((w) => names.has(w)));
        if (listed.size >= 6) problems.push(`${relative(PROJECT_ROOT, file)}: ${list.slice(0, 100)}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("main.ts only wires things together (under 150 lines)", () => {
    const lines = readFileSync(join(CLI_DIR, "main.ts"), "utf8").split("\n").length;
    expect(lines).toBeLessThan(150);
  });
});

describe("the binary", () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env: { ...process.env, CI: "true" }, encoding: "utf8" });

  it("prints a command's own page", () => {
    const result = run(["sign", "--help"]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Usage: ai-tools sign \[options\] <dir>/);
    expect(result.stdout).toContain("--key <file>");
    expect(result.stdout).not.toContain("--prompt");
  });

  it("a misplaced flag: exit 2, one line naming it and the page to read; with --json one error event on stdout", () => {
    const text = run(["convert", "tiny-relu-llama", "--prompt", "hi"]);
    expect(text.status).toBe(2);
    expect(text.stdout).toBe("");
    expect(text.stderr.trim().split("\n")).toEqual(["error [E_USAGE]: convert does not take --prompt (run takes it). See `ai-tools convert --help`."]);

    const json = run(["convert", "tiny-relu-llama", "--prompt", "hi", "--json"]);
    expect(json.status).toBe(2);
    const events = parseEvents(json.stdout);
    expect(events).toEqual([expect.objectContaining({ event: "error", code: "E_USAGE", message: expect.stringContaining("--prompt") })]);
  });
});
