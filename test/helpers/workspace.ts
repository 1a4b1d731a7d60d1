/**
 * A throwaway workspace (AI_TOOLS_ROOT) whose engine config points at the fixture
 * upstream, and a way to run the CLI in it exactly as a user would.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { inject } from "vitest";
import type { TaskRecord } from "../../pipeline/core/state.js";
import { git } from "./fixture-upstream.js";

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(PROJECT_ROOT, "bin", "ai-tools.mjs");

/** The CLI as a user runs it, with exactly `env` (no workspace set up): its exit code and output. */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface TestWorkspace {
  root: string;
  url: string;
  commit: string;
  nextCommit: string;
  configFile: string;
  env: NodeJS.ProcessEnv;
  /** Run the CLI to completion. */
  cli(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<CliResult>;
  /** Start the CLI and get the process plus a promise of its result. */
  spawnCli(args: string[], extraEnv?: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<CliResult> };
  record(instance: string): TaskRecord | null;
  writeConfig(patch?: (yaml: string) => string): void;
  cleanup(): void;
}

export function engineConfigYaml(url: string, commit: string): string {
  return `upstream:
  url: ${url}
  commit: ${commit}
  path: external/powerinfer
build:
  backend: cpu
  targets: [main, llama-bench, quantize]
  cmakeFlags: ["-DLLAMA_BUILD_TESTS=OFF"]
  presets:
    cpu:
      cmakeFlags: []
`;
}

export function makeWorkspace(options: { superproject?: boolean } = {}): TestWorkspace {
  const fixture = inject("fixtureUpstream");
  const root = mkdtempSync(join(tmpdir(), "ai-tools-ws-"));
  const configFile = join(root, "configs", "engines", "powerinfer.yaml");
  mkdirSync(dirname(configFile), { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, AI_TOOLS_ROOT: root, CI: "true" };
  delete env.AI_TOOLS_POWERINFER_URL;
  for (const name of Object.keys(env)) if (name.startsWith("FIXTURE_")) delete env[name];

  const ws: TestWorkspace = {
    root,
    url: fixture.url,
    commit: fixture.commit,
    nextCommit: fixture.nextCommit,
    configFile,
    env,
    writeConfig(patch = (y) => y) {
      writeFileSync(configFile, patch(engineConfigYaml(fixture.url, fixture.commit)));
    },
    spawnCli(args, extraEnv = {}) {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: root, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (d) => (stdout += d));
      child.stderr!.on("data", (d) => (stderr += d));
      const done = new Promise<CliResult>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
      return { child, done };
    },
    cli(args, extraEnv) {
      return ws.spawnCli(args, extraEnv).done;
    },
    record(instance) {
      try {
        return JSON.parse(readFileSync(join(root, "build", "state", `${instance}.lock.json`), "utf8")) as TaskRecord;
      } catch {
        return null;
      }
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
  ws.writeConfig();

  if (options.superproject) {
    writeFileSync(join(root, ".gitmodules"), `[submodule "external/powerinfer"]\n\tpath = external/powerinfer\n\turl = ${fixture.url}\n`);
    git(["init", "--quiet", "--initial-branch=main"], root);
    git(["update-index", "--add", "--cacheinfo", `160000,${fixture.commit},external/powerinfer`], root);
    git(["add", ".gitmodules", "configs"], root);
    git(["commit", "--quiet", "-m", "workspace"], root);
  }
  return ws;
}

/** Where `tool` is on this machine's PATH. */
export const commandPath = (tool: string) => execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim();

/** A folder holding links to just these tools: a PATH on which everything else is missing. */
export function pathWithOnly(dir: string, tools: readonly string[]): string {
  mkdirSync(dir, { recursive: true });
  for (const tool of tools) symlinkSync(commandPath(tool), join(dir, tool));
  return dir;
}
