/**
 * A one-line progress display for push and pull on a terminal (stderr, redrawn at most
 * every 200 ms): blobs done, bytes moved, of the total. Nothing off a terminal (CI logs get
 * the summary lines only). Hand-written: a whole-screen renderer (listr2) is for task
 * graphs; this is one line that clears itself.
 */
import type { PullProgress } from "../registry/pull.js";
import type { PushProgress } from "../registry/push.js";
import type { CliIo } from "./output.js";
import { formatBytes } from "./output.js";

export interface ProgressLine {
  push(event: PushProgress): void;
  pull(event: PullProgress): void;
  done(): void;
}

export function progressLine(_io: CliIo, verb: string, stream: NodeJS.WriteStream = process.stderr): ProgressLine | undefined {
  if (!stream.isTTY || process.env.CI || process.env.TERM === "dumb") return undefined;
  let blobs = 0;
  let done = 0;
  let total = 0;
  const moved = new Map<string, number>();
  let last = 0;
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - last < 200) return;
    last = now;
    const bytes = [...moved.values()].reduce((n, b) => n + b, 0);
    stream.write(`\r\x1b[2K${verb}: ${done}/${blobs} blobs, ${formatBytes(bytes)} of ${formatBytes(total)}`);
  };
  return {
    push(event) {
      if (event.kind === "plan") {
        blobs = event.blobs;
        total = event.bytes;
      } else if (event.kind === "blob") moved.set(event.digest, event.sent);
      else if (event.kind === "blob-done") {
        done++;
        moved.set(event.blob.digest, event.blob.outcome === "uploaded" ? event.blob.size : 0);
      }
      draw(event.kind !== "blob");
    },
    pull(event) {
      if (event.kind === "plan") {
        blobs = event.blobs;
        total = event.missingBytes;
      } else if (event.kind === "blob") moved.set(event.digest, event.received);
      else if (event.kind === "blob-done") done++;
      draw(event.kind !== "blob");
    },
    done() {
      if (last > 0) stream.write("\r\x1b[2K");
    },
  };
}
