/**
 * `pnpm pipeline doctor` and `setup-python`: what is there, what is missing, and how to
 * install it, as a user sees it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, pathWithOnly, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";

describe("doctor", () => {
  let ws: TestWorkspace;
  beforeAll(() => {
    ws = makeWorkspace();
  });
  afterAll(() => ws.cleanup());

  it("lists every tool with its version, and the disk space", async () => {
    const result = await ws.cli(["doctor"]);
    for (const name of ["git", "cmake", "C compiler", "C++ compiler", "python for convert.py", "disk (workspace)", "disk (Hugging Face cache)"]) {
      expect(result.stdout).toMatch(new RegExp(`^(ok     |MISSING|absent ) ${name.replace(/[()+.]/g, "\\$&")}`, "m"));
    }
    expect(result.stdout).toMatch(/^ok      cmake\s+cmake version \d/m);
    const json = parseEvents((await ws.cli(["doctor", "--json"])).stdout) as { name: string; status: string; detail: string }[];
    expect(json.find((r) => r.name === "git")).toMatchObject({ status: "ok" });
    // The details stand in one column, after the longest name ("python for convert-hf-to-powerinfer-gguf.py"); hints' arrows too.
    const width = Math.max(...json.map((r) => r.name.length));
    for (const row of json) expect(result.stdout).toContain(`${row.name.padEnd(width)} ${row.detail}\n`);
    for (const line of result.stdout.split("\n").filter((l) => l.includes(" -> "))) expect(line.indexOf("->")).toBe(8 + width + 1);
  });

  it("a missing required tool fails with the install command", async () => {
    const bin = pathWithOnly(join(ws.root, "bin-no-cmake"), ["git", "cc", "c++", "sh"]);
    const result = await ws.cli(["doctor"], { PATH: bin });
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^MISSING cmake\s+not on PATH \(builds the engine\)$/m);
    expect(result.stdout).toContain("-> Install CMake >= 3.17: apt-get install cmake");
  });
});

const canVenv = spawnSync("python3", ["-c", "import venv, ensurepip"]).status === 0;

describe.skipIf(!canVenv)("setup-python (needs python3 with venv and ensurepip: apt-get install python3-venv)", () => {
  it("without a reachable package index, says so and what to do instead", async () => {
    const ws = makeWorkspace();
    try {
      const noIndex = {
        PIP_CONFIG_FILE: "/dev/null",
        PIP_INDEX_URL: "http://127.0.0.1:9/simple",
        PIP_EXTRA_INDEX_URL: "",
        PIP_FIND_LINKS: mkdtempSync(join(tmpdir(), "ai-tools-no-wheels-")),
        PIP_NO_CACHE_DIR: "1",
        PIP_RETRIES: "0",
        PIP_TIMEOUT: "1",
      };
      const result = await ws.cli(["setup-python"], noIndex);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("error [E_PYTHON_UNSUITABLE]: pip could not install numpy<2 and sentencepiece into");
      expect(result.stderr).toContain("apt-get install python3-numpy python3-sentencepiece");
    } finally {
      ws.cleanup();
    }
  });
});
