/**
 * The upstream step: the submodule, mirrors, moving the pin, and refusing what would
 * lose work or build the wrong thing.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { git } from "./helpers/fixture-upstream.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";
import { absoluteGitdirFix, parseStatus } from "../tasks/upstream.js";

let ws: TestWorkspace | undefined;
afterEach(() => ws?.cleanup());

describe("as a git submodule of the workspace", () => {
  it("registers the checkout as the submodule, with a .git the engine's CMake can follow", async () => {
    ws = makeWorkspace({ superproject: true });
    const result = await ws.cli(["engine"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // (trimmed: a leading " " means initialised and at the gitlink; "-" or "+" would not be)
    expect(git(["submodule", "status"], ws.root)).toBe(`${ws.commit} external/powerinfer (${git(["describe", "--always", ws.commit], join(ws.root, "external", "powerinfer"))})`);
    const dotGit = readFileSync(join(ws.root, "external", "powerinfer", ".git"), "utf8");
    expect(dotGit).toBe(`gitdir: ${join(ws.root, ".git", "modules", "external", "powerinfer")}\n`);
    expect(ws.record("upstream")!.result).toMatchObject({ submodule: true });
    // The superproject still sees the submodule at its pinned commit, unmodified.
    expect(git(["status", "--porcelain"], ws.root)).not.toMatch(/external\/powerinfer/);
  });

  it("refuses when the config pin and the submodule gitlink disagree", async () => {
    ws = makeWorkspace({ superproject: true });
    ws.writeConfig((y) => y.replace(ws!.commit, ws!.nextCommit));
    const result = await ws.cli(["engine"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`[E_UPSTREAM_PIN_MISMATCH]: configs/engines/powerinfer.yaml pins upstream.commit ${ws.nextCommit}, but the submodule external/powerinfer is recorded at ${ws.commit}.`);
    expect(result.stdout).toContain(`git update-index --cacheinfo 160000,${ws.nextCommit},external/powerinfer`);
  });

  it("repairs a relative gitdir that `git submodule update` may write back", async () => {
    ws = makeWorkspace({ superproject: true });
    expect((await ws.cli(["engine"])).code).toBe(0);
    const dotGit = join(ws.root, "external", "powerinfer", ".git");
    writeFileSync(dotGit, "gitdir: ../../.git/modules/external/powerinfer\n");
    expect((await ws.cli(["status"])).stdout).toContain("names its git folder by a relative path");
    expect((await ws.cli(["engine"])).code).toBe(0);
    expect(readFileSync(dotGit, "utf8")).toMatch(/^gitdir: \//);
    expect(absoluteGitdirFix(join(ws.root, "external", "powerinfer"))).toBeNull();
  });
});

describe("where the source comes from", () => {
  it("AI_TOOLS_POWERINFER_URL and --upstream-url replace the configured URL without editing files", async () => {
    ws = makeWorkspace();
    ws.writeConfig((y) => y.replace(ws!.url, "https://unreachable.invalid/PowerInfer.git"));
    const configBefore = readFileSync(ws.configFile, "utf8");
    const viaEnv = await ws.cli(["engine", "--only", "upstream"], { AI_TOOLS_POWERINFER_URL: ws.url });
    expect(viaEnv.code, viaEnv.stdout).toBe(0);
    expect(ws.record("upstream")!.result).toMatchObject({ url: ws.url, commit: ws.commit });
    expect(readFileSync(ws.configFile, "utf8")).toBe(configBefore);

    // A different mirror with the same commit is the same source: nothing reruns.
    const viaFlag = await ws.cli(["engine", "--only", "upstream", "--upstream-url", ws.url]);
    expect(viaFlag.stdout).toContain("[upstream] fresh, skipped");
  });

  it("moving the pin checks out the new commit and rebuilds", async () => {
    ws = makeWorkspace();
    expect((await ws.cli(["engine"])).code).toBe(0);
    const firstBuild = ws.record("build")!;
    ws.writeConfig((y) => y.replace(ws!.commit, ws!.nextCommit));
    const plan = await ws.cli(["plan", "engine"]);
    expect(plan.stdout).toMatch(new RegExp(`upstream\\s+run\\s+input configs/engines/powerinfer.yaml#upstream.commit changed: "${ws.commit}" -> "${ws.nextCommit}"`));
    const result = await ws.cli(["engine"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("[build] run: dependency upstream changed");
    expect(git(["rev-parse", "HEAD"], join(ws.root, "external", "powerinfer"))).toBe(ws.nextCommit);
    expect(ws.record("build")!.fingerprint).not.toBe(firstBuild.fingerprint);
  });

  it("a commit the server does not have is a clear error", async () => {
    ws = makeWorkspace();
    const missing = "0123456789abcdef0123456789abcdef01234567";
    ws.writeConfig((y) => y.replace(ws!.commit, missing));
    const result = await ws.cli(["engine"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`[E_UPSTREAM_FETCH]: commit ${missing} is not available from the upstream`);
    expect(result.stdout).toContain("[build] not run: dependency upstream failed");
  });

  it("a short commit in the config is rejected with the key path", async () => {
    ws = makeWorkspace();
    ws.writeConfig((y) => y.replace(ws!.commit, "d3ebd7c"));
    const result = await ws.cli(["engine"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("configs/engines/powerinfer.yaml:3:11: upstream.commit: a full 40-character commit hash");
  });
});

describe("GPU builds", () => {
  it("refuses a cuda build that CMake quietly turned into a CPU build", async () => {
    ws = makeWorkspace();
    ws.writeConfig((y) => y.replace("presets:\n", 'presets:\n    cuda:\n      cmakeFlags: ["-DLLAMA_CUBLAS=ON"]\n'));
    const bin = join(ws.root, "fake-cuda", "bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "nvcc"), '#!/bin/sh\necho "Cuda compilation tools, release 12.4, V12.4.131"\n');
    chmodSync(join(bin, "nvcc"), 0o755);
    const result = await ws.cli(["engine", "--backend", "cuda"], { PATH: `${bin}:${process.env.PATH}` });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('[E_BUILD_BACKEND]: a cuda build was asked for, but CMake did not find the GPU libraries ("cuBLAS not found")');
    expect(ws.record("build")).toBeNull();
  });

  it("--backend cuda without nvcc says what to install", async () => {
    ws = makeWorkspace();
    ws.writeConfig((y) => y.replace("presets:\n", 'presets:\n    cuda:\n      cmakeFlags: ["-DLLAMA_CUBLAS=ON"]\n'));
    const path = (process.env.PATH ?? "").split(":").filter((d) => !existsSync(join(d, "nvcc"))).join(":");
    const result = await ws.cli(["engine", "--backend", "cuda"], { PATH: path });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("[E_TOOL_MISSING]: nvcc was not found on PATH. The cuda backend needs the CUDA toolkit");
  });
});

describe("parseStatus", () => {
  it("reads the head and the changes from porcelain v2", () => {
    const out = [
      "# branch.oid d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8",
      "# branch.head (detached)",
      "1 .M N... 100644 100644 100644 3f2a 3f2a ggml.c",
      "? notes.txt",
    ].join("\n");
    expect(parseStatus(out)).toEqual({
      head: "d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8",
      changes: ["1 .M N... 100644 100644 100644 3f2a 3f2a ggml.c", "? notes.txt"],
    });
    expect(parseStatus("# branch.oid (initial)\n").head).toBeNull();
  });
});

describe("credentials in a mirror URL", () => {
  it("are used for the fetch but kept out of logs, records and .git/config", async () => {
    ws = makeWorkspace();
    // git ignores user:password on file:// URLs, so the fetch itself works here.
    const secretUrl = ws.url.replace("file://", "file://mirror-user:s3cr3t-token@");
    const result = await ws.cli(["engine", "--only", "upstream", "--upstream-url", secretUrl]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const files = [
      join(ws.root, "build", "logs", "upstream.log"),
      join(ws.root, "build", "state", "upstream.lock.json"),
      join(ws.root, "external", "powerinfer", ".git", "config"),
    ];
    for (const file of files) expect(readFileSync(file, "utf8"), file).not.toContain("s3cr3t-token");
    expect(result.stdout + result.stderr).not.toContain("s3cr3t-token");
  });
});

describe("sparse checkout patterns", () => {
  it("a changed pattern list is applied to an existing checkout", async () => {
    ws = makeWorkspace();
    expect((await ws.cli(["engine", "--only", "upstream"])).code).toBe(0);
    const readme = join(ws.root, "external", "powerinfer", "README.md");
    expect(existsSync(readme)).toBe(true);
    ws.writeConfig((y) => y.replace("  path: external/powerinfer\n", '  path: external/powerinfer\n  sparseCheckout: ["/*", "!/smallthinker/", "!/models/*.gguf", "!/README.md"]\n'));
    const result = await ws.cli(["engine", "--only", "upstream"]);
    expect(result.stdout).toContain("[upstream] run: input configs/engines/powerinfer.yaml#upstream.sparseCheckout changed: added !/README.md");
    expect(result.code).toBe(0);
    expect(existsSync(readme)).toBe(false);
    expect(existsSync(join(ws.root, "external", "powerinfer", "CMakeLists.txt"))).toBe(true);
  });
});
