/**
 * Task `convert`: the upstream converter from the pinned checkout turns the checkpoint
 * and its predictor into models/powerinfer/<model>/model.powerinfer.gguf.
 *
 * The converter can exit 0 after failing (its dispatch swallows the child's exit code;
 * a missing predictor layer converts "fine"), so success is decided here: the output
 * must exist, be non-empty, and pass the GGUF validation against the checkpoint's own
 * config. It is written to a temporary name and renamed only then, so a failed or
 * interrupted conversion leaves the previous good file untouched.
 */
import { cp, mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import { atomicWriteFile, sha256File } from "../pipeline/core/files.js";
import { PipelineError } from "../pipeline/core/errors.js";
import type { ConvertSettings, GenerationSettings, RuntimeSettings } from "../pipeline/config/recipe.js";
import { readGgufHeader } from "../pipeline/gguf/reader.js";
import { summarizeGguf, validatePowerInferGguf } from "../pipeline/gguf/validate.js";
import { choosePython, CONVERTER_MODULES, type PythonChoice, type PythonModule } from "../pipeline/python.js";
import type { EngineSettings, Workspace } from "../pipeline/workspace.js";

export interface ConvertTaskSettings {
  model: string;
  recipeFile: string;
  convert: ConvertSettings;
  generation: GenerationSettings;
  runtime: RuntimeSettings;
  /** The task that provides { model: { dir }, predictor: { dir }, activation?: { dir } }: "download", "checkpoint" or "generate". */
  checkpointTask: string;
  python?: string;
  allowUnsafeOuttype?: boolean;
  /** recipe.audit: copied into policy.yaml with the converted file's checksum. */
  audit?: { model_version: string; source_repo?: string };
}

/**
 * What `convert` leaves for bench, quantize and sign: the same shape whether the upstream
 * converter wrote the file (tasks/convert.ts) or a ready-made GGUF was taken from the Hub
 * (tasks/fetch-gguf.ts, where `readyMade` is set, `python` is null and the converter is
 * "(ready-made)").
 */
export interface ConvertResult {
  output: string;
  policy: string;
  converter: { script: string; argv: string[] };
  python: { path: string; version: string; modules: PythonChoice["modules"] } | null;
  checkpoint: { modelDir: string; predictorDir: string; layers: number; modelType: string };
  gguf: ReturnType<typeof summarizeGguf>;
  activation: boolean;
  /** A ready-made GGUF: where it came from (the Hub repo at its commit, and the file's LFS sha256). */
  readyMade?: { repo: string; revision: string; commit: string; file: string; sha256: string | null };
}

/** The converter script of a ready-made GGUF's ConvertResult. */
export const READY_MADE = "(ready-made)";

/** Output types known to give NaN logits for sparse models on CPU (powerinfer-upstream.md §9). */
const UNSAFE_OUTTYPES: Record<string, string> = {
  f32: "sparse F32 models load and run but produce NaN logits on CPU builds (output '####', perplexity -nan)",
  q8_0: "sparse Q8_0 models load and run but produce NaN logits on CPU builds (output '####', perplexity -nan)",
};

/** general.file_type per outtype: 0 F32, 1 F16 (mostly), 7 Q8_0. */
const FILE_TYPE: Record<string, number> = { f32: 0, f16: 1, q8_0: 7 };

/** config.json model_type -> the GGUF architecture the converter writes. */
const ARCHITECTURE: Record<string, string> = { llama: "llama", bamboo: "bamboo", falcon: "falcon", RefinedWeb: "falcon", RefinedWebModel: "falcon", opt: "opt" };

const TENSOR_PROGRESS = /^\[\s*(\d+)\/(\d+)\] Writing tensor/;

export function convertTask(workspace: Workspace, engine: EngineSettings, settings: ConvertTaskSettings): TaskDefinition<ConvertResult> {
  const outDir = join("models", "powerinfer", settings.model);
  const output = join(outDir, "model.powerinfer.gguf");
  const policy = join(outDir, "policy.yaml");
  const modules: PythonModule[] = CONVERTER_MODULES[settings.convert.script] ?? ["numpy", "sentencepiece"];
  let python: Promise<PythonChoice> | undefined;
  const interpreter = () => (python ??= choosePython(modules, { flag: settings.python, root: workspace.root, env: workspace.env }));

  return {
    id: "convert",
    instance: `convert--${settings.model}`,
    title: `Convert ${settings.model} to .powerinfer.gguf`,
    version: 3,
    dependsOn: ["upstream", settings.checkpointTask],

    async inputs() {
      const py = await interpreter();
      return {
        values: {
          [`${settings.recipeFile}#convert`]: settings.convert,
          [`${settings.recipeFile}#generation`]: settings.generation,
          [`${settings.recipeFile}#runtime`]: settings.runtime,
          ...(settings.audit ? { [`${settings.recipeFile}#audit`]: settings.audit } : {}),
          "--allow-unsafe-outtype": Boolean(settings.allowUnsafeOuttype),
        },
        tools: { python: `Python ${py.version} ${modules.map((m) => `${m} ${py.modules[m]}`).join(" ")} (${py.path})` },
      };
    },

    outputs: () => [
      { path: output, hash: true },
      { path: policy, hash: true },
    ],

    async run(ctx) {
      const { outtype, vocabtype, script } = settings.convert;
      const unsafe = UNSAFE_OUTTYPES[outtype];
      // f32 that is quantized to Q4_0 next is only an intermediate.
      if (unsafe && !settings.convert.quantize && !settings.allowUnsafeOuttype) {
        throw new PipelineError("E_UNSAFE_OUTTYPE", `refusing --outtype ${outtype} for ${settings.model}: ${unsafe}.`, {
          details: [`Use outtype f16 in ${settings.recipeFile} (convert.outtype), optionally with quantize: Q4_0, or pass --allow-unsafe-outtype to convert anyway.`],
        });
      }
      const py = await interpreter();
      const checkpoint = ctx.deps.get(settings.checkpointTask)?.result as { model: { dir: string }; predictor: { dir: string }; activation?: { dir: string } };
      const config = await readCheckpointConfig(checkpoint.model.dir);
      const architecture = ARCHITECTURE[config.modelType] ?? config.modelType;

      const upstreamDir = join(ctx.root, engine.upstream.path);
      const final = join(ctx.root, output);
      const temp = join(ctx.root, outDir, `.model.powerinfer.gguf.tmp-${process.pid}`);
      await mkdir(join(ctx.root, outDir), { recursive: true });
      const argv = [
        py.path,
        join(upstreamDir, script),
        "--outfile",
        temp,
        "--outtype",
        outtype,
        ...(vocabtype ? ["--vocabtype", vocabtype] : []),
        checkpoint.model.dir,
        checkpoint.predictor.dir,
      ];
      try {
        await ctx.run(argv, {
          cwd: upstreamDir,
          // Python block-buffers a pipe: unbuffered, the tensor lines arrive as progress.
          env: { ...ctx.env, PYTHONUNBUFFERED: "1" },
          timeoutMs: 6 * 60 * 60_000,
          onLine: (line) => {
            const match = TENSOR_PROGRESS.exec(line);
            if (match) ctx.progress({ percent: Math.floor((100 * Number(match[1])) / Number(match[2])), message: line.trim() });
          },
        });
        const size = (await stat(temp).catch(() => null))?.size ?? 0;
        if (size === 0) {
          throw new PipelineError("E_CONVERT_OUTPUT", `the converter exited 0 but wrote ${size === 0 && existsSync(temp) ? "an empty file" : "no file"}: the conversion failed.`, {
            details: [`Its output is in ${ctx.logFile} (the upstream dispatch reports success even when the converter it runs fails).`],
          });
        }
        const header = await readGgufHeader(temp);
        const problems = validatePowerInferGguf(header, {
          sparse: true,
          architecture,
          blockCount: config.layers,
          ...(FILE_TYPE[outtype] === undefined ? {} : { fileType: FILE_TYPE[outtype] }),
        });
        if (problems.length > 0) {
          throw new PipelineError("E_CONVERT_OUTPUT", `the converted file is not a valid PowerInfer model for ${settings.model}: ${problems[0]}`, { details: [...problems.slice(1), `Converter log: ${ctx.logFile}`] });
        }
        const checksum = await sha256File(temp);
        await rename(temp, final);
        const summary = summarizeGguf(header);

        // The recipe's activation repo (a GGUF repo: predictor repos do not ship it), else a predictor folder that has one.
        const activationSource = join((checkpoint.activation ?? checkpoint.predictor).dir, "activation");
        const activation = existsSync(activationSource);
        if (activation) await cp(activationSource, join(ctx.root, outDir, "activation"), { recursive: true, dereference: true });
        else ctx.log(`note: no activation/ for ${settings.model}: a GPU build will offload no FFN weights (name a GGUF repo under activation: in ${settings.recipeFile})`);

        await atomicWriteFile(join(ctx.root, policy), renderPolicy(settings, `powerinfer/${settings.model}/model.powerinfer.gguf`, checksum));
        return {
          output,
          policy,
          converter: { script, argv: argv.map((a) => a.replace(temp, output)) },
          python: { path: py.path, version: py.version, modules: py.modules },
          checkpoint: { modelDir: checkpoint.model.dir, predictorDir: checkpoint.predictor.dir, layers: config.layers, modelType: config.modelType },
          gguf: summary,
          activation,
        };
      } finally {
        await rm(temp, { force: true });
      }
    },
  };
}

async function readCheckpointConfig(modelDir: string): Promise<{ layers: number; modelType: string }> {
  const file = join(modelDir, "config.json");
  let config: { num_hidden_layers?: unknown; n_layer?: unknown; num_layers?: unknown; model_type?: unknown };
  try {
    config = JSON.parse(await readFile(file, "utf8")) as typeof config;
  } catch (error) {
    throw new PipelineError("E_CONVERT_OUTPUT", `cannot read the checkpoint's config.json (${file}): ${(error as Error).message}`);
  }
  const layers = [config.num_hidden_layers, config.n_layer, config.num_layers].find((v) => typeof v === "number");
  if (typeof layers !== "number" || typeof config.model_type !== "string") {
    throw new PipelineError("E_CONVERT_OUTPUT", `${file} has no num_hidden_layers or model_type: is this a Hugging Face checkpoint?`);
  }
  return { layers, modelType: config.model_type };
}

/** The runtime defaults next to the model, for `ai-tools run`. */
export function renderPolicy(settings: Pick<ConvertTaskSettings, "model" | "recipeFile" | "generation" | "runtime" | "audit">, modelPath: string, checksum?: string): string {
  const header =
    `# yaml-language-server: $schema=../../../schemas/policy.schema.json\n` +
    `# Rendered by \`pnpm pipeline convert ${settings.model}\` from ${settings.recipeFile}: the runtime policy of this model\n` +
    `# (ai-tools run --config <this file>). Edit the recipe, not this file: it is rewritten on every conversion.\n` +
    `# model_path is relative to the model root (--model-root, AI_TOOLS_MODEL_ROOT, default models/).\n`;
  // The blueprint's audit block, in its spelling: which release this is, where the weights came from (hf://), the file's sha256.
  const source = settings.audit?.source_repo;
  const audit = settings.audit
    ? { audit: { model_version: settings.audit.model_version, ...(source ? { source_repo: source.includes("/") && !source.includes(":") ? `hf://${source}` : source } : {}), ...(checksum ? { checksum: `sha256:${checksum}` } : {}) } }
    : {};
  return header + stringify({ engine: "powerinfer", model_path: modelPath, generation: settings.generation, runtime: settings.runtime, ...audit });
}
