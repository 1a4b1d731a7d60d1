/**
 * The runtime policy (the integration blueprint's YAML: engine, model_path, generation,
 * runtime, audit), one strict zod schema. Recipes share the generation and runtime parts
 * (config/generation-schema.ts), so a recipe's defaults and a policy mean the same thing. Key
 * names are the blueprint's; the names this project used first are accepted as aliases
 * (config/aliases.ts). A JSON Schema
 * is generated from these (`pnpm pipeline schemas`) for editors.
 */
import * as z from "zod";
import { generationSchema, runtimeSchema, sha256DigestSchema } from "../config/generation-schema.js";
import { hubRepoIdSchema } from "../config/hub-repo.js";

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
export type { GenerationSettings, RuntimeSettings } from "../config/generation-schema.js";

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
