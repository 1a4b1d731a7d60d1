/**
 * Interrupts, crashes and concurrent runs of `pnpm pipeline engine`: nothing is
 * recorded as fresh that did not finish, no compiler is left running, and a second
 * run waits for the first instead of corrupting the build.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";
import { HAS_PROC, isProcessAlive } from "../pipeline/core/process.js";
import { isAlive as alive, waitFor } from "./helpers/wait.js";

let ws: TestWorkspace;
beforeEach(() => {
  ws = makeWorkspace();
});
afterEach(() => ws.cleanup());


/** Starts `engine` with a build that sleeps; resolves once the build's sleep is running. */
async function startSlowBuild(seconds: number, args: string[] = []) {
  const pidFile = join(ws.root, "hook.pid");
  const counter = join(ws.root, "builds.count");
  const run = ws.spawnCli(["engine", ...args], { FIXTURE_BUILD_SLEEP_S: String(seconds), FIXTURE_BUILD_PIDFILE: pidFile, FIXTURE_BUILD_COUNTER: counter });
  await waitFor(() => existsSync(pidFile), "the build hook to start");
  const sleepPid = Number(readFileSync(`${pidFile}.sleep`, "utf8").trim().split("\n").at(-1));
  const hookPid = Number(readFileSync(pidFile, "utf8").trim());
  return { ...run, sleepPid, hookPid, counter };
}

describe("interruptions", () => {
  it("Ctrl-C stops the build's whole process tree, records nothing and exits 130", async () => {
    const { child, done, sleepPid } = await startSlowBuild(60);
    expect(alive(sleepPid)).toBe(true);
    child.kill("SIGINT");
    const result = await done;
    expect(result.code).toBe(130);
    expect(result.stderr).toContain("stopping running steps");
    expect(result.stdout).toContain("engine: aborted");
    await waitFor(() => !alive(sleepPid), "the build's sleep to be killed", 10_000);
    expect(ws.record("build")).toBeNull();
    expect(existsSync(join(ws.root, "build", "state", "build.running"))).toBe(false);
    const status = await ws.cli(["status"]);
    expect(status.stdout).toMatch(/upstream\s+fresh\nbuild\s+missing/);
  });

  it("after a run is killed outright, the next run stops its orphaned build, takes over its lock and rebuilds", async () => {
    const { child, done, sleepPid, hookPid } = await startSlowBuild(60);
    child.kill("SIGKILL");
    await done;
    // The build runs in a process group of its own: it goes on without its parent.
    expect(alive(sleepPid) && alive(hookPid)).toBe(true);
    const lock = JSON.parse(readFileSync(join(ws.root, "build", "state", "build.running"), "utf8")) as { children?: { pgid: number }[] };
    expect(lock.children?.length).toBeGreaterThan(0); // left behind by the dead run, naming that group
    const rerun = await ws.cli(["engine"]);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toContain("[build] run: no record of a successful run");
    expect(rerun.stdout).not.toContain("waiting");
    expect(ws.record("build")).not.toBeNull();
    // Stopped when the rerun took the lock over, before it built in the same folder (where
    // /proc can tell that the group is still the dead run's). A killed orphan may stay a
    // zombie until PID 1 reaps it: isProcessAlive does not count those.
    if (HAS_PROC) expect(isProcessAlive(sleepPid) || isProcessAlive(hookPid)).toBe(false);
  });
});

describe("concurrent runs", () => {
  it("a second run waits for the first, then finds everything fresh", async () => {
    const first = await startSlowBuild(2);
    const second = await ws.cli(["engine"], { FIXTURE_BUILD_COUNTER: first.counter });
    const firstResult = await first.done;
    expect(firstResult.code).toBe(0);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/\[build\] waiting: pid \d+ on .* holds this step since/);
    expect(second.stdout).toContain("[build] fresh, skipped");
    expect(readFileSync(first.counter, "utf8").trim().split("\n")).toHaveLength(1); // built once
  });

  it("--no-wait fails fast with exit 75 and names the holder", async () => {
    const first = await startSlowBuild(30);
    const started = Date.now();
    const second = await ws.cli(["engine", "--no-wait"]);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(second.code).toBe(75);
    expect(second.stdout).toMatch(/\[E_LOCK_BUSY\]: another run holds .*build\.running: pid \d+/);
    first.child.kill("SIGINT");
    expect((await first.done).code).toBe(130);
  });
});
