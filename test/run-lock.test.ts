import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireRunLock, type LockHolder } from "../pipeline/core/run-lock.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ai-tools-lock-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("run lock", () => {
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
    const child = spawn(process.execPath, ["-e", ""]);
    const deadPid = await new Promise<number>((resolve) => child.on("exit", () => resolve(child.pid!)));
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
