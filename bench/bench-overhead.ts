// Benchmark: the bench runner's own overhead per run (spawn, GNU time, the -ld log, parsing)
// against the same `main` command run directly from a shell, on a run of about a second.
//
// Usage: npx tsx bench/bench-overhead.ts [runs]   (after `pnpm pipeline convert tiny-relu-llama`)
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "../pipeline/core/process.js";
import { mainArgv, runMainOnce, type MainBenchSettings } from "../pipeline/model-bench/runner.js";
import { formatArgv } from "../pipeline/core/process.js";

const root = process.env.AI_TOOLS_ROOT ?? join(import.meta.dirname, "..");
const runs = Number(process.argv[2] ?? 5);
const build = JSON.parse(readFileSync(join(root, "build", "state", "build.lock.json"), "utf8")).result as { binaries: Record<string, string> };
const settings: MainBenchSettings = {
  main: join(root, build.binaries.main!),
  model: join(root, "models", "powerinfer", "tiny-relu-llama", "model.powerinfer.gguf"),
  prompt: "Once upon a time",
  nPredict: 2500,
  ctxSize: 4096,
  seed: 42,
  threads: 1,
  temp: 0.8,
  topP: 0.9,
};
const logDir = join(tmpdir(), "ai-tools-bench-overhead");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const direct: number[] = [];
const ours: number[] = [];
for (let i = 0; i <= runs; i++) {
  // Alternate, so drift in machine load hits both alike; the first pair warms caches.
  // The same command line, -ld log included, as a user would type it.
  const shell = `mkdir -p ${logDir}-direct && ${formatArgv(mainArgv(settings, `${logDir}-direct`))} > /dev/null 2>&1`;
  let start = performance.now();
  spawnSync("sh", ["-c", shell]);
  const d = performance.now() - start;
  start = performance.now();
  const sample = await runMainOnce((argv, options) => runCommand(argv, options), settings, logDir, { timeoutMs: 120_000, cwd: root });
  const o = performance.now() - start;
  if (process.env.DEBUG_OVERHEAD) console.error(`direct ${d.toFixed(0)} runner-total ${o.toFixed(0)} child-wall ${sample.wallMs.toFixed(0)}`);
  if (i > 0) {
    direct.push(d);
    ours.push(o);
  }
}
console.log(`Bench runner overhead, ${runs} alternating runs each, ${cpus().length} cores, node ${process.version}\n`);
console.log("| how `main -n 2500 -c 4096 -t 1 --ignore-eos` ran | median | ratio |");
console.log("| --- | ---: | ---: |");
console.log(`| the same command directly from a shell (output to /dev/null) | ${median(direct).toFixed(0)} ms | 1.000x |`);
console.log(`| through the bench runner (GNU time, -ld log, parsing) | ${median(ours).toFixed(0)} ms | ${(median(ours) / median(direct)).toFixed(3)}x |`);
