/**
 * Checks a parsed GGUF header against what PowerInfer's converter should have written, and summarizes it. Pure:
 * no I/O. The converters fail silently (exit 0 with a dense file, a missing predictor layer, the wrong output type),
 * so every converted file goes through validatePowerInferGguf before it is kept.
 */
import type { GgufHeader, GgufValue } from "./reader.js";

export interface PowerInferExpectation {
  /** true: a sparse model (PWRI magic, predictor tensors blk.N.fc1/fc2 in every layer). */
  sparse: boolean;
  architecture: string;
  blockCount: number;
  /** general.file_type: 0 F32, 1 F16, 2 Q4_0, ... (LLAMA_FTYPE). */
  fileType?: number;
}

/** llama.h's LLAMA_FTYPE_* at the pinned PowerInfer commit (all but F32 are "mostly": 1-D tensors stay F32). */
export const FILE_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  4: "Q4_1_SOME_F16",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
});

export function fileTypeName(fileType: number): string {
  return FILE_TYPE_NAMES[fileType] ?? `unknown (${fileType})`;
}

export interface TensorLayout {
  /** Tensors outside the blocks. */
  readonly global: readonly string[];
  /** Per block `blk.N.<name>.weight`, dense and sparse (the sparse list includes the predictor fc1/fc2). */
  readonly dense: readonly string[];
  readonly sparse: readonly string[];
}

const LLAMA_COMMON = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up"];
const LLAMA_LAYOUT: TensorLayout = {
  global: ["token_embd.weight", "output_norm.weight", "output.weight"],
  dense: [...LLAMA_COMMON, "ffn_down"],
  // the sample model's loader output: 9 per block (ffn_down transposed as ffn_down_t) + the 2 predictor tensors
  sparse: [...LLAMA_COMMON, "ffn_down_t", "fc1", "fc2"],
};

/** The tensor layouts PowerInfer's loader requires (llama.cpp at the pin); other architectures skip the count check. */
export const TENSOR_LAYOUTS: Readonly<Record<string, TensorLayout>> = Object.freeze({ llama: LLAMA_LAYOUT, bamboo: LLAMA_LAYOUT });

const PREDICTOR = /^blk\.(\d+)\.fc([12])\.weight$/;

function asNumber(value: GgufValue | undefined): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint" && value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(value);
  return undefined;
}

function describe(value: GgufValue | undefined): string {
  if (value === undefined) return "missing";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint" || typeof value === "number" || typeof value === "boolean") return String(value);
  return Array.isArray(value) ? `an array of ${value.length}` : `an array of ${value.length} ${value.itemType}`;
}

function list(items: readonly string[], max = 8): string {
  return items.length <= max ? items.join(", ") : `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/** Layers that have both predictor tensors, and those that have only one. */
function predictorLayers(header: GgufHeader): { complete: number[]; partial: number[] } {
  const seen = new Map<number, number>();
  for (const t of header.tensors) {
    const m = PREDICTOR.exec(t.name);
    if (m) seen.set(Number(m[1]), (seen.get(Number(m[1])) ?? 0) | (m[2] === "1" ? 1 : 2));
  }
  const complete: number[] = [];
  const partial: number[] = [];
  for (const [layer, bits] of [...seen].sort((a, b) => a[0] - b[0])) (bits === 3 ? complete : partial).push(layer);
  return { complete, partial };
}

/**
 * What is wrong with a converted file, as sentences (empty: it is what was expected). Checks the magic (PWRI for
 * sparse, GGUF for dense), general.architecture, `<arch>.block_count`, the predictor tensors of every block, the
 * tensor count and names for known layouts, and general.file_type.
 */
export function validatePowerInferGguf(header: GgufHeader, expect: PowerInferExpectation): string[] {
  const problems: string[] = [];
  const { sparse, architecture, blockCount } = expect;

  const wantMagic = sparse ? "PWRI" : "GGUF";
  if (header.magic !== wantMagic) {
    problems.push(
      sparse
        ? `magic is "${header.magic}", expected "PWRI": this is a dense GGUF, not a PowerInfer sparse model (was the predictor given to the converter?)`
        : `magic is "${header.magic}", expected "GGUF" for a dense model`,
    );
  }

  const arch = header.kv.get("general.architecture");
  if (arch !== architecture) problems.push(`general.architecture is ${describe(arch)}, expected ${JSON.stringify(architecture)}`);

  const blockKey = `${architecture}.block_count`;
  const blocks = header.kv.get(blockKey);
  if (asNumber(blocks) !== blockCount) problems.push(`${blockKey} is ${describe(blocks)}, expected ${blockCount}`);

  const names = new Set(header.tensors.map((t) => t.name));
  const predictors = predictorLayers(header);
  if (sparse) {
    const missing: string[] = [];
    const layers: number[] = [];
    for (let layer = 0; layer < blockCount; layer++) {
      const absent = [`blk.${layer}.fc1.weight`, `blk.${layer}.fc2.weight`].filter((n) => !names.has(n));
      if (absent.length > 0) layers.push(layer);
      missing.push(...absent);
    }
    if (layers.length > 0) {
      problems.push(`predictor tensors missing for ${layers.length} of ${blockCount} layers (${list(layers.map(String))}): ${list(missing, 4)}`);
    }
    const extra = [...predictors.complete, ...predictors.partial].filter((l) => l >= blockCount);
    if (extra.length > 0) problems.push(`predictor tensors for layers past the last block (${blockCount - 1}): ${list(extra.sort((a, b) => a - b).map(String))}`);
  } else if (predictors.complete.length + predictors.partial.length > 0) {
    problems.push(`a dense model has predictor tensors (blk.N.fc1/fc2) for ${predictors.complete.length + predictors.partial.length} layers`);
  }

  const layout = TENSOR_LAYOUTS[architecture];
  if (layout) {
    const perLayer = sparse ? layout.sparse : layout.dense;
    const expected = layout.global.length + blockCount * perLayer.length;
    if (header.tensors.length !== expected) {
      problems.push(
        `${header.tensors.length} tensors, expected ${expected} (${layout.global.length} + ${blockCount} blocks x ${perLayer.length}${sparse ? " including the 2 predictor tensors" : ""})`,
      );
    }
    const missing = [...layout.global];
    for (let layer = 0; layer < blockCount; layer++) {
      for (const n of perLayer) if (n !== "fc1" && n !== "fc2") missing.push(`blk.${layer}.${n}.weight`);
    }
    const absent = missing.filter((n) => !names.has(n));
    if (absent.length > 0) problems.push(`tensors missing: ${list(absent, 6)}`);
  }

  if (expect.fileType !== undefined) {
    const value = header.kv.get("general.file_type");
    const fileType = asNumber(value);
    if (fileType !== expect.fileType) {
      const got = fileType === undefined ? describe(value) : `${fileType} (${fileTypeName(fileType)})`;
      problems.push(`general.file_type is ${got}, expected ${expect.fileType} (${fileTypeName(expect.fileType)})`);
    }
  }
  return problems;
}

export interface GgufSummary {
  magic: "GGUF" | "PWRI";
  version: number;
  /** PWRI magic: PowerInfer sparse inference. */
  sparse: boolean;
  architecture: string | null;
  name: string | null;
  blockCount: number | null;
  fileType: number | null;
  fileTypeName: string | null;
  kvCount: number;
  tensorCount: number;
  /** Tensors per ggml type, e.g. { F16: 20, F32: 5 }. */
  tensorTypes: Record<string, number>;
  /** Blocks with both predictor tensors (blk.N.fc1.weight and blk.N.fc2.weight). */
  predictorLayers: number;
  sparseThreshold: number | null;
  vocabSize: number | null;
  tensorBytes: number;
  fileSize: number;
}

/** The shortest decimal that reads back as the same f32 (0.699999988079071 -> 0.7). */
function f32Decimal(value: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === Math.fround(value)) return candidate;
  }
  return value;
}

/** A small JSON-able description (no bigints) for records and the `inspect` command. */
export function summarizeGguf(header: GgufHeader): GgufSummary {
  const str = (key: string) => {
    const v = header.kv.get(key);
    return typeof v === "string" ? v : null;
  };
  const architecture = str("general.architecture");
  const blockCount = architecture === null ? undefined : asNumber(header.kv.get(`${architecture}.block_count`));
  const fileType = asNumber(header.kv.get("general.file_type"));
  const threshold = header.kv.get("powerinfer.sparse_threshold");
  const tokens = header.kv.get("tokenizer.ggml.tokens");
  const tensorTypes: Record<string, number> = {};
  let tensorBytes = 0;
  for (const t of header.tensors) {
    tensorTypes[t.typeName] = (tensorTypes[t.typeName] ?? 0) + 1;
    tensorBytes += t.byteSize;
  }
  return {
    magic: header.magic,
    version: header.version,
    sparse: header.magic === "PWRI",
    architecture,
    name: str("general.name"),
    blockCount: blockCount ?? null,
    fileType: fileType ?? null,
    fileTypeName: fileType === undefined ? null : fileTypeName(fileType),
    kvCount: header.kv.size,
    tensorCount: header.tensors.length,
    tensorTypes,
    predictorLayers: predictorLayers(header).complete.length,
    sparseThreshold: typeof threshold === "number" ? (header.kvTypes.get("powerinfer.sparse_threshold") === "f32" ? f32Decimal(threshold) : threshold) : null,
    vocabSize: tokens === undefined || typeof tokens !== "object" ? null : tokens.length,
    tensorBytes,
    fileSize: header.fileSize,
  };
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** The summary as aligned `label  value` lines. */
export function formatSummary(summary: GgufSummary): string[] {
  const types = Object.entries(summary.tensorTypes)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([type, count]) => `${count} ${type}`)
    .join(", ");
  const rows: [string, string][] = [
    ["format", `GGUF v${summary.version}, magic ${summary.magic}${summary.sparse ? " (PowerInfer sparse)" : " (dense)"}`],
    ["model", `${summary.name ?? "(no general.name)"}, ${summary.architecture ?? "(no general.architecture)"}${summary.blockCount === null ? "" : `, ${summary.blockCount} blocks`}`],
    ["file type", summary.fileType === null ? "(no general.file_type)" : `${summary.fileTypeName} (${summary.fileType})`],
    ["tensors", `${summary.tensorCount}${types ? ` (${types})` : ""}, ${bytes(summary.tensorBytes)}`],
    [
      "predictor",
      summary.predictorLayers === 0 && !summary.sparse
        ? "none"
        : `${summary.predictorLayers}${summary.blockCount === null ? "" : ` of ${summary.blockCount}`} layers${summary.sparseThreshold === null ? "" : `, sparse threshold ${summary.sparseThreshold}`}`,
    ],
    ["vocabulary", summary.vocabSize === null ? "(no tokenizer.ggml.tokens)" : `${summary.vocabSize} tokens`],
    ["metadata", `${summary.kvCount} KVs`],
    ["file size", `${bytes(summary.fileSize)} (${summary.fileSize} bytes)`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
}
