/**
 * Task `quantize` (only when the recipe asks for it): the engine's own `quantize`
 * binary turns the converted file into Q4_0, which keeps the PWRI magic and, with F16,
 * is the only type that gives correct sparse inference on CPU (powerinfer-upstream.md §9).
 * Written to a temporary name, validated (a sparse model whose general.file_type and FFN
 * weights are the type asked for: Q8_0 would load and give NaN logits), then renamed.
 */
import { rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import { PipelineError } from "../pipeline/core/errors.js";
import { ggmlTypeName, readGgufHeader, type GgufHeader } from "../pipeline/gguf/reader.js";
import { summarizeGguf, validatePowerInferGguf } from "../pipeline/gguf/validate.js";
import type { BuildResult } from "./build.js";
import type { ConvertResult } from "./convert.js";

export interface QuantizeSettings {
  model: string;
  recipeFile: string;
  type: "Q4_0";
}

/** LLAMA_FTYPE (general.file_type) of each type the step may ask for. */
const FILE_TYPES: Readonly<Record<QuantizeSettings["type"], number>> = { Q4_0: 2 };

/** The FFN weights (what sparse inference reads per neuron) whose type is not `type`: "blk.0.ffn_up.weight is Q8_0". */
export function ffnTypeProblems(header: GgufHeader, type: string): string[] {
  return header.tensors
    .filter((t) => /^blk\.\d+\.ffn_(up|gate|down|down_t)\.weight$/.test(t.name) && ggmlTypeName(t.type) !== type)
    .map((t) => `${t.name} is ${ggmlTypeName(t.type)}, expected ${type}`);
}

export function quantizeTask(settings: QuantizeSettings): TaskDefinition {
  const output = join("models", "powerinfer", settings.model, `model.${settings.type.toLowerCase()}.powerinfer.gguf`);
  return {
    id: "quantize",
    instance: `quantize--${settings.model}`,
    title: `Quantize ${settings.model} to ${settings.type}`,
    version: 1,
    dependsOn: ["convert", "build"],
    inputs: () => ({ values: { [`${settings.recipeFile}#convert.quantize`]: settings.type } }),
    outputs: () => [{ path: output, hash: true }],

    async run(ctx) {
      const build = ctx.deps.get("build")!.result as BuildResult;
      const converted = ctx.deps.get("convert")!.result as ConvertResult;
      const quantize = build.binaries.quantize;
      if (!quantize) {
        throw new PipelineError("E_BUILD_OUTPUT", "the recipe asks for quantize, but the engine build has no quantize binary", {
          details: ["Add quantize to build.targets in configs/engines/powerinfer.yaml."],
        });
      }
      const final = join(ctx.root, output);
      const temp = `${final}.tmp-${process.pid}`;
      try {
        ctx.progress({ message: `${settings.type}: ${converted.output}` });
        await ctx.run([join(ctx.root, quantize), join(ctx.root, converted.output), temp, settings.type], { cwd: ctx.root, timeoutMs: 6 * 60 * 60_000 });
        if (!(await stat(temp).catch(() => null))?.size) throw new PipelineError("E_CONVERT_OUTPUT", "quantize exited 0 but wrote no file");
        const header = await readGgufHeader(temp);
        const problems = [
          ...validatePowerInferGguf(header, { sparse: true, architecture: converted.gguf.architecture ?? "llama", blockCount: converted.checkpoint.layers, fileType: FILE_TYPES[settings.type] }),
          ...ffnTypeProblems(header, settings.type),
        ];
        if (problems.length) {
          throw new PipelineError("E_CONVERT_OUTPUT", `quantize was asked for ${settings.type}, but the file it wrote is not a valid ${settings.type} PowerInfer model: ${problems[0]}`, {
            details: [...problems.slice(1, 6), `Check the engine's quantize (${quantize}; its output is in ${ctx.logFile}), then rerun.`],
          });
        }
        await rename(temp, final);
        return { output, type: settings.type, gguf: summarizeGguf(header) };
      } finally {
        await rm(temp, { force: true });
      }
    },
  };
}
