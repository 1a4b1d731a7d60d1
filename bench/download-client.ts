// Child process of bench/download.ts: one snapshot download, measured from inside, so
// the server's memory is not counted in our peak RSS.
import { readFileSync } from "node:fs";
import { hubSettings } from "../pipeline/hub/env.js";
import { downloadSnapshot } from "../pipeline/hub/snapshot.js";

const args = JSON.parse(process.argv[2]!) as {
  endpoint: string;
  cacheDir: string;
  repo: string;
  connections: number;
  chunkSize: number;
  abortAtFraction?: number;
};
const controller = new AbortController();
const started = performance.now();
let error: string | undefined;
const result = await downloadSnapshot(
  { repo: args.repo, revision: "main" },
  {
    settings: hubSettings({ HF_ENDPOINT: args.endpoint, HF_HUB_CACHE: args.cacheDir }),
    connectionsPerFile: args.connections,
    chunkSize: args.chunkSize,
    signal: controller.signal,
    onProgress: (p) => {
      if (args.abortAtFraction !== undefined && p.bytesDone >= p.bytesTotal * args.abortAtFraction) controller.abort();
    },
  },
).catch((e: Error) => {
  error = e.message;
  return undefined;
});
const ms = performance.now() - started;
const peakRssKiB = Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0);
console.log(JSON.stringify({ ms, downloadedBytes: result?.downloadedBytes ?? 0, rehashedBytes: result?.rehashedBytes ?? 0, peakRssKiB, error }));
