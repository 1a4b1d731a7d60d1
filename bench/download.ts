// Benchmark: checkpoint download throughput, resume overhead and memory, against the
// local Hub imitation with a per-connection bandwidth cap, next to curl on the same
// file in the same run. Prints a Markdown table.
//
// Usage: npx tsx bench/download.ts
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { startHubServer } from "../test/helpers/hub-server.js";

const MiB = 2 ** 20;
const CAP = 16 * MiB; // bytes/s per connection
const server = await startHubServer({ bytesPerSecondPerConnection: CAP });
const small = randomBytes(64 * MiB);
const big = randomBytes(1024 * MiB);
server.addRepo({ id: "bench/model-64m", files: [{ path: "model.safetensors", content: small, lfs: true }] });
server.addRepo({ id: "bench/model-1g", files: [{ path: "model.safetensors", content: big, lfs: true }] });

interface ClientResult {
  ms: number;
  downloadedBytes: number;
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

async function curl(repo: string): Promise<number> {
  const url = new URL(server.resolveUrl(repo, "model.safetensors"));
  const started = performance.now();
  await run("curl", ["-sS", "-L", "-o", "/dev/null", "-H", "Accept-Encoding: identity", url.toString()]);
  return performance.now() - started;
}

const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const rows: string[] = [];
const fresh = () => mkdtempSync(join(tmpdir(), "ai-tools-bench-cache-"));

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
  rows.push(`| ai-tools, ${connections} x ${chunk} MiB ranges (64 MiB) | ${ours.toFixed(1)} MiB/s | ${(ours / curlRate).toFixed(2)}x |`);
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

// Memory: 1 GiB, no bandwidth cap.
server.settings.bytesPerSecondPerConnection = undefined;
{
  const dir = fresh();
  const r = await client("bench/model-1g", 4, 16 * MiB, dir);
  rmSync(dir, { recursive: true, force: true });
  rows.push(`| 1 GiB file, uncapped, 4 x 16 MiB | ${rate(big.length, r.ms).toFixed(1)} MiB/s, peak RSS ${(r.peakRssKiB / 1024).toFixed(0)} MiB | |`);
}
await server.close();

console.log(`Download benchmark: local Hub imitation, ${CAP / MiB} MiB/s per connection cap, ${cpus().length} cores, node ${process.version}\n`);
console.log("| case | result | vs curl |");
console.log("| --- | ---: | ---: |");
for (const row of rows) console.log(row);
