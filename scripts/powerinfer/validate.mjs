#!/usr/bin/env node
// Validate a converted model before it is used: its signature (ai-tools verify), its GGUF
// header (ai-tools inspect), and its policy and engine against what was signed (ai-tools
// drift). Stops at the first failure, with that command's exit code (drift: 3).
import { join } from "node:path";
import { aiTools, usage, workspaceRoot } from "./ai-tools.mjs";

const args = process.argv.slice(2);
const [model, ...rest] = args;
if (model === undefined || model.startsWith("-") || args.includes("-h") || args.includes("--help")) {
  usage(
    `Usage: ./scripts/powerinfer/validate.mjs <model> [--config <policy.yaml>]
  Checks models/powerinfer/<model>/: the signature, the GGUF header, and the policy (default:
  the model's own policy.yaml) and engine build against what was signed.`,
    args,
  );
}
const configAt = rest.indexOf("--config");
const root = workspaceRoot();
const dir = join(root, "models", "powerinfer", model);
const config = configAt >= 0 ? rest[configAt + 1] : join(dir, "policy.yaml");
const steps = [
  ["signature", ["verify", dir]],
  ["GGUF header", ["inspect", join(dir, "model.powerinfer.gguf")]],
  ["policy and engine against the signed ones", ["drift", "--config", config]],
];
for (const [what, command] of steps) {
  process.stdout.write(`== ${model}: ${what} (ai-tools ${command[0]})\n`);
  const code = await aiTools(command);
  if (code !== 0) {
    process.stderr.write(`validate: ${model}: ${what} failed (ai-tools ${command[0]} exited ${code})\n`);
    process.exit(code);
  }
}
process.stdout.write(`validate: ${model} is signed, well-formed and as signed\n`);
