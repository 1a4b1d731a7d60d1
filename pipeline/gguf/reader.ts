/**
 * Our own GGUF header reader, not `@huggingface/gguf` (tried 0.4.6): its `gguf()` throws "not a valid gguf
 * file: not starting with GGUF magic number" on PowerInfer's `PWRI` files with no option to accept another magic,
 * and on local files it reads into a zero-filled 2 MB window and never checks for EOF, so a truncated file parses
 * "successfully" (a 20-byte prefix gave a KV "" = 0 and a tensor ""); its limits are fixed module constants, its
 * errors untyped, and it reads tokenizer arrays whole and never checks tensor offsets against the file size.
 */
import { open, stat } from "node:fs/promises";
import { GgufError, type GgufErrorCode } from "./errors.js";

export { GgufError, type GgufErrorCode } from "./errors.js";

// ---- limits -------------------------------------------------------------------------------------------------------

/** Real models have ~20-60 KVs. */
export const GGUF_MAX_KV_COUNT = 16_384;
/** A 70B sparse llama has 80 x 11 + 3 = 883 tensors. */
export const GGUF_MAX_TENSOR_COUNT = 65_536;
/** Keys, string values, tensor names, each array item (chat templates are the longest real strings, ~10 KiB). */
export const GGUF_MAX_STRING_LENGTH = 1 << 20;
/** Items in one array (vocabularies and merges reach a few hundred thousand). */
export const GGUF_MAX_ARRAY_LENGTH = 1 << 22;
/** Magic to the end of the tensor infos (a 128k-token vocabulary plus merges is ~10 MiB). */
export const GGUF_MAX_HEADER_BYTES = 64 << 20;
/** ggml's GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;

export interface GgufLimits {
  maxKvCount: number;
  maxTensorCount: number;
  maxStringLength: number;
  maxArrayLength: number;
  maxHeaderBytes: number;
  maxDims: number;
}

export const GGUF_DEFAULT_LIMITS: Readonly<GgufLimits> = Object.freeze({
  maxKvCount: GGUF_MAX_KV_COUNT,
  maxTensorCount: GGUF_MAX_TENSOR_COUNT,
  maxStringLength: GGUF_MAX_STRING_LENGTH,
  maxArrayLength: GGUF_MAX_ARRAY_LENGTH,
  maxHeaderBytes: GGUF_MAX_HEADER_BYTES,
  maxDims: GGUF_MAX_DIMS,
});

export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Arrays with more items than this (and every `tokenizer.*` array) are kept as a summary, not their items. */
export const GGUF_KEEP_ARRAY_ITEMS = 64;
/** Bytes per read. */
export const GGUF_READ_CHUNK = 256 << 10;

// ---- types --------------------------------------------------------------------------------------------------------

/** GGUF value types by id (0..12); the short names are llama.cpp's loader's (`str`, `arr`, `u32`, ...). */
export const GGUF_VALUE_TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"] as const;
export type GgufTypeName = (typeof GGUF_VALUE_TYPES)[number];
/** A KV's type: `u32`, `str`, or `arr[str]` for an array of strings (nested arrays are rejected). */
export type GgufKvType = GgufTypeName | `arr[${Exclude<GgufTypeName, "arr">}]`;

const T_STRING = 8;
const T_ARRAY = 9;
/** Encoded size per value type; strings are at least their 8-byte length, arrays are handled apart. */
const VALUE_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8] as const;

export interface GgmlTypeInfo {
  readonly name: string;
  /** Elements per block. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

/**
 * The tensor types of PowerInfer's ggml (ids 0-15; 4 and 5 were removed upstream). Ids from 16 on mean different
 * things in PowerInfer's ggml (I8, I16, I32) and current ggml (IQ2_XXS, ...), so they are refused as unknown.
 * Q8_1 is 40 bytes here (two f32 scales) where current ggml has 36; it never appears in model files.
 */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map<number, GgmlTypeInfo>([
  [0, { name: "F32", blockSize: 1, typeSize: 4 }],
  [1, { name: "F16", blockSize: 1, typeSize: 2 }],
  [2, { name: "Q4_0", blockSize: 32, typeSize: 18 }],
  [3, { name: "Q4_1", blockSize: 32, typeSize: 20 }],
  [6, { name: "Q5_0", blockSize: 32, typeSize: 22 }],
  [7, { name: "Q5_1", blockSize: 32, typeSize: 24 }],
  [8, { name: "Q8_0", blockSize: 32, typeSize: 34 }],
  [9, { name: "Q8_1", blockSize: 32, typeSize: 40 }],
  [10, { name: "Q2_K", blockSize: 256, typeSize: 84 }],
  [11, { name: "Q3_K", blockSize: 256, typeSize: 110 }],
  [12, { name: "Q4_K", blockSize: 256, typeSize: 144 }],
  [13, { name: "Q5_K", blockSize: 256, typeSize: 176 }],
  [14, { name: "Q6_K", blockSize: 256, typeSize: 210 }],
  [15, { name: "Q8_K", blockSize: 256, typeSize: 292 }],
]);

export function ggmlTypeName(type: number): string {
  return GGML_TYPES.get(type)?.name ?? `type ${type}`;
}

/** Bytes of a tensor's data, or undefined for an unknown type or a first dimension that is not whole blocks. */
export function ggmlTensorBytes(dims: readonly number[], type: number): number | undefined {
  const info = GGML_TYPES.get(type);
  if (!info || (dims.length > 0 && dims[0]! % info.blockSize !== 0)) return undefined;
  const elements = dims.reduce((a, b) => a * b, 1);
  return (elements / info.blockSize) * info.typeSize;
}

export type GgufScalar = number | bigint | boolean | string;

/** An array kept as its item type and length only. */
export interface GgufArraySummary {
  readonly type: "array";
  readonly itemType: Exclude<GgufTypeName, "arr">;
  /** Items in the file. */
  readonly length: number;
}

/** u64 and i64 are bigints, the other numbers numbers; arrays are their items or a summary. */
export type GgufValue = GgufScalar | GgufScalar[] | GgufArraySummary;

export function isArraySummary(value: GgufValue | undefined): value is GgufArraySummary {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order (ne0 first), as llama.cpp's loader prints them. */
  dims: number[];
  type: number;
  typeName: string;
  /** From the start of the data section. */
  offset: number;
  byteSize: number;
}

export interface GgufHeader {
  magic: "GGUF" | "PWRI";
  version: 2 | 3;
  /** In file order. */
  kv: Map<string, GgufValue>;
  kvTypes: Map<string, GgufKvType>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Bytes from the magic to the end of the tensor infos. */
  headerBytes: number;
  /** Where the data section starts (headerBytes padded to the alignment). */
  dataOffset: number;
  fileSize: number;
  /** Bytes this parse read from the source (the header plus at most one chunk). */
  bytesRead: number;
}

export interface GgufReadOptions {
  limits?: Partial<GgufLimits>;
  /** Arrays with more items are summarized (default GGUF_KEEP_ARRAY_ITEMS); `tokenizer.*` arrays always are. */
  keepArrayItems?: number;
  /** Bytes per read (default GGUF_READ_CHUNK). */
  chunkSize?: number;
  /** Accept PowerInfer's integer tensor types (I8 16, I16 17, I32 18): its GPU index files (*.gpuidx) are I32. */
  powerInferIntegerTypes?: boolean;
}

/** PowerInfer ggml's integer types (ids that mean other types in current ggml: only on request). */
export const POWERINFER_INTEGER_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map<number, GgmlTypeInfo>([
  [16, { name: "I8", blockSize: 1, typeSize: 1 }],
  [17, { name: "I16", blockSize: 1, typeSize: 2 }],
  [18, { name: "I32", blockSize: 1, typeSize: 4 }],
]);

/** Random-access bytes: a local file, an in-memory buffer, an HTTP range reader. */
export interface GgufSource {
  readonly name: string;
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; returns the count (0 at EOF). */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
}

export function bufferSource(bytes: Uint8Array, name = "<buffer>"): GgufSource {
  return {
    name,
    size: bytes.length,
    read(buffer, offset, length, position) {
      const n = Math.max(0, Math.min(length, bytes.length - position));
      buffer.set(bytes.subarray(position, position + n), offset);
      return Promise.resolve(n);
    },
  };
}

// ---- reading ------------------------------------------------------------------------------------------------------

const EMPTY = Buffer.alloc(0);
const TWO_32 = 2 ** 32;

function shown(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

/** A forward-only cursor over a source with one reusable chunk buffer. */
class Cursor {
  pos = 0;
  bytesRead = 0;
  /** What is being read, for messages (formatted only on failure): `KV 3 "general.name"`, `tensor 7`. */
  kind = "";
  index = 0;
  name: string | undefined;
  private buf: Buffer = EMPTY;
  private start = 0;
  private len = 0;

  constructor(
    private readonly src: GgufSource,
    readonly limits: GgufLimits,
    private readonly chunkSize: number,
  ) {}

  /** Sets what is being read, for messages. */
  within(kind: string, index = 0, name?: string): void {
    this.kind = kind;
    this.index = index;
    this.name = name;
  }

  fail(code: GgufErrorCode, message: string, at: number | undefined = this.pos): never {
    const where = this.kind && `${this.kind} ${this.index}${this.name === undefined ? "" : ` ${shown(this.name)}`}: `;
    throw new GgufError(code, where + message, this.src.name, at);
  }

  /** Fails unless `n` more bytes exist and stay within the header limit; reads nothing. */
  bound(n: number, what: string): void {
    const end = this.pos + n;
    if (end > this.src.size) {
      this.fail("E_GGUF_TRUNCATED", `${what} needs ${n} bytes but the file ends ${this.src.size - this.pos} bytes later (truncated or corrupt)`);
    }
    if (end > this.limits.maxHeaderBytes) {
      this.fail("E_GGUF_LIMIT", `${what} would take the header past ${this.limits.maxHeaderBytes} bytes (limit maxHeaderBytes)`);
    }
  }

  has(n: number): boolean {
    const at = this.pos - this.start;
    return at >= 0 && at + n <= this.len;
  }

  /** Makes `n` bytes at the cursor available; undefined (no await needed) when they already are. */
  need(n: number, what: string): Promise<void> | undefined {
    return this.has(n) ? undefined : this.fill(n, what);
  }

  async fill(n: number, what: string): Promise<void> {
    this.bound(n, what);
    const limit = Math.min(this.src.size, this.limits.maxHeaderBytes);
    const want = Math.min(Math.max(n, this.chunkSize), limit - this.pos);
    if (this.buf.length < want) this.buf = Buffer.allocUnsafe(want);
    let got = 0;
    try {
      while (got < want) {
        const r = await this.src.read(this.buf, got, want - got, this.pos + got);
        if (r <= 0) break;
        got += r;
      }
    } catch (error) {
      throw new GgufError("E_GGUF_IO", `read failed: ${(error as Error).message}`, this.src.name, this.pos + got, { cause: error });
    }
    this.bytesRead += got;
    this.start = this.pos;
    this.len = got;
    if (got < n) this.fail("E_GGUF_TRUNCATED", `${what}: the file ended early (was it changed while being read?)`);
  }

  skip(n: number, what: string): void {
    this.bound(n, what);
    this.pos += n;
  }

  // Synchronous reads: the caller made the bytes available.
  private at(n: number): number {
    const at = this.pos - this.start;
    this.pos += n;
    return at;
  }
  u8 = () => this.buf.readUInt8(this.at(1));
  i8 = () => this.buf.readInt8(this.at(1));
  u16 = () => this.buf.readUInt16LE(this.at(2));
  i16 = () => this.buf.readInt16LE(this.at(2));
  u32 = () => this.buf.readUInt32LE(this.at(4));
  i32 = () => this.buf.readInt32LE(this.at(4));
  f32 = () => this.buf.readFloatLE(this.at(4));
  f64 = () => this.buf.readDoubleLE(this.at(8));
  u64 = () => this.buf.readBigUInt64LE(this.at(8));
  i64 = () => this.buf.readBigInt64LE(this.at(8));
  /** A u64 as a number: exact up to 2^53, and some value of at least 2^53 above (for comparing with limits). */
  u64n = (): number => {
    const at = this.at(8);
    return this.buf.readUInt32LE(at + 4) * TWO_32 + this.buf.readUInt32LE(at);
  };
  /** The u64 read at file offset `at` (still in the buffer), exactly, for messages. */
  exact = (at: number): string => this.buf.readBigUInt64LE(at - this.start).toString();
  latin1 = (n: number) => this.buf.toString("latin1", this.at(n), this.pos - this.start);
  utf8 = (n: number) => this.buf.toString("utf8", this.at(n), this.pos - this.start);

  /** A gguf string: u64 length + UTF-8 bytes (decoded leniently), the length checked before anything is read. */
  async string(what: string): Promise<string> {
    await this.need(8, `${what} length`);
    const at = this.pos;
    const length = this.u64n();
    if (length > this.limits.maxStringLength) {
      this.fail("E_GGUF_LIMIT", `${what} length ${this.exact(at)} is over ${this.limits.maxStringLength} (limit maxStringLength)`, at);
    }
    await this.need(length, what);
    return this.utf8(length);
  }
}

function resolveLimits(options: GgufReadOptions): GgufLimits {
  return { ...GGUF_DEFAULT_LIMITS, ...options.limits };
}

async function readScalar(c: Cursor, type: number, what: string): Promise<GgufScalar> {
  if (type === T_STRING) return c.string(what);
  await c.need(VALUE_SIZE[type as 0]!, what);
  switch (type) {
    case 0:
      return c.u8();
    case 1:
      return c.i8();
    case 2:
      return c.u16();
    case 3:
      return c.i16();
    case 4:
      return c.u32();
    case 5:
      return c.i32();
    case 6:
      return c.f32();
    case 7: {
      const at = c.pos;
      const b = c.u8();
      if (b > 1) c.fail("E_GGUF_INVALID", `bool value ${b} is neither 0 nor 1`, at);
      return b === 1;
    }
    case 10:
      return c.u64();
    case 11:
      return c.i64();
    case 12:
      return c.f64();
    default:
      return c.fail("E_GGUF_INVALID", `value type ${type} is not a scalar type`);
  }
}

type ItemTypeName = Exclude<GgufTypeName, "arr">;

async function readArray(c: Cursor, key: string, keepItems: number): Promise<{ value: GgufScalar[] | GgufArraySummary; itemTypeName: ItemTypeName }> {
  await c.need(12, "array header");
  const typeAt = c.pos;
  const itemType = c.u32();
  const count = c.u64n();
  if (itemType >= GGUF_VALUE_TYPES.length) c.fail("E_GGUF_INVALID", `unknown array item type ${itemType}`, typeAt);
  if (itemType === T_ARRAY) c.fail("E_GGUF_INVALID", "nested arrays are not supported (PowerInfer's loader aborts on them)", typeAt);
  if (count > c.limits.maxArrayLength) {
    c.fail("E_GGUF_LIMIT", `array of ${c.exact(typeAt + 4)} items is over ${c.limits.maxArrayLength} (limit maxArrayLength)`, typeAt + 4);
  }
  const itemSize = VALUE_SIZE[itemType as 0]!;
  const itemTypeName = GGUF_VALUE_TYPES[itemType] as ItemTypeName;
  // Every item takes at least itemSize bytes: refuse at once when they cannot all be there.
  c.bound(count * itemSize, `array of ${count} ${itemTypeName} items`);
  if (count <= keepItems && !key.startsWith("tokenizer.")) {
    const items: GgufScalar[] = [];
    for (let i = 0; i < count; i++) items.push(await readScalar(c, itemType, `array item ${i}`));
    return { value: items, itemTypeName };
  }
  if (itemType === T_STRING) {
    const max = c.limits.maxStringLength;
    for (let i = 0; i < count; i++) {
      if (!c.has(8)) await c.fill(8, `array item ${i} length`);
      const at = c.pos;
      const length = c.u64n();
      if (length > max) c.fail("E_GGUF_LIMIT", `array item ${i}: string length ${c.exact(at)} is over ${max} (limit maxStringLength)`, at);
      c.skip(length, `array item ${i}`);
    }
  } else if (itemType === 7) {
    // bools are validated like single values
    for (let i = 0; i < count; i++) {
      if (!c.has(1)) await c.fill(1, `array item ${i}`);
      const at = c.pos;
      const b = c.u8();
      if (b > 1) c.fail("E_GGUF_INVALID", `array item ${i}: bool value ${b} is neither 0 nor 1`, at);
    }
  } else {
    c.skip(count * itemSize, "array items");
  }
  return { value: { type: "array", itemType: itemTypeName, length: count }, itemTypeName };
}

/** Parses the header of a GGUF v2/v3 or PowerInfer `PWRI` file from any random-access source. */
export async function parseGgufHeader(source: GgufSource, options: GgufReadOptions = {}): Promise<GgufHeader> {
  const limits = resolveLimits(options);
  const keepItems = options.keepArrayItems ?? GGUF_KEEP_ARRAY_ITEMS;
  // (typed explicitly so that c.fail(), which returns never, narrows)
  const c: Cursor = new Cursor(source, limits, Math.max(64, options.chunkSize ?? GGUF_READ_CHUNK));
  const size = source.size;

  if (size === 0) {
    throw new GgufError("E_GGUF_TRUNCATED", "the file is empty (0 bytes)", source.name, 0, {
      details: ["PowerInfer's converter dispatch exits 0 even when the conversion failed; check its log."],
    });
  }
  await c.need(4, "magic");
  const magic = c.latin1(4);
  if (magic !== "GGUF" && magic !== "PWRI") {
    const printable = /^[\x20-\x7e]{4}$/.test(magic);
    const legacy = ["lmgg", "fmgg", "tjgg"].includes(magic) ? " (a legacy GGML/GGMF/GGJT file: convert it to GGUF)" : "";
    c.fail(
      "E_GGUF_MAGIC",
      `not a GGUF file: magic ${printable ? JSON.stringify(magic) : `0x${Buffer.from(magic, "latin1").toString("hex")}`}, expected "GGUF" or PowerInfer's "PWRI"${legacy}`,
      0,
    );
  }
  await c.need(4, "version");
  const version = c.u32();
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24) | ((version >>> 8) & 0xff) << 16 | ((version >>> 16) & 0xff) << 8 | (version >>> 24);
    const hint =
      version === 1
        ? "GGUF v1 (32-bit counts) is not supported: reconvert the model"
        : swapped >= 1 && swapped <= 3
          ? `a big-endian GGUF v${swapped} file, which is not supported`
          : `unsupported GGUF version ${version}`;
    c.fail("E_GGUF_VERSION", hint, 4);
  }

  await c.need(16, "tensor and KV counts");
  const tensorCount = c.u64n();
  const kvCount = c.u64n();
  if (tensorCount > limits.maxTensorCount) c.fail("E_GGUF_LIMIT", `${c.exact(8)} tensors is over ${limits.maxTensorCount} (limit maxTensorCount)`, 8);
  if (kvCount > limits.maxKvCount) c.fail("E_GGUF_LIMIT", `${c.exact(16)} KVs is over ${limits.maxKvCount} (limit maxKvCount)`, 16);
  // A KV takes at least 13 bytes (empty key, u8 value), a tensor info 24 (empty name, no dims).
  c.bound(kvCount * 13 + tensorCount * 24, `${kvCount} KVs and ${tensorCount} tensor infos`);

  const kv = new Map<string, GgufValue>();
  const kvTypes = new Map<string, GgufKvType>();
  for (let i = 0; i < kvCount; i++) {
    c.within("KV", i);
    const keyAt = c.pos;
    const key = await c.string("key");
    c.name = key;
    if (kv.has(key)) c.fail("E_GGUF_INVALID", "duplicate key", keyAt);
    await c.need(4, "value type");
    const typeAt = c.pos;
    const type = c.u32();
    if (type >= GGUF_VALUE_TYPES.length) c.fail("E_GGUF_INVALID", `unknown value type ${type}`, typeAt);
    if (type === T_ARRAY) {
      const { value, itemTypeName } = await readArray(c, key, keepItems);
      kv.set(key, value);
      kvTypes.set(key, `arr[${itemTypeName}]`);
    } else {
      kv.set(key, await readScalar(c, type, "value"));
      kvTypes.set(key, GGUF_VALUE_TYPES[type]!);
    }
  }
  c.within("");

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (kv.has("general.alignment")) {
    const value = kv.get("general.alignment");
    // PowerInfer reads it with gguf_get_val_u32, which asserts the type.
    if (kvTypes.get("general.alignment") !== "u32" || typeof value !== "number" || value === 0 || (value & (value - 1)) !== 0) {
      c.fail("E_GGUF_INVALID", `general.alignment must be a u32 power of two, got ${kvTypes.get("general.alignment")} ${String(value)}`, undefined);
    }
    alignment = value;
  }

  interface Pending {
    name: string;
    dims: number[];
    type: number;
    info: GgmlTypeInfo;
    offset: number;
    offsetText: string;
    byteSize: number;
    at: number;
  }
  const pending: Pending[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    c.within("tensor", i);
    const at = c.pos;
    const name = await c.string("name");
    c.name = name;
    if (names.has(name)) c.fail("E_GGUF_INVALID", "duplicate tensor name", at);
    names.add(name);
    await c.need(4, "n_dims");
    const nDims = c.u32();
    if (nDims > limits.maxDims) c.fail("E_GGUF_LIMIT", `${nDims} dimensions is over ${limits.maxDims} (limit maxDims)`, c.pos - 4);
    await c.need(nDims * 8 + 12, "dimensions, type and offset");
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const dim = c.u64n();
      if (dim > Number.MAX_SAFE_INTEGER) c.fail("E_GGUF_LIMIT", `dimension ${d} is ${c.exact(c.pos - 8)}, over 2^53`, c.pos - 8);
      dims.push(dim);
    }
    const typeAt = c.pos;
    const type = c.u32();
    const offsetAt = c.pos;
    const offset = c.u64n();
    const offsetText = offset > Number.MAX_SAFE_INTEGER ? c.exact(offsetAt) : String(offset);
    const info = GGML_TYPES.get(type) ?? (options.powerInferIntegerTypes ? POWERINFER_INTEGER_TYPES.get(type) : undefined);
    if (!info) c.fail("E_GGUF_INVALID", `unknown ggml tensor type ${type}`, typeAt);
    if (nDims > 0 && dims[0]! % info.blockSize !== 0) {
      c.fail("E_GGUF_INVALID", `first dimension ${dims[0]} is not a multiple of ${info.name}'s block size ${info.blockSize}`, at);
    }
    if (offset % alignment !== 0) c.fail("E_GGUF_INVALID", `data offset ${offsetText} is not a multiple of the alignment ${alignment}`, offsetAt);
    // Products past 2^53 lose precision but then exceed any file size, which is all that is compared below.
    const elements = dims.reduce((a, b) => a * b, 1);
    pending.push({ name, dims, type, info, offset, offsetText, byteSize: (elements / info.blockSize) * info.typeSize, at });
  }
  c.within("");
  const headerBytes = c.pos;
  const dataOffset = Math.ceil(headerBytes / alignment) * alignment;

  for (const t of pending) {
    const end = dataOffset + t.offset + t.byteSize;
    if (end > size) {
      const exact = Number.isSafeInteger(end) ? `ends at byte ${end},` : "ends";
      throw new GgufError(
        "E_GGUF_TRUNCATED",
        `tensor ${shown(t.name)} (${t.info.name} [${t.dims.join(", ")}], ${Number.isSafeInteger(t.byteSize) ? t.byteSize : "over 2^53"} bytes at data offset ${t.offsetText}) ${exact} past the end of the file (${size} bytes): truncated or corrupt`,
        source.name,
        t.at,
      );
    }
  }
  const byOffset = [...pending].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (prev.offset + prev.byteSize > cur.offset) {
      throw new GgufError("E_GGUF_INVALID", `tensors ${shown(prev.name)} and ${shown(cur.name)} overlap in the data section`, source.name, cur.at);
    }
  }

  return {
    magic,
    version,
    kv,
    kvTypes,
    tensors: pending.map((t) => ({ name: t.name, dims: t.dims, type: t.type, typeName: t.info.name, offset: t.offset, byteSize: t.byteSize })),
    alignment,
    headerBytes,
    dataOffset,
    fileSize: size,
    bytesRead: c.bytesRead,
  };
}

/**
 * Reads a GGUF header from a local file through one FileHandle in bounded chunks: never the tensor data, never more
 * than `limits.maxHeaderBytes` plus one chunk. Hostile or damaged files fail fast with a {@link GgufError}.
 */
export async function readGgufHeader(path: string, options: GgufReadOptions = {}): Promise<GgufHeader> {
  const ioError = (error: unknown, what: string) =>
    new GgufError("E_GGUF_IO", `${what}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, path, undefined, { cause: error });
  // stat first: opening a FIFO for reading would block
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw ioError(error, "cannot read the file");
  }
  if (!info.isFile()) throw new GgufError("E_GGUF_IO", "not a regular file", path);
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw ioError(error, "cannot open the file");
  }
  try {
    const { size } = await handle.stat();
    const fh = handle;
    return await parseGgufHeader(
      { name: path, size, read: async (buffer, offset, length, position) => (await fh.read(buffer, offset, length, position)).bytesRead },
      options,
    );
  } finally {
    await handle.close();
  }
}
