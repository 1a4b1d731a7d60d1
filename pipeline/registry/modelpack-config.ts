/**
 * The ModelPack config blob (`application/vnd.cncf.model.config.v1+json`, model-spec
 * docs/config.md at v0.0.7): its schema, and how a converted model's facts fill it. Every
 * object in the schema is `additionalProperties: false`, so the schema below is strict
 * and what does not fit (engine commit, provenance digest, "PowerInfer GGUF", the key)
 * goes into manifest annotations instead (oci-spec.ts AI_TOOLS_ANNOTATIONS). Pure.
 */
import * as z from "zod";
import type { GgufHeader } from "../gguf/reader.js";
import { fileTypeName } from "../gguf/validate.js";
import { SHA256_DIGEST } from "./oci-spec.js";

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
/** `<count><scale>`: a count with at most one decimal, then Q/T/B/M/K in either case (docs/config.md). */
export const PARAM_SIZE = /^\d+(\.\d)?[QTBMKqtbmk]$/;
const MODALITY = z.enum(["text", "image", "audio", "video", "embedding", "other"]);

export const modelPackConfigSchema = z.strictObject({
  descriptor: z.strictObject({
    createdAt: z.string().regex(RFC3339, "an RFC 3339 date-time").optional(),
    authors: z.array(z.string()).optional(),
    vendor: z.string().optional(),
    family: z.string().optional(),
    name: z.string().min(1).optional(),
    version: z.string().optional(),
    title: z.string().optional(),
    description: z.string().optional(),
    docURL: z.string().optional(),
    sourceURL: z.string().optional(),
    datasetsURL: z.array(z.string()).optional(),
    revision: z.string().optional(),
    licenses: z.array(z.string()).optional(),
  }),
  config: z.strictObject({
    architecture: z.string().optional(),
    format: z.string().optional(),
    paramSize: z.string().regex(PARAM_SIZE, "<count><Q|T|B|M|K>, e.g. 6.7B").optional(),
    precision: z.string().optional(),
    quantization: z.string().optional(),
    capabilities: z
      .strictObject({
        inputTypes: z.array(MODALITY).optional(),
        outputTypes: z.array(MODALITY).optional(),
        knowledgeCutoff: z.string().regex(RFC3339).optional(),
        reasoning: z.boolean().optional(),
        toolUsage: z.boolean().optional(),
        reward: z.boolean().optional(),
        languages: z.array(z.string().regex(/^[a-z]{2}$/)).optional(),
      })
      .optional(),
  }),
  modelfs: z.strictObject({
    type: z.literal("layers"),
    diffIds: z.array(z.string().regex(SHA256_DIGEST)).min(1),
  }),
});

export type ModelPackConfig = z.infer<typeof modelPackConfigSchema>;
export type ModelPackDescriptor = ModelPackConfig["descriptor"];
export type ModelPackModelConfig = ModelPackConfig["config"];

/** What the GGUF header says about the model, in ModelPack's terms. */
export interface GgufFacts {
  /** general.architecture ("llama", "bamboo"). */
  architecture?: string;
  /** PWRI magic: a PowerInfer sparse model. */
  sparse: boolean;
  /** "float32" / "float16" for unquantized files. */
  precision?: string;
  /** The llama.cpp file type for quantized files ("Q4_0"). */
  quantization?: string;
  paramSize?: string;
}

/** PowerInfer's activation predictor (blk.N.fc1/fc2): part of the file, not of the model's parameter count. */
const PREDICTOR_TENSOR = /^blk\.\d+\.fc[12]\.weight$/;

export function ggufFacts(header: GgufHeader): GgufFacts {
  const architecture = header.kv.get("general.architecture");
  const fileType = header.kv.get("general.file_type");
  let params = 0;
  for (const t of header.tensors) if (!PREDICTOR_TENSOR.test(t.name)) params += t.dims.reduce((a, b) => a * b, 1);
  const paramSize = formatParamSize(params);
  const facts: GgufFacts = { sparse: header.magic === "PWRI", ...(typeof architecture === "string" ? { architecture } : {}), ...(paramSize ? { paramSize } : {}) };
  if (typeof fileType === "number") {
    if (fileType === 0) facts.precision = "float32";
    else if (fileType === 1) facts.precision = "float16";
    else facts.quantization = fileTypeName(fileType);
  }
  return facts;
}

/**
 * 6_738_415_616 -> "6.7B", 13_015_864_320 -> "13B", 124_000 -> "124K": one decimal below
 * 100 of the unit, none above; under a thousand parameters there is no scale letter, so
 * no paramSize.
 */
export function formatParamSize(count: number): string | undefined {
  const scales: [number, string][] = [
    [1e15, "Q"],
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [scale, letter] of scales) {
    if (count < scale) continue;
    const value = count / scale;
    const text = value >= 100 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
    return `${text}${letter}`;
  }
  return undefined;
}

/** The config blob, keys in schema order; absent values are left out. */
export function buildModelPackConfig(descriptor: ModelPackDescriptor, config: ModelPackModelConfig, diffIds: readonly string[]): ModelPackConfig {
  const descriptorOrder = ["createdAt", "authors", "vendor", "family", "name", "version", "title", "description", "docURL", "sourceURL", "datasetsURL", "revision", "licenses"] as const;
  const configOrder = ["architecture", "format", "paramSize", "precision", "quantization", "capabilities"] as const;
  const ordered = <K extends string>(source: Partial<Record<K, unknown>>, keys: readonly K[]) =>
    Object.fromEntries(keys.filter((k) => source[k] !== undefined).map((k) => [k, source[k]]));
  return modelPackConfigSchema.parse({
    descriptor: ordered(descriptor, descriptorOrder),
    config: ordered(config, configOrder),
    modelfs: { type: "layers", diffIds: [...diffIds] },
  });
}
