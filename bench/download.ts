// Benchmark: checkpoint download throughput, resume overhead and memory, against the
// local Hub imitation with a per-connection bandwidth cap, next to curl on the same
// file in the same run; and one unthrottled connection on a 512 MiB file, where the
// sha256 check (hashed while the bytes stream in) is part of our time and not of curl's.
// Prints a Markdown table.
//
// curl runs twice there: to /dev/null (the transfer alone) and into a file beside our cache (the
// same job minus the hash: a download is kept on disk).
//
// Usage: npx tsx bench/download.ts [--runs N] [--dir DIR]
//   --runs  runs of the unthrottled case (default 3)
//   --dir   where the caches and curl's file go (default the OS temp dir). On a VM whose disk
//           makes large writes erratic, a tmpfs (--dir /dev/shm) measures the transfer, not the disk.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startHubServer } from "../test/helpers/hub-server.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" }, dir: { type: "string", default: tmpdir() } } });
const RUNS = Number(values.runs);
const BASE_DIR = values.dir;

const MiB = 2 ** 20;
const CAP = 16 * MiB; // bytes/s per connection
const server = await startHubServer({ bytesPerSecondPerConnection: CAP });
const small = randomBytes(64 * MiB);
const big = randomBytes(1024 * MiB);
const mid = big.subarray(0, 512 * MiB);
server.addRepo({ id: "bench/model-64m", files: [{ path: "model.safetensors", content: small, lfs: true }] });
server.addRepo({ id: "bench/model-512m", files: [{ path: "model.safetensors", content: mid, lfs: true }] });
server.addRepo({ id: "bench/model-1g", files: [{ path: "model.safetensors", content: big, lfs: true }] });

interface ClientResult {
  ms: number;
  downloadedBytes: number;
  rehashedBytes: number;
  peakRssKiB: number;
  error?: string;
}

// Children run asynchronously: the server lives in this process's event loop.
const run = promisify(execFile);

async function client(repo: string, connections: number, chunkSize: number, cacheDir: string, abortAtFraction?: number): Promise<ClientResult> {
  const args = JSON.stringify({ endpoint: server.endpoint, cacheDir, repo, connections, chunkSize, abortAtFraction });
  const { stdout } = await run(process.execPath, ["--import", "tsx", join(import.meta.dirname, "download-client.ts"), args], { encoding: "utf8" });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as ClientResult;
}

/** curl's time for the file, written to `output` (default /dev/null: the transfer alone). */
async function curl(repo: string, output = "/dev/null"): Promise<number> {
  const url = new URL(server.resolveUrl(repo, "model.safetensors"));
  const started = performance.now();
  await run("curl", ["-sS", "-L", "-o", output, "-H", "Accept-Encoding: identity", url.toString()]);
  return performance.now() - started;
}

const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const rows: string[] = [];
const fresh = () => mkdtempSync(join(BASE_DIR, "ai-tools-bench-cache-"));

const curlMs = await curl("bench/model-64m");
const curlRate = rate(small.length, curlMs);
rows.push(`| curl, 1 connection (64 MiB) | ${curlRate.toFixed(1)} MiB/s | 1.00x |`);
for (const [connections, chunk] of [
  [1, 64],
  [2, 32],
  [4, 16],
  [8, 8],
] as const) {
  const dir = fresh();
  const r = await client("bench/model-64m", connections, chunk * MiB, dir);
  rmSync(dir, { recursive: true, force: true });
  const ours = rate(small.length, r.ms);
  const goal = connections === 4 ? ` (goal >= 2x: ${ours / curlRate >= 2 ? "met" : "NOT met"})` : "";
  rows.push(`| ai-tools, ${connections} x ${chunk} MiB ranges (64 MiB), sha256 included | ${ours.toFixed(1)} MiB/s | ${(ours / curlRate).toFixed(2)}x${goal} |`);
}

// Resume: stop at 50 %, restart, and compare what the server sends the second time
// with what the partial file still lacked (the client's own count of missing bytes).
{
  const dir = fresh();
  await client("bench/model-64m", 4, 4 * MiB, dir, 0.5);
  server.resetLog();
  const second = await client("bench/model-64m", 4, 4 * MiB, dir);
  const sent = server.bytesSent["model.safetensors"] ?? 0;
  rmSync(dir, { recursive: true, force: true });
  const missing = second.downloadedBytes;
  rows.push(
    `| resume after stopping at 50 % (4 x 4 MiB ranges) | ${(sent / MiB).toFixed(1)} MiB sent for ${(missing / MiB).toFixed(1)} MiB missing (of 64) | ${(((sent - missing) / Math.max(1, missing)) * 100).toFixed(1)} % extra |`,
  );
}

// One unthrottled connection, 512 MiB: transfer + write + sha256 (ours, hashed in flight) against
// curl's transfer alone (-o /dev/null) and curl keeping the file (-o, same directory as our cache).
server.settings.bytesPerSecondPerConnection = undefined;
{
  const ours: number[] = [];
  const toNull: number[] = [];
  const toFile: number[] = [];
  let rehashed = 0;
  for (let r = 0; r < RUNS; r++) {
    toNull.push(await curl("bench/model-512m"));
    const curlDir = fresh();
    toFile.push(await curl("bench/model-512m", join(curlDir, "model.safetensors")));
    rmSync(curlDir, { recursive: true, force: true });
    const dir = fresh();
    const result = await client("bench/model-512m", 1, 16 * MiB, dir);
    rmSync(dir, { recursive: true, force: true });
    if (result.error) throw new Error(result.error);
    ours.push(result.ms);
    rehashed = Math.max(rehashed, result.rehashedBytes);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const row = (what: string, ms: number, vs: string) => rows.push(`| 512 MiB, uncapped, ${what} | ${rate(mid.length, ms).toFixed(1)} MiB/s, ${(ms / 1000).toFixed(2)} s | ${vs} |`);
  const [nullMs, fileMs, oursMs] = [median(toNull), median(toFile), median(ours)];
  row("curl -o /dev/null, 1 connection (transfer only)", nullMs, "1.00x");
  row("curl -o <file>, 1 connection (transfer + write, no hash)", fileMs, `${(fileMs / nullMs).toFixed(2)}x curl -o /dev/null`);
  row(
    `ai-tools, 1 connection, written + sha256 included (${(rehashed / MiB).toFixed(0)} MiB read back)`,
    oursMs,
    `${(oursMs / nullMs).toFixed(2)}x curl -o /dev/null, ${(oursMs / fileMs).toFixed(2)}x curl -o <file> (goal <= 1.3x: ${oursMs / fileMs <= 1.3 ? "met" : "NOT met"} against the file, ${oursMs / nullMs <= 1.3 ? "met" : "NOT met"} against /dev/null)`,
  );
}

// Memory: 1 GiB, no bandwidth cap.
{
  const dir = fresh();
  const r = await client("bench/model-1g", 4, 16 * MiB, dir);
  rmSync(dir, { recursive: true, force: true });
  rows.push(`| 1 GiB file, uncapped, 4 x 16 MiB | ${rate(big.length, r.ms).toFixed(1)} MiB/s, peak RSS ${(r.peakRssKiB / 1024).toFixed(0)} MiB | |`);
}
await server.close();

console.log(`Download benchmark: local Hub imitation, ${CAP / MiB} MiB/s per connection cap, files under ${BASE_DIR}, ${cpus().length} cores, node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}\n`);
console.log("| case | result | vs curl |");
console.log("| --- | ---: | ---: |");
for (const row of rows) console.log(row);
