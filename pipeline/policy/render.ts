/**
 * Rendering a validated policy for one host and one engine build: every value resolved
 * (policy, default, host), impossible settings clamped with a warning (or refused with
 * --strict), and engine-specific rules applied. Pure: the caller supplies the host, the
 * build's capabilities and the model facts.
 */
import { PipelineError } from "../core/errors.js";
import { resolveModelFile } from "./model-file.js";
import { policyHash, withDefaults } from "./load.js";
import type { Policy } from "./schema.js";
import type { HostProfile, RenderedPolicy, ValueSource } from "./types.js";

export interface RenderOptions {
  file: string;
  host: HostProfile;
  /** Where model_path is resolved (--model-root, AI_TOOLS_MODEL_ROOT, default <workspace>/models). */
  modelRoot: string;
  /** The workspace root: model_path is also looked up under it (models/powerinfer/<m>/...), and may lie inside it. */
  workspaceRoot?: string;
  /** --allow-outside-root: the policy's model_path may name a file outside the model root and the workspace. */
  allowOutsideRoot?: boolean;
  /** --engine, overriding the policy's engine. */
  engine?: string;
  /** --model: a model file, or a converted model's name (powerinfer/<name>/model.powerinfer.gguf). */
  model?: string;
  /** Whether the engine build can use a GPU (a CPU build cannot). */
  gpuBuild: boolean;
  /** The model is a sparse PowerInfer file (PWRI): -ngl breaks its load; only --vram-budget applies. */
  sparseModel?: (path: string) => boolean;
  /** Refuse instead of clamping. */
  strict?: boolean;
}

const GiB = 2 ** 30;

export function renderPolicy(policy: Policy, options: RenderOptions): RenderedPolicy {
  const full = withDefaults(policy);
  const sources: RenderedPolicy["sources"] = {};
  const warnings: string[] = [];
  const refusals: string[] = [];
  const mark = (key: string, source: ValueSource, note?: string) => (sources[key] = note ? { source, note } : { source });
  /** A setting the host or build cannot honour: clamped with a warning, or (strict) a refusal. */
  const clamp = (key: string, note: string) => {
    mark(key, "host clamp", note);
    (options.strict ? refusals : warnings).push(`${key}: ${note}`);
  };

  const engine = options.engine ?? policy.engine;
  mark("engine", options.engine ? "flag" : "policy");
  for (const key of Object.keys(full.generation)) mark(`generation.${key}`, key in policy.generation ? "policy" : "default");

  // The model file: found, a GGUF, and (named by the policy) inside the model root or workspace.
  let modelPath: string | null = null;
  if (engine !== "openai") {
    const given = options.model ?? policy.model_path;
    if (given === undefined) throw invalid(options.file, "model_path", `engine ${engine} needs a model: set model_path or pass --model`);
    modelPath = resolveModelFile(given, {
      file: options.file,
      modelRoot: options.modelRoot,
      from: options.model ? "flag" : "policy",
      ...(options.workspaceRoot ? { workspaceRoot: options.workspaceRoot } : {}),
      ...(options.allowOutsideRoot ? { allowOutsideRoot: true } : {}),
    });
    mark("model_path", options.model ? "flag" : "policy");
  }

  // Threads: "auto" is the host's physical cores; more than that only busy-waits.
  let threads: number;
  if (full.runtime.threads === "auto" || full.runtime.threads === undefined) {
    threads = options.host.physicalCores;
    mark("runtime.threads", "host", `"auto": ${threads} physical cores`);
  } else if (full.runtime.threads > options.host.physicalCores) {
    threads = options.host.physicalCores;
    clamp("runtime.threads", `${full.runtime.threads} threads on a host with ${threads} physical cores: using ${threads}`);
  } else {
    threads = full.runtime.threads;
    mark("runtime.threads", "policy");
  }

  // VRAM budget: GPU builds only, and no more than the host has.
  let vram: number | null = full.runtime.vram_budget_gb ?? null;
  if (vram !== null) {
    const hostVram = Math.max(0, ...options.host.gpus.map((g) => (g.memoryFreeBytes ?? g.memoryTotalBytes) / GiB));
    if (!options.gpuBuild) {
      clamp("runtime.vram_budget_gb", `the ${engine} build has no GPU support: --vram-budget ${vram} is dropped`);
      vram = null;
    } else if (options.host.gpus.length === 0) {
      clamp("runtime.vram_budget_gb", `the host has no GPU: --vram-budget ${vram} is dropped`);
      vram = null;
    } else if (vram > hostVram) {
      clamp("runtime.vram_budget_gb", `${vram} GiB exceeds the host's ${hostVram.toFixed(1)} GiB of ${options.host.gpus.some((g) => g.memoryFreeBytes !== null) ? "free " : ""}VRAM: using ${hostVram.toFixed(1)}`);
      vram = Math.floor(hostVram * 10) / 10;
    } else mark("runtime.vram_budget_gb", "policy");
  }

  // GPU layers: dense models on GPU builds; a sparse model fails to load with -ngl > 0.
  let gpuLayers: number | null = full.runtime.gpu_layers ?? null;
  if (gpuLayers !== null) {
    if (modelPath && engine === "powerinfer" && options.sparseModel?.(modelPath)) {
      mark("runtime.gpu_layers", "host clamp", "sparse PowerInfer models ignore -ngl (their load fails with it on GPU builds): use vram_budget_gb");
      warnings.push(`runtime.gpu_layers: ${gpuLayers} is not passed: sparse PowerInfer models take vram_budget_gb instead (-ngl makes their load fail on GPU builds)`);
      gpuLayers = null;
    } else if (!options.gpuBuild) {
      clamp("runtime.gpu_layers", `the ${engine} build has no GPU support: -ngl ${gpuLayers} is dropped`);
      gpuLayers = null;
    } else mark("runtime.gpu_layers", "policy");
  }
  if (full.runtime.batch_size !== undefined) mark("runtime.batch_size", "policy");

  if (refusals.length > 0) {
    throw new PipelineError("E_CONFIG_INVALID", `${options.file}: the policy does not fit host ${options.host.name} (--strict)`, { details: refusals });
  }
  const g = full.generation;
  return {
    file: options.file,
    engine,
    modelPath,
    generation: {
      temperature: g.temperature!,
      top_p: g.top_p!,
      top_k: g.top_k!,
      repeat_penalty: g.repeat_penalty!,
      max_tokens: g.max_tokens!,
      ctx_size: g.ctx_size!,
      seed: g.seed!,
      stop: g.stop ?? [],
    },
    runtime: { threads, vram_budget_gb: vram, gpu_layers: gpuLayers, batch_size: full.runtime.batch_size ?? null },
    ...(policy.openai ? { openai: policy.openai } : {}),
    ...(policy.audit ? { audit: policy.audit } : {}),
    sources,
    warnings,
    policyHash: policyHash(policy),
    host: options.host,
  };
}

function invalid(file: string, key: string, message: string): PipelineError {
  return new PipelineError("E_CONFIG_INVALID", `${file}: ${key}: ${message}`);
}
