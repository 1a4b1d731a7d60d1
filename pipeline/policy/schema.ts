/**
 * The runtime policy (the integration blueprint's YAML: engine, model_path, generation,
 * runtime, audit), one strict zod schema. Recipes share the generation and runtime parts,
 * so a recipe's defaults and a policy mean the same thing. Key names are the blueprint's;
 * the names this project used first are accepted as aliases (aliases.ts). A JSON Schema
 * is generated from these (`pnpm pipeline schemas`) for editors.
 */
import { z } from "zod";
import { withAliases } from "./aliases.js";
import { hubRepoIdSchema } from "../config/hub-repo.js";

/** Sampling and length settings; each maps to one engine flag. Omitted keys take DEFAULT_GENERATION. */
export const generationSchema = withAliases({
  /** `--temp`; 0 = greedy. */
  temperature: z.number().min(0).max(5).optional(),
  /** `--top-p`, in (0, 1]; 1 = disabled. main's help and its YAML log disagree on the default: it is always passed. */
  top_p: z.number().gt(0, "top_p must be greater than 0 (1 disables it)").max(1).optional(),
  /** `--top-k`; 0 = disabled. */
  top_k: z.number().int().min(0).max(1_000_000).optional(),
  /** `--repeat-penalty`; 1 = disabled. */
  repeat_penalty: z.number().positive().max(5).optional(),
  /** `-n` (OpenAI: max_tokens): tokens to generate (-1 = until end of text, -2 = until the context is full). */
  max_tokens: z.number().int().min(-2).max(1_048_576).optional(),
  /** `-c`: context size; 0 = the model's training context. */
  ctx_size: z.number().int().min(0).max(1_048_576).optional(),
  /** `-s`: RNG seed (-1 = random). */
  seed: z.number().int().min(-1).max(0xffff_ffff).optional(),
  /** Stop sequences (llama.cpp and OpenAI-compatible engines; `main` has only the end-of-text token). */
  stop: z.array(z.string().min(1)).max(16).optional(),
}, { n_predict: "max_tokens" });

/** How the engine runs on a host. */
export const runtimeSchema = withAliases({
  /** `-t`: a thread count, or "auto" = the host's physical cores. */
  threads: z.union([z.number().int().min(1).max(1024), z.literal("auto")], { error: 'a thread count from 1 to 1024, or "auto"' }).optional(),
  /**
   * `--vram-budget` (PowerInfer GPU builds), which the engine counts in GiB (2^30 bytes) despite
   * the blueprint's "gb". Dropped with a note on CPU builds.
   */
  vram_budget_gb: z.number().min(0, "a VRAM budget cannot be negative").max(4096).optional(),
  /** `-ngl`: layers offloaded to the GPU for dense models. Sparse (PWRI) models use vram_budget_gb instead. */
  gpu_layers: z.number().int().min(0).max(1000).optional(),
  /** `-b`: prompt batch size. */
  batch_size: z.number().int().min(1).max(65_536).optional(),
}, { vram_budget_gib: "vram_budget_gb" });

/**
 * A sha256 digest as `sha256:<hex>` (the blueprint's form) or bare hex, either case;
 * parsed to bare lowercase hex.
 */
export const sha256DigestSchema = z
  .string()
  .regex(/^(sha256:)?[0-9a-fA-F]{64}$/, 'a sha256 digest: "sha256:" and 64 hex characters, or the 64 hex characters alone')
  .transform((digest) => digest.replace(/^sha256:/, "").toLowerCase());

/**
 * Where the weights come from: `hf://org/name` (the blueprint's form) or `org/name` for a
 * Hugging Face repo, parsed to `org/name`; any other text (a URL, "local") is kept as it is.
 */
export const sourceRepoSchema = z
  .string()
  .min(1)
  .max(200)
  .superRefine((value, ctx) => {
    if (value.startsWith("hf://") && !hubRepoIdSchema.safeParse(value.slice("hf://".length)).success) {
      ctx.addIssue({ code: "custom", message: 'hf:// must be followed by a Hugging Face repo id "org/name", e.g. "hf://SparseLLM/ReluLLaMA-7B"' });
    }
  })
  .transform((value) => value.replace(/^hf:\/\//, ""));

export const policyAuditSchema = z.strictObject({
  model_version: z.string().min(1).max(200),
  source_repo: sourceRepoSchema.optional(),
  /** sha256 of the model file: checked before a run, and by `drift`. */
  checksum: sha256DigestSchema.optional(),
});

/**
 * This tool's own secrets: an `api_key_env` naming one would send it to whatever server
 * the policy names. A policy is input (it may come from elsewhere), so they are refused.
 */
export const OWN_SECRET_ENV = [/^HF_TOKEN$/, /^HUGGING_FACE_HUB_TOKEN$/, /^AI_TOOLS_SIGNING_KEY/, /PASSPHRASE/, /^AI_TOOLS_.*(PASSWORD|TOKEN|SECRET)/];

export const openAiSchema = z.strictObject({
  /** The server's OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1. */
  base_url: z.url({ protocol: /^https?$/, error: "an http(s) URL, e.g. http://127.0.0.1:8000/v1" }),
  model: z.string().min(1),
  /** The environment variable holding the API key (the key never goes in a file). */
  api_key_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name")
    .refine((name) => !OWN_SECRET_ENV.some((secret) => secret.test(name.toUpperCase())), {
      error: (issue) => `${String(issue.input)} holds one of ai-tools' own secrets (signing key, passphrase, Hub token), never an API key: name the variable that holds the server's key, e.g. OPENAI_API_KEY`,
    })
    .default("OPENAI_API_KEY"),
  timeout_seconds: z.number().positive().max(3600).default(120),
});

export const policySchema = z
  .strictObject({
    /** Lets editors find the JSON Schema (`$schema: ../schemas/policy.schema.json`); ignored otherwise. */
    $schema: z.string().optional(),
    /** The engine: powerinfer, llama.cpp or openai (`ai-tools engines` lists them). */
    engine: z.string().min(1),
    /**
     * The model file (GGUF): absolute, or relative to the model root (--model-root,
     * AI_TOOLS_MODEL_ROOT, default <workspace>/models) or else to the workspace root, e.g.
     * models/powerinfer/<m>/model.powerinfer.gguf. Never relative to the current directory.
     */
    model_path: z.string().min(1).optional(),
    generation: generationSchema.default({}),
    runtime: runtimeSchema.default({}),
    audit: policyAuditSchema.optional(),
    openai: openAiSchema.optional(),
  })
  .superRefine((policy, ctx) => {
    if (policy.engine === "openai" && !policy.openai) ctx.addIssue({ code: "custom", path: ["openai"], message: "engine openai needs openai: { base_url, model }" });
    if (policy.engine !== "openai" && policy.model_path === undefined) {
      ctx.addIssue({ code: "custom", path: ["model_path"], message: `engine ${policy.engine} needs model_path: the model file, e.g. models/powerinfer/<model>/model.powerinfer.gguf` });
    }
  });

export type Policy = z.infer<typeof policySchema>;
export type GenerationSettings = z.infer<typeof generationSchema>;
export type RuntimeSettings = z.infer<typeof runtimeSchema>;

/** What an omitted generation key means: the engine's defaults, except max_tokens (finite by default). */
export const DEFAULT_GENERATION = {
  temperature: 0.8,
  top_p: 0.9,
  top_k: 40,
  repeat_penalty: 1.1,
  max_tokens: 128,
  ctx_size: 512,
  seed: -1,
  stop: [] as string[],
} as const;

/** A host profile, configs/hosts/<name>.yaml: what rendering clamps against instead of detecting. */
export const hostSchema = z.strictObject({
  $schema: z.string().optional(),
  name: z.string().min(1).optional(),
  physical_cores: z.number().int().min(1).max(4096),
  memory_gib: z.number().positive().max(65_536),
  gpus: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        memory_gib: z.number().positive().max(4096),
        /** Free VRAM when known; else the total is used. */
        free_memory_gib: z.number().min(0).max(4096).optional(),
      }),
    )
    .default([]),
});
export type HostFile = z.infer<typeof hostSchema>;
