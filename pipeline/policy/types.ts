/**
 * A policy after validation and rendering for one host: every value resolved, with where
 * it came from. Engines receive only this; they never read YAML.
 */
export type ValueSource = "policy" | "default" | "host clamp" | "host" | "flag";

export interface HostProfile {
  /** "detected" or the host profile file's name (configs/hosts/<name>.yaml). */
  name: string;
  source: "detected" | "file";
  physicalCores: number;
  memoryBytes: number;
  gpus: { name: string; memoryTotalBytes: number; memoryFreeBytes: number | null }[];
}

export interface RenderedGeneration {
  temperature: number;
  top_p: number;
  top_k: number;
  repeat_penalty: number;
  /** Tokens to generate (`-n`); -1 = until end of text. */
  max_tokens: number;
  ctx_size: number;
  /** -1 = random. */
  seed: number;
  /** Stop sequences (engines that support them). */
  stop: string[];
}

export interface RenderedRuntime {
  threads: number;
  /** `--vram-budget`: GiB (2^30 bytes) of VRAM the engine may use; null = not set (CPU, or the engine's own default). */
  vram_budget_gb: number | null;
  /** Dense models on GPU builds; null = not set. */
  gpu_layers: number | null;
  batch_size: number | null;
}

export interface OpenAiSettings {
  /** e.g. http://127.0.0.1:8000/v1 (the server's OpenAI-compatible root, ending in /v1). */
  base_url: string;
  model: string;
  /** The env variable holding the API key (never the key itself). */
  api_key_env: string;
  timeout_seconds: number;
}

export interface RenderedPolicy {
  /** The policy file (as given), for messages. */
  file: string;
  engine: string;
  /** Absolute path of the model file; null for engines that take no file (openai). */
  modelPath: string | null;
  generation: RenderedGeneration;
  runtime: RenderedRuntime;
  openai?: OpenAiSettings;
  audit?: { model_version: string; source_repo?: string; checksum?: string };
  /** Dotted key -> where its value came from, and why when it was changed. */
  sources: Record<string, { source: ValueSource; note?: string }>;
  /** Clamps and dropped settings, one sentence each. */
  warnings: string[];
  /** sha256 of the canonical JSON of the validated policy with defaults applied (host-independent). */
  policyHash: string;
  host: HostProfile;
}
