/**
 * The engine's server binary, built on demand: the engine graph (source, build) plus the
 * build-server step, each skipped when fresh. Events go to the caller's sink (the CLI's
 * reporter); a failed step is thrown as its own error.
 */
import { join } from "node:path";
import { AbortedError, PipelineError } from "../core/errors.js";
import type { EventSink } from "../core/events.js";
import { executeGraph } from "../core/executor.js";
import { serveGraph } from "../graphs/engine.js";
import { loadEngineSettings, openWorkspace, type EngineOverrides } from "../workspace.js";
import type { ServerBuildResult } from "../../tasks/build-server.js";

export interface BuiltServer extends ServerBuildResult {
  /** Absolute path of the binary. */
  path: string;
  gpu: boolean;
}

export async function buildServerBinary(options: { root: string; env: NodeJS.ProcessEnv; overrides?: EngineOverrides; signal?: AbortSignal; onEvent: EventSink }): Promise<BuiltServer> {
  const workspace = openWorkspace(options.root, options.env);
  const settings = await loadEngineSettings(workspace, options.overrides ?? {});
  const outcome = await executeGraph(serveGraph(workspace, settings), {
    root: workspace.root,
    stateDir: workspace.stateDir,
    logDir: workspace.logDir,
    env: workspace.env,
    ...(options.signal ? { signal: options.signal } : {}),
    onEvent: options.onEvent,
  });
  if (outcome.status === "aborted") throw new AbortedError("interrupted while building the engine server");
  const server = outcome.tasks.get("build-server");
  if (outcome.status !== "success" || (server?.status !== "ran" && server?.status !== "fresh")) {
    const failed = [...outcome.tasks.values()].find((o) => o.status === "failed");
    if (failed?.status === "failed" && failed.error instanceof Error) throw failed.error;
    throw new PipelineError("E_BUILD_OUTPUT", "the engine server could not be built (see the steps above)");
  }
  const result = server.record.result as ServerBuildResult;
  return { ...result, path: join(workspace.root, result.binary), gpu: result.backend === "cuda" || result.backend === "hip" };
}
