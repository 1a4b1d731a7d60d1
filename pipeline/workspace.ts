/**
 * The workspace: where configs are read and outputs, state and logs are written, plus
 * the engine settings after flags and env overrides. Built once per CLI call and
 * handed to the task factories.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { displayPath, loadYamlConfig } from "./config/load-yaml.js";
import { engineConfigSchema, type Backend, type EngineConfig } from "./config/engine-config.js";
import { ToolProbe } from "./core/tools.js";
import { UsageError } from "./core/errors.js";

export const ENGINE_CONFIG = "configs/engines/powerinfer.yaml";

export interface Workspace {
  root: string;
  stateDir: string;
  logDir: string;
  env: NodeJS.ProcessEnv;
  tools: ToolProbe;
}

export interface EngineOverrides {
  upstreamUrl?: string;
  backend?: Backend | "auto";
  jobs?: number;
  native?: boolean;
  cudaArch?: string;
  resetUpstream?: boolean;
}

export interface EngineSettings {
  configFile: string;
  config: EngineConfig;
  upstream: EngineConfig["upstream"] & { urlSource: "config" | "--upstream-url" | "AI_TOOLS_POWERINFER_URL" };
  backend: Backend | "auto";
  jobs: number;
  native: boolean;
  cudaArch: string | undefined;
  resetUpstream: boolean;
}

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

export function openWorkspace(root: string, env: NodeJS.ProcessEnv = process.env): Workspace {
  const stateDir = join(root, "build", "state");
  return { root, stateDir, logDir: join(root, "build", "logs"), env, tools: new ToolProbe(join(stateDir, "tools.json"), env) };
}

export async function loadEngineSettings(workspace: Workspace, overrides: EngineOverrides = {}): Promise<EngineSettings> {
  const local = join(workspace.root, ENGINE_CONFIG);
  const configFile = existsSync(local) ? local : join(PACKAGE_ROOT, ENGINE_CONFIG);
  const config = await loadYamlConfig(configFile, engineConfigSchema, displayPath(configFile, workspace.root));
  const envUrl = workspace.env.AI_TOOLS_POWERINFER_URL;
  const upstream = overrides.upstreamUrl
    ? { ...config.upstream, url: overrides.upstreamUrl, urlSource: "--upstream-url" as const }
    : envUrl
      ? { ...config.upstream, url: envUrl, urlSource: "AI_TOOLS_POWERINFER_URL" as const }
      : { ...config.upstream, urlSource: "config" as const };
  if (overrides.jobs !== undefined && (!Number.isInteger(overrides.jobs) || overrides.jobs < 1)) {
    throw new UsageError(`--jobs must be a positive integer, got ${overrides.jobs}`);
  }
  return {
    configFile,
    config,
    upstream,
    backend: overrides.backend ?? config.build.backend,
    jobs: overrides.jobs ?? availableParallelism(),
    native: overrides.native ?? config.build.native,
    cudaArch: overrides.cudaArch,
    resetUpstream: overrides.resetUpstream ?? false,
  };
}
