#!/usr/bin/env node
// Benchmark: the toolkit's overhead on converting the tiny demo model, next to running
// the upstream converter directly on the same input in the same run.
//
// Usage: node bench/convert-overhead.mjs [runs]
// Needs this checkout's workspace after `pnpm pipeline convert tiny-relu-llama`.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = process.env.AI_TOOLS_ROOT ?? repo;
const runs = Number(process.argv[2] ?? 10);
const record = (name) => JSON.parse(readFileSync(join(root, "build", "state", `${name}.lock.json`), "utf8"));
let converted;
try {
  converted = record("convert--tiny-relu-llama").result;
} catch {
  console.error("run `pnpm pipeline convert tiny-relu-llama` first");
  process.exit(2);
}
const scratch = mkdtempSync(join(tmpdir(), "ai-tools-bench-convert-"));
const direct = [converted.python.path, join(root, "external", "powerinfer", converted.converter.script), "--outfile", join(scratch, "out.gguf"), "--outtype", "f16", "--vocabtype", "spm", converted.checkpoint.modelDir, converted.checkpoint.predictorDir];
const ours = [process.execPath, join(repo, "bin", "ai-tools.mjs"), "convert", "tiny-relu-llama", "--force", "convert"];

function median(argv) {
  const times = [];
  for (let i = 0; i <= runs; i++) {
    const start = performance.now();
    const r = spawnSync(argv[0], argv.slice(1), { cwd: root, env: { ...process.env, CI: "true" }, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}\n${r.stdout}${r.stderr}`);
    if (i > 0) times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const directMs = median(direct);
const oursMs = median(ours);
rmSync(scratch, { recursive: true, force: true });
console.log(`Tiny model conversion, median of ${runs} runs, ${cpus().length} cores, node ${process.version}\n`);
console.log("| command | median | overhead |");
console.log("| --- | ---: | ---: |");
console.log(`| converter directly: \`python3 convert.py --outfile ... model predictor\` | ${directMs.toFixed(0)} ms | |`);
console.log(`| ai-tools: \`pipeline convert tiny-relu-llama --force convert\` (whole graph checked, convert rerun, validated, hashed) | ${oursMs.toFixed(0)} ms | +${(oursMs - directMs).toFixed(0)} ms |`);
