/**
 * `pnpm pipeline convert --checkpoint DIR --predictor DIR --name my-model`: the recipe a
 * checkpoint on disk implies, without a recipe file. Its config.json's model_type picks the
 * family and the upstream converter (as the shipped recipes do: convert.py for llama and
 * bamboo, the hf script for Falcon); everything else takes the recipe defaults. The
 * architecture allow-list itself is the checkpoint step's preflight, as for a download.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { PipelineError, UsageError } from "../core/errors.js";
import { ConfigError } from "./load-yaml.js";
import { recipeNameSchema, recipeSchemaFor, type LoadedRecipe, type RecipeFamily } from "./recipe.js";

export interface LocalRecipeOptions {
  /** --name: the model's name (models/powerinfer/<name>/). */
  name: string;
  /** --checkpoint: the Hugging Face checkpoint folder. */
  checkpoint: string;
  /** --predictor: the activation predictor folder. */
  predictor: string;
  /** Relative folders are resolved from here (default: the current directory). */
  cwd?: string;
}

/** config.json model_type -> the family and converter its shipped recipes use. */
const BY_MODEL_TYPE: Readonly<Record<string, { family: RecipeFamily; script: "convert.py" | "convert-hf-to-powerinfer-gguf.py" }>> = Object.freeze({
  llama: { family: "relu-llama", script: "convert.py" },
  bamboo: { family: "bamboo", script: "convert.py" },
  falcon: { family: "relu-falcon", script: "convert-hf-to-powerinfer-gguf.py" },
  RefinedWeb: { family: "relu-falcon", script: "convert-hf-to-powerinfer-gguf.py" },
  RefinedWebModel: { family: "relu-falcon", script: "convert-hf-to-powerinfer-gguf.py" },
});

export async function localCheckpointRecipe(options: LocalRecipeOptions): Promise<LoadedRecipe> {
  if (!recipeNameSchema.safeParse(options.name).success) {
    throw new UsageError(`--name "${options.name}" is not a valid model name: lowercase letters and digits with single ".", "_" or "-" between them, e.g. my-relu-llama`);
  }
  const cwd = options.cwd ?? process.cwd();
  const checkpoint = resolve(cwd, options.checkpoint);
  const predictor = resolve(cwd, options.predictor);
  const shownAs = `--checkpoint ${options.checkpoint}`;
  const configFile = join(checkpoint, "config.json");
  const text = await readFile(configFile, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new PipelineError("E_CONFIG_MISSING", `--checkpoint ${options.checkpoint}: ${error.code === "ENOENT" ? "no config.json there" : error.message}: it must be a Hugging Face checkpoint folder (config.json, weights, tokenizer)`);
  });
  let modelType: unknown;
  try {
    modelType = (JSON.parse(text) as { model_type?: unknown }).model_type;
  } catch (error) {
    throw new PipelineError("E_CONFIG_INVALID", `${configFile} is not JSON (${(error as Error).message}): is this a Hugging Face checkpoint?`);
  }
  const kind = typeof modelType === "string" ? BY_MODEL_TYPE[modelType] : undefined;
  if (!kind) {
    throw new PipelineError("E_MODEL_UNSUPPORTED", `${configFile}: model_type ${JSON.stringify(modelType ?? null)} is not one the pinned engine converts (${Object.keys(BY_MODEL_TYPE).join(", ")})`, {
      details: ["Write a recipe for it (configs/models/powerinfer/<name>.yaml, with model: { path } and predictor: { path }) if you know the converter that fits."],
    });
  }
  const parsed = recipeSchemaFor(options.name).safeParse({
    name: options.name,
    title: `${options.name} (local checkpoint)`,
    verified: false,
    family: kind.family,
    notes: `Converted from ${checkpoint} with predictor ${predictor} (pnpm pipeline convert --checkpoint).`,
    model: { path: checkpoint },
    predictor: { path: predictor },
    convert: { script: kind.script, outtype: "f16" },
    audit: { model_version: "unversioned" },
  });
  if (!parsed.success) {
    throw new ConfigError(
      "E_CONFIG_INVALID",
      parsed.error.issues.map((issue) => ({ file: shownAs, line: 0, column: 0, path: issue.path.join("."), message: issue.message })),
    );
  }
  return { name: options.name, file: checkpoint, recipe: parsed.data, origin: "flags", shownAs };
}
