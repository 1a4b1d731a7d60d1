#!/usr/bin/env node
// Benchmark: `ai-tools run` start-up overhead: the same prompt through `node bin/ai-tools.mjs run`
// (policy validation, host rendering, the engine's --help check, the signature verification with a
// warm digest cache, the metrics line) next to invoking the engine's `main` directly with the argv
// ai-tools passes. Runs interleaved, medians. Prints a Markdown table.
//
// Usage: node bench/run-overhead.mjs [runs]
// Needs `pnpm pipeline convert tiny-relu-llama` first (real or fixture engine, signed model).
import { spawnSync } from "node:child_process";
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = process.env.AI_TOOLS_ROOT ?? repo;
const runs = Number(process.argv[2] ?? 15);
const signedPolicy = join(root, "models", "powerinfer", "tiny-relu-llama", "policy.yaml");
const record = JSON.parse(readFileSync(join(root, "build", "state", "build.lock.json"), "utf8"));
const main = join(root, record.result.binaries.main);
const model = join(root, "models", "powerinfer", "tiny-relu-llama", "model.powerinfer.gguf");
const prompt = "Once upon a time";
const scratch = mkdtempSync(join(tmpdir(), "ai-tools-bench-run-"));
const env = { ...process.env, CI: "true", XDG_CACHE_HOME: scratch };
// One thread: with two, the tiny model's run time is bimodal (18 ms or ~200 ms, the sparse
// threads' busy-wait meeting the scheduler), which would drown the difference measured here.
const policy = join(scratch, "policy.yaml");
writeFileSync(policy, readFileSync(signedPolicy, "utf8").replace("threads: auto", "threads: 1").replace(/model_path: .*/, `model_path: ${join(root, "models", "powerinfer", "tiny-relu-llama", "model.powerinfer.gguf")}`));

// The argv ai-tools builds for this policy (its seed is -1, random, in both).
const direct = [main, "-m", model, "-p", prompt, "-n", "16", "-c", "256", "-t", "1", "-s", "-1", "--temp", "0.8", "--top-p", "0.9", "--top-k", "40", "--repeat-penalty", "1.1", "--log-disable"];
const viaToolkit = [process.execPath, join(repo, "bin", "ai-tools.mjs"), "run", "--config", policy, "--prompt", prompt, "--metrics-log", join(scratch, "metrics.jsonl")];

function once(argv) {
  const start = performance.now();
  const result = spawnSync(argv[0], argv.slice(1), { cwd: root, env, encoding: "utf8" });
  if (result.status !== 0) {
    console.error(`${argv.join(" ")}: exit ${result.status}\n${result.stderr}`);
    process.exit(1);
  }
  return performance.now() - start;
}

try {
  once(viaToolkit); // bundle, warm the digest cache (its files are older than the racy window after a conversion)
  once(direct);
  const t = { toolkit: [], direct: [], node: [] };
  for (let i = 0; i < runs; i++) {
    t.toolkit.push(once(viaToolkit));
    t.direct.push(once(direct));
    t.node.push(once([process.execPath, "-e", "0"]));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const row = (label, xs) => `| ${label} | ${median(xs).toFixed(0)} ms | ${Math.min(...xs).toFixed(0)} ms | ${Math.max(...xs).toFixed(0)} ms |`;
  console.log(`\n\`ai-tools run\` vs \`main\` directly: tiny-relu-llama, 16 tokens, ${runs} interleaved runs, ${record.result.backend} build\n`);
  console.log("| command | median | min | max |\n| --- | ---: | ---: | ---: |");
  console.log(row("ai-tools: `node bin/ai-tools.mjs run --config policy.yaml --prompt ...`", t.toolkit));
  console.log(row("peer: `main -m model.powerinfer.gguf -p ... (same flags)`", t.direct));
  console.log(row("reference: Node start-up alone, `node -e 0`", t.node));
  console.log(`\nadded by ai-tools (median difference): ${(median(t.toolkit) - median(t.direct)).toFixed(0)} ms (goal < 150 ms)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
