/**
 * A running hash (sha256 or sha1) fed in order, on this thread or, for large files, on a
 * worker thread. Hashing runs at ~1 GB/s on one core: on this thread it took as long as the
 * transfer itself (loopback, one connection), the two then summing up; on a worker the
 * second core hashes while this one reads the socket and writes the file. Each update is
 * copied into a buffer of its own that is moved (not copied again) to the worker, so the
 * caller may reuse its buffer at once.
 */
import { createHash, type Hash } from "node:crypto";
import { Worker } from "node:worker_threads";

export interface RunningHash {
  update(data: Uint8Array): void;
  /** The hex digest of everything passed so far. */
  digest(): Promise<string>;
  /** Stop the worker, if any (idempotent). */
  close(): Promise<void>;
}

/** Files from this size on are hashed on a worker thread (its start-up, ~20 ms, is noise there). */
export const WORKER_HASH_BYTES = 64 << 20;

export function runningHash(algorithm: "sha256" | "sha1", prefix: string, size: number): RunningHash {
  return size >= WORKER_HASH_BYTES ? new WorkerHash(algorithm, prefix) : new InlineHash(algorithm, prefix);
}

class InlineHash implements RunningHash {
  private readonly hash: Hash;
  constructor(algorithm: string, prefix: string) {
    this.hash = createHash(algorithm);
    if (prefix) this.hash.update(prefix);
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<string> {
    return this.hash.digest("hex");
  }
  async close(): Promise<void> {}
}

/** Runs in the worker (CommonJS, evaluated from this string: no file to locate inside a bundle). */
const WORKER_CODE = `
const { parentPort, workerData } = require("node:worker_threads");
const hash = require("node:crypto").createHash(workerData.algorithm);
if (workerData.prefix) hash.update(workerData.prefix);
parentPort.on("message", (message) => {
  if (message === "digest") parentPort.postMessage(hash.digest("hex"));
  else hash.update(new Uint8Array(message));
});
`;

class WorkerHash implements RunningHash {
  private readonly worker: Worker;
  private readonly failed: Promise<never>;
  private closed = false;

  constructor(algorithm: string, prefix: string) {
    this.worker = new Worker(WORKER_CODE, { eval: true, workerData: { algorithm, prefix } });
    this.failed = new Promise<never>((_, reject) => {
      this.worker.once("error", reject);
      this.worker.once("exit", (code) => reject(new Error(`the hashing thread stopped (exit ${code})`)));
    });
    this.failed.catch(() => undefined); // surfaces in digest()
  }

  update(data: Uint8Array): void {
    const copy = new Uint8Array(data.length);
    copy.set(data);
    this.worker.postMessage(copy.buffer, [copy.buffer]);
  }

  digest(): Promise<string> {
    const answer = new Promise<string>((resolve) => this.worker.once("message", (hex: string) => resolve(hex)));
    this.worker.postMessage("digest");
    return Promise.race([answer, this.failed]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
  }
}
