/** Blob fixtures for registry tests: deterministic bytes in a file, offered as a BlobSource. */
import { createReadStream, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BlobSource } from "../../pipeline/registry/upload.js";
import { Readable } from "node:stream";
import { prng } from "./prng.js";
import { digestOf } from "./registry.js";

/** `size` pseudo-random bytes from `seed` (incompressible, like weights). */
export function randomBytesFrom(seed: number, size: number): Buffer {
  const next = prng(seed);
  const bytes = Buffer.alloc(Math.ceil(size / 4) * 4);
  for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE(Math.floor(next() * 2 ** 32) >>> 0, i);
  return bytes.subarray(0, size);
}

export interface FileBlob extends BlobSource {
  path: string;
  bytes: Buffer;
  /** Start offsets `open` was called with, in order. */
  opened: number[];
}

/** Writes `bytes` to a file and offers it as a BlobSource reading the file (as push will). */
export function fileBlob(bytes: Buffer, name = "blob.bin"): FileBlob {
  const path = join(mkdtempSync(join(tmpdir(), "ai-tools-blob-")), name);
  writeFileSync(path, bytes);
  const opened: number[] = [];
  return {
    path,
    bytes,
    opened,
    name,
    digest: digestOf(bytes),
    size: bytes.length,
    open: (start, end) => {
      opened.push(start);
      return end > start ? createReadStream(path, { start, end: end - 1, highWaterMark: 256 * 1024 }) : Readable.from([]);
    },
  };
}
