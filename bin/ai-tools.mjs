#!/usr/bin/env node
// Starts the compiled CLI (dist/): a no-op run must start fast, and tsx would add its
// transform hooks to every start. In a source checkout, sources newer than the last
// compile are recompiled first, so `pnpm pipeline` never runs stale code.
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stamp = join(root, "dist", ".compiled");
const SOURCE_DIRS = ["pipeline", "tasks"];

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

const sources = SOURCE_DIRS.map((d) => join(root, d)).filter((d) => existsSync(d));
if (sources.length > 0) {
  const compiledAt = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  const newest = Math.max(statSync(join(root, "tsconfig.json")).mtimeMs, ...sources.map(newestSource));
  if (newest > compiledAt) {
    process.stderr.write("ai-tools: compiling (sources changed since the last compile)...\n");
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    const result = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: ["ignore", 2, 2] });
    if (result.status === 0) writeFileSync(stamp, new Date().toISOString() + "\n");
    else process.stderr.write("ai-tools: the compile reported errors (above); running what it emitted.\n");
  }
}

const { main } = await import("../dist/pipeline/cli/main.js");
process.exitCode = await main(process.argv.slice(2));
