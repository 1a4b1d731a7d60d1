/**
 * A per-task-instance mutex between processes, so that a second `pnpm pipeline` on the
 * same target waits instead of corrupting the checkout, the build or the record.
 *
 * Hand-written rather than proper-lockfile: that library detects a dead holder only
 * by the lock's age (a crashed run would block others for its `stale` window) and
 * cannot say who holds the lock. Here the lock file names its holder (pid, host,
 * command), so a waiter can say whom it waits for and take over at once when that
 * pid is gone.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { link, mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { AbortedError, PipelineError } from "./errors.js";

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  since: string;
  nonce: string;
}

export interface AcquireOptions {
  /** Fail at once with E_LOCK_BUSY instead of waiting. */
  noWait?: boolean;
  signal?: AbortSignal;
  /** Called once when the lock is held by a live process and we start waiting. */
  onWait?: (holder: LockHolder) => void;
  pollMs?: number;
}

export class LockBusyError extends PipelineError<"E_LOCK_BUSY"> {
  constructor(
    readonly lockPath: string,
    readonly holder: LockHolder,
  ) {
    super(
      "E_LOCK_BUSY",
      `another run holds ${lockPath}: pid ${holder.pid} on ${holder.host} since ${holder.since} (${holder.command}). ` +
        `Wait for it (drop --no-wait), or stop that process.`,
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readHolder(path: string): Promise<LockHolder | null> {
  const text = await readFile(path, "utf8").catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as LockHolder;
  } catch {
    // A holder that died between creating and filling the file.
    return { pid: -1, host: hostname(), command: "(unreadable lock)", since: "", nonce: "" };
  }
}

/** Acquire the lock at `path`; resolves to a release function. */
export async function acquireRunLock(path: string, options: AcquireOptions = {}): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command: process.argv.slice(2).join(" ") || "ai-tools",
    since: new Date().toISOString(),
    nonce: randomBytes(8).toString("hex"),
  };
  let announced = false;
  for (;;) {
    if (options.signal?.aborted) throw new AbortedError();
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(JSON.stringify(me) + "\n");
      await handle.close();
      return async () => {
        const holder = await readHolder(path);
        if (holder?.nonce === me.nonce) await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = await readHolder(path);
    if (!holder) continue; // released between our open and read
    const sameHost = holder.host === me.host;
    if (sameHost && (holder.pid === -1 || !isAlive(holder.pid))) {
      await takeOverStale(path, holder);
      continue;
    }
    if (options.noWait) throw new LockBusyError(path, holder);
    if (!announced) {
      options.onWait?.(holder);
      announced = true;
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 200));
  }
}

/**
 * Move a dead holder's lock aside. Renaming (not deleting) lets us check that the
 * file we moved is the one we judged stale; if a live process took the lock in the
 * meantime, its file is put back
 * (unless yet another process already holds the path).
 */
async function takeOverStale(path: string, stale: LockHolder): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await rename(path, aside);
  } catch {
    return; // someone else moved or released it
  }
  const moved = await readHolder(aside);
  // link() fails when the path exists, so a put-back never replaces a newer lock.
  if (moved && moved.nonce !== stale.nonce) await link(aside, path).catch(() => undefined);
  await rm(aside, { force: true });
}
