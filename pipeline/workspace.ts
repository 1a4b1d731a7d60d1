/**
 * The workspace: where configs are read and outputs, state and logs are written, plus
 * the engine settings after flags and env overrides. Built once per CLI call and
 * handed to the task factories.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { displayPath, loadYamlConfig } from "./config/load-yaml.js";
import { engineConfigSchema, type Backend, type EngineConfig } from "./config/engine-config.js";
import { ToolProbe } from "./core/tools.js";
import { UsageError } from "./core/errors.js";
import { ENGINE_CONFIG, PACKAGE_ROOT } from "./root.js";

// Re-exported: existing callers import them from here.
export { ENGINE_CONFIG, PACKAGE_ROOT, findRoot } from "./root.js";


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
  /** oci://HOST/REPO shared between machines (--build-cache). */
  buildCache?: string;
  /** The key that signs build cache entries (--key); default: the configured or development key. */
  signingKeyFile?: string;
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
  /** From --build-cache, AI_TOOLS_BUILD_CACHE, or build.cache in the engine config. */
  buildCache: string | undefined;
  signingKeyFile: string | undefined;
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
    buildCache: overrides.buildCache ?? (workspace.env.AI_TOOLS_BUILD_CACHE || undefined) ?? config.build.cache,
    signingKeyFile: overrides.signingKeyFile,
  };
}
