// Benchmark: verifying a signed model directory (one large GGUF + small files) with verifyModel, cold and with
// the digest cache warm, next to `sha256sum -c SHA256SUMS` (the coreutils way to check the same directory) from
// the same run. Files are in the page cache (written, then read once). The cached case is what a runtime pays at
// start-up for an unchanged model: stat calls and the signature check, no weight bytes read.
//
// Usage: npx tsx bench/verify.ts [--size-mib N] [--runs N]     (defaults: 1024 MiB, 5 runs)
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomFillSync } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { verifyModel } from "../pipeline/signing/verify.js";

const { values } = parseArgs({ options: { "size-mib": { type: "string", default: "1024" }, runs: { type: "string", default: "5" } } });
const sizeMiB = Number(values["size-mib"]);
const RUNS = Number(values.runs);
const MiB = 2 ** 20;
const root = mkdtempSync(join(tmpdir(), "ai-tools-bench-verify-"));
const dir = join(root, "model");
try {
  mkdirSync(join(dir, "activation"), { recursive: true });
  const fd = openSync(join(dir, "model.powerinfer.gguf"), "w");
  const chunk = Buffer.allocUnsafe(16 * MiB);
  for (let written = 0; written < sizeMiB * MiB; written += chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(chunk.length, sizeMiB * MiB - written));
  closeSync(fd);
  for (let i = 0; i < 32; i++) writeFileSync(join(dir, "activation", `activation_${i}.pt`), randomFillSync(Buffer.alloc(64 * 1024)));
  writeFileSync(join(dir, "policy.yaml"), "engine: powerinfer\n");
  writeFileSync(join(dir, "bench.json"), "{}\n");
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await signModelDirectory(dir, { privateKey });
  // Older than the cache's racy window, as a model on disk is.
  const old = new Date(Date.now() - 60_000);
  utimesSync(join(dir, "model.powerinfer.gguf"), old, old);
  await new Promise((r) => setTimeout(r, 2100));
  readFileSync(join(dir, "model.powerinfer.gguf")).length; // into the page cache

  const trustedKeys = [{ id: "bench", publicKey: publicKey.export({ type: "spki", format: "pem" }) as string }];
  const cache = { dir: join(root, "cache") };
  const time = async (fn: () => unknown) => {
    const start = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  const cold: number[] = [];
  const cached: number[] = [];
  const sums: number[] = [];
  await verifyModel(dir, { trustedKeys, digestCache: cache }); // fills the cache
  for (let i = 0; i < RUNS; i++) {
    cold.push(await time(() => verifyModel(dir, { trustedKeys })));
    cached.push(await time(async () => {
      const r = await verifyModel(dir, { trustedKeys, digestCache: cache });
      if (r.cachedFiles !== r.files.length) throw new Error(`only ${r.cachedFiles} of ${r.files.length} from the cache`);
    }));
    sums.push(await time(() => execFileSync("sha256sum", ["--quiet", "-c", "SHA256SUMS"], { cwd: dir })));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
  const gbps = (ms: number) => ((sizeMiB * MiB) / 1e9 / (ms / 1000)).toFixed(2);
  console.log(`\nVerify a signed directory: ${sizeMiB} MiB GGUF + 34 small files, page cache, ${RUNS} runs (median)\n`);
  console.log("| method | median | GB/s |\n| --- | ---: | ---: |");
  console.log(`| ai-tools: verifyModel (signature, manifest, walk, sha256 of every file) | ${fmt(median(cold))} | ${gbps(median(cold))} |`);
  console.log(`| ai-tools: verifyModel, digest cache warm (unchanged files) | ${fmt(median(cached))} | - |`);
  console.log(`| peer: sha256sum -c SHA256SUMS (digests only, no signature) | ${fmt(median(sums))} | ${gbps(median(sums))} |`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
