/**
 * A per-task-instance mutex between processes, so that a second `pnpm pipeline` on the
 * same target waits instead of corrupting the checkout, the build or the record.
 *
 * Hand-written rather than proper-lockfile: that library detects a dead holder only
 * by the lock's age (a crashed run would block others for its `stale` window) and
 * cannot say who holds the lock. Here the lock file names its holder (pid, host,
 * command), so a waiter can say whom it waits for and take over at once when that
 * pid is gone.
 *
 * A holder killed outright (SIGKILL, the OOM killer) runs no cleanup, and the commands it
 * started live on: each runs in a process group of its own (so that a timeout or Ctrl-C
 * can stop make and the compilers with it), which the holder's death does not reach. Left
 * alone, such an orphan (a `cmake --build`, a converter, a benchmark's `main`) would go on
 * writing into the same build folder, temporary file or log folder as the run that takes
 * the step over. So the lock also records those groups (the executor reports every child a
 * step starts, see withChildGroupTracker), and a takeover stops them first: SIGTERM (git
 * removes its own lock files, make the target it was writing), SIGKILL after a grace
 * period, and it waits until they are gone.
 */
import { randomBytes } from "node:crypto";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { AbortedError, PipelineError } from "./errors.js";
import { removeTemporariesOf } from "./files.js";
import { HAS_PROC, isProcessAlive, processGroupMembers, processStartTime, type ChildGroupTracker } from "./process.js";

/** A process group a holder started (its leader is the child runCommand spawned). */
export interface ChildGroup {
  pgid: number;
  /**
   * The leader's start time (Linux, clock ticks after boot): a takeover stops the group only
   * while the process with that id is still this one (or gone, leaving members behind).
   */
  startTime?: number;
}

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  since: string;
  nonce: string;
  /** Process groups of the commands the holder is running for this step. */
  children?: ChildGroup[];
}

export interface AcquireOptions {
  /** Fail at once with E_LOCK_BUSY instead of waiting. */
  noWait?: boolean;
  signal?: AbortSignal;
  /** Called once when the lock is held by a live process and we start waiting. */
  onWait?: (holder: LockHolder) => void;
  pollMs?: number;
  /** How long a dead holder's process groups get between SIGTERM and SIGKILL. */
  orphanGraceMs?: number;
}

/** Releases the lock; as a ChildGroupTracker it records the holder's child process groups in the lock file. */
export type RunLockRelease = (() => Promise<void>) & ChildGroupTracker;

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

async function readHolder(path: string): Promise<LockHolder | null> {
  const text = await readFile(path, "utf8").catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as LockHolder;
  } catch {
    // Not a holder record: a corrupt file, or one an older version created empty and died before filling.
    return { pid: -1, host: hostname(), command: "(unreadable lock)", since: "", nonce: "" };
  }
}

/** Acquire the lock at `path`; resolves to a release function. */
export async function acquireRunLock(path: string, options: AcquireOptions = {}): Promise<RunLockRelease> {
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
    // Published whole: written to a temporary, then linked into place (link fails when the path
    // exists). Created empty and filled afterwards, a waiter could read it in between, take it
    // for a dead holder's unreadable lock and take it over while its holder goes on: two holders.
    const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    await writeFile(temp, JSON.stringify(me) + "\n");
    let linked = false;
    try {
      await link(temp, path);
      linked = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    } finally {
      await rm(temp, { force: true });
    }
    if (linked) return holding(path, me);
    const holder = await readHolder(path);
    if (!holder) continue; // released between our open and read
    const sameHost = holder.host === me.host;
    if (sameHost && (holder.pid === -1 || !isProcessAlive(holder.pid))) {
      // Its commands first: nothing of the dead run may still write once the lock is ours.
      await stopOrphans(holder, options);
      // And the lock file's own temporaries, should it have died rewriting it.
      if (holder.pid > 0) await removeTemporariesOf(path, holder.pid);
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

/** The release function of a lock just taken, which also keeps the lock's list of child groups. */
function holding(path: string, me: LockHolder): RunLockRelease {
  const children = new Map<number, ChildGroup>();
  let released = false;
  // Synchronous, and replaced by rename: a waiter reads the old or the new holder, never half
  // of one (an unreadable lock counts as a dead holder's), and a child is on record before
  // the spawning code yields.
  const rewrite = () => {
    if (released) return;
    const holder: LockHolder = { ...me, ...(children.size > 0 ? { children: [...children.values()] } : {}) };
    const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      writeFileSync(temp, JSON.stringify(holder) + "\n");
      renameSync(temp, path);
    } catch {
      rmSync(temp, { force: true });
    }
  };
  const release = async () => {
    released = true;
    const holder = await readHolder(path);
    if (holder?.nonce === me.nonce) await rm(path, { force: true });
  };
  return Object.assign(release, {
    started(pgid: number) {
      const startTime = processStartTime(pgid);
      children.set(pgid, { pgid, ...(startTime === undefined ? {} : { startTime }) });
      rewrite();
    },
    ended(pgid: number) {
      // A daemonised grandchild keeps the group alive: then it stays on record.
      if (!children.has(pgid) || processGroupMembers(pgid).length > 0) return;
      children.delete(pgid);
      rewrite();
    },
  });
}

/**
 * Is `group` still the one the dead holder started? With /proc: yes while its leader runs
 * with the recorded start time; a leader with another start time is a later process that
 * got the id after the group was gone; with no leader at all, any process still in the
 * group is one of the original members (Linux hands out no id that is still a group's).
 * Without /proc nothing can be proven, and nothing is stopped.
 */
function stillTheirs(group: ChildGroup): boolean {
  if (!HAS_PROC || !Number.isInteger(group.pgid) || group.pgid <= 1) return false;
  const leaderStart = processStartTime(group.pgid);
  if (leaderStart !== undefined) return leaderStart === group.startTime;
  return processGroupMembers(group.pgid).length > 0;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // gone already
  }
}

/** Stop the process groups a dead holder left running: SIGTERM, SIGKILL after the grace period, then wait for them to be gone. */
async function stopOrphans(holder: LockHolder, options: AcquireOptions): Promise<void> {
  const groups = (Array.isArray(holder.children) ? holder.children : []).filter(stillTheirs).map((g) => g.pgid);
  if (groups.length === 0) return;
  const running = () => groups.filter((pgid) => processGroupMembers(pgid).length > 0);
  const graceMs = options.orphanGraceMs ?? 3000;
  const started = Date.now();
  for (const pgid of groups) signalGroup(pgid, "SIGTERM");
  let killed = false;
  while (running().length > 0) {
    if (!killed && Date.now() - started >= graceMs) {
      for (const pgid of running()) signalGroup(pgid, "SIGKILL");
      killed = true;
    }
    // Past this, a process stuck in the kernel is not worth waiting for any longer.
    if (Date.now() - started > graceMs + 10_000) return;
    if (options.signal?.aborted) throw new AbortedError();
    await new Promise((resolve) => setTimeout(resolve, 20));
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
