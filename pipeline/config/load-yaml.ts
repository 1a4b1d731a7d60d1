/**
 * Load a YAML file and validate it with a zod schema. Every problem is reported with
 * the file, line and column, and the key path (e.g. `build.presets.cpu.cmakeFlags`),
 * all at once rather than the first one only.
 */
import { readFile, stat } from "node:fs/promises";
import { relative, isAbsolute } from "node:path";
import { Lexer, LineCounter, parseDocument, isMap, isScalar, visit, type Document, type Node } from "yaml";
import type * as z from "zod";
import { PipelineError } from "../core/errors.js";
import { aliasesUsed } from "./aliases.js";

/** Core's configuration codes, the ones a YAML file can fail with. */
export type ConfigErrorCode = import("../core/errors.js").DeclaredCode<"E_CONFIG_MISSING" | "E_CONFIG_SYNTAX" | "E_CONFIG_INVALID">;

export interface ConfigProblem {
  file: string;
  line: number;
  column: number;
  /** Dotted key path, "" for the document itself. */
  path: string;
  message: string;
}

export class ConfigError extends PipelineError<ConfigErrorCode> {
  constructor(
    code: ConfigErrorCode,
    readonly problems: readonly ConfigProblem[],
    summary?: string,
  ) {
    const lines = problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}`);
    super(code, summary ?? (lines.length === 1 ? lines[0]! : `${problems[0]?.file ?? "config"}: ${problems.length} problems`), {
      details: lines.length === 1 && !summary ? [] : lines,
    });
  }
}

/**
 * Configs are small (the largest recipe is under 3 KB); a policy is input that may come
 * from elsewhere. Files above this are refused before they are read, which also bounds
 * the parser's work (the worst case, a file of ~2,700 keys, parses in about 0.2 s) well
 * under a second. Aliases are expanded at most MAX_ALIAS_COUNT times (a "billion laughs"
 * file is refused, not expanded).
 */
export const MAX_CONFIG_BYTES = 32 * 1024;
const MAX_ALIAS_COUNT = 100;
/** Flow collections ([...], {...}) nested deeper than this are refused before the parser recurses into them. */
const MAX_FLOW_DEPTH = 64;
/** Problems listed per file: a file of thousands of bad keys is reported, not enumerated. */
const MAX_PROBLEMS = 20;

export interface LoadYamlOptions {
  /** How the file is named in messages (default: relative to the current directory). */
  shownAs?: string;
  /**
   * One line per note (an older key spelling was accepted, ...). Default: once per line and
   * process, `note: ...` on stderr.
   */
  onNote?: (line: string) => void;
}

const notesShown = new Set<string>();
/** The default note sink: stderr, each line once per process. */
export function noteOnce(line: string): void {
  if (notesShown.has(line)) return;
  notesShown.add(line);
  process.stderr.write(`note: ${line}\n`);
}

export function displayPath(file: string, base = process.cwd()): string {
  const rel = relative(base, file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}

export async function loadYamlConfig<S extends z.ZodType>(file: string, schema: S, shownAs = displayPath(file), options: Omit<LoadYamlOptions, "shownAs"> = {}): Promise<z.infer<S>> {
  return validateYamlDocument(await readYamlDocument(file, shownAs), schema, options);
}

export function parseYamlConfig<S extends z.ZodType>(text: string, schema: S, file: string, options: Omit<LoadYamlOptions, "shownAs"> = {}): z.infer<S> {
  return validateYamlDocument(parseYamlText(text, file), schema, options);
}

/** A parsed YAML file: the document (for positions), its plain data, and its name in messages. */
export interface YamlDocument {
  file: string;
  doc: Document;
  lineCounter: LineCounter;
  data: unknown;
}

const problem = (file: string, message: string, line = 1, column = 1): ConfigProblem => ({ file, line, column, path: "", message });

/** Reads and parses a YAML file: size checked first, then the encoding, then the YAML. Throws ConfigError only. */
export async function readYamlDocument(file: string, shownAs = displayPath(file)): Promise<YamlDocument> {
  const missing = (error: NodeJS.ErrnoException): never => {
    throw new ConfigError("E_CONFIG_MISSING", [problem(shownAs, error.code === "ENOENT" ? "file not found" : error.message, 0, 0)], `${shownAs}: cannot read the file (${error.code ?? error.message})`);
  };
  const info = await stat(file).catch(missing);
  if (!info.isFile()) throw new ConfigError("E_CONFIG_MISSING", [problem(shownAs, "not a regular file", 0, 0)], `${shownAs}: not a regular file`);
  if (info.size > MAX_CONFIG_BYTES) throw new ConfigError("E_CONFIG_SYNTAX", [problem(shownAs, `${info.size} bytes: larger than the ${MAX_CONFIG_BYTES}-byte limit for YAML configs`)]);
  const bytes = await readFile(file).catch(missing);
  return parseYamlText(decodeYaml(bytes, shownAs), shownAs);
}

/** UTF-8 only (with or without a BOM): YAML allows UTF-16/32 too, but every tool here writes UTF-8, and a mis-decoded file must not half-parse. */
function decodeYaml(bytes: Uint8Array, file: string): string {
  const encodings: [string, number[]][] = [
    ["UTF-32 (little-endian)", [0xff, 0xfe, 0x00, 0x00]],
    ["UTF-32 (big-endian)", [0x00, 0x00, 0xfe, 0xff]],
    ["UTF-16 (little-endian)", [0xff, 0xfe]],
    ["UTF-16 (big-endian)", [0xfe, 0xff]],
  ];
  const bom = encodings.find(([, mark]) => mark.every((b, i) => bytes[i] === b));
  const utf16 = bytes.length >= 2 && (bytes[0] === 0 || bytes[1] === 0);
  if (bom || utf16) throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, `the file is encoded as ${bom?.[0] ?? "UTF-16 or UTF-32"}: save it as UTF-8`)]);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const bad = firstInvalidUtf8(bytes);
    throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, `not valid UTF-8 (byte ${bad.offset}): save the file as UTF-8`, bad.line, bad.column)]);
  }
  // YAML forbids C0 control characters other than tab, LF and CR (and DEL, C1) anywhere in the stream.
  const control = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.exec(text);
  if (control) {
    const before = text.slice(0, control.index).split("\n");
    throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, `control character U+${control[0].charCodeAt(0).toString(16).padStart(4, "0").toUpperCase()} is not allowed in YAML`, before.length, before.at(-1)!.length + 1)]);
  }
  return text;
}

function firstInvalidUtf8(bytes: Uint8Array): { offset: number; line: number; column: number } {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let lo = 0;
  let hi = bytes.length;
  // The longest valid prefix, by bisection (a valid prefix may end inside a character: close enough for a position).
  while (hi - lo > 4) {
    const mid = (lo + hi) >> 1;
    try {
      decoder.decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid;
    }
  }
  const prefix = new TextDecoder("utf-8").decode(bytes.subarray(0, lo)).split("\n");
  return { offset: lo, line: prefix.length, column: prefix.at(-1)!.length + 1 };
}

/** YAML text to a document and its data; every parser failure is an E_CONFIG_SYNTAX naming the place. */
export function parseYamlText(text: string, file: string): YamlDocument {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, `larger than the ${MAX_CONFIG_BYTES}-byte limit for YAML configs`)]);
  const lineCounter = new LineCounter();
  const tooDeep = flowTooDeep(text);
  if (tooDeep !== null) {
    const before = text.slice(0, tooDeep).split("\n");
    throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, `YAML syntax error: flow collections nested deeper than ${MAX_FLOW_DEPTH} levels`, before.length, before.at(-1)!.length + 1)]);
  }
  let doc: Document;
  try {
    // Duplicate keys are found below in one pass: yaml's own check compares every pair (quadratic in a map's size).
    doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  } catch (error) {
    throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, `YAML the parser cannot read: ${(error as Error).message.split("\n")[0]}`)]);
  }
  const position = (e: { linePos?: [{ line: number; col: number }, ...unknown[]] }) => e.linePos?.[0] ?? { line: 1, col: 1 };
  // Tags this loader does not resolve (!!python/object, !custom) would otherwise become plain strings.
  const unresolved = doc.warnings.filter((w) => w.code === "TAG_RESOLVE_FAILED");
  const errors = [...doc.errors, ...unresolved, ...duplicateKeys(doc, lineCounter)];
  if (errors.length > 0) {
    throw new ConfigError(
      "E_CONFIG_SYNTAX",
      errors.slice(0, MAX_PROBLEMS).map((e) => {
        const pos = position(e);
        const message = e.code === "RESOURCE_EXHAUSTION" ? "nested too deeply" : e.code === "TAG_RESOLVE_FAILED" ? `${e.message.split("\n")[0]}: configs use plain YAML values only` : e.message.split("\n")[0];
        return problem(file, `YAML syntax error: ${message}`, pos.line, pos.col);
      }),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const excessive = /alias/i.test((error as Error).message);
    throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, excessive ? `YAML aliases expand to more than ${MAX_ALIAS_COUNT} copies: write the values out` : `YAML the loader cannot read: ${(error as Error).message.split("\n")[0]}`)]);
  }
  if (containsCycle(data)) throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, "a YAML alias refers to the node that contains it: configs cannot be recursive")]);
  // !!binary and friends are not plain data (strings, numbers, booleans, lists, maps).
  if (!isPlainData(data)) throw new ConfigError("E_CONFIG_SYNTAX", [problem(file, "a YAML tag made a value that is not plain data (!!binary, !!set, ...): configs use strings, numbers, booleans, lists and maps")]);
  return { file, doc, lineCounter, data };
}

/** "Map keys must be unique" for each repeated scalar key, at the repeat, as yaml reports it. */
function duplicateKeys(doc: Document, lineCounter: LineCounter): { code: string; message: string; linePos: [{ line: number; col: number }] }[] {
  const found: { code: string; message: string; linePos: [{ line: number; col: number }] }[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (seen.has(key)) {
          const pos = lineCounter.linePos((pair.key as Node | null)?.range?.[0] ?? 0);
          found.push({ code: "DUPLICATE_KEY", message: `Map keys must be unique: "${String(key)}" appears twice`, linePos: [{ line: pos.line, col: pos.col }] });
        }
        seen.add(key);
      }
    },
  });
  return found;
}

/**
 * The offset of the first "[" or "{" nested deeper than MAX_FLOW_DEPTH, or null. yaml's
 * lexer is iterative and knows quoting and comments; its composer recurses, and on deep
 * input takes most of a second to find its stack exhausted.
 */
function flowTooDeep(text: string): number | null {
  // Nesting never exceeds the number of openers (quoted or commented ones only add to it): most configs skip the lexer pass.
  let openers = 0;
  for (let i = 0; i < text.length && openers <= MAX_FLOW_DEPTH; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) openers++;
  }
  if (openers <= MAX_FLOW_DEPTH) return null;
  let depth = 0;
  let offset = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === "[" || token === "{") {
      if (++depth > MAX_FLOW_DEPTH) return offset;
    } else if (token === "]" || token === "}") depth--;
    // Control tokens (document and scalar markers) are not source text.
    if (!(token.length === 1 && token < " " && token !== "\t" && token !== "\n" && token !== "\r")) offset += token.length;
  }
  return null;
}

function containsCycle(value: unknown, seen = new Set<object>()): boolean {
  if (value === null || typeof value !== "object") return false;
  if (seen.has(value)) return true;
  seen.add(value);
  const children = Array.isArray(value) ? value : Object.values(value);
  const cyclic = children.some((child) => containsCycle(child, seen));
  seen.delete(value);
  return cyclic;
}

function isPlainData(value: unknown): boolean {
  if (value === null || ["string", "number", "boolean"].includes(typeof value)) return true;
  if (Array.isArray(value)) return value.every(isPlainData);
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) return Object.values(value as object).every(isPlainData);
  return false;
}

/** Validates a parsed document with `schema`: every problem with its line, column and key path. */
export function validateYamlDocument<S extends z.ZodType>(yaml: YamlDocument, schema: S, options: Omit<LoadYamlOptions, "shownAs"> = {}): z.infer<S> {
  const { file, doc, lineCounter, data } = yaml;
  let parsed: z.ZodSafeParseResult<z.infer<S>>;
  try {
    // jitless: zod would compile a parser per object schema (new Function) on first use, which
    // pays off over many parses; a config is parsed once per process (~2.5 ms of `run`'s start).
    parsed = schema.safeParse(data, { jitless: true }) as z.ZodSafeParseResult<z.infer<S>>;
  } catch (error) {
    throw new ConfigError("E_CONFIG_INVALID", [problem(file, `cannot be validated: ${(error as Error).message.split("\n")[0]}`)]);
  }
  if (parsed.success) {
    const note = options.onNote ?? noteOnce;
    for (const use of aliasesUsed(parsed.data)) note(`${file}: ${use.alias} is the older spelling of ${use.canonical}: accepted (write ${use.canonical.split(".").at(-1)})`);
    return parsed.data;
  }

  const locate = (path: readonly PropertyKey[], key?: string): { line: number; column: number } => {
    let node: unknown = path.length === 0 ? doc.contents : doc.getIn(path as unknown[], true);
    // For an unknown key, point at the key itself rather than its parent map.
    if (key !== undefined && isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
      if (pair && isScalar(pair.key)) node = pair.key;
    }
    // A missing key has no node: walk up to the nearest parent that exists.
    for (let depth = path.length; !(node as Node | undefined)?.range && depth > 0; depth--) {
      node = depth === 1 ? doc.contents : doc.getIn(path.slice(0, depth - 1) as unknown[], true);
    }
    const offset = (node as Node | undefined)?.range?.[0] ?? 0;
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };

  const problems: ConfigProblem[] = [];
  let more = 0;
  const add = (p: ConfigProblem) => (problems.length < MAX_PROBLEMS ? problems.push(p) : more++);
  const collect = (issues: readonly z.core.$ZodIssue[], at: z.ZodType, base: readonly PropertyKey[]) => {
    for (const issue of issues) {
      const path = [...base, ...issue.path];
      if (issue.code === "invalid_union" && issue.errors.length > 0 && isRecord(valueAt(data, path))) {
        // A mapping that fits none of several shapes (a Hub repo or a local path): report against the closest one.
        const best = issue.errors.reduce((b, errors, i) => (errors.length < issue.errors[b]!.length ? i : b), 0);
        const option = unionOptions(schemaAt(at, issue.path))?.[best] ?? at;
        collect(issue.errors[best]!, option, path);
      } else if (issue.code === "unrecognized_keys") {
        const room = Math.max(0, MAX_PROBLEMS - problems.length);
        more += Math.max(0, issue.keys.length - room);
        if (room === 0) continue;
        const expected = expectedKeys(at, issue.path, valueAt(data, path));
        for (const key of issue.keys.slice(0, room)) add({ file, ...locate(path, key), path: [...path, key].join("."), message: `unknown key "${key}"${expected}` });
      } else {
        const missing = issue.code === "invalid_type" && doc.getIn(path as unknown[]) === undefined;
        const message = missing ? `required key is missing (${issue.message.replace(/, received undefined$/, "")})` : issue.message;
        add({ file, ...locate(path), path: path.join("."), message });
      }
    }
  };
  collect(parsed.error.issues, schema, []);
  throw new ConfigError("E_CONFIG_INVALID", problems, more > 0 ? `${file}: ${problems.length + more} problems (the first ${problems.length} listed)` : undefined);
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === "object" && !Array.isArray(value);

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let current = data;
  for (const segment of path) current = isRecord(current) || Array.isArray(current) ? (current as Record<PropertyKey, unknown>)[segment] : undefined;
  return current;
}

/**
 * ", expected one of: a, b" for an object schema at `path`, when it can be found. Of several
 * shapes (a union), the one that knows most of the keys `value` has.
 */
function expectedKeys(schema: z.ZodType, path: readonly PropertyKey[], value: unknown): string {
  const at = schemaAt(schema, path);
  const given = isRecord(value) ? Object.keys(value) : [];
  const fit = (option: unknown) => given.filter((key) => key in (objectShape(option) ?? {})).length;
  const shape = objectShape(unionOptions(at)?.reduce((best, option) => (fit(option) > fit(best) ? option : best)) ?? at);
  // Older spellings (aliases.ts) are accepted but not offered.
  const keys = shape ? Object.keys(shape).filter((key) => !(shape[key] as { meta?: () => { deprecated?: boolean } | undefined }).meta?.()?.deprecated) : [];
  return keys.length > 0 ? `; expected one of: ${keys.join(", ")}` : "";
}

/** The schema at a key path (through objects, records, arrays and wrappers), or undefined. */
function schemaAt(schema: unknown, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: unknown = schema;
  for (const segment of path) {
    const shape = objectShape(current);
    if (shape && typeof segment === "string" && segment in shape) current = shape[segment];
    else {
      const element = unwrap(current) as { _zod?: { def?: { valueType?: unknown; element?: unknown } } };
      current = element?._zod?.def?.valueType ?? element?._zod?.def?.element;
      if (!current) return undefined;
    }
  }
  return current as z.ZodType;
}

function unionOptions(schema: unknown): z.ZodType[] | undefined {
  const options = (unwrap(schema) as { _zod?: { def?: { options?: z.ZodType[] } } } | undefined)?._zod?.def?.options;
  return Array.isArray(options) ? options : undefined;
}

/** Through optional/default/nullable (innerType) and pipes (the input side: transforms, aliases.ts). */
function unwrap(schema: unknown): unknown {
  let current = schema as { _zod?: { def?: { innerType?: unknown; in?: unknown; type?: string } } } | undefined;
  for (;;) {
    const def = current?._zod?.def;
    if (def?.innerType) current = def.innerType as typeof current;
    else if (def?.type === "pipe" && def.in) current = def.in as typeof current;
    else return current;
  }
}

function objectShape(schema: unknown): Record<string, unknown> | undefined {
  const inner = unwrap(schema) as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined;
  return inner?._zod?.def?.shape;
}
