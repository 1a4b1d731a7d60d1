/**
 * Task `build-server`: the engine's HTTP server (upstream's examples/server, CMake target
 * `server`), built on demand by `ai-tools serve` in the build step's own CMake tree. Not one
 * of build.targets: the server is a large C++ file most users never run, and adding it there
 * would change the build's fingerprint and so rebuild everything into a new folder. Here it
 * costs one more target in an already configured tree, and any rebuild of the engine makes
 * it stale (the build's identity is one of its inputs).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { CommandFailedError, PipelineError } from "../pipeline/core/errors.js";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import type { Backend } from "../pipeline/config/engine-config.js";
import type { EngineSettings, Workspace } from "../pipeline/workspace.js";
import { parseCmakeProgress, type BuildInfo, type BuildResult } from "./build.js";

export const SERVER_TARGET = "server";

export interface ServerBuildResult {
  /** Relative to the workspace root. */
  binary: string;
  backend: Backend;
  buildDir: string;
  /** The engine build's `main` build info and source commit (the same tree built both). */
  buildInfo: BuildInfo;
  sourceCommit: string;
}

export function buildServerTask(workspace: Workspace, settings: EngineSettings): TaskDefinition<ServerBuildResult> {
  const configName = "configs/engines/powerinfer.yaml";
  /** The build step's folder, known once its record is (inputs() runs before outputs()). */
  let buildDir: string | undefined;

  return {
    id: "build-server",
    title: "Build the PowerInfer server",
    version: 1,
    dependsOn: ["build"],

    inputs(ctx) {
      buildDir = (ctx.deps.get("build")?.result as BuildResult | undefined)?.buildDir;
      // The build's fingerprint and binaries come in as its dependency key.
      return { values: { target: SERVER_TARGET } };
    },

    outputs: () => (buildDir ? [{ path: join(buildDir, "bin", SERVER_TARGET), hash: true }] : []),

    async run(ctx) {
      const build = ctx.deps.get("build")!.result as BuildResult;
      const env = { ...workspace.env, ...settings.config.build.presets[build.backend]?.env };
      const binary = join(build.buildDir, "bin", SERVER_TARGET);
      ctx.progress({ percent: 0, message: `cmake --build ${build.buildDir} --target ${SERVER_TARGET}` });
      try {
        await ctx.run(
          [build.tools.cmake!.path, "--build", join(ctx.root, build.buildDir), "--config", settings.config.build.buildType, "-j", String(settings.jobs), "--target", SERVER_TARGET],
          {
            env,
            timeoutMs: settings.config.build.timeoutMinutes * 60_000,
            onLine: (line) => {
              const percent = parseCmakeProgress(line);
              ctx.progress(percent === undefined ? { message: line } : { percent, message: line });
            },
          },
        );
      } catch (error) {
        if (error instanceof CommandFailedError && [...error.errorLines, ...error.tail].some((l) => /No rule to make target '?server|unknown target '?server/.test(l))) {
          throw new PipelineError("E_BUILD_OUTPUT", `the engine's CMake tree has no ${SERVER_TARGET} target`, {
            cause: error,
            details: [`Upstream adds it only with -DLLAMA_BUILD_SERVER=ON (the default): check build.cmakeFlags in ${configName}.`, `Full log: ${ctx.logFile}`],
          });
        }
        throw error;
      }
      if (!existsSync(join(ctx.root, binary))) {
        throw new PipelineError("E_BUILD_OUTPUT", `the build finished but ${binary} is missing`, { details: [`Full log: ${ctx.logFile}`] });
      }
      return { binary, backend: build.backend, buildDir: build.buildDir, buildInfo: build.buildInfo, sourceCommit: build.sourceCommit };
    },
  };
}
