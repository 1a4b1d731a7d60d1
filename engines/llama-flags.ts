/**
 * The generation flags PowerInfer's `main` and llama.cpp's CLI share (PowerInfer is a
 * llama.cpp fork): one place that maps a rendered policy to them.
 */
import type { RenderedPolicy } from "../pipeline/policy/types.js";

export function commonGenerationArgs(policy: RenderedPolicy): string[] {
  const g = policy.generation;
  const r = policy.runtime;
  return [
    "-n", String(g.max_tokens),
    "-c", String(g.ctx_size),
    "-t", String(r.threads),
    "-s", String(g.seed),
    "--temp", String(g.temperature),
    "--top-p", String(g.top_p),
    "--top-k", String(g.top_k),
    "--repeat-penalty", String(g.repeat_penalty),
    ...(r.batch_size !== null ? ["-b", String(r.batch_size)] : []),
  ];
}
