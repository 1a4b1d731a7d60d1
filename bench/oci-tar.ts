// Benchmark: the deterministic tar layer of a predictor's activation/ folder (pipeline/registry/tar-layer.ts,
// npm `tar`, names sorted by UTF-8 bytes, portable, mtime 0, mode 0644) next to GNU tar with the reproducible-
// archive flags (`--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=…`) on the same folder, in
// the page cache. Two shapes from real models: 32 files of n_ff=11008 float32 counts (7B) and 80 files of
// n_ff=28672 (70B), each file ~1.2 KiB of pickle framing plus the counts. Runs are interleaved (ours, GNU,
// repeat); GNU tar is timed as a spawned command, start-up included, and its start-up alone (an empty archive)
// is reported beside it. Both archives are checked to be byte-identical across runs (reproducible). Prints a
// Markdown table.
//
// Usage: npx tsx bench/oci-tar.ts [--runs N]     (default 15)
import { execFileSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createDeterministicTar } from "../pipeline/registry/tar-layer.js";
import { benchScratch } from "./scratch.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "15" } } });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) {
  console.error("usage: npx tsx bench/oci-tar.ts [--runs N]  (a positive integer)");
  process.exit(2);
}

const { dir, cleanup } = benchScratch("oci-tar");

const GNU_FLAGS = ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "--mode=u=rw,go=r", "--format=posix", "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"];

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

interface Shape {
  label: string;
  files: number;
  nff: number;
}
const SHAPES: Shape[] = [
  { label: "7B: 32 × 11008 counts", files: 32, nff: 11008 },
  { label: "70B: 80 × 28672 counts", files: 80, nff: 28672 },
];

// GNU tar's start-up: an archive of nothing.
const startup: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const t = performance.now();
  execFileSync("tar", [...GNU_FLAGS, "-cf", join(dir, "empty.tar"), "--files-from", "/dev/null"]);
  startup.push(performance.now() - t);
}

const rows: string[] = [];
for (const shape of SHAPES) {
  const model = join(dir, `model-${shape.files}`);
  mkdirSync(join(model, "activation"), { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < shape.files; i++) {
    const name = `activation/activation_${i}.pt`;
    writeFileSync(join(model, name), randomFillSync(Buffer.alloc(1200 + shape.nff * 4)));
    names.push(name);
  }
  const bytes = names.length * (1200 + shape.nff * 4);
  const ours: number[] = [];
  const gnu: number[] = [];
  const ourDigests = new Set<string>();
  const gnuDigests = new Set<string>();
  for (let run = 0; run < RUNS + 1; run++) {
    const a = join(dir, `ours-${run}.tar`);
    let t = performance.now();
    await createDeterministicTar(model, names, a);
    const oursMs = performance.now() - t;
    const b = join(dir, `gnu-${run}.tar`);
    t = performance.now();
    execFileSync("tar", [...GNU_FLAGS, "-C", model, "-cf", b, "activation"]);
    const gnuMs = performance.now() - t;
    ourDigests.add(sha256(a));
    gnuDigests.add(sha256(b));
    rmSync(a);
    rmSync(b);
    // The first round warms the page cache and the JIT.
    if (run > 0) {
      ours.push(oursMs);
      gnu.push(gnuMs);
    }
  }
  if (ourDigests.size !== 1 || gnuDigests.size !== 1) throw new Error(`${shape.label}: an archive differed between runs (ours ${ourDigests.size}, GNU ${gnuDigests.size} distinct digests)`);
  rows.push(`| ${shape.label} (${(bytes / 2 ** 20).toFixed(1)} MiB) | ${median(ours).toFixed(1)} | ${median(gnu).toFixed(1)} | ${(median(ours) / median(gnu)).toFixed(2)} |`);
}
cleanup();

console.log(`median of ${RUNS} runs, ms; both reproducible (one digest per archiver over ${RUNS + 1} runs)\n`);
console.log("| activation/ | ours (npm tar, in-process) | GNU tar (spawned) | ours / GNU |");
console.log("| --- | ---: | ---: | ---: |");
for (const row of rows) console.log(row);
console.log(`\nGNU tar start-up alone (empty archive): ${median(startup).toFixed(1)} ms`);
