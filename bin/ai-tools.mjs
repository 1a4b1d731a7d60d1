#!/usr/bin/env node
// Starts the bundled CLI (dist/cli/): a no-op run must start fast, so neither tsx's
// transform hooks nor Node's resolution of hundreds of small ESM files belong on this
// path. In a source checkout, sources newer than the last bundle are bundled again
// first (esbuild, ~0.2 s), so `pnpm pipeline` never runs stale code.
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stamp = join(root, "dist", "cli", ".bundled");
const SOURCE_DIRS = ["pipeline", "tasks", "engines"];

// Every start walks the sources: the path is concatenated, not path.join()ed, which on a cold
// start costs ~5 ms over these ~150 entries (bench/cli-startup.mjs).
function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

const sources = SOURCE_DIRS.map((d) => join(root, d)).filter((d) => existsSync(d));
const bundler = join(root, "scripts", "bundle-cli.mjs");
if (sources.length > 0 && existsSync(bundler)) {
  const bundledAt = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
  if (Math.max(...sources.map(newestSource), statSync(bundler).mtimeMs) > bundledAt) {
    process.stderr.write("ai-tools: bundling the CLI (sources changed since the last bundle)...\n");
    await import(pathToFileURL(bundler).href);
    writeFileSync(stamp, new Date().toISOString() + "\n");
  }
}

// The bundle is minified: with AI_TOOLS_DEBUG (core/errors.ts debugEnabled: 1, true, yes, on) stack
// traces name the TypeScript sources and lines. Only then: reading the maps costs every start.
if (["1", "true", "yes", "on"].includes((process.env.AI_TOOLS_DEBUG ?? "").toLowerCase())) process.setSourceMapsEnabled(true);

const { main } = await import(pathToFileURL(join(root, "dist", "cli", "main.js")).href);
process.exitCode = await main(process.argv.slice(2));
