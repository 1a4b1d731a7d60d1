/**
 * The GPU index file (`model.<host>.gpuidx`, placed as `<model>.generated.gpuidx`): its
 * names, and whether a GGUF header is an index the engine accepts for a model.
 */
import type { GgufHeader, GgufTensorInfo } from "../gguf/reader.js";
import { ggufNumber } from "./budget.js";

export const GPU_INDEX_ARCHITECTURE = "generic.gpu_index";
export const GENERATED_GPUIDX_SUFFIX = ".generated.gpuidx";

/** `models/powerinfer/<m>/model.<host>.gpuidx`: the precomputed index for a host class. */
export function hostIndexName(host: string): string {
  return `model.${host}.gpuidx`;
}

/** Why `header` is not an index the engine accepts for a model of `layers` x `ffn`, or []. */
export function validateGpuIndex(header: GgufHeader, expect: { layers: number; ffn: number }): string[] {
  const problems: string[] = [];
  if (header.magic !== "PWRI") problems.push(`magic is ${header.magic}, not PWRI`);
  const arch = header.kv.get("general.architecture");
  if (arch !== GPU_INDEX_ARCHITECTURE) problems.push(`general.architecture is ${JSON.stringify(arch ?? null)}, not ${GPU_INDEX_ARCHITECTURE}`);
  if (header.kvTypes.get("split.vram_capacity") !== "u64") problems.push("split.vram_capacity (u64) is missing");
  if (header.tensors.length !== 2 * expect.layers) problems.push(`${header.tensors.length} tensors, not 2 x ${expect.layers} layers`);
  const byName = new Map<string, GgufTensorInfo>(header.tensors.map((t) => [t.name, t]));
  for (let i = 0; i < expect.layers; i++) {
    const idx = byName.get(`blk.${i}.gpu_idx`);
    const bucket = byName.get(`blk.${i}.gpu_bucket`);
    if (!idx) problems.push(`blk.${i}.gpu_idx is missing`);
    else if (idx.dims.length !== 1 || idx.dims[0] !== expect.ffn) problems.push(`blk.${i}.gpu_idx has shape [${idx.dims.join(", ")}], not [${expect.ffn}]`);
    if (!bucket) problems.push(`blk.${i}.gpu_bucket is missing`);
    else if (bucket.dims.length !== 1 || bucket.dims[0]! > expect.ffn) problems.push(`blk.${i}.gpu_bucket has shape [${bucket.dims.join(", ")}]`);
  }
  return problems;
}

export function indexVramCapacity(header: GgufHeader): number | undefined {
  return ggufNumber(header.kv.get("split.vram_capacity"));
}
