#!/usr/bin/env node
// Build PowerInfer: `ai-tools engine` (fetch the pinned engine, build it as configured;
// fresh steps are skipped). Flags pass through, e.g. ./scripts/powerinfer/build.mjs --backend cuda.
import { aiTools, usage } from "./ai-tools.mjs";

const args = process.argv.slice(2);
if (args.includes("-h") || args.includes("--help")) {
  usage(
    `Usage: ./scripts/powerinfer/build.mjs [ai-tools engine options]
  Builds PowerInfer as configs/engines/powerinfer.yaml says (ai-tools engine).
  e.g. --backend cuda, --cuda-arch "89;90", --jobs 8, --dry-run`,
    args,
  );
}
process.exitCode = await aiTools(["engine", ...args]);
