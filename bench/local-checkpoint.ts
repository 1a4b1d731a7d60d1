// Benchmark: fingerprinting a checkpoint on disk (the `checkpoint` step's inputs, planned on every
// `convert --checkpoint` run) cold and with the digest cache warm, next to `sha256sum` over the same
// files (what a fingerprint by content costs without a cache) from the same run. Files are in the
// page cache (written, then read once). The warm case is what an unchanged checkpoint costs a rerun.
//
// Usage: npx tsx bench/local-checkpoint.ts [--size-mib N] [--runs N]     (defaults: 1024 MiB, 5 runs)
import { execFileSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { checkpointFiles, localCheckpointTask } from "../tasks/local-checkpoint.js";

const { values } = parseArgs({ options: { "size-mib": { type: "string", default: "1024" }, runs: { type: "string", default: "5" } } });
const sizeMiB = Number(values["size-mib"]);
const RUNS = Number(values.runs);
const MiB = 2 ** 20;
const root = mkdtempSync(join(tmpdir(), "ai-tools-bench-checkpoint-"));
try {
  const model = join(root, "ckpt", "model");
  const predictor = join(root, "ckpt", "predictor");
  mkdirSync(model, { recursive: true });
  mkdirSync(predictor, { recursive: true });
  // Two weight shards, the tokenizer and config, and 32 predictor layers: the shape of a 7B checkpoint, scaled.
  for (const shard of [1, 2]) {
    const fd = openSync(join(model, `model-0000${shard}-of-00002.safetensors`), "w");
    const chunk = Buffer.allocUnsafe(16 * MiB);
    for (let written = 0; written < (sizeMiB / 2) * MiB; written += chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(chunk.length, (sizeMiB / 2) * MiB - written));
    closeSync(fd);
  }
  writeFileSync(join(model, "config.json"), JSON.stringify({ model_type: "llama", hidden_act: "relu", num_hidden_layers: 32 }));
  writeFileSync(join(model, "tokenizer.model"), randomFillSync(Buffer.alloc(500_000)));
  for (let i = 0; i < 32; i++) writeFileSync(join(predictor, `model_${i}.pt`), randomFillSync(Buffer.alloc(256 * 1024)));
  writeFileSync(join(predictor, "config.json"), '{"sparse_threshold": 0}\n');
  // Older than the digest cache's racy window (2 s after the last change), as a checkpoint on disk is.
  await new Promise((r) => setTimeout(r, 2100));
  const all = [...(await checkpointFiles(model)).map((f) => join(model, f)), ...(await checkpointFiles(predictor)).map((f) => join(predictor, f))];
  for (const file of all) readFileSync(file); // into the page cache

  const plan = async (cacheDir: string) => {
    const task = localCheckpointTask({ model: "bench", recipeFile: "bench", modelDir: model, predictorDir: predictor });
    const started = performance.now();
    await task.inputs({ root, env: { XDG_CACHE_HOME: cacheDir }, signal: new AbortController().signal, deps: new Map() });
    return performance.now() - started;
  };
  const time = (fn: () => void) => {
    const started = performance.now();
    fn();
    return performance.now() - started;
  };
  const cold: number[] = [];
  const warm: number[] = [];
  const sha256sum: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const cacheDir = join(root, `cache-${run}`);
    cold.push(await plan(cacheDir));
    warm.push(await plan(cacheDir));
    sha256sum.push(time(() => execFileSync("sha256sum", all, { stdio: ["ignore", "ignore", "inherit"] })));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const row = (what: string, xs: number[]) => `| ${what} | ${median(xs).toFixed(1)} ms | ${Math.min(...xs).toFixed(1)} ms | ${Math.max(...xs).toFixed(1)} ms |`;
  console.log(`checkpoint: ${all.length} files, ${sizeMiB} MiB, ${RUNS} runs\n`);
  console.log("| fingerprint of the checkpoint | median | min | max |\n| --- | ---: | ---: | ---: |");
  console.log(row("peer: `sha256sum` over the files", sha256sum));
  console.log(row("ai-tools `checkpoint` step inputs, cold (every file hashed)", cold));
  console.log(row("ai-tools `checkpoint` step inputs, digest cache warm (unchanged files)", warm));
} finally {
  rmSync(root, { recursive: true, force: true });
}
