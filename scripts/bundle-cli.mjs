#!/usr/bin/env node
// Bundles the CLI into dist/cli/ (one file per lazily loaded part): Node's ESM loader
// spends ~0.15 s resolving and compiling zod's and yaml's many small files, which a
// no-op run should not pay. Type checking stays with `tsc` (pnpm test, pnpm build).
import { renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// commander requires node:child_process when it loads, for executable subcommands, which this CLI
// does not have; loading that module is a few ms of every start (`--version`, `verify` need no
// child process). commander gets a stand-in that loads the real module on first use.
const lazyChildProcessForCommander = {
  name: "lazy-child-process-for-commander",
  setup(builder) {
    builder.onResolve({ filter: /^node:child_process$/ }, (args) => (/[\\/]commander[\\/]/.test(args.importer) ? { path: "child_process", namespace: "lazy-builtin" } : undefined));
    builder.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, () => ({
      contents: 'let real; module.exports = new Proxy({}, { get: (_, key) => (real ??= require("node:child_process"))[key] });',
      loader: "js",
    }));
  },
};
const final = join(root, "dist", "cli");
// Bundled beside the old one, then swapped in: a concurrent run never imports a half-written bundle.
const outdir = `${final}.tmp-${process.pid}`;
rmSync(outdir, { recursive: true, force: true });
await build({
  // verify.js is the `ai-tools/verify` entry point other repositories import.
  entryPoints: { main: join(root, "pipeline", "cli", "main.ts"), verify: join(root, "pipeline", "verify.ts") },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  // Start-up compiles every loaded chunk: without comments and blank space (commander's JSDoc alone
  // is ~70 KB) there is less to scan. Names stay, so a stack trace still names its functions, and
  // the launcher maps traces back to the sources when AI_TOOLS_DEBUG is set.
  minifyWhitespace: true,
  minifySyntax: true,
  // node-llama-cpp forks its own file and loads its platform's native binary package (an
  // optional dependency, maybe absent) at run time; @datadog/sketches-js requires protobufjs
  // (its peer, for serialization only) from its own folder: both stay real packages on disk.
  external: ["node-llama-cpp", "@datadog/sketches-js"],
  // Bundled CommonJS dependencies still call require().
  banner: { js: "import { createRequire as __aiToolsRequire } from 'node:module'; const require = __aiToolsRequire(import.meta.url);" },
  plugins: [lazyChildProcessForCommander],
  logLevel: "warning",
});
rmSync(final, { recursive: true, force: true });
try {
  renameSync(outdir, final);
} catch (error) {
  // Another process swapped its (identical) bundle in first.
  rmSync(outdir, { recursive: true, force: true });
  if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
}
