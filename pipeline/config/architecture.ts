/**
 * The architecture allow-list: PowerInfer runs only ReLU-family models of the architectures
 * its loader knows (powerinfer-users.md P7: "It only works for models with ReLU"; the
 * converters dispatch on config.json's model_type, powerinfer-upstream.md §7). The download
 * fetches a checkpoint's config.json first and refuses anything else before the weights
 * (tens to hundreds of GB) are requested. Pure: no I/O.
 */

/** config.json model_type -> the GGUF architecture the converters write for it. */
export const SUPPORTED_MODEL_TYPES: Readonly<Record<string, string>> = Object.freeze({
  llama: "llama",
  bamboo: "bamboo",
  falcon: "falcon",
  RefinedWeb: "falcon",
  RefinedWebModel: "falcon",
  opt: "opt",
});

/**
 * Activation names of the ReLU family, as configs spell them: ReLU (ReLU-LLaMA, ReLU-Falcon,
 * OPT), squared ReLU (`relu2`, transformers' ACT2FN name), FATReLU (ProSparse) and dReLU
 * (Bamboo/TurboSparse). Compared lowercased.
 */
export const RELU_ACTIVATIONS: ReadonlySet<string> = new Set(["relu", "relu2", "squared_relu", "relu_squared", "fatrelu", "drelu"]);

/** Where configs name the FFN activation: LLaMA-style `hidden_act`, OPT `activation_function`, Falcon `activation`, Gemma-style `hidden_activation`. */
export const ACTIVATION_KEYS = ["hidden_act", "activation_function", "activation", "hidden_activation"] as const;

/**
 * What transformers uses when the config names no activation (the config class's default):
 * LLaMA SiLU, Falcon GELU, OPT ReLU. Bamboo is custom code: no default is known.
 */
const DEFAULT_ACTIVATION: Readonly<Record<string, string>> = Object.freeze({ llama: "silu", falcon: "gelu", RefinedWeb: "gelu", RefinedWebModel: "gelu", opt: "relu" });

export interface CheckpointArchitecture {
  /** config.json model_type (null: absent or not a string). */
  modelType: string | null;
  /** config.json architectures, e.g. ["LlamaForCausalLM"]. */
  architectures: string[];
  /** The activation the config names, and under which key; both null when it names none. */
  activation: string | null;
  activationKey: string | null;
}

export function describeCheckpoint(config: unknown): CheckpointArchitecture {
  const c = (config && typeof config === "object" && !Array.isArray(config) ? config : {}) as Record<string, unknown>;
  const key = ACTIVATION_KEYS.find((k) => typeof c[k] === "string");
  return {
    modelType: typeof c.model_type === "string" ? c.model_type : null,
    architectures: Array.isArray(c.architectures) ? c.architectures.filter((a): a is string => typeof a === "string") : [],
    activation: key ? (c[key] as string) : null,
    activationKey: key ?? null,
  };
}

export interface ReluCheck {
  ok: boolean;
  /** One sentence: what the config says and, when refused, why. */
  reason: string;
  /** The GGUF architecture it converts to (when ok). */
  architecture?: string;
}

/** The catalogue hint every refusal ends with. */
export const CATALOGUE_HINT =
  "PowerInfer needs a ReLU-sparsified model (model_type llama, bamboo, falcon/RefinedWeb or opt, with a ReLU-family activation) and its predictor; see the catalogue: `pnpm pipeline models`";

/**
 * Whether the engine can run this checkpoint sparse: model_type on the allow-list AND a
 * ReLU-family activation. A config that names no activation falls back to what transformers
 * would use (LLaMA: SiLU, Falcon: GELU, OPT: ReLU); where that is unknown or not ReLU,
 * `assumeRelu` (a recipe's stated reason) accepts it. A named non-ReLU activation is final.
 */
export function checkReluCheckpoint(arch: CheckpointArchitecture, options: { assumeRelu?: string | undefined } = {}): ReluCheck {
  const what = [
    `model_type ${arch.modelType === null ? "missing" : JSON.stringify(arch.modelType)}`,
    ...(arch.architectures.length > 0 ? [`architectures ${arch.architectures.join(", ")}`] : []),
    arch.activationKey === null ? "no activation named" : `${arch.activationKey} ${JSON.stringify(arch.activation)}`,
  ].join(", ");
  const architecture = arch.modelType === null ? undefined : SUPPORTED_MODEL_TYPES[arch.modelType];
  if (architecture === undefined) {
    return { ok: false, reason: `${what}: not an architecture the pinned engine supports. ${CATALOGUE_HINT}` };
  }
  if (arch.activation !== null) {
    return RELU_ACTIVATIONS.has(arch.activation.toLowerCase())
      ? { ok: true, reason: `${what}: a ReLU-family model the engine supports`, architecture }
      : { ok: false, reason: `${what}: not a ReLU-family activation, so the FFN is not sparse. ${CATALOGUE_HINT}` };
  }
  const fallback = DEFAULT_ACTIVATION[arch.modelType!];
  if (fallback !== undefined && RELU_ACTIVATIONS.has(fallback)) return { ok: true, reason: `${what} (transformers' default for ${arch.modelType} is ${fallback})`, architecture };
  if (options.assumeRelu) return { ok: true, reason: `${what}; the recipe vouches for ReLU (model.assumeRelu: ${options.assumeRelu})`, architecture };
  return {
    ok: false,
    reason: `${what}: ${fallback === undefined ? "the activation is unknown" : `transformers would use ${fallback}, not ReLU`}. ${CATALOGUE_HINT} (a recipe whose checkpoint is ReLU although its config does not say so sets model.assumeRelu with the reason)`,
  };
}
