// Benchmark: SHA-256 throughput of sha256OfFile next to `openssl dgst -sha256` and `sha256sum` on the same file,
// in the page cache (written from crypto random chunks, then read once before timing). Runs are interleaved
// (ours, openssl, sha256sum, repeat) so drift on a noisy machine hits all three alike. The peers are timed as
// spawned commands, start-up included (nothing subtracted); their start-up alone, on an empty file, is measured
// and reported beside them. The three digests are checked to agree. Prints a Markdown table; GB = 10^9 bytes.
//
// Usage: npx tsx bench/hash.ts [--size-mib N] [--runs N]     (defaults: 1024 MiB, 5 runs)
import { execFileSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { closeSync, openSync, readSync, writeFileSync, writeSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { sha256OfFile } from "../pipeline/core/hash.js";
import { benchScratch } from "./scratch.js";

const { values } = parseArgs({ options: { "size-mib": { type: "string", default: "1024" }, runs: { type: "string", default: "5" } } });
const sizeMiB = Number(values["size-mib"]);
const RUNS = Number(values.runs);
if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || !Number.isInteger(RUNS) || RUNS < 1) {
  console.error("usage: npx tsx bench/hash.ts [--size-mib N] [--runs N]  (positive integers)");
  process.exit(2);
}
const MiB = 2 ** 20;
const SIZE = sizeMiB * MiB;
const SPAWN_RUNS = 20;

const { dir, cleanup } = benchScratch("hash");

/** `<tool> <args> <file>` run to completion; its digest (first hex run of 64 on stdout). */
function peer(command: string, args: readonly string[], path: string): string {
  const stdout = execFileSync(command, [...args, path], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const digest = /\b[0-9a-f]{64}\b/.exec(stdout)?.[0];
  if (!digest) throw new Error(`${command}: no digest in ${JSON.stringify(stdout)}`);
  return digest;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

interface Method {
  name: string;
  run: (path: string) => Promise<string> | string;
  ms: number[];
  /** A command started per file (its start-up is measured apart). */
  spawned?: boolean;
}

// hasha (hashFile in a worker thread), which the project was specified with, is not a dependency: it measured
// slower than sha256OfFile. Its row appears when it is installed ad hoc (`pnpm add -D hasha@7.0.0`, not committed).
const hashaModule = "hasha";
const hasha = (await import(hashaModule).catch(() => undefined)) as { hashFile(path: string, options: { algorithm: string }): Promise<string> } | undefined;

try {
  // The file: random (incompressible, no zero pages), written in 16 MiB chunks.
  const path = join(dir, "bench.bin");
  {
    const chunk = Buffer.allocUnsafe(16 * MiB);
    const fd = openSync(path, "w");
    try {
      for (let left = SIZE; left > 0; ) {
        const n = Math.min(left, chunk.length);
        randomFillSync(chunk, 0, n);
        for (let off = 0; off < n; ) off += writeSync(fd, chunk, off, n - off);
        left -= n;
      }
    } finally {
      closeSync(fd);
    }
    // Read it once, so every timed pass reads from the page cache.
    const rfd = openSync(path, "r");
    try {
      while (readSync(rfd, chunk, 0, chunk.length, null) > 0);
    } finally {
      closeSync(rfd);
    }
  }
  const empty = join(dir, "empty.bin");
  writeFileSync(empty, "");

  const methods: Method[] = [
    { name: "ai-tools: `sha256OfFile` (8 MiB double-buffered reads)", run: async (p) => (await sha256OfFile(p)).digest, ms: [] },
    { name: "peer: `openssl dgst -sha256 <file>` (spawned)", run: (p) => peer("openssl", ["dgst", "-sha256"], p), ms: [], spawned: true },
    { name: "peer: `sha256sum <file>` (spawned)", run: (p) => peer("sha256sum", [], p), ms: [], spawned: true },
    ...(hasha ? [{ name: "peer: hasha 7 `hashFile(path, {algorithm: 'sha256'})` (worker thread)", run: (p: string) => hasha.hashFile(p, { algorithm: "sha256" }), ms: [] }] : []),
  ];
  const spawned = methods.filter((m) => m.spawned);

  // Spawn overhead: each spawned peer on an empty file (after one warm-up call).
  const spawnMs = spawned.map((m) => {
    m.run(empty);
    const ms: number[] = [];
    for (let i = 0; i < SPAWN_RUNS; i++) {
      const started = performance.now();
      m.run(empty);
      ms.push(performance.now() - started);
    }
    return ms;
  });

  // One untimed pass of each (warms JIT, binaries, and checks the digests agree).
  const digests = new Set<string>();
  for (const m of methods) digests.add(await m.run(path));
  if (digests.size !== 1) throw new Error(`digests differ: ${[...digests].join(", ")}`);

  for (let r = 0; r < RUNS; r++)
    for (const m of methods) {
      const started = performance.now();
      const digest = await m.run(path);
      m.ms.push(performance.now() - started);
      if (!digests.has(digest)) throw new Error(`${m.name}: digest changed between runs`);
    }

  const gbps = (ms: number) => SIZE / 1e9 / (ms / 1000);
  const rates = methods.map((m) => m.ms.map(gbps));
  const openssl = median(rates[1]!);
  const fmt = (n: number) => n.toFixed(2);
  const msf = (n: number) => `${n.toFixed(1)} ms`;

  console.log(
    `SHA-256 of a ${sizeMiB} MiB random file in the page cache (${tmpdir()}), ${RUNS} interleaved runs; ` +
      `Node ${process.version} (OpenSSL ${process.versions.openssl}), ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"})\n`,
  );
  console.log("| method | median GB/s | range GB/s | median time | vs openssl |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  methods.forEach((m, i) => {
    const rs = rates[i]!;
    console.log(
      `| ${m.name} | **${fmt(median(rs))}** | ${fmt(Math.min(...rs))}–${fmt(Math.max(...rs))} | ${msf(median(m.ms))} | ${(median(rs) / openssl).toFixed(2)}x |`,
    );
  });
  console.log(`\nSpawn overhead (same command on an empty file, ${SPAWN_RUNS} runs, not subtracted above):\n`);
  console.log("| peer | median | min | max |");
  console.log("| --- | ---: | ---: | ---: |");
  spawned.forEach((m, i) => {
    const ms = spawnMs[i]!;
    console.log(`| ${m.name.replace(/^peer: | \(spawned\)$/g, "")} | ${msf(median(ms))} | ${msf(Math.min(...ms))} | ${msf(Math.max(...ms))} |`);
  });
  const ratio = median(rates[0]!) / openssl;
  console.log(`\nours / openssl (medians): ${ratio.toFixed(2)}x, goal >= 0.90x: ${ratio >= 0.9 ? "met" : "NOT met"}`);
} finally {
  cleanup();
}
