/**
 * Model recipes, configs/models/powerinfer/<name>.yaml: which Hugging Face repos hold a
 * model's original weights and its activation predictor and how they are converted to a
 * PowerInfer GGUF, or which ready-made PowerInfer GGUF to take, or why the pinned engine
 * cannot run the model (see RECIPE_KINDS); and the defaults for running it. Strict like
 * the engine config: an unknown key is an error naming file:line:col and the key path (a
 * typo must not silently do nothing).
 *
 * Facts behind the rules below: shared/reference/powerinfer-upstream.md §7 (converters),
 * §8 (predictor layout), §9 (output types), §11 (repo ids) and powerinfer-users.md.
 */
import { existsSync, realpathSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { PACKAGE_ROOT } from "../root.js";
import * as z from "zod";
import { ConfigError, displayPath, loadYamlConfig } from "./load-yaml.js";
import { generationSchema, runtimeSchema, sha256DigestSchema, type GenerationSettings, type RuntimeSettings } from "./generation-schema.js";
import { hubRepoIdSchema, hubSourceRepoSchema } from "./hub-repo.js";

/** Where recipes live, relative to the workspace root. */
export const RECIPE_DIR = "configs/models/powerinfer";
export const RECIPE_EXTENSION = ".yaml";

export const RECIPE_FAMILIES = ["relu-llama", "prosparse-llama", "bamboo", "relu-falcon", "turbosparse", "smallthinker"] as const;
export type RecipeFamily = (typeof RECIPE_FAMILIES)[number];

/**
 * The GGUF `general.architecture` each runnable family's PowerInfer files carry (what the
 * converters write: powerinfer-upstream.md §7). TurboSparse and SmallThinker have none: the
 * pinned engine does not run them sparse.
 */
export const FAMILY_ARCHITECTURE: Readonly<Partial<Record<RecipeFamily, string>>> = Object.freeze({
  "relu-llama": "llama",
  "prosparse-llama": "llama",
  bamboo: "bamboo",
  "relu-falcon": "falcon",
});

/**
 * How a recipe gets its .powerinfer.gguf:
 * - `convert`: original weights + predictor from the Hub, converted here by the upstream converter;
 * - `gguf`: a ready-made PowerInfer GGUF from the Hub, validated and used as it is (no converter);
 * - `generate`: a checkpoint generated on this machine (the offline demo), then converted;
 * - `local`: a checkpoint and predictor in folders on this machine (`model: { path }`), converted;
 * - `unsupported`: the pinned engine cannot run it sparse, or its converter cannot convert it
 *   (top-level `unsupported` or `convert.unsupported`): refused by name, with the reason.
 */
export const RECIPE_KINDS = ["convert", "gguf", "generate", "local", "unsupported"] as const;
export type RecipeKind = (typeof RECIPE_KINDS)[number];

/** Ready-made sparse files: the only types sparse inference computes correctly (powerinfer-upstream.md §9). */
export const GGUF_TYPES = ["F16", "Q4_0"] as const;
export type GgufType = (typeof GGUF_TYPES)[number];
/** general.file_type of each (LLAMA_FTYPE_MOSTLY_F16 = 1, LLAMA_FTYPE_MOSTLY_Q4_0 = 2). */
export const GGUF_TYPE_FILE_TYPE: Readonly<Record<GgufType, number>> = Object.freeze({ F16: 1, Q4_0: 2 });

/** The only files taken from an activation repo: `activation/activation_{i}.pt`, per-layer neuron counts the GPU split reads. */
export const ACTIVATION_ALLOW_PATTERNS: readonly string[] = Object.freeze(["activation/*"]);

export const CONVERT_SCRIPTS = ["convert.py", "convert-hf-to-powerinfer-gguf.py"] as const;
export type ConvertScript = (typeof CONVERT_SCRIPTS)[number];

export const CONVERT_OUTTYPES = ["f16", "f32", "q8_0"] as const;
export type ConvertOuttype = (typeof CONVERT_OUTTYPES)[number];

/**
 * Default files taken from a model (original weights) repo. The converters read:
 * - the weights: convert.py globs `model-00001-of-*.safetensors` / `model.safetensors` first and
 *   falls back to `pytorch_model*.bin` / `*.pt` / `consolidated.00.pth` only when no safetensors
 *   exist; two candidates of the fallback kind are "Found multiple models". Repos often ship both
 *   formats (SparseLLM/ReluLLaMA-7B does), so downloading `.bin` too would double the download for
 *   nothing: safetensors only, and a repo without them (SparseLLM/ReluFalcon-40B) says
 *   `pytorch_model*.bin` in its recipe. `model*` rather than `*`: the hf converter counts
 *   `*.safetensors` files to derive shard names, so a stray `consolidated.safetensors` breaks it.
 * - `config.json` (model_type picks the architecture; missing → exit 1), plus the shard index,
 *   `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` (special token ids) and
 *   `generation_config.json`: `*.json`, all small.
 * - `tokenizer.model`: the SentencePiece vocabulary (`--vocabtype spm`, the default; missing →
 *   exit 1). No `*.txt`: BPE merges are read from `tokenizer.json`; a BPE repo without one adds
 *   `merges.txt` in its recipe.
 * Not taken: `*.py` (custom modeling code: neither converter imports it, and downloaded code is
 * an execution risk), `*.pt` (convert.py would take a stray one for a checkpoint), README, images.
 */
export const DEFAULT_MODEL_ALLOW_PATTERNS: readonly string[] = Object.freeze(["model*.safetensors", "*.json", "tokenizer.model"]);

/**
 * Default files taken from a predictor repo: `model_{0..L-1}.pt` (torch state dicts with
 * fc1/fc2) and the optional `config.json` holding `sparse_threshold` (powerinfer-upstream.md §8).
 * `*.pt` must not be ignored here.
 */
export const DEFAULT_PREDICTOR_ALLOW_PATTERNS: readonly string[] = Object.freeze(["model_*.pt", "config.json"]);

/** A recipe name: also its file name, a CLI argument and a path segment, so kept plain. */
export const recipeNameSchema = z
  .string()
  .max(100)
  .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, 'lowercase letters, digits and single ".", "_" or "-" between them, e.g. "relu-llama-2-7b"');

export { hubRepoIdSchema } from "./hub-repo.js";

const FULL_COMMIT = /^[0-9a-f]{40}$/;

/** A branch, tag or `refs/pr/N`, or a full commit hash (which pins the download). */
export const hubRevisionSchema = z
  .string({
    // YAML reads an unquoted all-digit hash (or one like 12e45) as a number, losing digits.
    error: (issue) => (issue.input === undefined ? undefined : 'a string: quote it (YAML reads unquoted digits as a number), e.g. revision: "0123abcd..."'),
  })
  .min(1)
  .max(255)
  .regex(/^(?![/.-])(?!.*(?:\.\.|\/\/|@\{|\.lock$|\/$))[A-Za-z0-9._/-]+$/, 'a branch, tag or full 40-character commit hash, e.g. "main"')
  .refine((rev) => FULL_COMMIT.test(rev) || !/^[0-9a-f]{7,39}$/.test(rev), "abbreviated commit hashes are not resolved by the Hub: use the full 40-character hash");

/** True when `revision` is a full commit hash, so the files cannot change under it. */
export function isPinnedRevision(revision: string): boolean {
  return FULL_COMMIT.test(revision);
}

/**
 * fnmatch patterns as huggingface_hub applies them to repo-relative paths: case-sensitive,
 * `*` also matches "/", `?` one character, `[...]` classes. A leading "/" or "./" never
 * matches a repo path, so it is refused rather than silently selecting nothing.
 */
const hubPattern = z
  .string()
  .min(1)
  .max(200)
  .refine((p) => !p.startsWith("/") && !p.startsWith("./") && !p.includes("\\"), 'a pattern relative to the repo root, without a leading "/" or "./" and with "/" separators');

/**
 * The repo is gated on the Hub (its conditions must be accepted): the download refuses at once,
 * before any request, when no token is configured (HF_TOKEN or `hf auth login`).
 */
const gatedSchema = z.boolean().default(false);

function hubSourceSchema(defaultAllow: readonly string[]) {
  return z.strictObject({
    /** The Hub repo id, "org/name", exactly as the upstream README links it. */
    repo: hubRepoIdSchema,
    /** Branch, tag or full commit. "main" follows the branch; a 40-hex commit pins the files. */
    revision: hubRevisionSchema.default("main"),
    /** fnmatch patterns of the files to download (a file is kept when it matches any). */
    allowPatterns: z.array(hubPattern).min(1).default([...defaultAllow]),
    /** fnmatch patterns of files to skip even when allowed. */
    ignorePatterns: z.array(hubPattern).default([]),
    /** Approximate download size in bytes of the allowed files, for listings only (the Hub's file list is authoritative). */
    sizeBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    gated: gatedSchema,
  });
}

/** The repo with the model's original (Hugging Face format) weights. */
export const modelSourceSchema = hubSourceSchema(DEFAULT_MODEL_ALLOW_PATTERNS).extend({
  /**
   * The download first fetches config.json and refuses a checkpoint that is not a ReLU model the
   * engine supports (pipeline/config/architecture.ts). A config.json that names no activation
   * function at all (custom modeling code) is refused too, unless this says why the recipe
   * vouches for ReLU. An activation the config does name is never overridden.
   */
  assumeRelu: z.string().min(1).max(500).optional(),
});
/** The repo with the activation predictor: `model_{n}.pt` per layer plus `config.json`. */
export const predictorSourceSchema = hubSourceSchema(DEFAULT_PREDICTOR_ALLOW_PATTERNS);

/** A folder on this machine: absolute, or relative to the recipe file's folder. */
const localPathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes("\0"), "a folder path");

/**
 * The original weights in a folder on this machine instead of a Hub repo (a Hugging Face
 * checkpoint: config.json, weights, tokenizer). Its config.json passes the same architecture
 * check as a download's; its files are fingerprinted by identity and sha256.
 */
export const localModelSourceSchema = z.strictObject({
  path: localPathSchema,
  /** As for a Hub repo: why the recipe vouches for ReLU when config.json names no activation. */
  assumeRelu: z.string().min(1).max(500).optional(),
});
/** The activation predictor in a folder on this machine (`model_{n}.pt`, config.json, optionally activation/). */
export const localPredictorSourceSchema = z.strictObject({ path: localPathSchema });

export type LocalSource = z.infer<typeof localModelSourceSchema>;

/** A source given as a folder on this machine rather than a Hub repo. */
export function isLocalSource<T extends object>(source: T | undefined): source is Extract<T, { path: string }> {
  return source !== undefined && "path" in source;
}

/**
 * Where a converted model's `activation/` comes from. Predictor repos do not ship it; the
 * `*-PowerInfer-GGUF` repos (and Bamboo's original repo) do, and without it a GPU build offloads
 * no FFN weights (powerinfer-users.md P5). Only `activation/*` is downloaded from it.
 */
export const activationSourceSchema = z.strictObject({
  repo: hubRepoIdSchema,
  revision: hubRevisionSchema.default("main"),
  gated: gatedSchema,
});

/** A repo-relative file path: no wildcards (one exact file), no leading "/" or "./", no "..". */
const repoFilePath = z
  .string()
  .min(1)
  .max(300)
  .refine((p) => !/[*?[\\]/.test(p), "one file name, without wildcards or backslashes")
  .refine((p) => !p.startsWith("/") && !p.startsWith("./") && !p.split("/").includes(".."), 'a path relative to the repo root, without a leading "/" or "./" and without ".."')
  .refine((p) => p.endsWith(".gguf"), 'a GGUF file name (ending ".gguf"; ProSparse\'s PowerInfer files lack ".powerinfer")');

/**
 * A ready-made PowerInfer GGUF repo (the upstream README's "Download PowerInfer GGUF" table):
 * only `file` and `activation/` are downloaded; the file is validated (PWRI magic, predictor
 * tensors for every block, `type`) and used as it is, with no converter.
 */
export const ggufSourceSchema = z.strictObject({
  repo: hubRepoIdSchema,
  revision: hubRevisionSchema.default("main"),
  /** The sparse file to take, exactly as the repo names it (classified by its magic, not its name). */
  file: repoFilePath,
  /** Its tensor type: general.file_type must say so. F16 and Q4_0 are the only types sparse inference gets right. */
  type: z.enum(GGUF_TYPES),
  gated: gatedSchema,
  /** Approximate size in bytes of the file, for listings only. */
  sizeBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
});

export const convertSchema = z
  .strictObject({
    /**
     * The upstream converter to run. `convert.py` handles model_type `llama` (ReLU-LLaMA,
     * ProSparse) and `bamboo` with numpy + sentencepiece only; for anything else it re-runs
     * `convert-hf-to-powerinfer-gguf.py` (Falcon, OPT; needs torch, transformers, safetensors)
     * and exits 0 even when that fails, so such recipes name the hf script directly.
     */
    script: z.enum(CONVERT_SCRIPTS),
    /**
     * The converter's `--outtype`. Only F16 (and Q4_0 after `quantize`) work for sparse
     * inference: F32 and Q8_0 files load but give NaN logits on the CPU, and the CUDA sparse
     * kernels accept only F16/Q4_0 (powerinfer-upstream.md §9, issue #233). The convert step
     * refuses f32 (unless it is the input of `quantize`) and q8_0, with this explanation,
     * unless `--allow-unsafe-outtype` is given.
     */
    outtype: z.enum(CONVERT_OUTTYPES).default("f16"),
    /** convert.py's `--vocabtype` (its default is spm); the hf script has no such flag. */
    vocabtype: z.enum(["spm", "bpe"]).optional(),
    /** Quantize the converted file with the engine's `quantize` (sparse models: Q4_0 only). */
    quantize: z.literal("Q4_0").optional(),
    /**
     * Set when the pinned engine's converter cannot convert this model: why, with the issue
     * number. The pipeline refuses the conversion before downloading anything.
     */
    unsupported: z.string().min(1).optional(),
  })
  .superRefine((convert, ctx) => {
    if (convert.script === "convert-hf-to-powerinfer-gguf.py" && convert.vocabtype !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["vocabtype"],
        message: "convert-hf-to-powerinfer-gguf.py has no --vocabtype (it reads the tokenizer with transformers); the flag would make it fail",
      });
    }
  });

/** What an auditor needs to identify the model release this recipe produces. */
export const auditSchema = z.strictObject({
  /** The release's version label as its publisher names it (e.g. "v0.1"), or "unversioned". The resolved Hub commits are recorded per run. */
  model_version: z.string().min(1).max(200),
  /**
   * The Hub repo the weights come from (normally model.repo), as `hf://org/name` or `org/name`
   * (parsed to `org/name`). A local checkpoint may have none.
   */
  source_repo: hubSourceRepoSchema.optional(),
  /** sha256 of the converted .powerinfer.gguf (`sha256:<hex>` or bare hex), once a release has been produced; later conversions must match it. */
  checksum: sha256DigestSchema.optional(),
});

/** How `bench` runs `main` on the converted model: fixed so results compare across runs. */
export const benchSchema = z.strictObject({
  prompt: z.string().min(1).max(10_000).default("Once upon a time"),
  /** Tokens to generate per run (-n). */
  nPredict: z.number().int().min(1).max(100_000).default(128),
  ctxSize: z.number().int().min(8).max(1 << 20).default(512),
  seed: z.number().int().min(0).default(42),
  temperature: z.number().min(0).max(10).default(0.8),
  top_p: z.number().gt(0).max(1).default(0.9),
  /** Counted runs (the median is what compares). */
  runs: z.number().int().min(1).max(100).default(5),
  /** Runs before the counted ones, to warm caches; not recorded. */
  warmup: z.number().int().min(0).max(10).default(1),
  /** Default: the free physical cores (never more: the engine's threads busy-wait). */
  threads: z.number().int().min(1).max(1024).optional(),
  /** Also run llama-bench -ngl 0 -o json where the build has it. */
  llamaBench: z.boolean().default(true),
  timeoutMinutes: z.number().positive().max(24 * 60).default(30),
  /**
   * "paper": the engine authors' methodology: a fixed prompt set of ~64 tokens each (`prompts`,
   * default PAPER_PROMPTS) taken in turn, --ignore-eos, warm-up, an explicit --vram-budget on GPU
   * builds (vramBudgetGiB required there), no llama-bench (#121), and the end-to-end metric.
   */
  profile: z.enum(["default", "paper"]).default("default"),
  prompts: z.array(z.string().min(1).max(10_000)).min(1).max(100).optional(),
  /** --vram-budget for the measured runs (GPU builds; the paper profile requires it there). */
  vramBudgetGiB: z.number().positive().max(4096).optional(),
});

export const recipeSchema = z.strictObject({
  /** Equals the file name without ".yaml"; what `pipeline convert <name>` takes. */
  name: recipeNameSchema,
  /** Human-readable name, e.g. "ReLU-LLaMA-2-7B". */
  title: z.string().min(1).max(200),
  /** true only where the repo ids are confirmed (upstream README / reference notes); false marks a guess to check. */
  verified: z.boolean(),
  /** Model family: decides which converter path and checks apply. */
  family: z.enum(RECIPE_FAMILIES),
  /** Free-form caveats shown to users (known issues, gated repos, where activation stats come from). */
  notes: z.string().min(1).optional(),
  /**
   * A model generated on this machine instead of downloaded (the offline demo): a script
   * under scripts/ run with /usr/bin/python3-style interpreters as `--out DIR --seed N`,
   * writing DIR/model and DIR/predictor. Exclusive with model/predictor.
   */
  generate: z
    .strictObject({
      script: z.string().regex(/^scripts\/[A-Za-z0-9._-]+\.py$/, "a Python script under scripts/, e.g. scripts/make-tiny-relu-llama.py"),
      seed: z.number().int().min(0).max(2 ** 31).default(0),
    })
    .optional(),
  /** The original weights: a Hub repo, or `{ path }` for a folder on this machine. */
  model: z.union([modelSourceSchema, localModelSourceSchema]).optional(),
  /** The activation predictor: a Hub repo, or `{ path }` for a folder on this machine. */
  predictor: z.union([predictorSourceSchema, localPredictorSourceSchema]).optional(),
  /** A converted model's activation/ (from the matching GGUF repo); only with model/predictor. */
  activation: activationSourceSchema.optional(),
  /** A ready-made PowerInfer GGUF: exclusive with model/predictor/activation/generate/convert. */
  gguf: ggufSourceSchema.optional(),
  /** Required for converted and generated models; a ready-made GGUF has none. */
  convert: convertSchema.optional(),
  /**
   * Set when the pinned engine cannot run this model sparse at all (its own runtime, no
   * predictor, MoE): why. `convert` and `download` refuse it by name with this reason; the
   * sources it names are for information.
   */
  unsupported: z.string().min(1).max(2000).optional(),
  /**
   * Precompute the GPU split (FFN hot-neuron index) for these host classes (configs/hosts/<name>.yaml):
   * `gpu-split` writes models/powerinfer/<name>/model.<host>.gpuidx with the upstream solver (Python with
   * torch and cvxopt), signed with the model; `ai-tools run --host <host>` on a GPU build uses it.
   */
  gpuSplit: z
    .strictObject({
      hosts: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "a host profile name (configs/hosts/<name>.yaml)")).min(1).max(32),
      /** The context size the KV cache is reserved for (default: generation.ctx_size, else 512). */
      ctxSize: z.number().int().min(8).max(1 << 20).optional(),
    })
    .optional(),
  generation: generationSchema.default({}),
  runtime: runtimeSchema.default({}),
  bench: benchSchema.default({
    prompt: "Once upon a time",
    nPredict: 128,
    ctxSize: 512,
    seed: 42,
    temperature: 0.8,
    top_p: 0.9,
    runs: 5,
    warmup: 1,
    llamaBench: true,
    timeoutMinutes: 30,
    profile: "default",
  }),
  audit: auditSchema,
});

export type Recipe = z.infer<typeof recipeSchema>;
export type RecipeSource = z.infer<typeof modelSourceSchema>;
export type PredictorSource = z.infer<typeof predictorSourceSchema>;
export type ActivationSource = z.infer<typeof activationSourceSchema>;
export type GgufSource = z.infer<typeof ggufSourceSchema>;
export type ConvertSettings = z.infer<typeof convertSchema>;
export type { GenerationSettings, RuntimeSettings };
export type AuditInfo = z.infer<typeof auditSchema>;
export type BenchSettings = z.infer<typeof benchSchema>;

export interface LoadedRecipe {
  name: string;
  /** Absolute path of the recipe file (for a recipe made from --checkpoint: the checkpoint folder). */
  file: string;
  recipe: Recipe;
  /** Where it came from: the workspace's recipes, the built-in ones, a file given by path, or --checkpoint flags. */
  origin?: RecipeOrigin;
  /** How messages and step inputs name it, when not by its file (e.g. "--checkpoint ./ckpt"). */
  shownAs?: string;
}

export type RecipeOrigin = "workspace" | "built-in" | "file" | "flags";

export type RecipeSummary =
  | {
      ok: true;
      name: string;
      /** Absolute path of the recipe file. */
      file: string;
      title: string;
      family: RecipeFamily;
      kind: RecipeKind;
      /** The original weights' repo; for a ready-made GGUF, the GGUF repo. */
      modelRepo: string;
      /** The predictor's repo; for a ready-made GGUF, "in <file>" (the predictor is inside it). */
      predictorRepo: string;
      /** A ready-made GGUF: the file taken from modelRepo, and its type. */
      ggufFile?: string;
      ggufType?: GgufType;
      /** A converted model: the repo its activation/ comes from. */
      activationRepo?: string;
      /** Some repo it downloads from is gated: a Hub token is needed. */
      gated?: true;
      verified: boolean;
      /** Sum of the sizes the recipe states (model + predictor, or the GGUF file); absent when it states none. */
      sizeBytes?: number;
      /** Why the pinned engine cannot convert or run it, when it cannot. */
      unsupported?: string;
      /** The workspace's own recipe, or a built-in one. */
      origin: "workspace" | "built-in";
      /** A workspace recipe that has the name of a built-in one (and wins over it). */
      overrides?: true;
    }
  | {
      ok: false;
      /** From the file name. */
      name: string;
      file: string;
      error: ConfigError;
    };

/** No recipe of that name: lists the recipes there are, closest match first. */
export class RecipeNotFoundError extends ConfigError {
  constructor(
    readonly recipe: string,
    /** Every recipe name in the folder, closest to `recipe` first. */
    readonly available: readonly string[],
    shownAs: string,
    reason: string,
  ) {
    const [best] = available;
    const suggestion = best !== undefined && isCloseMatch(recipe, best) ? ` Did you mean "${best}"?` : "";
    const list = available.length > 0 ? ` Available: ${available.join(", ")}.` : ` There are no recipes in ${RECIPE_DIR}/.`;
    super("E_CONFIG_MISSING", [{ file: shownAs, line: 0, column: 0, path: "", message: reason }], `unknown model recipe "${recipe}" (${shownAs}: ${reason}).${suggestion}${list}`);
  }
}

export function recipeFile(root: string, name: string): string {
  return resolve(root, RECIPE_DIR, `${name}${RECIPE_EXTENSION}`);
}

/** The schema for one file: `name` must equal the file name (reported at the `name` key). */
export function recipeSchemaFor(fileName: string) {
  return recipeSchema
    .extend({
      name: recipeNameSchema.refine((name) => name === fileName, { message: `must equal the file name "${fileName}"` }),
    })
    .superRefine((recipe, ctx) => {
      const issue = (key: string, message: string) => ctx.addIssue({ code: "custom", path: [key], message });
      if (recipe.unsupported !== undefined) {
        // Refused by name: the sources it names are informational and need not be complete.
        if (recipe.gguf && (recipe.model || recipe.predictor || recipe.generate)) issue("gguf", "a ready-made GGUF recipe has no model/predictor/generate: remove one or the other");
        return;
      }
      if (recipe.gguf) {
        for (const key of ["model", "predictor", "activation", "generate"] as const) {
          if (recipe[key]) issue(key, `a ready-made GGUF (gguf) is not converted: remove ${key} (or gguf, to convert from the original weights)`);
        }
        if (recipe.convert) issue("convert", "a ready-made GGUF (gguf) is not converted: remove convert (for Q4_0, name the repo's Q4_0 file instead)");
        return;
      }
      if (recipe.generate && (recipe.model || recipe.predictor)) {
        issue("generate", "a generated model has no model/predictor repositories: remove one or the other");
      } else if (!recipe.generate && !(recipe.model && recipe.predictor)) {
        issue(recipe.model ? "predictor" : "model", "required key is missing (a recipe downloads model and predictor, names a ready-made gguf, or has a generate block)");
      }
      if (recipe.activation && !recipe.model) issue("activation", "activation/ is taken for a converted model: only with model and predictor");
      if (recipe.model && recipe.predictor && isLocalSource(recipe.model) !== isLocalSource(recipe.predictor)) {
        issue(isLocalSource(recipe.model) ? "predictor" : "model", "model and predictor come from the same kind of place: both Hub repos (repo) or both folders on this machine (path)");
      }
      if (recipe.activation && isLocalSource(recipe.model)) issue("activation", "a local checkpoint takes activation/ from its predictor folder: put it there and remove activation");
      if (!recipe.convert) issue("convert", "required key is missing (how the checkpoint is converted: script, outtype)");
    });
}

/** How the recipe gets its .powerinfer.gguf (see RECIPE_KINDS). */
export function recipeKind(recipe: Recipe): RecipeKind {
  if (recipe.unsupported !== undefined || recipe.convert?.unsupported !== undefined) return "unsupported";
  if (recipe.gguf) return "gguf";
  if (recipe.generate) return "generate";
  if (isLocalSource(recipe.model)) return "local";
  return "convert";
}

/** Why the pinned engine cannot convert or run it, or undefined. */
export function unsupportedReason(recipe: Recipe): string | undefined {
  return recipe.unsupported ?? recipe.convert?.unsupported;
}

/** Every Hub repo the recipe downloads from (for `clean --cache`), in recipe order, without duplicates. */
export function recipeHubRepos(recipe: Recipe): string[] {
  const hub = (source: object | undefined) => (source !== undefined && "repo" in source ? (source.repo as string) : undefined);
  return [...new Set([hub(recipe.model), hub(recipe.predictor), recipe.activation?.repo, recipe.gguf?.repo].filter((r): r is string => r !== undefined))];
}

/** Names of the `*.yaml` files in a recipe folder, sorted; [] when there is no folder. */
async function recipeNames(root: string): Promise<string[]> {
  const entries = await readdir(join(root, RECIPE_DIR), { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return [];
    throw error;
  });
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && e.name.endsWith(RECIPE_EXTENSION) && !e.name.startsWith("."))
    .map((e) => e.name.slice(0, -RECIPE_EXTENSION.length))
    .sort();
}

/**
 * The recipe catalogues in the order they win: the workspace's own configs/models/powerinfer/,
 * then the built-in one shipped with the toolkit. One entry when they are the same folder.
 */
function catalogues(root: string): { root: string; origin: "workspace" | "built-in" }[] {
  const real = (dir: string) => (existsSync(dir) ? realpathSync(dir) : dir);
  const base = resolve(root);
  return real(base) === real(PACKAGE_ROOT) ? [{ root: PACKAGE_ROOT, origin: "built-in" }] : [{ root: base, origin: "workspace" }, { root: PACKAGE_ROOT, origin: "built-in" }];
}

/** Every recipe name, each from the first catalogue that has it. */
async function catalogue(root: string): Promise<Map<string, { root: string; origin: "workspace" | "built-in"; overrides: boolean }>> {
  const found = new Map<string, { root: string; origin: "workspace" | "built-in"; overrides: boolean }>();
  for (const c of catalogues(root)) {
    for (const name of await recipeNames(c.root)) {
      const first = found.get(name);
      if (first) first.overrides = true;
      else found.set(name, { ...c, overrides: false });
    }
  }
  return new Map([...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The recipe file `name` resolves to in the workspace or the built-in catalogue, or undefined. */
export async function findRecipeFile(root: string, name: string): Promise<string | undefined> {
  const entry = (await catalogue(root)).get(name);
  return entry ? recipeFile(entry.root, name) : undefined;
}

async function loadRecipeFile(root: string, name: string): Promise<LoadedRecipe> {
  const file = recipeFile(root, name);
  const recipe: Recipe = await loadYamlConfig(file, recipeSchemaFor(name), displayPath(file, root));
  return { name, file, recipe };
}

/** A recipe named by its file (`./my-recipe.yaml`, `/abs/x.yml`: the extension says so) rather than by name. */
export function isRecipePath(nameOrPath: string): boolean {
  return /\.ya?ml$/.test(nameOrPath);
}

/**
 * A recipe by name: `<root>/configs/models/powerinfer/<name>.yaml`, else the built-in one of
 * that name (a workspace's recipes extend the catalogue; the same name wins). Or by file
 * (isRecipePath, relative to the current directory): that file, whose `name` must equal its
 * file name. Throws `ConfigError`:
 * E_CONFIG_MISSING (a `RecipeNotFoundError` listing the recipes there are) or
 * E_CONFIG_SYNTAX / E_CONFIG_INVALID with file:line:col and key path for every problem.
 */
export async function loadRecipe(root: string, nameOrPath: string): Promise<LoadedRecipe> {
  if (isRecipePath(nameOrPath)) return loadRecipeAt(resolve(nameOrPath));
  const name = nameOrPath;
  const base = resolve(root);
  const known = await catalogue(base);
  const entry = known.get(name);
  const validName = recipeNameSchema.safeParse(name).success;
  if (!validName || !entry) {
    throw new RecipeNotFoundError(
      name,
      rankByCloseness(name, [...known.keys()]),
      validName ? displayPath(recipeFile(base, name), base) : RECIPE_DIR,
      validName ? "file not found" : 'not a valid recipe name (lowercase letters and digits with ".", "_" or "-" between them)',
    );
  }
  return { ...(await loadRecipeFile(entry.root, name)), origin: entry.origin };
}

async function loadRecipeAt(file: string): Promise<LoadedRecipe> {
  const name = basename(file).replace(/\.ya?ml$/, "");
  const shown = displayPath(file);
  if (!existsSync(file)) throw new ConfigError("E_CONFIG_MISSING", [{ file: shown, line: 0, column: 0, path: "", message: "file not found" }], `${shown}: no such recipe file`);
  if (!recipeNameSchema.safeParse(name).success) {
    throw new ConfigError("E_CONFIG_INVALID", [{ file: shown, line: 1, column: 1, path: "", message: `the file name "${name}" is not a valid recipe name (lowercase letters and digits with ".", "_" or "-" between them): it names the model`}]);
  }
  const recipe: Recipe = await loadYamlConfig(file, recipeSchemaFor(name), shown);
  return { name, file, recipe, origin: "file" };
}

/**
 * Every recipe of the workspace and the built-in catalogue, sorted by name, each marked with
 * where it comes from (a workspace recipe with a built-in one's name overrides it). A file
 * that does not load is listed with its error instead of failing the listing.
 */
export async function listRecipes(root: string): Promise<RecipeSummary[]> {
  const known = await catalogue(root);
  return Promise.all(
    [...known].map(async ([name, entry]): Promise<RecipeSummary> => {
      try {
        const { file, recipe } = await loadRecipeFile(entry.root, name);
        const hubSize = (source: object | undefined) => (source !== undefined && "sizeBytes" in source ? (source.sizeBytes as number | undefined) : undefined);
        const sizes = (recipe.gguf ? [recipe.gguf.sizeBytes] : [hubSize(recipe.model), hubSize(recipe.predictor)]).filter((s): s is number => s !== undefined);
        const generated = `generated by ${recipe.generate?.script}`;
        const gated = [recipe.model, recipe.predictor, recipe.activation, recipe.gguf].some((source) => source !== undefined && "gated" in source && source.gated === true);
        const unsupported = unsupportedReason(recipe);
        const where = (source: Recipe["model"] | Recipe["predictor"]) => (source === undefined ? undefined : isLocalSource(source) ? `local ${source.path}` : source.repo);
        return {
          ok: true,
          name,
          file,
          title: recipe.title,
          family: recipe.family,
          kind: recipeKind(recipe),
          modelRepo: recipe.gguf?.repo ?? where(recipe.model) ?? (recipe.generate ? generated : "-"),
          predictorRepo: recipe.gguf ? `in ${recipe.gguf.file}` : (where(recipe.predictor) ?? (recipe.generate ? generated : "-")),
          ...(recipe.gguf ? { ggufFile: recipe.gguf.file, ggufType: recipe.gguf.type } : {}),
          ...(recipe.activation ? { activationRepo: recipe.activation.repo } : {}),
          ...(gated ? { gated: true as const } : {}),
          verified: recipe.verified,
          ...(sizes.length > 0 ? { sizeBytes: sizes.reduce((a, b) => a + b, 0) } : {}),
          ...(unsupported !== undefined ? { unsupported } : {}),
          origin: entry.origin,
          ...(entry.overrides ? { overrides: true as const } : {}),
        };
      } catch (error) {
        if (error instanceof ConfigError) return { ok: false, name, file: recipeFile(entry.root, name), error };
        throw error;
      }
    }),
  );
}

/** `names` ordered by how close each is to `wanted` (substring matches, then edit distance), ties by name. */
export function rankByCloseness(wanted: string, names: readonly string[]): string[] {
  const score = (name: string) => (wanted.length > 0 && (name.includes(wanted) || wanted.includes(name)) ? 0 : editDistance(wanted, name));
  return [...names].map((name) => ({ name, d: score(name) })).sort((a, b) => a.d - b.d || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((x) => x.name);
}

function isCloseMatch(wanted: string, candidate: string): boolean {
  if (wanted.length > 0 && (candidate.includes(wanted) || wanted.includes(candidate))) return true;
  return editDistance(wanted, candidate) <= Math.max(2, Math.floor(candidate.length / 3));
}

/** Levenshtein distance, two rows. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
