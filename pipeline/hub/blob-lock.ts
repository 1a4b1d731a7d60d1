/**
 * The lock huggingface_hub takes around one blob, so that Python and ai-tools downloading
 * the same file at once wait for each other (hf-hub.md §8-9): the file
 * `.locks/models--org--name/<etag>.lock`, locked with flock(2) as Python's filelock does
 * (an advisory lock on the open file; the file itself stays, and a dead holder's lock is
 * released by the kernel).
 *
 * Node has no flock(2), so the lock is held by a child: util-linux's `flock(1)`, running
 * `sh -c 'echo; exec cat'` once it holds the lock. The newline says "acquired"; closing the
 * child's stdin ends `cat`, and with it the lock. Should this process die, its end of the
 * pipe closes and the lock goes too: no stale lock, ever. (A native addon would do the same
 * from inside the process, at the price of a compiler at install time.)
 *
 * Where flock(1) is missing (macOS), the lock falls back to ai-tools' own run lock on a
 * sibling file: our processes still exclude each other, Python's do not see it.
 */
import { startProcess } from "../core/process.js";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { AbortedError, PipelineError } from "../core/errors.js";
import { acquireRunLock } from "../core/run-lock.js";

export type BlobLockRelease = () => Promise<void>;

let flockMissing = false;

export async function lockBlob(path: string, options: { signal?: AbortSignal } = {}): Promise<BlobLockRelease> {
  await mkdir(dirname(path), { recursive: true });
  options.signal?.throwIfAborted();
  if (!flockMissing) {
    const release = await flock(path, options.signal);
    if (release) return release;
    flockMissing = true;
  }
  return acquireRunLock(`${path}.ai-tools`, options.signal ? { signal: options.signal } : {});
}

/** Holds flock(2) on `path` through flock(1); null when flock(1) is not installed. */
function flock(path: string, signal: AbortSignal | undefined): Promise<BlobLockRelease | null> {
  return new Promise((resolve, reject) => {
    const { child, killGroup, closed: exited } = startProcess(["flock", "--exclusive", path, "sh", "-c", "echo && exec cat >/dev/null"], { stdin: "pipe" });
    let stderr = "";
    let held = false;
    const onAbort = () => {
      killGroup("SIGTERM");
      reject(new AbortedError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    child.stderr.on("data", (data: Buffer) => (stderr += data.toString()));
    child.stdout.once("data", () => {
      held = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(async () => {
        child.stdin!.end();
        await exited;
      });
    });
    child.once("error", (error: NodeJS.ErrnoException) => {
      signal?.removeEventListener("abort", onAbort);
      if (error.code === "ENOENT") resolve(null);
      else reject(error);
    });
    child.once("close", (code) => {
      signal?.removeEventListener("abort", onAbort);
      if (!held) reject(new PipelineError("E_IO", `cannot lock ${path}: flock exited with ${code}${stderr ? `: ${stderr.trim()}` : ""}`));
    });
  });
}
