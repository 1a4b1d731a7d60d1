/**
 * A "ready-made" PowerInfer GGUF for tests: a valid 2-layer sparse (PWRI) llama file (FFN 256),
 * written by the fixture stand-in for upstream convert.py from a made-up checkpoint.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { seededBytes } from "./hub-server.js";
import { PROJECT_ROOT } from "./workspace.js";

/** An interpreter for the fixture converter (it needs only the standard library). */
export const fixturePython = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import json, struct, argparse"]).status === 0);

export function makeReadyMadeGguf(dir: string, shape: { layers?: number; ffn?: number } = {}): Buffer {
  const model = join(dir, "model");
  const predictor = join(dir, "predictor");
  mkdirSync(model, { recursive: true });
  mkdirSync(predictor, { recursive: true });
  const config = { model_type: "llama", hidden_act: "relu", num_hidden_layers: shape.layers ?? 2, hidden_size: 64, intermediate_size: shape.ffn ?? 256, vocab_size: 512 };
  writeFileSync(join(model, "config.json"), JSON.stringify(config));
  writeFileSync(join(model, "model.safetensors"), seededBytes("weights", 1000));
  writeFileSync(join(model, "tokenizer.model"), seededBytes("tokenizer", 100));
  for (let i = 0; i < config.num_hidden_layers; i++) writeFileSync(join(predictor, `model_${i}.pt`), seededBytes(`predictor-${i}`, 100));
  writeFileSync(join(predictor, "config.json"), '{"sparse_threshold": 0.0}\n');
  const out = join(dir, "ready.powerinfer.gguf");
  const run = spawnSync(fixturePython!, [join(PROJECT_ROOT, "test", "fixtures", "upstream", "convert.py"), "--outfile", out, "--outtype", "f16", model, predictor], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`fixture converter failed: ${run.stderr}`);
  return readFileSync(out);
}
