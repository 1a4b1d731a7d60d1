/**
 * SHA-256 of a download while it arrives. Node hashes on the thread that also parses HTTP and
 * schedules the file writes, so a large blob pulled with an inline hash runs at about half
 * the speed of the same pull without one (measured on the test registry, bench/
 * registry-transfer.ts); skopeo hashes on another core. Large blobs are therefore hashed in a
 * worker thread: batches are copied once and transferred in order, and at most
 * `MAX_BACKLOG` bytes wait for the worker (then the download waits), so memory stays bounded.
 * Small blobs are hashed inline (a worker costs tens of milliseconds to start).
 */
import { createHash, type Hash } from "node:crypto";
import { Worker } from "node:worker_threads";

export interface Sha256Sink {
  /** Adds bytes, in order; resolves when the caller may send more. */
  update(buffers: readonly Buffer[]): Promise<void> | void;
  /** `sha256:<hex>` of everything added since the start or the last reset. */
  digest(): Promise<string>;
  reset(): void;
  close(): Promise<void>;
}

/** Blobs from this size on are hashed in a worker. */
export const WORKER_HASH_THRESHOLD = 16 * 1024 * 1024;
const MAX_BACKLOG = 64 * 1024 * 1024;

class InlineSha256 implements Sha256Sink {
  private hash: Hash = createHash("sha256");

  update(buffers: readonly Buffer[]): void {
    for (const buffer of buffers) this.hash.update(buffer);
  }

  async digest(): Promise<string> {
    return `sha256:${this.hash.copy().digest("hex")}`;
  }

  reset(): void {
    this.hash = createHash("sha256");
  }

  async close(): Promise<void> {}
}

// CommonJS source for `new Worker(..., {eval: true})`: no separate file to locate in the bundle.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
let hash = createHash("sha256");
parentPort.on("message", (message) => {
  if (message.type === "data") {
    hash.update(new Uint8Array(message.buffer));
    parentPort.postMessage({ type: "ack", bytes: message.buffer.byteLength });
  } else if (message.type === "digest") {
    parentPort.postMessage({ type: "digest", hex: hash.copy().digest("hex") });
  } else if (message.type === "reset") {
    hash = createHash("sha256");
  }
});
`;

class WorkerSha256 implements Sha256Sink {
  private readonly worker = new Worker(WORKER_SOURCE, { eval: true });
  private backlog = 0;
  private waiters: (() => void)[] = [];
  private digestWaiter: ((hex: string) => void) | undefined;
  private failure: Error | undefined;

  constructor() {
    this.worker.on("message", (message: { type: string; bytes?: number; hex?: string }) => {
      if (message.type === "ack") {
        this.backlog -= message.bytes ?? 0;
        if (this.backlog <= MAX_BACKLOG) for (const wake of this.waiters.splice(0)) wake();
      } else if (message.type === "digest") {
        this.digestWaiter?.(message.hex ?? "");
        this.digestWaiter = undefined;
      }
    });
    this.worker.on("error", (error) => {
      this.failure = error;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  async update(buffers: readonly Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    // One copy into a buffer the worker may own (the originals may share memory with others).
    const batch = Buffer.concat(buffers as Buffer[]);
    const whole = batch.byteOffset === 0 && batch.buffer.byteLength === batch.length;
    const owned = whole ? (batch.buffer as ArrayBuffer) : batch.buffer.slice(batch.byteOffset, batch.byteOffset + batch.length);
    this.backlog += owned.byteLength;
    this.worker.postMessage({ type: "data", buffer: owned }, [owned]);
    if (this.backlog > MAX_BACKLOG) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failure) throw this.failure;
  }

  digest(): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => {
      this.digestWaiter = (hex) => resolve(`sha256:${hex}`);
      this.worker.postMessage({ type: "digest" });
    });
  }

  reset(): void {
    this.worker.postMessage({ type: "reset" });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** A hasher for a blob of `expectedSize` bytes (unknown: inline). */
export function sha256Sink(expectedSize: number | undefined): Sha256Sink {
  return expectedSize !== undefined && expectedSize >= WORKER_HASH_THRESHOLD ? new WorkerSha256() : new InlineSha256();
}
