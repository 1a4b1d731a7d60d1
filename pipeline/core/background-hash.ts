/**
 * A running SHA-256 or git-blob SHA-1 computed on a worker thread, for large downloads: the
 * main thread receives and writes while another core hashes. On one loopback connection
 * hashing on the main thread was ~0.4 s of a 512 MiB download's ~0.9 s of main-thread work
 * (bench/download.ts); with a core free for it, that time overlaps the transfer.
 *
 * The worker is a few lines of Node built-ins, passed as source: it runs the same from the
 * bundled CLI, from tsx and under vitest, with no file to locate. Memory stays bounded: at most
 * MAX_QUEUED bytes wait in the worker; update() then returns a promise that resolves once the
 * worker has caught up, and the caller waits (which stops reading the socket).
 *
 * update() takes ownership of a buffer that owns its whole memory (its ArrayBuffer moves to the
 * worker and the caller's view becomes empty); other buffers are copied.
 */
import { Worker } from "node:worker_threads";

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
let hash;
parentPort.on("message", (message) => {
  if (message.op === "reset") {
    hash = createHash(message.algorithm);
    if (message.prefix) hash.update(message.prefix);
  } else if (message.op === "update") {
    hash.update(new Uint8Array(message.buffer, 0, message.length));
    parentPort.postMessage({ op: "done", length: message.length });
  } else if (message.op === "digest") {
    parentPort.postMessage({ op: "digest", hex: hash.digest("hex") });
  }
});
`;

/** Bytes handed to the worker and not yet hashed, at most. */
const MAX_QUEUED = 16 << 20;

export class BackgroundHash {
  private readonly worker: Worker;
  private queued = 0;
  private readonly waitingForRoom: (() => void)[] = [];
  private readonly waitingForDigest: { resolve: (hex: string) => void; reject: (error: Error) => void }[] = [];
  private failure: Error | undefined;
  private closed = false;

  constructor(
    private readonly algorithm: "sha256" | "sha1",
    private readonly prefix?: string,
  ) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.on("message", (message: { op: "done"; length: number } | { op: "digest"; hex: string }) => {
      if (message.op === "done") {
        this.queued -= message.length;
        while (this.queued <= MAX_QUEUED && this.waitingForRoom.length > 0) this.waitingForRoom.shift()!();
      } else this.waitingForDigest.shift()?.resolve(message.hex);
    });
    this.worker.on("error", (error) => this.fail(error));
    this.worker.on("exit", (code) => {
      if (!this.closed) this.fail(new Error(`the hashing thread exited (code ${code})`));
    });
    this.reset();
  }

  /** Start a new digest (the prefix first); what was given before is dropped. */
  reset(): void {
    this.worker.postMessage({ op: "reset", algorithm: this.algorithm, prefix: this.prefix });
  }

  /** Hash `data` after everything given before; a promise when the worker is MAX_QUEUED behind. */
  update(data: Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    const length = data.length;
    const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    const buffer = owned ? (data.buffer as ArrayBuffer) : new Uint8Array(data).buffer;
    this.worker.postMessage({ op: "update", buffer, length }, [buffer]);
    this.queued += length;
    if (this.queued <= MAX_QUEUED) return undefined;
    return new Promise((resolve) => this.waitingForRoom.push(resolve));
  }

  digest(): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waitingForDigest.push({ resolve, reject });
      this.worker.postMessage({ op: "digest" });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker.terminate();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.waitingForDigest.splice(0)) waiter.reject(error);
    // Writers waiting for room go on and meet the failure at their next update() or at digest().
    for (const resume of this.waitingForRoom.splice(0)) resume();
  }
}
