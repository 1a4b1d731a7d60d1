/**
 * The runtime policy (the seed's YAML: engine, model_path, generation, runtime, audit),
 * one strict zod schema. Recipes share the generation and runtime parts, so a recipe's
 * defaults and a policy mean the same thing. A JSON Schema is generated from these
 * (`pnpm pipeline schemas`) for editors.
 */
import { z } from "zod";

/** Sampling and length settings; each maps to one engine flag. Omitted keys take DEFAULT_GENERATION. */
export const generationSchema = z.strictObject({
  /** `--temp`; 0 = greedy. */
  temperature: z.number().min(0).max(5).optional(),
  /** `--top-p`, in (0, 1]; 1 = disabled. main's help and its YAML log disagree on the default: it is always passed. */
  top_p: z.number().gt(0, "top_p must be greater than 0 (1 disables it)").max(1).optional(),
  /** `--top-k`; 0 = disabled. */
  top_k: z.number().int().min(0).max(1_000_000).optional(),
  /** `--repeat-penalty`; 1 = disabled. */
  repeat_penalty: z.number().positive().max(5).optional(),
  /** `-n`: tokens to generate (-1 = until end of text, -2 = until the context is full). */
  n_predict: z.number().int().min(-2).max(1_048_576).optional(),
  /** `-c`: context size; 0 = the model's training context. */
  ctx_size: z.number().int().min(0).max(1_048_576).optional(),
  /** `-s`: RNG seed (-1 = random). */
  seed: z.number().int().min(-1).max(0xffff_ffff).optional(),
  /** Stop sequences (llama.cpp and OpenAI-compatible engines; `main` has only the end-of-text token). */
  stop: z.array(z.string().min(1)).max(16).optional(),
});

/** How the engine runs on a host. */
export const runtimeSchema = z.strictObject({
  /** `-t`: a thread count, or "auto" = the host's physical cores. */
  threads: z.union([z.number().int().min(1).max(1024), z.literal("auto")], { error: 'a thread count from 1 to 1024, or "auto"' }).optional(),
  /** `--vram-budget` in GiB (PowerInfer GPU builds). Dropped with a note on CPU builds. */
  vram_budget_gib: z.number().min(0, "a VRAM budget cannot be negative").max(4096).optional(),
  /** `-ngl`: layers offloaded to the GPU for dense models. Sparse (PWRI) models use vram_budget_gib instead. */
  gpu_layers: z.number().int().min(0).max(1000).optional(),
  /** `-b`: prompt batch size. */
  batch_size: z.number().int().min(1).max(65_536).optional(),
});

export const policyAuditSchema = z.strictObject({
  model_version: z.string().min(1).max(200),
  source_repo: z.string().min(1).max(200),
  /** sha256 of the model file: checked before a run, and by `drift`. */
  checksum: z.string().regex(/^[0-9a-f]{64}$/, "a sha256 digest: 64 lowercase hex characters").optional(),
});

export const openAiSchema = z.strictObject({
  /** The server's OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1. */
  base_url: z.url({ protocol: /^https?$/, error: "an http(s) URL, e.g. http://127.0.0.1:8000/v1" }),
  model: z.string().min(1),
  /** The environment variable holding the API key (the key never goes in a file). */
  api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name").default("OPENAI_API_KEY"),
  timeout_seconds: z.number().positive().max(3600).default(120),
});

export const policySchema = z
  .strictObject({
    /** Lets editors find the JSON Schema (`$schema: ../schemas/policy.schema.json`); ignored otherwise. */
    $schema: z.string().optional(),
    /** The engine: powerinfer, llama.cpp or openai (`ai-tools engines` lists them). */
    engine: z.string().min(1),
    /** The model file, relative to the model root (--model-root, AI_TOOLS_MODEL_ROOT, default models/). */
    model_path: z.string().min(1).optional(),
    generation: generationSchema.default({}),
    runtime: runtimeSchema.default({}),
    audit: policyAuditSchema.optional(),
    openai: openAiSchema.optional(),
  })
  .superRefine((policy, ctx) => {
    if (policy.engine === "openai" && !policy.openai) ctx.addIssue({ code: "custom", path: ["openai"], message: "engine openai needs openai: { base_url, model }" });
    if (policy.engine !== "openai" && policy.model_path === undefined) {
      ctx.addIssue({ code: "custom", path: ["model_path"], message: `engine ${policy.engine} needs model_path: the model file, relative to the model root` });
    }
  });

export type Policy = z.infer<typeof policySchema>;
export type GenerationSettings = z.infer<typeof generationSchema>;
export type RuntimeSettings = z.infer<typeof runtimeSchema>;

/** What an omitted generation key means: the engine's defaults, except n_predict (finite by default). */
export const DEFAULT_GENERATION = {
  temperature: 0.8,
  top_p: 0.9,
  top_k: 40,
  repeat_penalty: 1.1,
  n_predict: 128,
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
