/**
 * The generation and runtime settings shared by recipes (config/recipe.ts: a model's
 * defaults) and runtime policies (policy/schema.ts), so both mean the same thing; and the
 * sha256 digest form both accept. Key names are the integration blueprint's; the older
 * spellings are accepted as aliases (aliases.ts).
 */
import * as z from "zod";
import { withAliases } from "./aliases.js";

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

export type GenerationSettings = z.infer<typeof generationSchema>;
export type RuntimeSettings = z.infer<typeof runtimeSchema>;
