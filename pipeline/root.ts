/**
 * Where things are, without loading anything else: the package's own folder and the
 * workspace root. The CLI's start-up path needs these before it knows the command.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ENGINE_CONFIG = "configs/engines/powerinfer.yaml";

/** The package's own folder (holds the default configs when installed as a dependency). */
export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();

/**
 * AI_TOOLS_ROOT, else the nearest folder at or above `cwd` that has the engine
 * config (a checkout of this repository or a project set up like one), else `cwd`.
 */
export function findRoot(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (env.AI_TOOLS_ROOT) return resolve(env.AI_TOOLS_ROOT);
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, ENGINE_CONFIG))) return dir;
    if (dirname(dir) === dir) return resolve(cwd);
  }
}
