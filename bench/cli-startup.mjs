#!/usr/bin/env node
// Benchmark: CLI start-up of the three commands that must stay quick: `ai-tools --version`, `ai-tools verify`
// on the signed demo model (digest cache warm) and `ai-tools run` on it (one engine thread, 16 tokens), each
// next to the same command from another checkout (`--against <dir>`, e.g. the commit before a CLI change)
// and to Node's own start-up (`node -e 0`). All commands run interleaved, round after round, so drift on a
// noisy machine hits each alike; medians of the wall time and of the CPU time (user + system), which a busy
// machine disturbs less. Prints a Markdown table.
//
// Usage: node bench/cli-startup.mjs [runs] [--against <checkout>]      (default 21 runs)
// Needs `pnpm pipeline convert tiny-relu-llama` first (in AI_TOOLS_ROOT, else this checkout). The other
// checkout needs its node_modules (a symlink to this one's will do); its launcher bundles it on first use.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values, positionals } = parseArgs({ allowPositionals: true, options: { against: { type: "string" } } });
const runs = Number(positionals[0] ?? 21);
const root = process.env.AI_TOOLS_ROOT ?? repo;
const modelDir = join(root, "models", "powerinfer", "tiny-relu-llama");
if (!Number.isInteger(runs) || runs < 1 || !existsSync(join(modelDir, "model.sig"))) {
  console.error("usage: node bench/cli-startup.mjs [runs] [--against <checkout>]  (after `pnpm pipeline convert tiny-relu-llama`)");
  process.exit(2);
}
const scratch = mkdtempSync(join(tmpdir(), "ai-tools-bench-startup-"));
const env = { ...process.env, AI_TOOLS_ROOT: root, CI: "true", XDG_CACHE_HOME: scratch };
// One engine thread: with two, the tiny model's own run time is bimodal (see run-overhead.mjs).
const policy = join(scratch, "policy.yaml");
// In the oldest spelling both checkouts read: `n_predict` (now an alias of max_tokens) and the bare hex digest.
writeFileSync(
  policy,
  readFileSync(join(modelDir, "policy.yaml"), "utf8")
    .replace("threads: auto", "threads: 1")
    .replace(/model_path: .*/, `model_path: ${join(modelDir, "model.powerinfer.gguf")}`)
    .replace(/\bmax_tokens:/, "n_predict:")
    .replace(/checksum: sha256:/, "checksum: "),
);

const checkouts = [{ label: "this checkout", bin: join(repo, "bin", "ai-tools.mjs") }];
if (values.against) checkouts.push({ label: `--against ${values.against}`, bin: join(resolve(values.against), "bin", "ai-tools.mjs") });
const commands = [
  { label: "`ai-tools --version`", args: ["--version"] },
  { label: "`ai-tools verify models/powerinfer/tiny-relu-llama`", args: ["verify", modelDir] },
  { label: "`ai-tools run --config policy.yaml --prompt ...`", args: ["run", "--config", policy, "--prompt", "Once upon a time", "--metrics-log", join(scratch, "metrics.jsonl")] },
];

// bash's `time` reports the command's own wall, user and system time in ms (GNU time has 10 ms steps).
const TIMED = 'TIMEFORMAT="%3R %3U %3S"; { time "$@" > /dev/null 2> "$ERR_FILE"; } 2> "$TIME_FILE"';
const timeFile = join(scratch, "time.txt");
const errFile = join(scratch, "stderr.txt");

/** Wall and CPU (user + system) milliseconds of one run. */
function once(argv) {
  const result = spawnSync("bash", ["-c", TIMED, "bash", ...argv], { cwd: root, env: { ...env, TIME_FILE: timeFile, ERR_FILE: errFile } });
  if (result.status !== 0) {
    console.error(`${argv.join(" ")}: exit ${result.status}\n${readFileSync(errFile, "utf8")}`);
    process.exit(1);
  }
  const [wall, user, system] = readFileSync(timeFile, "utf8").trim().split(/\s+/).map((s) => Number(s) * 1000);
  return { wall, cpu: user + system };
}

try {
  const cases = [...commands.flatMap((c) => checkouts.map((k) => ({ key: `${c.label}|${k.label}`, argv: [process.execPath, k.bin, ...c.args] }))), { key: "node", argv: [process.execPath, "-e", "0"] }];
  for (const c of cases) once(c.argv); // bundle each checkout, warm the digest cache and the engine's flag cache
  const times = new Map(cases.map((c) => [c.key, []]));
  for (let i = 0; i < runs; i++) for (const c of cases) times.get(c.key).push(once(c.argv));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const ms = (x) => `${x.toFixed(0)} ms`;
  const stat = (key, field) => median(times.get(key).map((t) => t[field]));
  console.log(`\nCLI start-up, ${runs} interleaved runs each, medians, wall / CPU (Node start-up alone, \`node -e 0\`: ${ms(stat("node", "wall"))} / ${ms(stat("node", "cpu"))})\n`);
  console.log(`| command | ${checkouts.map((k) => `${k.label} wall | CPU`).join(" | ")}${checkouts.length > 1 ? " | difference wall | CPU" : ""} |`);
  console.log(`| --- | ${checkouts.map(() => "---: | ---:").join(" | ")}${checkouts.length > 1 ? " | ---: | ---:" : ""} |`);
  const signed = (x) => `${x >= 0 ? "+" : ""}${x.toFixed(0)} ms`;
  for (const c of commands) {
    const m = checkouts.map((k) => ({ wall: stat(`${c.label}|${k.label}`, "wall"), cpu: stat(`${c.label}|${k.label}`, "cpu") }));
    const diff = m.length > 1 ? ` | ${signed(m[0].wall - m[1].wall)} | ${signed(m[0].cpu - m[1].cpu)}` : "";
    console.log(`| ${c.label} | ${m.map((x) => `${ms(x.wall)} | ${ms(x.cpu)}`).join(" | ")}${diff} |`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
