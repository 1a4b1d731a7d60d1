import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HAS_PROC, isProcessAlive, processGroupMembers, runCommand, withChildGroupTracker } from "../pipeline/core/process.js";
import type { CommandFailedError } from "../pipeline/core/errors.js";
import { isAlive as alive, waitFor } from "./helpers/wait.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ai-tools-proc-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});


describe("runCommand", () => {
  it("fails with the exit code, the last lines and the first error lines", async () => {
    const script = 'echo "ggml.c:1:1: error: the real problem"; for i in $(seq 1 40); do echo "noise $i"; done; exit 3';
    const error = await runCommand(["sh", "-c", script], { logFile: join(dir, "log") }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_COMMAND_FAILED", exitCode: 3 });
    const failure = error as { tail: string[]; errorLines: string[]; message: string };
    expect(failure.message).toBe("sh exited with code 3");
    expect(failure.tail).toHaveLength(30);
    expect(failure.tail.at(-1)).toBe("noise 40");
    expect(failure.errorLines).toEqual(["ggml.c:1:1: error: the real problem"]);
    const log = await readFile(join(dir, "log"), "utf8");
    expect(log).toContain("noise 1\n");
    expect(log).toContain("the real problem");
  });

  it("kills the whole process tree on timeout", async () => {
    const pidFile = join(dir, "pid");
    const started = Date.now();
    const error = await runCommand(["sh", "-c", `sleep 30 & echo $! > ${pidFile}; wait`], { timeoutMs: 500 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_COMMAND_TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(10_000);
    const grandchild = Number((await readFile(pidFile, "utf8")).trim());
    await waitFor(() => !alive(grandchild), "the grandchild to be killed", 2000);
  });

  it("names a missing program with the install hint", async () => {
    await expect(runCommand(["no-such-tool-xyz"], { installHint: "apt-get install xyz" })).rejects.toMatchObject({
      code: "E_TOOL_MISSING",
      message: "no-such-tool-xyz was not found on PATH. apt-get install xyz",
    });
  });

  it("masks credentials in URLs and secret env values in logs and errors", async () => {
    const env = { ...process.env, HF_TOKEN: "hf_supersecret123" };
    const logFile = join(dir, "log");
    const error = (await runCommand(["sh", "-c", 'echo "token $HF_TOKEN"; exit 1', "https://user:pa55@example.invalid/x.git"], { env, logFile }).catch(
      (e: unknown) => e,
    )) as CommandFailedError;
    const log = await readFile(logFile, "utf8");
    expect(log).not.toContain("hf_supersecret123");
    expect(log).not.toContain("pa55");
    expect(error.tail).toEqual(["token ***"]);
    expect(error.displayArgv.join(" ")).toContain("https://***@example.invalid/x.git");
    expect(existsSync(logFile)).toBe(true);
  });

  it("returns captured stdout", async () => {
    const result = await runCommand(["sh", "-c", "echo one; echo two >&2; echo three"], { captureStdout: true });
    expect(result.stdout).toBe("one\nthree");
    expect(result.exitCode).toBe(0);
  });

  it("feeds input on stdin; raw capture keeps what masking would corrupt, the log stays masked", async () => {
    const env = { ...process.env, AI_TOOLS_REGISTRY_PASSWORD: "p@ss-w0rd" };
    const logFile = join(dir, "log");
    const answer = '{"ServerURL":"https://registry.example","Secret":"p@ss-w0rd"}';
    const result = await runCommand(["sh", "-c", `read server; echo "$server"; echo '${answer}'`], { input: "ghcr.io\n", captureStdout: "raw", env, logFile });
    expect(result.stdout).toBe(`ghcr.io\n${answer}`);
    expect(await readFile(logFile, "utf8")).not.toContain("p@ss-w0rd");
    // A child that never reads its input is fine.
    expect((await runCommand(["true"], { input: "x".repeat(1 << 20) })).exitCode).toBe(0);
  });
});

describe("child process groups", () => {
  it("reports each child's group to the tracker of its async context, and only there", async () => {
    const seen: string[] = [];
    const tracker = (name: string) => ({ started: (pgid: number) => seen.push(`${name} started ${pgid}`), ended: (pgid: number) => seen.push(`${name} ended ${pgid}`) });
    const pidOf = (result: { stdout: string }) => Number(result.stdout.trim());
    const [a, b] = await Promise.all([
      withChildGroupTracker(tracker("a"), () => runCommand(["sh", "-c", "echo $$; sleep 0.1"], { captureStdout: true })),
      withChildGroupTracker(tracker("b"), async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return runCommand(["sh", "-c", "echo $$"], { captureStdout: true });
      }),
    ]);
    await runCommand(["true"]); // outside any tracker
    expect(seen.filter((s) => s.startsWith("a "))).toEqual([`a started ${pidOf(a)}`, `a ended ${pidOf(a)}`]);
    expect(seen.filter((s) => s.startsWith("b "))).toEqual([`b started ${pidOf(b)}`, `b ended ${pidOf(b)}`]);
    expect(seen).toHaveLength(4);
  });

  it.skipIf(!HAS_PROC)("counts a zombie (exited, never reaped) as not alive (needs /proc)", async () => {
    // sh starts `sleep 0`, then becomes `sleep 1`, which never reaps that child.
    let zombie = 0;
    let group = 0;
    const result = runCommand(["sh", "-c", "sleep 0 & echo $!; exec sleep 1"], {
      timeoutMs: 10_000,
      onSpawn: (pid) => (group = pid),
      onLine: (line) => (zombie = Number(line)),
    });
    const state = (pid: number) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      } catch {
        return "";
      }
    };
    await waitFor(() => zombie > 0 && state(zombie) === "Z", "the zombie", 5000);
    expect(alive(zombie)).toBe(true); // kill(pid, 0) still succeeds
    expect(isProcessAlive(zombie)).toBe(false);
    expect(isProcessAlive(group)).toBe(true);
    expect(processGroupMembers(group)).toEqual([group]);
    await result;
    expect(processGroupMembers(group)).toEqual([]);
  });
});
