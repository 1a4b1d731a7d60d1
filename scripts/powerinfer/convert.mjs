#!/usr/bin/env node
// Convert a model to a signed .powerinfer.gguf: `ai-tools convert` with a recipe name, a
// recipe file, or a checkpoint on disk (--checkpoint DIR --predictor DIR --name NAME).
import { aiTools, usage } from "./ai-tools.mjs";

const args = process.argv.slice(2);
if (args.length === 0 || args.includes("-h") || args.includes("--help")) {
  usage(
    `Usage: ./scripts/powerinfer/convert.mjs <model | recipe.yaml> [ai-tools convert options]
       ./scripts/powerinfer/convert.mjs --checkpoint <dir> --predictor <dir> --name <model>
  Builds the engine if needed, converts, benchmarks and signs models/powerinfer/<model>/
  (ai-tools convert). \`pnpm pipeline models\` lists the recipes.`,
    args,
  );
}
process.exitCode = await aiTools(["convert", ...args]);
