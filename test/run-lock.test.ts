import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HAS_PROC, isProcessAlive, processStartTime, runCommand, withChildGroupTracker } from "../pipeline/core/process.js";
import { acquireRunLock, type LockHolder } from "../pipeline/core/run-lock.js";
import { waitFor } from "./helpers/wait.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ai-tools-lock-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("run lock", () => {
  it("has one holder at a time when processes race for it (a lock file is never seen half-written)", async () => {
    // Created empty and filled afterwards, a racing waiter read it as a dead holder's and took it over:
    // two holders, and a put-back of a released record deadlocked everyone (seen with 16 store pulls).
    const lock = join(dir, "race.lock");
    const log = join(dir, "holders.log");
    const script = `
      import { acquireRunLock } from ${JSON.stringify(join(PROJECT_ROOT, "pipeline/core/run-lock.ts"))};
      import { appendFileSync } from "node:fs";
      const [lock, log] = process.argv.slice(1);
      for (let i = 0; i < 40; i++) {
        const release = await acquireRunLock(lock, { pollMs: 1 });
        appendFileSync(log, "+\\n");
        await new Promise((r) => setTimeout(r, 2));
        appendFileSync(log, "-\\n");
        await release();
      }
    `;
    const children = Array.from({ length: 6 }, () => spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, lock, log], { cwd: PROJECT_ROOT, stdio: "inherit" }));
    // A deadlock (the old failure) must not leave the children running after the test's timeout.
    const stop = setTimeout(() => children.forEach((c) => c.kill("SIGKILL")), 50_000);
    try {
      expect(await Promise.all(children.map((c) => new Promise((resolve) => c.once("exit", resolve))))).toEqual(Array(6).fill(0));
    } finally {
      clearTimeout(stop);
    }
    let holders = 0;
    let most = 0;
    for (const line of readFileSync(log, "utf8").trim().split("\n")) {
      holders += line === "+" ? 1 : -1;
      most = Math.max(most, holders);
    }
    expect(most).toBe(1);
    expect(readFileSync(log, "utf8").trim().split("\n")).toHaveLength(6 * 40 * 2);
  }, 60_000);

  it("makes a second holder wait until the first releases, telling who holds it", async () => {
    const path = join(dir, "build.running");
    const release = await acquireRunLock(path);
    const holder = JSON.parse(readFileSync(path, "utf8")) as LockHolder;
    expect(holder.pid).toBe(process.pid);

    const waits: LockHolder[] = [];
    let acquired = false;
    const second = acquireRunLock(path, { pollMs: 20, onWait: (h) => waits.push(h) }).then((r) => {
      acquired = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(acquired).toBe(false);
    expect(waits).toHaveLength(1);
    expect(waits[0]!.pid).toBe(process.pid);
    await release();
    const releaseSecond = await second;
    expect(acquired).toBe(true);
    await releaseSecond();
    expect(existsSync(path)).toBe(false);
  });

  it("fails fast with E_LOCK_BUSY under --no-wait", async () => {
    const path = join(dir, "build.running");
    const release = await acquireRunLock(path);
    await expect(acquireRunLock(path, { noWait: true })).rejects.toMatchObject({ code: "E_LOCK_BUSY" });
    await release();
  });

  it("takes over a lock left by a dead process at once", async () => {
    const path = join(dir, "build.running");
    const deadPid = await exitedPid();
    const stale: LockHolder = { pid: deadPid, host: hostname(), command: "engine", since: new Date().toISOString(), nonce: "dead" };
    writeFileSync(path, JSON.stringify(stale));
    const waits: LockHolder[] = [];
    const started = Date.now();
    const release = await acquireRunLock(path, { onWait: (h) => waits.push(h) });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(waits).toEqual([]);
    expect((JSON.parse(readFileSync(path, "utf8")) as LockHolder).pid).toBe(process.pid);
    await release();
  });

  it("stops waiting when aborted", async () => {
    const path = join(dir, "build.running");
    const release = await acquireRunLock(path);
    const controller = new AbortController();
    const waiting = acquireRunLock(path, { signal: controller.signal, pollMs: 20 });
    setTimeout(() => controller.abort(), 50);
    await expect(waiting).rejects.toMatchObject({ code: "E_ABORTED" });
    await release();
  });
});

/** The pid of a process that has exited (and been reaped). */
async function exitedPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""]);
  return new Promise<number>((resolve) => child.on("close", () => resolve(child.pid!)));
}

/**
 * A command group whose starter is gone, as a SIGKILLed run leaves it: `sh` in a group of its
 * own with a `sleep` child. `sh` ignores SIGTERM when `ignoreTerm` (and so does the sleep).
 */
async function orphanGroup(ignoreTerm = false): Promise<{ pgid: number; sleepPid: number; kill: () => void }> {
  const pidFile = join(dir, `sleep-${Math.random().toString(16).slice(2)}.pid`);
  const child = spawn("sh", ["-c", `${ignoreTerm ? "trap '' TERM; " : ""}sleep 30 & echo $! > ${pidFile}.tmp; mv ${pidFile}.tmp ${pidFile}; wait`], {
    detached: true,
    stdio: "ignore",
  });
  await waitFor(() => existsSync(pidFile), "the orphan's sleep to start");
  const sleepPid = Number(readFileSync(pidFile, "utf8").trim());
  const kill = () => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone
    }
  };
  return { pgid: child.pid!, sleepPid, kill };
}

describe("a holder killed outright (SIGKILL, OOM) while its commands run", () => {
  it("has the process group of each running command on record in its lock", async () => {
    const path = join(dir, "convert.running");
    const release = await acquireRunLock(path);
    const pidFile = join(dir, "child.pid");
    const holderNow = () => JSON.parse(readFileSync(path, "utf8")) as LockHolder;
    // The tracker reaches commands started however deep in the async context.
    const running = withChildGroupTracker(release, async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return runCommand(["sh", "-c", `echo $$ > ${pidFile}.tmp; mv ${pidFile}.tmp ${pidFile}; sleep 0.4`]);
    });
    await waitFor(() => existsSync(pidFile), "the command to start");
    const pgid = Number(readFileSync(pidFile, "utf8").trim());
    expect(holderNow().children).toEqual([HAS_PROC ? { pgid, startTime: processStartTime(pgid) } : { pgid }]);
    expect(holderNow().nonce).toBeTruthy();
    await running;
    expect(holderNow().children).toBeUndefined();
    await release();
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });

  it.skipIf(!HAS_PROC)("a takeover stops the dead holder's commands before the lock is taken (needs /proc)", async () => {
    const path = join(dir, "convert.running");
    const orphan = await orphanGroup();
    try {
      const deadPid = await exitedPid();
      const stale: LockHolder = {
        pid: deadPid,
        host: hostname(),
        command: "convert tiny",
        since: new Date().toISOString(),
        nonce: "dead",
        children: [{ pgid: orphan.pgid, startTime: processStartTime(orphan.pgid)! }],
      };
      writeFileSync(path, JSON.stringify(stale));
      // It died rewriting its lock, too: that temporary goes; a live writer's would stay.
      writeFileSync(`${path}.tmp-${deadPid}-0123abcd`, "{");
      writeFileSync(`${path}.tmp-${process.pid}-0123abcd`, "{");
      const waits: LockHolder[] = [];
      const release = await acquireRunLock(path, { onWait: (h) => waits.push(h) });
      // Gone by the time the lock is ours, not some time later.
      expect(isProcessAlive(orphan.sleepPid)).toBe(false);
      expect(isProcessAlive(orphan.pgid)).toBe(false);
      expect(waits).toEqual([]);
      expect((JSON.parse(readFileSync(path, "utf8")) as LockHolder).pid).toBe(process.pid);
      expect(existsSync(`${path}.tmp-${deadPid}-0123abcd`)).toBe(false);
      expect(existsSync(`${path}.tmp-${process.pid}-0123abcd`)).toBe(true);
      await release();
    } finally {
      orphan.kill();
    }
  });

  it.skipIf(!HAS_PROC)("SIGKILLs what ignores SIGTERM after the grace period (needs /proc)", async () => {
    const path = join(dir, "build.running");
    const orphan = await orphanGroup(true);
    try {
      const stale: LockHolder = {
        pid: await exitedPid(),
        host: hostname(),
        command: "engine",
        since: new Date().toISOString(),
        nonce: "dead",
        children: [{ pgid: orphan.pgid, startTime: processStartTime(orphan.pgid)! }],
      };
      writeFileSync(path, JSON.stringify(stale));
      const started = Date.now();
      const release = await acquireRunLock(path, { orphanGraceMs: 300 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(isProcessAlive(orphan.sleepPid)).toBe(false);
      await release();
    } finally {
      orphan.kill();
    }
  });

  it.skipIf(!HAS_PROC)("leaves alone a group whose id now belongs to another process (needs /proc)", async () => {
    const path = join(dir, "build.running");
    const other = await orphanGroup();
    try {
      const stale: LockHolder = {
        pid: await exitedPid(),
        host: hostname(),
        command: "engine",
        since: new Date().toISOString(),
        nonce: "dead",
        // The recorded leader started earlier than the process that has its id now.
        children: [{ pgid: other.pgid, startTime: processStartTime(other.pgid)! - 1 }],
      };
      writeFileSync(path, JSON.stringify(stale));
      const release = await acquireRunLock(path);
      expect(isProcessAlive(other.pgid)).toBe(true);
      expect(isProcessAlive(other.sleepPid)).toBe(true);
      await release();
    } finally {
      other.kill();
    }
  });
});
