/**
 * The GPU split (FFN hot-neuron index) of a sparse model, precomputed per host class.
 *
 * PowerInfer's GPU builds look for `<model file>.generated.gpuidx` at load. They accept it
 * iff its `split.vram_capacity` (u64) is <= the VRAM that remains after the dense tensors
 * and the KV cache are offloaded, and it has exactly 2 x n_layer tensors; otherwise they
 * run `python3 -m powerinfer` and overwrite it (powerinfer-users.md §3). The `gpu-split`
 * step computes that remaining figure offline exactly as the engine does, runs the
 * upstream solver with it, and stores `model.<host>.gpuidx`; `ai-tools run` places the
 * index where the engine looks and passes a `--vram-budget` whose remainder is at least
 * the stored capacity (neededBudgetBytes), so the engine reuses it and never needs Python.
 *
 * This folder: budget.ts (the arithmetic, pure), validate.ts (the index file: its names and
 * what the engine accepts), solver.ts (staging and the upstream solver's driver),
 * placement.ts (putting an index where the engine looks, for `run`).
 */
import type { GgufHeader } from "../gguf/reader.js";
import { GGML_TYPES } from "../gguf/reader.js";
import type { HostProfile } from "../policy/types.js";

/** A GGUF integer value (u32 or u64) as a number. */
export function ggufNumber(value: unknown): number | undefined {
  return typeof value === "number" ? value : typeof value === "bigint" ? Number(value) : undefined;
}

export interface ModelShape {
  architecture: string;
  layers: number;
  ffn: number;
  embd: number;
  heads: number;
  headsKv: number;
}

/** n_layer, n_ff, n_embd, heads from the model's GGUF header (block_count, feed_forward_length, ...). */
export function modelShape(header: GgufHeader): ModelShape {
  const architecture = header.kv.get("general.architecture");
  if (typeof architecture !== "string") throw new Error("general.architecture is missing");
  const get = (key: string) => ggufNumber(header.kv.get(`${architecture}.${key}`));
  const layers = get("block_count");
  const ffn = get("feed_forward_length");
  const embd = get("embedding_length");
  if (!layers || !ffn || !embd) throw new Error(`${architecture}.block_count, feed_forward_length or embedding_length is missing`);
  const heads = get("attention.head_count") ?? 1;
  return { architecture, layers, ffn, embd, heads, headsKv: get("attention.head_count_kv") ?? heads };
}

/**
 * Dense tensors the engine offloads before the FFN split, in its order: attention
 * (q/k/v/qkv/o, attn_norm and Falcon's attn_norm_2), predictors fc1/fc2, ffn_norm, output and
 * output_norm. The engine offloads by tensor kind, so a norm's bias goes with its weight.
 * token_embd stays on the CPU; ffn_up/gate/down are what the split decides.
 */
const DENSE = /^(blk\.\d+\.(attn_[a-z0-9_]+|fc1|fc2|ffn_norm)\.(weight|bias)|output\.weight|output_norm\.(weight|bias))$/;

export function denseBytes(header: GgufHeader): number {
  return header.tensors.filter((t) => DENSE.test(t.name)).reduce((sum, t) => sum + t.byteSize, 0);
}

/** The f16 KV cache: 2 x n_embd_gqa x n_layer x n_ctx x 2 bytes. */
export function kvCacheBytes(shape: ModelShape, ctx: number): number {
  const embdGqa = (shape.embd / shape.heads) * shape.headsKv;
  return 2 * embdGqa * shape.layers * ctx * 2;
}

/** What remains for the FFN split of a `budget`-byte VRAM budget at context `ctx` (<= 0: no split). */
export function remainingBytes(header: GgufHeader, budget: number, ctx: number): number {
  return budget - denseBytes(header) - kvCacheBytes(modelShape(header), ctx);
}

/**
 * The solver's --capacity, as the engine computes it: floor(remaining / slice) x 4 with
 * slice = ffn_up.ne[1] x type_size/block_size x (ffn_gate ? 4.5 : 2). ne[1] is n_ff where a
 * neuron row is ne[0] (upstream PR #231): reproduced deliberately, so the offline index is
 * the one the engine itself would compute for this budget.
 */
export function neuronCapacity(header: GgufHeader, remaining: number): number {
  const up = header.tensors.find((t) => t.name === "blk.0.ffn_up.weight");
  if (!up) throw new Error("blk.0.ffn_up.weight is missing");
  const type = GGML_TYPES.get(up.type);
  if (!type) throw new Error(`blk.0.ffn_up.weight has an unknown type ${up.type}`);
  const hasGate = header.tensors.some((t) => t.name === "blk.0.ffn_gate.weight");
  const slice = Math.trunc(((up.dims[1] ?? 1) * type.typeSize) / type.blockSize);
  const perSlice = Math.trunc(slice * (hasGate ? 4.5 : 2));
  return Math.max(0, Math.floor(remaining / perSlice) * 4);
}

/** The smallest --vram-budget (bytes) under which the engine accepts an index of `vramCapacity` at context `ctx`. */
export function neededBudgetBytes(header: GgufHeader, vramCapacity: number, ctx: number): number {
  return vramCapacity + denseBytes(header) + kvCacheBytes(modelShape(header), ctx);
}

/** The host class's VRAM: its largest GPU's free memory when known, else its total (0 without a GPU). */
export function hostVramBytes(host: HostProfile): number {
  return Math.max(0, ...host.gpus.map((g) => g.memoryFreeBytes ?? g.memoryTotalBytes));
}
