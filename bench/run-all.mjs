#!/usr/bin/env node
// Every benchmark of the project, one after the other (`pnpm bench`): each prints our figure next
// to its peer's from the same run, as a Markdown table. Converts the demo model first (the engine
// benchmarks need it). `--quick` uses fewer runs and smaller files (a smoke run, not for the README).
//
// Usage: pnpm bench [--quick] [name ...]     names: noop-engine convert-overhead run-overhead cli-startup bench-overhead serve hash verify local-checkpoint download gguf-parse registry-transfer metrics-summary oci-transfer oci-tar report
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args.filter((a) => !a.startsWith("--"));
const tsx = [process.execPath, "--import", "tsx"];

const BENCHES = [
  { name: "noop-engine", argv: [process.execPath, "bench/noop-engine.mjs", quick ? "3" : "20"], peer: "make -q / no-op cmake --build" },
  { name: "convert-overhead", argv: [process.execPath, "bench/convert-overhead.mjs", quick ? "2" : "10"], peer: "the converter run directly" },
  { name: "run-overhead", argv: [process.execPath, "bench/run-overhead.mjs", quick ? "3" : "21"], peer: "main run directly" },
  { name: "serve", argv: [process.execPath, "bench/serve.mjs", "--requests", quick ? "20" : "200"], peer: "the engine's own /completion" },
  { name: "cli-startup", argv: [process.execPath, "bench/cli-startup.mjs", quick ? "3" : "31"], peer: "node -e 0 (or another checkout: --against)" },
  { name: "bench-overhead", argv: [...tsx, "bench/bench-overhead.ts", quick ? "2" : "5"], peer: "main runs directly" },
  { name: "hash", argv: [...tsx, "bench/hash.ts", ...(quick ? ["--size-mib", "128", "--runs", "2"] : [])], peer: "openssl dgst -sha256, sha256sum" },
  { name: "verify", argv: [...tsx, "bench/verify.ts", ...(quick ? ["--size-mib", "128", "--runs", "2"] : ["--runs", "3"])], peer: "sha256sum -c SHA256SUMS" },
  { name: "local-checkpoint", argv: [...tsx, "bench/local-checkpoint.ts", ...(quick ? ["--size-mib", "128", "--runs", "2"] : [])], peer: "sha256sum" },
  { name: "download", argv: [...tsx, "bench/download.ts"], peer: "curl" },
  { name: "gguf-parse", argv: [...tsx, "bench/gguf-parse.ts"], peer: "(absolute numbers)" },
  { name: "registry-transfer", argv: [...tsx, "bench/registry-transfer.ts", ...(quick ? ["--size-mib", "64", "--runs", "1"] : ["--runs", "5"])], peer: "skopeo copy" },
  { name: "metrics-summary", argv: [...tsx, "bench/metrics-summary.ts", ...(quick ? ["--lines", "20000"] : [])], peer: "naive Node, jq -s" },
  { name: "oci-transfer", argv: [...tsx, "bench/oci-transfer.ts", ...(quick ? ["--size-mib", "64", "--runs", "1"] : [])], peer: "skopeo copy" },
  { name: "oci-tar", argv: [...tsx, "bench/oci-tar.ts", ...(quick ? ["--runs", "3"] : ["--runs", "21"])], peer: "GNU tar --sort=name --mtime=@0" },
  { name: "report", argv: [...tsx, "bench/report.ts", ...(quick ? ["--lines", "20000"] : [])], peer: "metrics summary, naive exact Node" },
];

const selected = BENCHES.filter((b) => only.length === 0 || only.includes(b.name));
const unknown = only.filter((n) => !BENCHES.some((b) => b.name === n));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(", ")}; known: ${BENCHES.map((b) => b.name).join(", ")}`);
  process.exit(2);
}

if (selected.some((b) => ["noop-engine", "convert-overhead", "run-overhead", "cli-startup", "bench-overhead", "serve"].includes(b.name))) {
  console.log("## preparing: pnpm pipeline convert tiny-relu-llama\n");
  const prep = spawnSync(process.execPath, ["bin/ai-tools.mjs", "convert", "tiny-relu-llama"], { cwd: repo, stdio: "inherit", env: { ...process.env, CI: "true" } });
  if (prep.status !== 0) process.exit(prep.status ?? 1);
}

const failed = [];
for (const bench of selected) {
  console.log(`\n## ${bench.name} (peer: ${bench.peer})\n`);
  const started = Date.now();
  const result = spawnSync(bench.argv[0], bench.argv.slice(1), { cwd: repo, stdio: "inherit" });
  console.log(`\n(${bench.name}: ${((Date.now() - started) / 1000).toFixed(0)} s, exit ${result.status})`);
  if (result.status !== 0) failed.push(bench.name);
}
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(", ")}`);
  process.exit(1);
}
