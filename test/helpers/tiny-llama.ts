/**
 * A tiny dense llama GGUF that llama.cpp really runs: valid llama metadata, a SentencePiece
 * ("llama") vocabulary of byte tokens plus printable ASCII, and F32 weights from a seeded
 * PRNG, so every run of it generates the same text. The output rows of the control and
 * byte tokens are zero and every other row random, so greedy decoding (temperature 0)
 * picks printable text and never the end-of-text token: a request runs to its -n limit.
 */
import { gv, writeGguf, type GgufWriteSpec, type WTensor, type WValue } from "./gguf-writer.js";
import { prng } from "./prng.js";

export interface TinyLlamaShape {
  layers?: number;
  hidden?: number;
  ffn?: number;
  heads?: number;
  seed?: number;
}


/** <unk> <s> </s>, the 256 byte tokens, "▁" (SentencePiece's space), printable ASCII and a few words. */
export function tinyLlamaVocab(): { tokens: string[]; types: number[]; scores: number[]; firstText: number } {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types = [2, 3, 3]; // UNKNOWN, CONTROL, CONTROL
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(6); // BYTE
  }
  const firstText = tokens.length;
  const text = ["▁", ...Array.from({ length: 126 - 33 + 1 }, (_, i) => String.fromCharCode(33 + i)), "▁the", "▁cat", "▁sat", "▁on", "▁mat", "▁Hello", "▁world"];
  for (const t of text) {
    tokens.push(t);
    types.push(1); // NORMAL
  }
  // SentencePiece merges by score: longer pieces score higher, so "▁cat" wins over its letters.
  const scores = tokens.map((t, i) => (i < firstText ? 0 : t.length - i / 1000));
  return { tokens, types, scores, firstText };
}

export function tinyLlamaSpec(shape: TinyLlamaShape = {}): GgufWriteSpec {
  const { layers = 1, hidden = 64, ffn = 128, heads = 4, seed = 1 } = shape;
  const vocab = tinyLlamaVocab();
  const n = vocab.tokens.length;
  const random = prng(seed);
  const weights = (count: number, scale: number) => Float32Array.from({ length: count }, () => (random() * 2 - 1) * scale);
  const tensor = (name: string, dims: number[], data?: Float32Array): WTensor => ({ name, dims, type: 0, data: data ?? weights(dims[0]! * (dims[1] ?? 1), 1 / Math.sqrt(dims[0]!)) });
  const ones = (count: number) => new Float32Array(count).fill(1);

  const output = weights(hidden * n, 1 / Math.sqrt(hidden));
  output.fill(0, 0, hidden * vocab.firstText);
  const tensors: WTensor[] = [tensor("token_embd.weight", [hidden, n], weights(hidden * n, 1))];
  for (let i = 0; i < layers; i++) {
    tensors.push(
      tensor(`blk.${i}.attn_norm.weight`, [hidden], ones(hidden)),
      tensor(`blk.${i}.attn_q.weight`, [hidden, hidden]),
      tensor(`blk.${i}.attn_k.weight`, [hidden, hidden]),
      tensor(`blk.${i}.attn_v.weight`, [hidden, hidden]),
      tensor(`blk.${i}.attn_output.weight`, [hidden, hidden]),
      tensor(`blk.${i}.ffn_norm.weight`, [hidden], ones(hidden)),
      tensor(`blk.${i}.ffn_gate.weight`, [hidden, ffn]),
      tensor(`blk.${i}.ffn_up.weight`, [hidden, ffn]),
      tensor(`blk.${i}.ffn_down.weight`, [ffn, hidden]),
    );
  }
  tensors.push(tensor("output_norm.weight", [hidden], ones(hidden)), tensor("output.weight", [hidden, n], output));

  const kv: [string, WValue][] = [
    ["general.architecture", gv.str("llama")],
    ["general.name", gv.str("tiny-llama-test")],
    ["general.file_type", gv.u32(0)],
    ["llama.context_length", gv.u32(256)],
    ["llama.embedding_length", gv.u32(hidden)],
    ["llama.block_count", gv.u32(layers)],
    ["llama.feed_forward_length", gv.u32(ffn)],
    ["llama.rope.dimension_count", gv.u32(hidden / heads)],
    ["llama.attention.head_count", gv.u32(heads)],
    ["llama.attention.head_count_kv", gv.u32(heads)],
    ["llama.attention.layer_norm_rms_epsilon", gv.f32(1e-5)],
    ["llama.rope.freq_base", gv.f32(10000)],
    ["tokenizer.ggml.model", gv.str("llama")],
    ["tokenizer.ggml.tokens", gv.arr("str", vocab.tokens)],
    ["tokenizer.ggml.scores", gv.arr("f32", vocab.scores)],
    ["tokenizer.ggml.token_type", gv.arr("i32", vocab.types)],
    ["tokenizer.ggml.bos_token_id", gv.u32(1)],
    ["tokenizer.ggml.eos_token_id", gv.u32(2)],
    ["tokenizer.ggml.unknown_token_id", gv.u32(0)],
    ["tokenizer.ggml.add_bos_token", gv.bool(true)],
  ];
  return { magic: "GGUF", version: 3, kv, tensors };
}

/** Writes the model (a few hundred KiB) and returns its path. */
export function writeTinyLlama(path: string, shape?: TinyLlamaShape): string {
  writeGguf(path, tinyLlamaSpec(shape));
  return path;
}
