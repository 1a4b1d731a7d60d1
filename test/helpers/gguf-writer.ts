/**
 * Test-only GGUF writer: a header (any magic, any version number, every value type, nested arrays, raw bytes for
 * hostile values, lying counts) followed by alignment padding and tensor data: zeroes, or the bytes a tensor brings
 * (a model an engine can really run). It has its own type-size table on purpose, so the reader's table is checked
 * against an independent one.
 */
import { closeSync, openSync, ftruncateSync, writeSync } from "node:fs";

export type GgufWriteTypeName = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "bool" | "str" | "arr" | "u64" | "i64" | "f64";
const TYPE_ID: Record<GgufWriteTypeName, number> = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, str: 8, arr: 9, u64: 10, i64: 11, f64: 12 };

type ArrayItem = number | bigint | boolean | string | WArray;
interface WArray {
  type: "arr";
  itemType: GgufWriteTypeName;
  items: readonly ArrayItem[];
}
export type WValue =
  | { type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64"; value: number }
  | { type: "u64" | "i64"; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "str"; value: string }
  | WArray
  /** Any value type id followed by any bytes (for hostile input). */
  | { type: "raw"; typeId: number; bytes: Uint8Array };

/** Value constructors: gv.u32(5), gv.str("llama"), gv.arr("str", ["a", "b"]). */
export const gv = {
  u8: (value: number): WValue => ({ type: "u8", value }),
  i8: (value: number): WValue => ({ type: "i8", value }),
  u16: (value: number): WValue => ({ type: "u16", value }),
  i16: (value: number): WValue => ({ type: "i16", value }),
  u32: (value: number): WValue => ({ type: "u32", value }),
  i32: (value: number): WValue => ({ type: "i32", value }),
  f32: (value: number): WValue => ({ type: "f32", value }),
  f64: (value: number): WValue => ({ type: "f64", value }),
  u64: (value: bigint): WValue => ({ type: "u64", value }),
  i64: (value: bigint): WValue => ({ type: "i64", value }),
  bool: (value: boolean): WValue => ({ type: "bool", value }),
  str: (value: string): WValue => ({ type: "str", value }),
  arr: (itemType: GgufWriteTypeName, items: readonly ArrayItem[]): WArray => ({ type: "arr", itemType, items }),
  raw: (typeId: number, bytes: Uint8Array): WValue => ({ type: "raw", typeId, bytes }),
};

export interface WTensor {
  name: string;
  /** ggml order (ne0 first). */
  dims: readonly (number | bigint)[];
  /** ggml type id (default 0, F32). */
  type?: number;
  /** From the start of the data section; default: packed in order, each aligned. */
  offset?: number | bigint;
  /** The tensor's bytes (e.g. a Float32Array for F32); default: zeroes. */
  data?: ArrayBufferView;
}

export interface GgufWriteSpec {
  magic?: string;
  version?: number;
  kv?: readonly (readonly [string, WValue])[];
  tensors?: readonly WTensor[];
  /** Padding alignment (default: a u32 general.alignment KV if there is one, else 32). */
  alignment?: number;
  /** Counts written instead of the real ones. */
  tensorCount?: bigint;
  kvCount?: bigint;
}

/** [elements per block, bytes per block] from ggml.c / ggml-quants.h at the PowerInfer pin. */
const BLOCK: Record<number, readonly [number, number]> = {
  0: [1, 4],
  1: [1, 2],
  2: [32, 2 + 16],
  3: [32, 2 + 2 + 16],
  6: [32, 2 + 4 + 16],
  7: [32, 2 + 2 + 4 + 16],
  8: [32, 2 + 32],
  9: [32, 4 + 4 + 32],
  10: [256, 2 * 2 + 256 / 16 + 256 / 4],
  11: [256, 2 + 256 / 4 + 256 / 8 + 12],
  12: [256, 2 * 2 + 12 + 256 / 2],
  13: [256, 2 * 2 + 12 + 256 / 8 + 256 / 2],
  14: [256, 2 + 256 / 16 + (3 * 256) / 4],
  15: [256, 4 + 256 + (256 / 16) * 2],
};

/** Data bytes of a tensor by the writer's table (0 for unknown types). */
export function tensorBytes(dims: readonly (number | bigint)[], type = 0): bigint {
  const block = BLOCK[type];
  if (!block) return 0n;
  const elements = dims.reduce<bigint>((a, b) => a * BigInt(b), 1n);
  return (elements / BigInt(block[0])) * BigInt(block[1]);
}

class Out {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    this.push(b);
  }
  u64(n: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(n)));
    this.push(b);
  }
  str(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  concat(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

function writeItem(out: Out, type: GgufWriteTypeName, v: ArrayItem): void {
  const b = Buffer.alloc(8);
  switch (type) {
    case "u8":
      b.writeUInt8(v as number);
      return out.push(b.subarray(0, 1));
    case "i8":
      b.writeInt8(v as number);
      return out.push(b.subarray(0, 1));
    case "u16":
      b.writeUInt16LE(v as number);
      return out.push(b.subarray(0, 2));
    case "i16":
      b.writeInt16LE(v as number);
      return out.push(b.subarray(0, 2));
    case "u32":
      b.writeUInt32LE(v as number);
      return out.push(b.subarray(0, 4));
    case "i32":
      b.writeInt32LE(v as number);
      return out.push(b.subarray(0, 4));
    case "f32":
      b.writeFloatLE(v as number);
      return out.push(b.subarray(0, 4));
    case "bool":
      b.writeUInt8(v ? 1 : 0);
      return out.push(b.subarray(0, 1));
    case "u64":
      b.writeBigUInt64LE(v as bigint);
      return out.push(b);
    case "i64":
      b.writeBigInt64LE(v as bigint);
      return out.push(b);
    case "f64":
      b.writeDoubleLE(v as number);
      return out.push(b);
    case "str":
      return out.str(v as string);
    case "arr": {
      const a = v as WArray;
      out.u32(TYPE_ID[a.itemType]);
      out.u64(a.items.length);
      for (const item of a.items) writeItem(out, a.itemType, item);
    }
  }
}

function writeValue(out: Out, value: WValue): void {
  if (value.type === "raw") {
    out.u32(value.typeId);
    out.push(Buffer.from(value.bytes));
    return;
  }
  out.u32(TYPE_ID[value.type]);
  writeItem(out, value.type, value.type === "arr" ? value : value.value);
}

export interface BuiltGguf {
  /** Header, padding and, where built, the zeroed data section. */
  bytes: Buffer;
  /** Magic to the end of the tensor infos. */
  headerBytes: number;
  dataOffset: number;
  /** The whole file's size, data included (a Number: past 2^53 only approximate). */
  size: number;
  /** Tensors that brought data: where it starts in the data section, and its bytes. */
  filled: { at: bigint; bytes: Buffer }[];
}

/** Data past this size is never built in memory (hostile headers declare exabytes). */
const MAX_BUILT_DATA = 64 << 20;

/** Header, padding and zeroed data, unless { data: false } or the data would be over 64 MiB (then bytes.length < size). */
export function buildGguf(spec: GgufWriteSpec, options: { data?: boolean } = {}): BuiltGguf {
  const kv = spec.kv ?? [];
  const tensors = spec.tensors ?? [];
  const alignKv = kv.find(([k]) => k === "general.alignment")?.[1];
  const alignment = spec.alignment ?? (alignKv?.type === "u32" && alignKv.value > 0 ? alignKv.value : 32);
  const pad = (n: bigint) => ((n + BigInt(alignment) - 1n) / BigInt(alignment)) * BigInt(alignment);

  const out = new Out();
  out.push(Buffer.from((spec.magic ?? "GGUF").slice(0, 4).padEnd(4, "\0"), "latin1"));
  out.u32(spec.version ?? 3);
  out.u64(spec.tensorCount ?? BigInt(tensors.length));
  out.u64(spec.kvCount ?? BigInt(kv.length));
  for (const [key, value] of kv) {
    out.str(key);
    writeValue(out, value);
  }
  let next = 0n;
  let dataEnd = 0n;
  const filled: { at: bigint; bytes: Buffer }[] = [];
  for (const t of tensors) {
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    const type = t.type ?? 0;
    out.u32(type);
    const offset = t.offset === undefined ? next : BigInt(t.offset);
    out.u64(offset);
    const end = offset + tensorBytes(t.dims, type);
    if (t.data) filled.push({ at: offset, bytes: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
    next = pad(end);
    if (end > dataEnd) dataEnd = end;
  }
  const headerBytes = out.length;
  const dataOffset = Number(pad(BigInt(headerBytes)));
  const size = dataOffset + Number(pad(dataEnd));
  const withData = (options.data ?? true) && size - dataOffset <= MAX_BUILT_DATA;
  out.push(Buffer.alloc((withData ? size : dataOffset) - headerBytes));
  const bytes = out.concat();
  if (withData) for (const f of filled) f.bytes.copy(bytes, dataOffset + Number(f.at));
  return { bytes, headerBytes, dataOffset, size, filled };
}

/**
 * Writes the header and padding, then extends the file to its full size (a sparse file: zero data costs no disk);
 * tensors that bring data have it written in place.
 */
export function writeGguf(path: string, spec: GgufWriteSpec): BuiltGguf {
  const built = buildGguf(spec, { data: false });
  const fd = openSync(path, "w");
  try {
    writeSync(fd, built.bytes);
    ftruncateSync(fd, built.size);
    for (const f of built.filled) writeSync(fd, f.bytes, 0, f.bytes.length, built.dataOffset + Number(f.at));
  } finally {
    closeSync(fd);
  }
  return built;
}

export interface ModelShape {
  sparse?: boolean;
  architecture?: string;
  name?: string;
  layers?: number;
  hidden?: number;
  ffn?: number;
  vocab?: number;
  /** attention.head_count and head_count_kv (default 4 and 4: the demo model); attn_k/attn_v are n_embd x n_embd/heads*headsKv. */
  heads?: number;
  headsKv?: number;
  /** Predictor width (fc1 rows). */
  predictor?: number;
  /** general.file_type, and the type of the 2-D weights: 0 F32, 1 F16, 2 Q4_0. */
  fileType?: number;
  version?: number;
  /** Layers whose predictor tensors are left out. */
  skipPredictorLayers?: readonly number[];
  sparseThreshold?: number;
}

const WEIGHT_TYPE: Record<number, number> = { 0: 0, 1: 1, 2: 2, 7: 8 };

/**
 * A converted model's header, shaped like the pinned PowerInfer's output for its tiny ReLU-LLaMA sample
 * (reference/powerinfer-samples/main-run.stderr.log): the same tensor order, types, shapes and KVs.
 */
export function powerInferModelSpec(shape: ModelShape = {}): GgufWriteSpec {
  const { sparse = true, architecture = "llama", name = "hf-model", layers = 2, hidden = 64, ffn = 256, vocab = 512, predictor = 32, fileType = 1, heads = 4, headsKv = heads } = shape;
  const embdGqa = (hidden / heads) * headsKv;
  const w = WEIGHT_TYPE[fileType] ?? 1;
  const predictorType = fileType === 0 ? 0 : 1;
  const tensors: WTensor[] = [{ name: "token_embd.weight", dims: [hidden, vocab], type: w }];
  for (let i = 0; i < layers; i++) {
    tensors.push(
      { name: `blk.${i}.attn_q.weight`, dims: [hidden, hidden], type: w },
      { name: `blk.${i}.attn_k.weight`, dims: [hidden, embdGqa], type: w },
      { name: `blk.${i}.attn_v.weight`, dims: [hidden, embdGqa], type: w },
      { name: `blk.${i}.attn_output.weight`, dims: [hidden, hidden], type: w },
      { name: `blk.${i}.ffn_gate.weight`, dims: [hidden, ffn], type: w },
      { name: `blk.${i}.ffn_up.weight`, dims: [hidden, ffn], type: w },
      sparse ? { name: `blk.${i}.ffn_down_t.weight`, dims: [hidden, ffn], type: w } : { name: `blk.${i}.ffn_down.weight`, dims: [ffn, hidden], type: w },
      { name: `blk.${i}.attn_norm.weight`, dims: [hidden], type: 0 },
      { name: `blk.${i}.ffn_norm.weight`, dims: [hidden], type: 0 },
    );
  }
  tensors.push({ name: "output_norm.weight", dims: [hidden], type: 0 }, { name: "output.weight", dims: [hidden, vocab], type: w });
  if (sparse) {
    for (let i = 0; i < layers; i++) {
      if (shape.skipPredictorLayers?.includes(i)) continue;
      tensors.push(
        { name: `blk.${i}.fc1.weight`, dims: [hidden, predictor], type: predictorType },
        { name: `blk.${i}.fc2.weight`, dims: [predictor, ffn], type: predictorType },
      );
    }
  }
  const tokens = Array.from({ length: vocab }, (_, i) => (i === 0 ? "<unk>" : i === 1 ? "<s>" : i === 2 ? "</s>" : i < 259 ? `<0x${(i - 3).toString(16).toUpperCase().padStart(2, "0")}>` : `▁tok${i}`));
  const kv: [string, WValue][] = [
    ["general.architecture", gv.str(architecture)],
    ["general.name", gv.str(name)],
    [`${architecture}.context_length`, gv.u32(256)],
    [`${architecture}.embedding_length`, gv.u32(hidden)],
    [`${architecture}.block_count`, gv.u32(layers)],
    [`${architecture}.feed_forward_length`, gv.u32(ffn)],
    [`${architecture}.rope.dimension_count`, gv.u32(16)],
    [`${architecture}.attention.head_count`, gv.u32(heads)],
    [`${architecture}.attention.head_count_kv`, gv.u32(headsKv)],
    [`${architecture}.attention.layer_norm_rms_epsilon`, gv.f32(1e-6)],
    [`${architecture}.rope.freq_base`, gv.f32(10000)],
    ["general.file_type", gv.u32(fileType)],
  ];
  if (sparse) kv.push(["powerinfer.sparse_threshold", gv.f32(shape.sparseThreshold ?? 0)]);
  kv.push(
    ["tokenizer.ggml.model", gv.str("llama")],
    ["tokenizer.ggml.tokens", gv.arr("str", tokens)],
    ["tokenizer.ggml.scores", gv.arr("f32", tokens.map((_, i) => -i))],
    ["tokenizer.ggml.token_type", gv.arr("i32", tokens.map((_, i) => (i < 3 ? 3 : i < 259 ? 6 : 1)))],
    ["tokenizer.ggml.bos_token_id", gv.u32(1)],
    ["tokenizer.ggml.eos_token_id", gv.u32(2)],
  );
  return { magic: sparse ? "PWRI" : "GGUF", version: shape.version ?? 3, kv, tensors };
}
