// The blueprint's scripts/powerinfer/ helpers call the CLI, never the library: what they
// do is what `pnpm pipeline <command>` does, with the same output and exit codes.
// zx runs it (the project's tool for small shell recipes); argv stays an array, so no
// word of it is ever re-split or re-expanded by the shell.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { $ } from "zx";

/** The package's own CLI entry (bin/ai-tools.mjs): these scripts ship with it. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "ai-tools.mjs");

/**
 * The workspace root as the CLI finds it (pipeline/root.ts findRoot: AI_TOOLS_ROOT, else the
 * nearest folder with configs/engines/powerinfer.yaml, else the current one). Repeated here
 * because the scripts name paths under it (models/powerinfer/<model>) from any folder.
 */
export function workspaceRoot(env = process.env, cwd = process.cwd()) {
  if (env.AI_TOOLS_ROOT) return resolve(env.AI_TOOLS_ROOT);
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "configs", "engines", "powerinfer.yaml"))) return dir;
    if (dirname(dir) === dir) return resolve(cwd);
  }
}

/** Runs `ai-tools <args>` with the terminal's stdin/stdout/stderr; resolves with its exit code. */
export async function aiTools(args, options = {}) {
  const result = await $({ stdio: "inherit", nothrow: true, cwd: options.cwd ?? process.cwd() })`${process.execPath} ${CLI} ${args}`;
  return result.exitCode ?? 1;
}

/** For `-h`/`--help` and missing arguments: the usage on stderr (stdout with --help), exit 2 (0 with --help). */
export function usage(text, args) {
  const help = args.includes("-h") || args.includes("--help");
  (help ? process.stdout : process.stderr).write(text.trimEnd() + "\n");
  process.exit(help ? 0 : 2);
}
