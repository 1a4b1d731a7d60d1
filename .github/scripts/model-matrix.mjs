#!/usr/bin/env node
// The release workflow's `models` input ("a, b") -> the JSON list its build matrix runs on,
// one model per runner. Every name must be a recipe in configs/models/powerinfer/, so a typo
// fails here, in seconds, instead of on a runner an hour into a build.
//
//   node .github/scripts/model-matrix.mjs "tiny-relu-llama, relu-llama-2-7b"
//
// Prints the list; in GitHub Actions also writes `models=<json>` to $GITHUB_OUTPUT.
import { appendFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const input = process.argv[2] ?? process.env.MODELS ?? "";
const models = [...new Set(input.split(",").map((m) => m.trim()).filter(Boolean))];

const fail = (message) => {
  console.log(`::error title=models::${message}`);
  process.exit(1);
};
if (models.length === 0) fail("no models given: pass a comma-separated list of recipe names");
for (const model of models) {
  // Also keeps the name safe to use in paths, cache keys and artifact names.
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(model)) fail(`"${model}" is not a recipe name (lowercase letters, digits, ".", "_", "-")`);
  if (!existsSync(join(root, "configs", "models", "powerinfer", `${model}.yaml`))) {
    fail(`no recipe configs/models/powerinfer/${model}.yaml (list them with: pnpm pipeline models)`);
  }
}

const json = JSON.stringify(models);
console.log(json);
if (process.env.GITHUB_OUTPUT) appendFileSync(process.env.GITHUB_OUTPUT, `models=${json}\n`);
