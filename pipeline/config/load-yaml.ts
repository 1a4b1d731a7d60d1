/**
 * Load a YAML file and validate it with a zod schema. Every problem is reported with
 * the file, line and column, and the key path (e.g. `build.presets.cpu.cmakeFlags`),
 * all at once rather than the first one only.
 */
import { readFile } from "node:fs/promises";
import { relative, isAbsolute } from "node:path";
import { LineCounter, parseDocument, isMap, isScalar, type Node } from "yaml";
import type { z } from "zod";
import { PipelineError } from "../core/errors.js";

export type ConfigErrorCode = "E_CONFIG_MISSING" | "E_CONFIG_SYNTAX" | "E_CONFIG_INVALID";

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

/** Upper bound on file size and alias expansion: configs are small, hostile ones are not. */
const MAX_CONFIG_BYTES = 1 << 20;
const MAX_ALIAS_COUNT = 100;

export function displayPath(file: string, base = process.cwd()): string {
  const rel = relative(base, file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}

export async function loadYamlConfig<S extends z.ZodType>(file: string, schema: S, shownAs = displayPath(file)): Promise<z.infer<S>> {
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError("E_CONFIG_MISSING", [{ file: shownAs, line: 0, column: 0, path: "", message: error.code === "ENOENT" ? "file not found" : error.message }], `${shownAs}: cannot read the file (${error.code ?? error.message})`);
  });
  return parseYamlConfig(text, schema, shownAs);
}

export function parseYamlConfig<S extends z.ZodType>(text: string, schema: S, file: string): z.infer<S> {
  if (text.length > MAX_CONFIG_BYTES) {
    throw new ConfigError("E_CONFIG_SYNTAX", [{ file, line: 1, column: 1, path: "", message: `larger than ${MAX_CONFIG_BYTES} bytes` }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      "E_CONFIG_SYNTAX",
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? { line: 1, col: 1 };
        return { file, line: pos.line, column: pos.col, path: "", message: `YAML syntax error: ${e.message.split("\n")[0]}` };
      }),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  const parsed = schema.safeParse(data);
  if (parsed.success) return parsed.data;

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
  for (const issue of parsed.error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        problems.push({
          file,
          ...locate(issue.path, key),
          path: [...issue.path, key].join("."),
          message: `unknown key "${key}"${expectedKeys(schema, issue.path)}`,
        });
      }
    } else {
      const missing = issue.code === "invalid_type" && doc.getIn(issue.path as unknown[]) === undefined;
      const message = missing ? `required key is missing (${issue.message.replace(/, received undefined$/, "")})` : issue.message;
      problems.push({ file, ...locate(issue.path), path: issue.path.join("."), message });
    }
  }
  throw new ConfigError("E_CONFIG_INVALID", problems);
}

/** ", expected one of: a, b" for an object schema at `path`, when it can be found. */
function expectedKeys(schema: z.ZodType, path: readonly PropertyKey[]): string {
  let current: unknown = schema;
  for (const segment of path) {
    const shape = objectShape(current);
    if (shape && typeof segment === "string" && segment in shape) current = shape[segment];
    else {
      const element = unwrap(current) as { _zod?: { def?: { valueType?: unknown; element?: unknown } } };
      current = element?._zod?.def?.valueType ?? element?._zod?.def?.element;
      if (!current) return "";
    }
  }
  const shape = objectShape(current);
  return shape ? `; expected one of: ${Object.keys(shape).join(", ")}` : "";
}

function unwrap(schema: unknown): unknown {
  let current = schema as { _zod?: { def?: { innerType?: unknown } } } | undefined;
  while (current?._zod?.def?.innerType) current = current._zod.def.innerType as typeof current;
  return current;
}

function objectShape(schema: unknown): Record<string, unknown> | undefined {
  const inner = unwrap(schema) as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined;
  return inner?._zod?.def?.shape;
}
