// Benchmark: readGgufHeader on a large header: 1,000 tensors and 100 KVs plus the tokenizer arrays a real llama has
// (32,000 token strings, 32,000 f32 scores, 32,000 i32 token types), the data section a sparse file. Times the
// whole call (stat, open, chunked reads, parse, close), median of 50 runs after 5 warm-up runs. Prints a Markdown table.
//
// Usage: npx tsx bench/gguf-parse.ts
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { readGgufHeader } from "../pipeline/gguf/reader.js";
import { gv, writeGguf, type WTensor, type WValue } from "../test/helpers/gguf-writer.js";

const TENSORS = 1000;
const KVS = 100;
const VOCAB = 32_000;
const RUNS = 50;

const kv: [string, WValue][] = [
  ["general.architecture", gv.str("llama")],
  ["general.name", gv.str("bench-model")],
  ["llama.block_count", gv.u32(91)],
  ["general.file_type", gv.u32(1)],
];
const makers = [
  (i: number) => gv.u32(i),
  (i: number) => gv.f32(i / 7),
  (i: number) => gv.str(`value number ${i} `.repeat(1 + (i % 5))),
  (i: number) => gv.u64(BigInt(i) * 1_000_000_007n),
  (i: number) => gv.bool(i % 2 === 0),
  (i: number) => gv.arr("i32", [i, -i, i * 2]),
];
for (let i = kv.length; i < KVS; i++) kv.push([`bench.key_${i}`, makers[i % makers.length]!(i)]);
// token strings of realistic lengths (SentencePiece pieces: 1-16 bytes)
const tokens = Array.from({ length: VOCAB }, (_, i) => `▁t${i.toString(36)}`.slice(0, 1 + (i % 16)));
kv.push(
  ["tokenizer.ggml.tokens", gv.arr("str", tokens)],
  ["tokenizer.ggml.scores", gv.arr("f32", tokens.map((_, i) => -i / 10))],
  ["tokenizer.ggml.token_type", gv.arr("i32", tokens.map(() => 1))],
);
const tensors: WTensor[] = Array.from({ length: TENSORS }, (_, i) => ({ name: `blk.${Math.floor(i / 11)}.tensor_${i % 11}.weight`, dims: [4096, 64], type: 1 }));

const dir = mkdtempSync(join(tmpdir(), "ai-tools-bench-gguf-"));
try {
  const path = join(dir, "bench.powerinfer.gguf");
  const built = writeGguf(path, { magic: "PWRI", kv, tensors });
  for (let i = 0; i < 5; i++) await readGgufHeader(path);
  const times: number[] = [];
  let bytesRead = 0;
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    const header = await readGgufHeader(path);
    times.push(performance.now() - started);
    bytesRead = header.bytesRead;
    if (header.tensors.length !== TENSORS || header.kv.size !== KVS + 3) throw new Error("unexpected parse result");
  }
  times.sort((a, b) => a - b);
  const median = (times[RUNS / 2 - 1]! + times[RUNS / 2]!) / 2;
  const ms = (n: number) => `${n.toFixed(2)} ms`;
  const MiB = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;
  console.log(`Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? "unknown CPU"}), ${RUNS} runs after 5 warm-up runs\n`);
  console.log("| header | header bytes | bytes read | file size | median | min | max |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  console.log(
    `| ${TENSORS} tensors, ${KVS} KVs + 3 x ${VOCAB.toLocaleString("en")}-entry tokenizer arrays | ${MiB(built.headerBytes)} | ${MiB(bytesRead)} | ${MiB(built.size)} | ${ms(median)} | ${ms(times[0]!)} | ${ms(times.at(-1)!)} |`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
