/**
 * The GPU split's arithmetic (pipeline/gpu-index/budget.ts) pinned to numbers worked out BY HAND from the
 * engine's own source, for the shapes users run: the offline demo model, a 7B ReLU-LLaMA (F16) and a
 * 40B ReLU-Falcon (Q4_0, grouped-query attention, no ffn_gate), plus the one solver invocation the
 * upstream docs print. Every expected value is a literal derived in the comment beside it; none is
 * computed by calling the product, so a wrong formula cannot agree with itself.
 *
 * Upstream: SJTU-IPADS/PowerInfer at the pinned commit d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8
 * (configs/engines/powerinfer.yaml), file llama.cpp unless another is named:
 * - L197-200   llama_set_vram_budget: `vram_budget_bytes = (size_t) (budget_gb * 1024 * 1024 * 1024)`.
 * - L654-677   get_offloading_level: ATTN (q/k/v/qkv/output, attn_norm, attn_norm_2), MLP_PRED (fc1/fc2),
 *              FFN_IO (ffn_norm), OUTPUT (output, output_norm) are offloaded; token_embd never; the FFN
 *              (ffn_up/gate/down/down_t) is what the split decides. The level is per tensor kind, so a
 *              norm's `.bias` goes with its `.weight`.
 * - L3048-3077 buffered_tensor_allocator::flush: each queued tensor's ggml_nbytes comes off the budget,
 *              level by level; all of them fitting is `tensor_offload_complete`.
 * - L3312-3345 the Falcon tensors a sparse model loads: attn_norm(+bias), attn_norm_2(+bias),
 *              attn_qkv {n_embd, n_embd + 2*n_embd_gqa}, attn_output, ffn_down_t, fc1, fc2, ffn_up.
 * - L1294-1304 n_gqa() = n_head/n_head_kv; n_embd_gqa() = n_embd/n_gqa().
 * - L3392-3420 llama_reserve_model_kv_cache: cache_size = n_embd_gqa * n_layer * n_ctx * ggml_type_size(F16 = 2),
 *              taken from the budget twice (K and V).
 * - L3113-3118 slice_size = ffn_up->ne[1] * type_size / blck_size; vram_bytes_per_slice = slice_size *
 *              (ffn_gate ? 4.5 : 2) (an int); neuron_cap = floor(remaining / vram_bytes_per_slice) * 4.
 * - L3128-3132 the solver gets `--capacity neuron_cap --vram-capacity <remaining bytes>`.
 * - L2816-2818 check_vram_allocable: a cached index is used iff its stored capacity <= the remaining bytes.
 * - ggml.c type_traits: F32 4 bytes, F16 2, Q4_0 18 bytes per 32, Q8_0 34 bytes per 32.
 * - docs/token_generation_performance_tips.md L32: `solver args: Namespace(..., neuron=13824,
 *   capacity=429432, layer=40, vram_capacity=13357166592, ...)` for ReluLLaMA-13B.
 */
import { describe, expect, it } from "vitest";
import { parseGgufHeader, type GgufHeader } from "../pipeline/gguf/reader.js";
import { denseBytes, kvCacheBytes, modelShape, neededBudgetBytes, neuronCapacity, remainingBytes } from "../pipeline/gpu-index/budget.js";
import { buildGguf, gv, powerInferModelSpec, type GgufWriteSpec, type WTensor } from "./helpers/gguf-writer.js";

const GiB = 2 ** 30;
const F32 = 0;
const F16 = 1;
const Q4_0 = 2;
const Q8_0 = 8;

/** A header as the engine would read it from a file of the spec's full size (data never built: the 40B is 23 GB). */
async function headerOf(spec: GgufWriteSpec): Promise<GgufHeader> {
  const built = buildGguf(spec, { data: false });
  return parseGgufHeader({
    name: "model.powerinfer.gguf",
    size: built.size,
    read(buffer, offset, length, position) {
      const n = Math.max(0, Math.min(length, built.size - position));
      buffer.fill(0, offset, offset + n);
      const header = built.bytes.subarray(Math.min(position, built.bytes.length), Math.min(position + n, built.bytes.length));
      buffer.set(header, offset);
      return Promise.resolve(n);
    },
  });
}

/** ReluFalcon-40B after `quantize ... Q4_0`: tiiuae/falcon-40b's shape, the sparse tensor list of L3312-3345. */
function falcon40bQ4Spec(): GgufWriteSpec {
  const [embd, layers, ffn, vocab, heads, headsKv, predictor] = [8192, 60, 32768, 65024, 128, 8, 1024];
  const embdGqa = embd / (heads / headsKv);
  const tensors: WTensor[] = [
    { name: "token_embd.weight", dims: [embd, vocab], type: Q4_0 },
    { name: "output_norm.weight", dims: [embd], type: F32 },
    { name: "output_norm.bias", dims: [embd], type: F32 },
    // quantize keeps Falcon's output.weight at Q8_0 (llama.cpp get_k_quant_type, L9030-9033).
    { name: "output.weight", dims: [embd, vocab], type: Q8_0 },
  ];
  for (let i = 0; i < layers; i++) {
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [embd], type: F32 },
      { name: `blk.${i}.attn_norm.bias`, dims: [embd], type: F32 },
      { name: `blk.${i}.attn_norm_2.weight`, dims: [embd], type: F32 },
      { name: `blk.${i}.attn_norm_2.bias`, dims: [embd], type: F32 },
      { name: `blk.${i}.attn_qkv.weight`, dims: [embd, embd + 2 * embdGqa], type: Q4_0 },
      { name: `blk.${i}.attn_output.weight`, dims: [embd, embd], type: Q4_0 },
      { name: `blk.${i}.ffn_down_t.weight`, dims: [embd, ffn], type: Q4_0 },
      { name: `blk.${i}.fc1.weight`, dims: [embd, predictor], type: Q4_0 },
      { name: `blk.${i}.fc2.weight`, dims: [predictor, ffn], type: Q4_0 },
      { name: `blk.${i}.ffn_up.weight`, dims: [embd, ffn], type: Q4_0 },
    );
  }
  return {
    magic: "PWRI",
    kv: [
      ["general.architecture", gv.str("falcon")],
      ["general.name", gv.str("Falcon")],
      ["falcon.context_length", gv.u32(2048)],
      ["falcon.tensor_data_layout", gv.str("jploski")],
      ["falcon.embedding_length", gv.u32(embd)],
      ["falcon.feed_forward_length", gv.u32(ffn)],
      ["falcon.block_count", gv.u32(layers)],
      ["falcon.attention.head_count", gv.u32(heads)],
      ["falcon.attention.head_count_kv", gv.u32(headsKv)],
      ["falcon.attention.layer_norm_epsilon", gv.f32(1e-5)],
      ["general.file_type", gv.u32(2)],
      ["powerinfer.sparse_threshold", gv.f32(0)],
    ],
    tensors,
  };
}

describe("GPU split arithmetic, by hand from the engine's formulas", () => {
  it("the demo model (tiny-relu-llama: 2 layers, n_embd 64, 4/4 heads, n_ff 256, vocab 512, predictor 32, F16) at -c 256 on gpu-box (24 GiB)", async () => {
    // The shape and types of reference/powerinfer-samples/main-run.stderr.log (the real engine loading the demo model).
    const header = await headerOf(powerInferModelSpec());
    const shape = modelShape(header);

    // Dense, per layer: attn_q/k/v/output 4 x 64*64*2 = 32768; attn_norm + ffn_norm 2 x 64*4 = 512;
    // fc1 64*32*2 = 4096; fc2 32*256*2 = 16384 -> 53760. x 2 layers = 107520;
    // + output 64*512*2 = 65536 + output_norm 64*4 = 256 -> 173312.
    expect(denseBytes(header)).toBe(173_312);
    // n_embd_gqa = 64 / (4/4) = 64. K: 64 * 2 layers * 256 ctx * 2 bytes = 65536; K + V = 131072.
    expect(kvCacheBytes(shape, 256)).toBe(131_072);
    // 24 GiB = 25769803776; - 173312 - 131072 = 25769499392.
    expect(remainingBytes(header, 24 * GiB, 256)).toBe(25_769_499_392);
    // slice = ffn_up.ne[1] 256 * 2 / 1 = 512; with ffn_gate x 4.5 = 2304;
    // floor(25769499392 / 2304) = floor(11184678.55...) = 11184678; x 4 = 44738712.
    expect(neuronCapacity(header, 25_769_499_392)).toBe(44_738_712);
    // The --vram-budget run passes for that index: 25769499392 + 173312 + 131072 = 25769803776 (24 GiB exactly).
    expect(neededBudgetBytes(header, 25_769_499_392, 256)).toBe(25_769_803_776);
  });

  it("a 7B ReLU-LLaMA (SparseLLM/ReluLLaMA-7B: 32 layers, n_embd 4096, 32/32 heads, n_ff 11008, vocab 32000; F16; predictor 1024 wide)", async () => {
    // The predictor's width is this test's choice (real ones vary by layer: the dense sum takes what the header says).
    const header = await headerOf(powerInferModelSpec({ layers: 32, hidden: 4096, ffn: 11008, vocab: 32000, predictor: 1024, heads: 32, headsKv: 32 }));
    const shape = modelShape(header);

    // Dense, per layer: attn_q/k/v/output 4 x 4096*4096*2 = 134217728; attn_norm + ffn_norm 2 x 4096*4 = 32768;
    // fc1 4096*1024*2 = 8388608; fc2 1024*11008*2 = 22544384 -> 165183488. x 32 = 5285871616;
    // + output 4096*32000*2 = 262144000 + output_norm 4096*4 = 16384 -> 5548032000.
    expect(denseBytes(header)).toBe(5_548_032_000);
    // n_embd_gqa = 4096 / (32/32) = 4096. At -c 512 (main's default): K = 4096 * 32 * 512 * 2 = 134217728; K + V = 268435456.
    expect(kvCacheBytes(shape, 512)).toBe(268_435_456);
    // At -c 2048: four times that, 1073741824.
    expect(kvCacheBytes(shape, 2048)).toBe(1_073_741_824);

    // A 24 GiB card at -c 512: 25769803776 - 5548032000 - 268435456 = 19953336320.
    expect(remainingBytes(header, 24 * GiB, 512)).toBe(19_953_336_320);
    // slice = 11008 * 2 / 1 = 22016; x 4.5 (ffn_gate) = 99072; floor(19953336320 / 99072) = floor(201402.37...) = 201402; x 4 = 805608.
    expect(neuronCapacity(header, 19_953_336_320)).toBe(805_608);

    // An 11 GiB card (2080 Ti) at -c 2048: 11811160064 - 5548032000 - 1073741824 = 5189386240;
    // floor(5189386240 / 99072) = floor(52379.8...) = 52379; x 4 = 209516.
    expect(remainingBytes(header, 11 * GiB, 2048)).toBe(5_189_386_240);
    expect(neuronCapacity(header, 5_189_386_240)).toBe(209_516);
    expect(neededBudgetBytes(header, 5_189_386_240, 2048)).toBe(11 * GiB);
  });

  it("a 40B ReLU-Falcon, Q4_0, grouped-query attention (60 layers, n_embd 8192, 128 heads / 8 KV heads, n_ff 32768, vocab 65024; no ffn_gate)", async () => {
    const header = await headerOf(falcon40bQ4Spec());
    const shape = modelShape(header);

    // Dense, per layer: attn_norm, attn_norm_2, each .weight and .bias: 4 x 8192*4 = 131072;
    // attn_qkv [8192, 8192 + 2*512] = 75497472 elements, Q4_0 / 32 * 18 = 42467328;
    // attn_output 8192*8192 = 67108864 / 32 * 18 = 37748736; fc1 8192*1024 / 32 * 18 = 4718592;
    // fc2 1024*32768 / 32 * 18 = 18874368 -> 103940096 (Falcon has no ffn_norm). x 60 = 6236405760;
    // + output 8192*65024 = 532676608, Q8_0 / 32 * 34 = 565968896; + output_norm .weight and .bias 2 x 32768 = 65536
    // -> 6802440192. (Leaving out the norms' biases and attn_norm_2 would be 60 x 98304 + 32768 = 5931008 bytes short,
    // and the index solved for that much more than the engine has left would be rejected and regenerated.)
    expect(denseBytes(header)).toBe(6_802_440_192);
    // n_gqa = 128 / 8 = 16; n_embd_gqa = 8192 / 16 = 512. At -c 512: K = 512 * 60 * 512 * 2 = 31457280; K + V = 62914560.
    expect(kvCacheBytes(shape, 512)).toBe(62_914_560);
    // A 24 GiB card (#40: Falcon-40B Q4 on a 24 GB GPU): 25769803776 - 6802440192 - 62914560 = 18904449024.
    expect(remainingBytes(header, 24 * GiB, 512)).toBe(18_904_449_024);
    // slice = ffn_up.ne[1] 32768 * 18 / 32 = 18432; no ffn_gate: x 2 = 36864;
    // 18904449024 / 36864 = 512816 exactly; x 4 = 2051264.
    expect(neuronCapacity(header, 18_904_449_024)).toBe(2_051_264);
    // One byte less and the floor drops a slice: floor(18904449023 / 36864) = 512815; x 4 = 2051260.
    expect(neuronCapacity(header, 18_904_449_023)).toBe(2_051_260);
    expect(neededBudgetBytes(header, 18_904_449_024, 512)).toBe(24 * GiB);
  });

  it("reproduces the solver invocation upstream's docs print for ReluLLaMA-13B (neuron 13824, vram_capacity 13357166592 -> capacity 429432)", async () => {
    // Only ffn_up's shape and type and whether ffn_gate exists enter the capacity (L3113-3118).
    const header = await headerOf({
      magic: "PWRI",
      kv: [["general.architecture", gv.str("llama")]],
      tensors: [
        { name: "blk.0.ffn_gate.weight", dims: [5120, 13824], type: F16 },
        { name: "blk.0.ffn_up.weight", dims: [5120, 13824], type: F16 },
      ],
    });
    // slice = 13824 * 2 = 27648; x 4.5 = 124416; floor(13357166592 / 124416) = floor(107358.91...) = 107358; x 4 = 429432.
    expect(neuronCapacity(header, 13_357_166_592)).toBe(429_432);
  });

  it("no split when the dense tensors and the KV cache take the whole budget", async () => {
    const header = await headerOf(falcon40bQ4Spec());
    // 6 GiB = 6442450944 < 6802440192 dense: the remainder is negative, 6442450944 - 6802440192 - 62914560 = -422903808.
    expect(remainingBytes(header, 6 * GiB, 512)).toBe(-422_903_808);
    expect(neuronCapacity(header, 36_863)).toBe(0);
  });
});
