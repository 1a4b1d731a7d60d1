#!/usr/bin/env node
// Benchmark: a no-op `pipeline engine` (everything fresh) next to the peers that answer
// the same "is the engine build up to date?" question: `make -q` and a no-op
// `cmake --build` on the same CMake build folder. Prints a Markdown table.
//
// Usage: node bench/noop-engine.mjs [runs]
// Uses the workspace of this checkout (AI_TOOLS_ROOT or the repo root), which must
// have been built with `pnpm pipeline engine` first.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = process.env.AI_TOOLS_ROOT ?? repo;
const runs = Number(process.argv[2] ?? 20);

let record;
try {
  record = JSON.parse(readFileSync(join(root, "build", "state", "build.lock.json"), "utf8"));
} catch {
  console.error(`no engine build recorded under ${root}: run \`pnpm pipeline engine\` first`);
  process.exit(2);
}
const buildDir = join(root, record.result.buildDir);
const targets = record.result.targets;

function measure(label, argv, options = {}) {
  const times = [];
  let status;
  for (let i = 0; i < runs + 1; i++) {
    const start = performance.now();
    const result = spawnSync(argv[0], argv.slice(1), { cwd: root, env: { ...process.env, CI: "true" }, encoding: "utf8", ...options });
    const elapsed = performance.now() - start;
    status = result.status;
    if (options.expectStatus !== undefined && result.status !== options.expectStatus) {
      console.error(`${label}: exit ${result.status}\n${result.stdout}${result.stderr}`);
      process.exit(1);
    }
    if (i > 0) times.push(elapsed); // the first run warms the page cache
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  return { label, command: argv.join(" "), median, min: times[0], max: times.at(-1), status };
}

const rows = [
  measure("ai-tools: `node bin/ai-tools.mjs engine` (no-op)", [process.execPath, join(repo, "bin", "ai-tools.mjs"), "engine"], { expectStatus: 0 }),
  measure("ai-tools via pnpm: `pnpm pipeline engine` (no-op)", ["pnpm", "pipeline", "engine"], { expectStatus: 0, cwd: repo }),
  measure("node start-up alone: `node -e 0`", [process.execPath, "-e", "0"], { expectStatus: 0 }),
  measure("peer: `make -q <targets>` in the CMake build folder", ["make", "-q", "-C", buildDir, ...targets]),
  measure("peer: no-op `cmake --build --target <targets>`", ["cmake", "--build", buildDir, "--target", ...targets], { expectStatus: 0 }),
];

console.log(`No-op engine check, ${runs} runs each (median, min-max), ${cpus().length} cores, node ${process.version}, build ${record.result.buildDir}\n`);
console.log("| command | median | min | max |");
console.log("| --- | ---: | ---: | ---: |");
for (const r of rows) console.log(`| ${r.label} | ${r.median.toFixed(0)} ms | ${r.min.toFixed(0)} ms | ${r.max.toFixed(0)} ms |`);
if (rows[3].status !== 0) console.log(`\n(make -q exited ${rows[3].status}: make considers something out of date)`);
