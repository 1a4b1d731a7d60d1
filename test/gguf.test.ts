/**
 * The GGUF header reader and the PowerInfer checks: round trips through the test writer (every value type, GGUF and
 * PWRI, v2 and v3), the converter's silent failures, hostile headers (each with its code), and a seeded fuzz run over
 * truncations and byte mutations that must only ever parse or throw a GgufError, quickly and with small allocations.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PipelineError } from "../pipeline/core/errors.js";
import {
  bufferSource,
  GGML_TYPES,
  ggmlTensorBytes,
  GGUF_DEFAULT_LIMITS,
  GGUF_READ_CHUNK,
  GgufError,
  parseGgufHeader,
  readGgufHeader,
  type GgufErrorCode,
  type GgufHeader,
  type GgufReadOptions,
  type GgufSource,
} from "../pipeline/gguf/reader.js";
import { formatSummary, summarizeGguf, validatePowerInferGguf } from "../pipeline/gguf/validate.js";
import { buildGguf, gv, powerInferModelSpec, tensorBytes, writeGguf, type GgufWriteSpec, type WValue } from "./helpers/gguf-writer.js";
import { prng } from "./helpers/prng.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ai-tools-gguf-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function file(spec: GgufWriteSpec): string {
  const path = join(dir, `f${fileNo++}.gguf`);
  writeGguf(path, spec);
  return path;
}

const parse = (bytes: Uint8Array, options?: GgufReadOptions) => parseGgufHeader(bufferSource(bytes, "test.gguf"), options);

async function codeOf(promise: Promise<unknown>): Promise<GgufErrorCode | "parsed"> {
  try {
    await promise;
    return "parsed";
  } catch (error) {
    if (!(error instanceof GgufError)) throw error;
    return error.code;
  }
}

async function failure(promise: Promise<unknown>): Promise<GgufError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GgufError);
  return error as GgufError;
}

const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

/** One KV of every scalar type, small arrays of every item type, and arrays that are summarized. */
const EVERY_TYPE: [string, WValue][] = [
  ["t.u8", gv.u8(255)],
  ["t.i8", gv.i8(-128)],
  ["t.u16", gv.u16(65535)],
  ["t.i16", gv.i16(-32768)],
  ["t.u32", gv.u32(4294967295)],
  ["t.i32", gv.i32(-2147483648)],
  ["t.f32", gv.f32(0.1)],
  ["t.bool", gv.bool(true)],
  ["t.bool0", gv.bool(false)],
  ["t.str", gv.str("naïve ✓ \u0000 end")],
  ["t.empty", gv.str("")],
  ["t.u64", gv.u64(2n ** 64n - 1n)],
  ["t.i64", gv.i64(-(2n ** 63n))],
  ["t.f64", gv.f64(Math.PI)],
  ["a.u8", gv.arr("u8", [0, 1, 255])],
  ["a.i8", gv.arr("i8", [-1, 127])],
  ["a.u16", gv.arr("u16", [1, 65535])],
  ["a.i16", gv.arr("i16", [-2, 3])],
  ["a.u32", gv.arr("u32", [7])],
  ["a.i32", gv.arr("i32", [-7, 8])],
  ["a.f32", gv.arr("f32", [1.5, -0.25])],
  ["a.bool", gv.arr("bool", [true, false])],
  ["a.str", gv.arr("str", ["x", "", "yz"])],
  ["a.u64", gv.arr("u64", [2n ** 64n - 1n])],
  ["a.i64", gv.arr("i64", [-1n])],
  ["a.f64", gv.arr("f64", [1e300])],
  ["a.empty", gv.arr("u32", [])],
  ["big.u32", gv.arr("u32", Array.from({ length: 100 }, (_, i) => i))],
  ["big.str", gv.arr("str", Array.from({ length: 65 }, (_, i) => `s${i}`))],
  ["tokenizer.ggml.merges", gv.arr("str", ["a b", "c d"])],
  ["general.alignment", gv.u32(64)],
];

/** A tensor of each known type, dims a whole number of blocks. */
const EVERY_TENSOR = [...GGML_TYPES].map(([type, info], i) => ({ name: `t${i}.${info.name}`, dims: [info.blockSize * 2, 3, 1 + (i % 2)], type }));

describe("readGgufHeader round trip", () => {
  for (const magic of ["GGUF", "PWRI"] as const) {
    for (const version of [2, 3] as const) {
      it(`reads every value type and tensor type (${magic} v${version})`, async () => {
        const spec: GgufWriteSpec = { magic, version, kv: EVERY_TYPE, tensors: EVERY_TENSOR };
        const built = buildGguf(spec);
        const h = await readGgufHeader(file(spec));
        expect(h.magic).toBe(magic);
        expect(h.version).toBe(version);
        expect([...h.kv.keys()]).toEqual(EVERY_TYPE.map(([k]) => k));
        expect(Object.fromEntries(h.kv)).toEqual({
          "t.u8": 255,
          "t.i8": -128,
          "t.u16": 65535,
          "t.i16": -32768,
          "t.u32": 4294967295,
          "t.i32": -2147483648,
          "t.f32": Math.fround(0.1),
          "t.bool": true,
          "t.bool0": false,
          "t.str": "naïve ✓ \u0000 end",
          "t.empty": "",
          "t.u64": 2n ** 64n - 1n,
          "t.i64": -(2n ** 63n),
          "t.f64": Math.PI,
          "a.u8": [0, 1, 255],
          "a.i8": [-1, 127],
          "a.u16": [1, 65535],
          "a.i16": [-2, 3],
          "a.u32": [7],
          "a.i32": [-7, 8],
          "a.f32": [1.5, -0.25],
          "a.bool": [true, false],
          "a.str": ["x", "", "yz"],
          "a.u64": [2n ** 64n - 1n],
          "a.i64": [-1n],
          "a.f64": [1e300],
          "a.empty": [],
          "big.u32": { type: "array", itemType: "u32", length: 100 },
          "big.str": { type: "array", itemType: "str", length: 65 },
          "tokenizer.ggml.merges": { type: "array", itemType: "str", length: 2 },
          "general.alignment": 64,
        });
        expect(h.kvTypes.get("t.u64")).toBe("u64");
        expect(h.kvTypes.get("t.str")).toBe("str");
        expect(h.kvTypes.get("a.bool")).toBe("arr[bool]");
        expect(h.kvTypes.get("big.str")).toBe("arr[str]");
        expect(h.alignment).toBe(64);
        expect(h.headerBytes).toBe(built.headerBytes);
        expect(h.dataOffset).toBe(built.dataOffset);
        expect(h.dataOffset % 64).toBe(0);
        expect(h.fileSize).toBe(built.size);
        let offset = 0;
        expect(h.tensors).toHaveLength(EVERY_TENSOR.length);
        for (const [i, t] of h.tensors.entries()) {
          const w = EVERY_TENSOR[i]!;
          const bytes = Number(tensorBytes(w.dims, w.type));
          expect(t).toEqual({ name: w.name, dims: w.dims, type: w.type, typeName: GGML_TYPES.get(w.type)!.name, offset, byteSize: bytes });
          expect(ggmlTensorBytes(t.dims, t.type)).toBe(bytes);
          offset = Math.ceil((offset + bytes) / 64) * 64;
        }
      });
    }
  }

  it("keeps the whole array when asked to, except tokenizer arrays", async () => {
    const h = await parse(buildGguf({ kv: EVERY_TYPE }).bytes, { keepArrayItems: 1000 });
    expect(h.kv.get("big.u32")).toHaveLength(100);
    expect(h.kv.get("tokenizer.ggml.merges")).toEqual({ type: "array", itemType: "str", length: 2 });
  });

  it("reads only the header of a large file", async () => {
    const spec = powerInferModelSpec({ layers: 4, hidden: 4096, ffn: 11008, vocab: 32000, predictor: 1024 });
    const path = file(spec);
    const h = await readGgufHeader(path);
    expect(h.fileSize).toBeGreaterThan(1e9); // sparse file
    expect(h.kv.get("tokenizer.ggml.tokens")).toEqual({ type: "array", itemType: "str", length: 32000 });
    expect(h.headerBytes).toBeGreaterThan(GGUF_READ_CHUNK); // the 32,000-token vocabulary spans chunks
    // at most one chunk past the header (strings in summarized arrays may even be skipped unread)
    expect(h.bytesRead).toBeLessThanOrEqual(h.headerBytes + GGUF_READ_CHUNK);
  });

  it("matches the pinned PowerInfer's loader output for its tiny sample model", async () => {
    // main-run.stderr.log: 19 KVs, 25 tensors (5 f32, 20 f16), "model size = 0.42 MiB", "mostly F16"
    const h = await readGgufHeader(file(powerInferModelSpec()));
    expect(h.kv.size).toBe(19);
    expect(h.tensors).toHaveLength(25);
    expect(h.tensors[7]).toMatchObject({ name: "blk.0.ffn_down_t.weight", dims: [64, 256], typeName: "F16" });
    expect(h.tensors[24]).toMatchObject({ name: "blk.1.fc2.weight", dims: [32, 256], typeName: "F16" });
    const summary = summarizeGguf(h);
    expect(summary).toEqual({
      magic: "PWRI",
      version: 3,
      sparse: true,
      architecture: "llama",
      name: "hf-model",
      blockCount: 2,
      fileType: 1,
      fileTypeName: "F16",
      kvCount: 19,
      tensorCount: 25,
      tensorTypes: { F16: 20, F32: 5 },
      predictorLayers: 2,
      sparseThreshold: 0,
      vocabSize: 512,
      tensorBytes: 435_456,
      fileSize: h.fileSize,
    });
    expect((summary.tensorBytes / 2 ** 20).toFixed(2)).toBe("0.42");
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary);
    const text = formatSummary(summary).join("\n");
    expect(text).toContain("GGUF v3, magic PWRI (PowerInfer sparse)");
    expect(text).toContain("hf-model, llama, 2 blocks");
    expect(text).toContain("F16 (1)");
    expect(text).toContain("25 (20 F16, 5 F32), 425.3 KiB");
    expect(text).toContain("2 of 2 layers, sparse threshold 0");
    expect(validatePowerInferGguf(h, { sparse: true, architecture: "llama", blockCount: 2, fileType: 1 })).toEqual([]);
  });

  it("summarizes an f32 threshold as its shortest decimal", async () => {
    const summary = summarizeGguf(await parse(buildGguf(powerInferModelSpec({ sparseThreshold: 0.7 })).bytes));
    expect(summary.sparseThreshold).toBe(0.7);
  });
});

describe("validatePowerInferGguf", () => {
  const read = (spec: GgufWriteSpec) => parse(buildGguf(spec).bytes);
  const sparseLlama = { sparse: true, architecture: "llama", blockCount: 2, fileType: 1 };

  it("accepts dense and quantized models that are what was asked for", async () => {
    expect(validatePowerInferGguf(await read(powerInferModelSpec({ sparse: false })), { ...sparseLlama, sparse: false })).toEqual([]);
    expect(validatePowerInferGguf(await read(powerInferModelSpec({ fileType: 2 })), { ...sparseLlama, fileType: 2 })).toEqual([]);
    expect(validatePowerInferGguf(await read(powerInferModelSpec({ layers: 3, architecture: "bamboo" })), { ...sparseLlama, architecture: "bamboo", blockCount: 3 })).toEqual([]);
  });

  it("reports a missing predictor layer (converts fine, fails at load)", async () => {
    const problems = validatePowerInferGguf(await read(powerInferModelSpec({ layers: 4, skipPredictorLayers: [1, 3] })), { ...sparseLlama, blockCount: 4 });
    expect(problems).toEqual([
      "predictor tensors missing for 2 of 4 layers (1, 3): blk.1.fc1.weight, blk.1.fc2.weight, blk.3.fc1.weight, blk.3.fc2.weight",
      "43 tensors, expected 47 (3 + 4 blocks x 11 including the 2 predictor tensors)",
    ]);
  });

  it("reports a wrong block count", async () => {
    const problems = validatePowerInferGguf(await read(powerInferModelSpec()), { ...sparseLlama, blockCount: 3 });
    expect(problems[0]).toBe("llama.block_count is 2, expected 3");
    expect(problems).toContain("25 tensors, expected 36 (3 + 3 blocks x 11 including the 2 predictor tensors)");
    expect(problems.join("\n")).toContain("predictor tensors missing for 1 of 3 layers (2)");
    expect(problems.join("\n")).toContain("tensors missing: blk.2.attn_norm.weight");
  });

  it("reports predictor layers past the last block", async () => {
    const problems = validatePowerInferGguf(await read(powerInferModelSpec({ layers: 3 })), sparseLlama);
    expect(problems).toContain("predictor tensors for layers past the last block (1): 2");
  });

  it("reports the wrong magic both ways", async () => {
    const dense = await read(powerInferModelSpec({ sparse: false }));
    expect(validatePowerInferGguf(dense, sparseLlama)[0]).toMatch(/^magic is "GGUF", expected "PWRI": this is a dense GGUF/);
    const sparseAsDense = validatePowerInferGguf(await read(powerInferModelSpec()), { ...sparseLlama, sparse: false });
    expect(sparseAsDense[0]).toBe('magic is "PWRI", expected "GGUF" for a dense model');
    expect(sparseAsDense).toContain("a dense model has predictor tensors (blk.N.fc1/fc2) for 2 layers");
    // a PWRI magic on a file without predictors (the converter's dispatch exiting 0 with the wrong child)
    const noPredictor = await read({ ...powerInferModelSpec({ sparse: false }), magic: "PWRI" });
    expect(validatePowerInferGguf(noPredictor, sparseLlama)[0]).toMatch(/^predictor tensors missing for 2 of 2 layers/);
  });

  it("reports the wrong file type and architecture", async () => {
    const f32 = await read(powerInferModelSpec({ fileType: 0 }));
    expect(validatePowerInferGguf(f32, sparseLlama)).toEqual(["general.file_type is 0 (F32), expected 1 (F16)"]);
    expect(validatePowerInferGguf(f32, { sparse: true, architecture: "llama", blockCount: 2 })).toEqual([]); // fileType optional
    const noType = await read({ ...powerInferModelSpec(), kv: powerInferModelSpec().kv!.filter(([k]) => k !== "general.file_type") });
    expect(validatePowerInferGguf(noType, sparseLlama)).toEqual(["general.file_type is missing, expected 1 (F16)"]);
    const bamboo = await read(powerInferModelSpec({ architecture: "bamboo" }));
    expect(validatePowerInferGguf(bamboo, sparseLlama)).toEqual(['general.architecture is "bamboo", expected "llama"', "llama.block_count is missing, expected 2"]);
  });

  it("skips the layout check for architectures without a known layout", async () => {
    const h = await read({ magic: "PWRI", kv: [["general.architecture", gv.str("falcon")], ["falcon.block_count", gv.u64(1n)]], tensors: [{ name: "blk.0.fc1.weight", dims: [4] }, { name: "blk.0.fc2.weight", dims: [4] }] });
    expect(validatePowerInferGguf(h, { sparse: true, architecture: "falcon", blockCount: 1 })).toEqual([]);
    expect(summarizeGguf(h)).toMatchObject({ blockCount: 1, fileType: null, vocabSize: null, predictorLayers: 1, sparseThreshold: null });
    expect(formatSummary(summarizeGguf(h)).join("\n")).toContain("(no general.file_type)");
  });
});

describe("hostile and damaged headers", () => {
  const minimal = (extra: Partial<GgufWriteSpec> = {}): Buffer => buildGguf({ kv: [["k", gv.u32(1)]], tensors: [{ name: "t", dims: [8] }], ...extra }).bytes;
  const withValue = (value: WValue) => buildGguf({ kv: [["k", value]] }).bytes;

  it.each<[string, () => Buffer, GgufErrorCode, RegExp]>([
    ["an empty file", () => Buffer.alloc(0), "E_GGUF_TRUNCATED", /empty/],
    ["3 bytes", () => Buffer.from("GGU"), "E_GGUF_TRUNCATED", /magic needs 4 bytes/],
    ["a legacy GGJT file", () => Buffer.concat([Buffer.from("tjgg"), minimal().subarray(4)]), "E_GGUF_MAGIC", /legacy GGML/],
    ["binary garbage", () => Buffer.from([0, 1, 2, 3, 4, 5, 6, 7]), "E_GGUF_MAGIC", /magic 0x00010203/],
    ["GGUF v1", () => minimal({ version: 1 }), "E_GGUF_VERSION", /v1/],
    ["GGUF v4", () => minimal({ version: 4 }), "E_GGUF_VERSION", /version 4/],
    ["a big-endian file", () => minimal({ version: 0x03000000 }), "E_GGUF_VERSION", /big-endian GGUF v3/],
    ["2^60 tensors", () => minimal({ tensorCount: 2n ** 60n }), "E_GGUF_LIMIT", /maxTensorCount/],
    ["2^64-1 KVs", () => minimal({ kvCount: 2n ** 64n - 1n }), "E_GGUF_LIMIT", /maxKvCount/],
    ["more KVs than the file can hold", () => minimal({ kvCount: 10_000n }), "E_GGUF_TRUNCATED", /10000 KVs/],
    ["a key 2^60 bytes long", () => Buffer.concat([minimal().subarray(0, 24), u64(2n ** 60n), Buffer.alloc(64)]), "E_GGUF_LIMIT", /key length 1152921504606846976 is over/],
    ["a key longer than the file", () => Buffer.concat([minimal().subarray(0, 24), u64(1000n), Buffer.alloc(40)]), "E_GGUF_TRUNCATED", /KV 0: key needs 1000 bytes but the file ends 40 bytes later/],
    ["an unknown value type", () => withValue(gv.raw(13, u32(0))), "E_GGUF_INVALID", /unknown value type 13/],
    ["value type 2^32-1", () => withValue(gv.raw(0xffffffff, u32(0))), "E_GGUF_INVALID", /unknown value type 4294967295/],
    ["an unknown array item type", () => withValue(gv.raw(9, Buffer.concat([u32(77), u64(1n), u32(0)]))), "E_GGUF_INVALID", /unknown array item type 77/],
    ["a nested array", () => withValue(gv.arr("arr", [gv.arr("u8", [1])])), "E_GGUF_INVALID", /nested arrays/],
    ["an array of 2^40 items", () => withValue(gv.raw(9, Buffer.concat([u32(4), u64(2n ** 40n)]))), "E_GGUF_LIMIT", /maxArrayLength/],
    ["an array longer than the file", () => withValue(gv.raw(9, Buffer.concat([u32(10), u64(1_000_000n), u64(0n)]))), "E_GGUF_TRUNCATED", /array of 1000000 u64 items/],
    ["a string item 2^62 bytes long", () => withValue(gv.raw(9, Buffer.concat([u32(8), u64(1000n), u64(2n ** 62n)]))), "E_GGUF_TRUNCATED", /array of 1000 str items/],
    ["a huge string in a summarized array", () => withValue(gv.raw(9, Buffer.concat([u32(8), u64(70n), u64(2n ** 62n), Buffer.alloc(70 * 8)]))), "E_GGUF_LIMIT", /array item 0: string length/],
    ["a bool that is 2", () => withValue(gv.raw(7, Buffer.from([2]))), "E_GGUF_INVALID", /bool value 2/],
    ["a duplicate key", () => buildGguf({ kv: [["general.name", gv.str("a")], ["general.name", gv.str("b")]] }).bytes, "E_GGUF_INVALID", /KV 1 "general.name": duplicate key/],
    ["a duplicate tensor name", () => buildGguf({ tensors: [{ name: "w", dims: [8] }, { name: "w", dims: [8] }] }).bytes, "E_GGUF_INVALID", /tensor 1 "w": duplicate tensor name/],
    ["5 dimensions", () => minimal({ tensors: [{ name: "t", dims: [1, 1, 1, 1, 1] }] }), "E_GGUF_LIMIT", /5 dimensions.*maxDims/],
    ["2^32-1 dimensions", () => Buffer.concat([Buffer.from("PWRI"), u32(3), u64(1n), u64(0n), u64(1n), Buffer.from("t"), u32(0xffffffff), Buffer.alloc(64)]), "E_GGUF_LIMIT", /tensor 0 "t": 4294967295 dimensions/],
    ["a dimension over 2^53", () => minimal({ tensors: [{ name: "t", dims: [2n ** 60n] }] }), "E_GGUF_LIMIT", /dimension 0 is 1152921504606846976, over 2\^53/],
    ["removed tensor type 4 (Q4_2)", () => minimal({ tensors: [{ name: "t", dims: [32], type: 4 }] }), "E_GGUF_INVALID", /unknown ggml tensor type 4/],
    ["tensor type 30", () => minimal({ tensors: [{ name: "t", dims: [32], type: 30 }] }), "E_GGUF_INVALID", /unknown ggml tensor type 30/],
    ["a Q4_0 row that is not whole blocks", () => minimal({ tensors: [{ name: "t", dims: [48, 2], type: 2 }] }), "E_GGUF_INVALID", /block size 32/],
    ["an unaligned tensor offset", () => minimal({ tensors: [{ name: "t", dims: [8], offset: 4 }] }), "E_GGUF_INVALID", /offset 4 is not a multiple of the alignment 32/],
    ["a tensor offset past EOF", () => minimal({ tensors: [{ name: "t", dims: [8], offset: 2n ** 63n }] }), "E_GGUF_TRUNCATED", /data offset 9223372036854775808\) ends past the end of the file/],
    ["a tensor larger than the file", () => minimal({ tensors: [{ name: "t", dims: [2n ** 40n, 2n ** 12n] }] }), "E_GGUF_TRUNCATED", /"t".*past the end of the file/],
    ["tensor data cut short", () => minimal({ tensors: [{ name: "t", dims: [1024] }] }).subarray(0, 100), "E_GGUF_TRUNCATED", /ends at byte 4192, past the end of the file \(100 bytes\)/],
    ["overlapping tensors", () => minimal({ tensors: [{ name: "a", dims: [16] }, { name: "b", dims: [16], offset: 32 }] }), "E_GGUF_INVALID", /"a" and "b" overlap/],
    ["alignment 0", () => minimal({ kv: [["general.alignment", gv.u32(0)]], alignment: 32 }), "E_GGUF_INVALID", /general.alignment must be a u32 power of two, got u32 0/],
    ["alignment 48", () => minimal({ kv: [["general.alignment", gv.u32(48)]] }), "E_GGUF_INVALID", /power of two/],
    ["alignment as a u64", () => minimal({ kv: [["general.alignment", gv.u64(32n)]] }), "E_GGUF_INVALID", /got u64 32/],
  ])("rejects %s", async (_, bytes, code, message) => {
    const error = await failure(parse(bytes()));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/^test\.gguf: /);
    expect(error).toBeInstanceOf(PipelineError);
  });

  it("reports where in the file the problem is", async () => {
    const error = await failure(parse(buildGguf({ kv: [["a", gv.u8(1)], ["b", gv.raw(13, Buffer.alloc(0))]] }).bytes));
    // magic 4 + version 4 + counts 16 + "a" (8 + 1) + type 4 + u8 1 + "b" (8 + 1) = 47
    expect(error.offset).toBe(47);
    expect(error.message).toBe('test.gguf: KV 1 "b": unknown value type 13 (at byte 47)');
  });

  it("applies limits given in the options", async () => {
    const spec = powerInferModelSpec();
    const bytes = buildGguf(spec).bytes;
    expect(await codeOf(parse(bytes, { limits: { maxKvCount: 18 } }))).toBe("E_GGUF_LIMIT");
    expect(await codeOf(parse(bytes, { limits: { maxTensorCount: 24 } }))).toBe("E_GGUF_LIMIT");
    expect(await codeOf(parse(bytes, { limits: { maxArrayLength: 511 } }))).toBe("E_GGUF_LIMIT");
    expect(await codeOf(parse(bytes, { limits: { maxStringLength: 19 } }))).toBe("E_GGUF_LIMIT"); // "general.architecture" is 20
    expect(await codeOf(parse(bytes, { limits: { maxDims: 1 } }))).toBe("E_GGUF_LIMIT");
    const header = await failure(parse(bytes, { limits: { maxHeaderBytes: 1000 } }));
    expect(header.code).toBe("E_GGUF_LIMIT");
    expect(header.message).toMatch(/past 1000 bytes \(limit maxHeaderBytes\)/);
    expect(await codeOf(parse(bytes, { limits: { ...GGUF_DEFAULT_LIMITS } }))).toBe("parsed");
  });

  it("rejects a 2^60-byte string before allocating or reading anything large", async () => {
    const bytes = Buffer.concat([buildGguf({ kv: [["k", gv.str("x")]] }).bytes.subarray(0, 24), u64(2n ** 60n), Buffer.alloc(4 << 20)]);
    const present = Buffer.concat([bytes.subarray(0, 24), u64(900_000n), Buffer.alloc(900_000)]);
    const base = bufferSource(bytes, "huge.gguf");
    const requests: number[] = [];
    const source: GgufSource = { ...base, read: (b, o, length, p) => (requests.push(length), base.read(b, o, length, p)) };
    const alloc = vi.spyOn(Buffer, "allocUnsafe");
    try {
      expect(await codeOf(parseGgufHeader(source))).toBe("E_GGUF_LIMIT");
      // within the default limit (1 MiB) but the source really has the bytes: read, in one bounded allocation
      expect(await codeOf(parse(present))).toBe("E_GGUF_TRUNCATED"); // a value type is missing after the key
      const sizes = alloc.mock.calls.map(([size]) => size);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(900_000);
      expect(sizes.filter((s) => s > GGUF_READ_CHUNK)).toHaveLength(1);
    } finally {
      alloc.mockRestore();
    }
    expect(Math.max(...requests)).toBeLessThanOrEqual(GGUF_READ_CHUNK);
  });

  it("turns file-system problems into E_GGUF_IO", async () => {
    expect((await failure(readGgufHeader(join(dir, "missing.gguf")))).message).toMatch(/cannot read the file: ENOENT/);
    mkdirSync(join(dir, "folder.gguf"));
    expect((await failure(readGgufHeader(join(dir, "folder.gguf")))).message).toMatch(/not a regular file/);
    const failing: GgufSource = { name: "flaky", size: 100, read: () => Promise.reject(new Error("EIO")) };
    const error = await failure(parseGgufHeader(failing));
    expect(error.code).toBe("E_GGUF_IO");
    expect(error.message).toBe("flaky: read failed: EIO (at byte 0)");
    writeFileSync(join(dir, "empty.gguf"), "");
    expect(await codeOf(readGgufHeader(join(dir, "empty.gguf")))).toBe("E_GGUF_TRUNCATED");
  });
});


describe("fuzz", () => {
  // A sample-shaped model plus every value type: ~4 KiB of header, small data.
  const spec = powerInferModelSpec({ hidden: 32, ffn: 64, vocab: 300, predictor: 32 });
  const built = buildGguf({ ...spec, kv: [...spec.kv!, ...EVERY_TYPE.filter(([k]) => k !== "general.alignment")] });
  const bytes = built.bytes;
  const outcome = (error: unknown): GgufErrorCode => {
    if (error instanceof GgufError) return error.code;
    throw new Error(`not a GgufError: ${String(error)}`, { cause: error });
  };

  it("throws E_GGUF_TRUNCATED for every truncation", async () => {
    const started = performance.now();
    const lengths = [...Array.from({ length: built.dataOffset + 1 }, (_, i) => i)];
    const random = prng(1);
    for (let i = 0; i < 500; i++) lengths.push(built.dataOffset + Math.floor(random() * (bytes.length - built.dataOffset)));
    let parsed = 0;
    for (const n of lengths) {
      try {
        const h: GgufHeader = await parse(bytes.subarray(0, n));
        expect(h.tensors.every((t) => h.dataOffset + t.offset + t.byteSize <= n)).toBe(true);
        parsed++;
      } catch (error) {
        expect(outcome(error)).toBe("E_GGUF_TRUNCATED");
      }
    }
    expect(parsed).toBeLessThan(200); // only cuts in the last tensor's padding parse
    expect(performance.now() - started).toBeLessThan(30_000); // a hang guard, not a timing (those are in bench/gguf-parse.ts)
  });

  it("parses or throws a GgufError for thousands of seeded mutations, quickly and with small allocations", async () => {
    const random = prng(0x5eed);
    const interesting = [0n, 1n, 4n, 8n, 13n, 0x7fn, 0xffn, 0x7fffffffn, 0xffffffffn, 2n ** 32n, 2n ** 53n, 2n ** 60n, 2n ** 63n, 2n ** 64n - 1n];
    const header = built.headerBytes;
    const codes = new Map<string, number>();
    const alloc = vi.spyOn(Buffer, "allocUnsafe");
    const started = performance.now();
    const N = 5000;
    const pristine = Buffer.from(bytes.subarray(0, header));
    try {
      for (let i = 0; i < N; i++) {
        const kind = random();
        if (kind < 0.5) {
          // 1-4 random bytes
          for (let k = 1 + Math.floor(random() * 4); k > 0; k--) bytes[Math.floor(random() * header)] = Math.floor(random() * 256);
        } else if (kind < 0.9) {
          // an interesting u64 or u32 at any position (counts, lengths, types, dims, offsets)
          const at = Math.floor(random() * (header - 8));
          const value = interesting[Math.floor(random() * interesting.length)]!;
          if (random() < 0.5) bytes.writeBigUInt64LE(value, at);
          else bytes.writeUInt32LE(Number(value & 0xffffffffn), at);
        } else {
          // a run of random bytes
          const at = Math.floor(random() * header);
          for (let k = at; k < Math.min(header, at + 1 + Math.floor(random() * 64)); k++) bytes[k] = Math.floor(random() * 256);
        }
        const cut = random() < 0.1 ? Math.floor(random() * bytes.length) : bytes.length;
        let code: string;
        try {
          await parse(bytes.subarray(0, cut));
          code = "parsed";
        } catch (error) {
          code = outcome(error);
        }
        codes.set(code, (codes.get(code) ?? 0) + 1);
        pristine.copy(bytes);
      }
    } finally {
      alloc.mockRestore();
    }
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(30_000); // a hang guard only: a busy 2-core CI machine takes 2-8 s
    // every kind of outcome happened, so the mutations reached every part of the parser
    expect([...codes.keys()].sort()).toEqual(["E_GGUF_INVALID", "E_GGUF_LIMIT", "E_GGUF_MAGIC", "E_GGUF_TRUNCATED", "E_GGUF_VERSION", "parsed"]);
    expect([...codes.values()].reduce((a, b) => a + b)).toBe(N);
    // no single allocation above one chunk: lengths are checked against the file before anything is read
    const largest = Math.max(...alloc.mock.calls.map(([size]) => size));
    expect(largest).toBeLessThanOrEqual(GGUF_READ_CHUNK);
  });
});
