/**
 * `pnpm pipeline engine` end to end against the fixture upstream: real git, real
 * cmake, the CLI spawned as a user runs it.
 */
import { spawn } from "node:child_process";
import { stripVTControlCharacters } from "node:util";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git } from "./helpers/fixture-upstream.js";
import { CLI, commandPath, makeWorkspace, pathWithOnly, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";
import type { PipelineEvent } from "../pipeline/core/events.js";

const lines = (text: string) => text.split("\n").filter(Boolean);

describe("engine: fetch and build, then skip", () => {
  let ws: TestWorkspace;
  const counter = () => join(ws.root, "builds.count");
  const buildCount = () => (existsSync(counter()) ? lines(readFileSync(counter(), "utf8")).length : 0);
  beforeAll(() => {
    ws = makeWorkspace();
  });
  afterAll(() => ws.cleanup());

  it("fetches the pinned commit sparsely and builds the binaries", async () => {
    const result = await ws.cli(["engine"], { FIXTURE_BUILD_COUNTER: counter() });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("[upstream] run: no record of a successful run");
    expect(result.stdout).toContain("engine: success");

    const checkout = join(ws.root, "external", "powerinfer");
    expect(git(["rev-parse", "HEAD"], checkout)).toBe(ws.commit);
    expect(git(["rev-parse", "--is-shallow-repository"], checkout)).toBe("true");
    expect(existsSync(join(checkout, "CMakeLists.txt"))).toBe(true);
    // Both exist in the upstream commit; the sparse checkout leaves them out.
    const tree = git(["ls-tree", "-r", "--name-only", ws.commit], ws.url.replace("file://", ""));
    expect(tree).toContain("smallthinker/README.md");
    expect(tree).toContain("models/ggml-vocab-fixture.gguf");
    expect(existsSync(join(checkout, "smallthinker"))).toBe(false);
    expect(existsSync(join(checkout, "models", "ggml-vocab-fixture.gguf"))).toBe(false);

    const upstream = ws.record("upstream")!;
    expect(upstream.result).toMatchObject({ url: ws.url, commit: ws.commit, clean: true, shallow: true, commitDate: "2025-07-28T09:00:43+08:00" });

    const build = ws.record("build")!;
    const result_ = build.result as { buildDir: string; binaries: Record<string, string>; buildInfo: Record<string, unknown>; configureArgs: string[] };
    expect(result_.buildDir).toMatch(new RegExp(`^build/powerinfer/cpu-${build.fingerprint.slice(0, 12)}$`));
    expect(Object.keys(result_.binaries)).toEqual(["main", "llama-bench", "quantize"]);
    expect(result_.configureArgs).toContain("-DLLAMA_NATIVE=OFF");
    for (const path of Object.values(result_.binaries)) {
      expect(build.outputs[path]!.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(existsSync(join(ws.root, path))).toBe(true);
    }
    // What the binary itself reports: build number 1 (shallow) and the short commit.
    expect(result_.buildInfo).toMatchObject({ number: 1, commit: ws.commit.slice(0, 7) });
    expect(buildCount()).toBe(1);
    // The build wrote its generated build-info into the source tree, which stays clean.
    expect(git(["status", "--porcelain"], checkout)).toBe("");
  });

  it("skips both steps on a second run, without invoking the build", async () => {
    const result = await ws.cli(["engine"], { FIXTURE_BUILD_COUNTER: counter() });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("[upstream] fresh, skipped");
    expect(result.stdout).toContain("[build] fresh, skipped");
    expect(buildCount()).toBe(1);
  });

  it("convert <model> without a recipe says which recipes there are (exit 2)", async () => {
    const result = await ws.cli(["convert", "relu-lama-2-7b"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown model recipe "relu-lama-2-7b"');
    expect(result.stderr).toContain('Did you mean "relu-llama-2-7b"?');
    const bad = await ws.cli(["convert", "../etc"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown model recipe "../etc"');
  });

  it("status and plan say fresh, then name the config key that changed", async () => {
    const fresh = await ws.cli(["status"]);
    expect(fresh.stdout).toMatch(/^upstream\s+fresh\nbuild\s+fresh\n$/);

    ws.writeConfig((y) => y.replace("targets: [main, llama-bench, quantize]", "targets: [main, llama-bench]"));
    const stale = await ws.cli(["status"]);
    expect(stale.stdout).toContain(
      "build      stale (input configs/engines/powerinfer.yaml#build.targets changed: removed quantize)",
    );
    const plan = await ws.cli(["plan", "engine"]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/upstream\s+skip\s+fresh/);
    expect(plan.stdout).toMatch(/build\s+run\s+input configs\/engines\/powerinfer.yaml#build.targets changed/);
    const dry = await ws.cli(["engine", "--dry-run"]);
    expect(dry.stdout).toBe(plan.stdout.replace(/in \d+\.\d+ s/, dry.stdout.match(/in \d+\.\d+ s/)![0]));
    expect(buildCount()).toBe(1); // planning ran nothing
    ws.writeConfig();
    expect((await ws.cli(["status"])).stdout).toMatch(/build\s+fresh/);
  });

  it("rebuilds when a build output is deleted", async () => {
    const build = ws.record("build")!;
    const main = (build.result as { binaries: Record<string, string> }).binaries.main!;
    rmSync(join(ws.root, main));
    expect((await ws.cli(["status"])).stdout).toContain(`build      stale (output ${main} missing)`);
    const result = await ws.cli(["engine"], { FIXTURE_BUILD_COUNTER: counter() });
    expect(result.code).toBe(0);
    expect(existsSync(join(ws.root, main))).toBe(true);
    expect(buildCount()).toBe(2);
  });

  it("rebuilds into a new folder when the cmake version changes", async () => {
    const bin = join(ws.root, "fake-bin");
    mkdirSync(bin, { recursive: true });
    const realCmake = commandPath("cmake");
    writeFileSync(join(bin, "cmake"), `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "cmake version 99.0.0-test"; exit 0; fi\nexec ${realCmake} "$@"\n`);
    chmodSync(join(bin, "cmake"), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH}`, FIXTURE_BUILD_COUNTER: counter() };
    const plan = await ws.cli(["plan", "engine"], env);
    expect(plan.stdout).toMatch(/build\s+run\s+tool cmake changed: cmake version [\d.]+ \(.*\) -> cmake version 99\.0\.0-test/);
    const before = ws.record("build")!.fingerprint;
    expect((await ws.cli(["engine"], env)).code).toBe(0);
    const after = ws.record("build")!;
    expect(after.fingerprint).not.toBe(before);
    expect((after.result as { buildDir: string }).buildDir).toContain(after.fingerprint.slice(0, 12));
    expect(buildCount()).toBe(3);
  });

  it("--force build rebuilds; --json prints only well-formed events on stdout", async () => {
    const result = await ws.cli(["engine", "--force", "build", "--json"], { FIXTURE_BUILD_COUNTER: counter() });
    expect(result.code).toBe(0);
    const events = parseEvents(result.stdout) as PipelineEvent[];
    for (const event of events) {
      expect(event.v).toBe(1);
      expect(Date.parse(event.time)).not.toBeNaN();
    }
    const names = events.map((e) => ("task" in e ? `${e.event}:${e.task}` : e.event));
    expect(names[0]).toBe("graph-start");
    expect(names.at(-1)).toBe("graph-end");
    expect(names).toContain("task-skip:upstream");
    expect(names).toContain("task-start:build");
    expect(names).toContain("task-end:build");
    const start = events.find((e) => e.event === "task-start")!;
    expect(start).toMatchObject({ task: "build", reasons: ["forced (--force)"] });
    const progress = events.filter((e) => e.event === "task-progress" && e.percent !== undefined);
    expect(progress.length).toBeGreaterThan(0);
    const end = events.at(-1)!;
    expect(end).toMatchObject({ event: "graph-end", status: "success", counts: { ran: 1, fresh: 1 } });
  });
});

describe("engine: failures say what, where and what to do", () => {
  let ws: TestWorkspace;
  beforeAll(() => {
    ws = makeWorkspace();
  });
  afterAll(() => ws.cleanup());

  it("a failing build prints the command, the first error lines, the tail and the log path, and records nothing", async () => {
    const result = await ws.cli(["engine"], { FIXTURE_BUILD_FAIL: "1" });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/\[build\] build failed \[E_COMMAND_FAILED\]: \S*cmake exited with code \d/);
    expect(result.stdout).toMatch(/command: \S*cmake --build .* --target main llama-bench quantize/);
    expect(result.stdout).toMatch(/last \d+ lines of its output:/);
    expect(result.stdout).toMatch(/error: /);
    const logPath = join(ws.root, "build", "logs", "build.log");
    expect(result.stdout).toContain(`full log: ${logPath}`);
    expect(readFileSync(logPath, "utf8")).toContain("$ ");
    expect(ws.record("build")).toBeNull();
    expect(ws.record("upstream")).not.toBeNull();
  });

  it("refuses to touch local changes in the checkout unless --reset-upstream", async () => {
    const checkout = join(ws.root, "external", "powerinfer");
    expect((await ws.cli(["engine"])).code).toBe(0);
    appendFileSync(join(checkout, "CMakeLists.txt"), "# my local experiment\n");
    writeFileSync(join(checkout, "notes.txt"), "keep me\n");

    const status = await ws.cli(["status"]);
    expect(status.stdout).toContain("upstream   stale (checkout external/powerinfer has local changes)");
    const refused = await ws.cli(["engine"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("[E_UPSTREAM_DIRTY]: external/powerinfer has local changes; refusing to touch them.");
    expect(refused.stdout).toContain("changed: CMakeLists.txt");
    expect(refused.stdout).toContain("untracked: notes.txt");
    expect(refused.stdout).toContain("--reset-upstream");
    expect(readFileSync(join(checkout, "CMakeLists.txt"), "utf8")).toContain("# my local experiment");
    expect(existsSync(join(checkout, "notes.txt"))).toBe(true);

    const reset = await ws.cli(["engine", "--reset-upstream"]);
    expect(reset.code).toBe(0);
    expect(readFileSync(join(checkout, "CMakeLists.txt"), "utf8")).not.toContain("# my local experiment");
    expect(existsSync(join(checkout, "notes.txt"))).toBe(false);
    expect(readFileSync(join(ws.root, "build", "logs", "upstream.log"), "utf8")).toContain("untracked: notes.txt");
  });

  it("a bad config value is an error naming file, line, column and key (exit 2)", async () => {
    ws.writeConfig((y) => y.replace("backend: cpu", "backend: cpu\n  jobz: 4").replace("cmakeFlags: []", "cmakeFlags: [LLAMA_CUBLAS=ON]"));
    const result = await ws.cli(["engine"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("configs/engines/powerinfer.yaml:");
    expect(result.stderr).toMatch(/configs\/engines\/powerinfer\.yaml:7:3: build\.jobz: unknown key "jobz"; expected one of: backend, /);
    expect(result.stderr).toMatch(/configs\/engines\/powerinfer\.yaml:12:20: build\.presets\.cpu\.cmakeFlags\.0: .*-DLLAMA_CUBLAS=ON/);
    ws.writeConfig();
  });

  it("a missing cmake is one clear message with what to install", async () => {
    const bin = pathWithOnly(join(ws.root, "bin-without-cmake"), ["git", "cc", "c++", "sh"]);
    const result = await ws.cli(["engine", "--force", "build"], { PATH: bin });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("[build] build failed [E_TOOL_MISSING]: cmake was not found on PATH. Install CMake >= 3.17: apt-get install cmake");
  });
});

describe("engine on a terminal", () => {
  const hasScript = (() => {
    try {
      return commandPath("script").length > 0;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasScript)("draws listr2 progress in a pseudo-terminal and ends with ticks (needs script from util-linux)", async () => {
    const ws = makeWorkspace();
    try {
      // util-linux `script` gives the CLI a real pty (stdout.isTTY), as in a user's shell.
      const command = `stty cols 100 rows 40; '${process.execPath}' '${CLI}' engine`;
      const run = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn("script", ["-qec", command, "/dev/null"], { env: { ...ws.env, CI: "", TERM: "xterm-256color" }, cwd: ws.root });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.on("close", (code) => resolve({ code, out: stripVTControlCharacters(out) }));
      });
      expect(run.code, run.out).toBe(0);
      expect(run.out).toContain("✔ Fetch PowerInfer source");
      expect(run.out).toContain("✔ Build PowerInfer");
      expect(run.out).not.toContain("running engine:"); // not the plain reporter
    } finally {
      ws.cleanup();
    }
  });
});
