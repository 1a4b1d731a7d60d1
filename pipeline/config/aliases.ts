/**
 * Keys with two spellings. The canonical one is the integration blueprint's (what users
 * copy: `max_tokens`, `vram_budget_gb`); the other is the one this project used first
 * (`n_predict`, `vram_budget_gib`) and is still accepted. The schema knows both, so the
 * generated JSON Schema completes either (the alias marked deprecated); the parsed value
 * holds only the canonical key and remembers which aliases it was given, so the loader
 * can say so in one line.
 */
import * as z from "zod";

/** Set (non-enumerable, so no spread, hash or JSON carries it) on a parsed object that used aliases. */
const ALIASES_USED = Symbol("ai-tools aliases used");

export interface AliasUse {
  /** Dotted path of the key as written, e.g. "generation.n_predict". */
  alias: string;
  /** Dotted path of the canonical key, e.g. "generation.max_tokens". */
  canonical: string;
}

/**
 * A strict object of `shape` that also takes each alias (old name -> canonical name) in
 * place of its canonical key. Both spellings at once are an error at the alias.
 */
export function withAliases<Shape extends z.ZodRawShape>(shape: Shape, aliases: Readonly<Record<string, keyof Shape & string>>) {
  const aliasShape: Record<string, z.ZodType> = {};
  for (const [alias, canonical] of Object.entries(aliases)) {
    aliasShape[alias] = (shape[canonical] as z.ZodType).meta({ deprecated: true, description: `The older spelling of ${canonical}: accepted, with a note. Write ${canonical}.` });
  }
  const pairs = Object.entries(aliases);
  return z
    .strictObject({ ...shape, ...aliasShape } as Shape)
    .superRefine((value, ctx) => {
      const given = value as Record<string, unknown>;
      for (const [alias, canonical] of pairs) {
        if (given[alias] !== undefined && given[canonical] !== undefined) {
          ctx.addIssue({ code: "custom", path: [alias], message: `${alias} and ${canonical} are two spellings of one key: keep ${canonical}` });
        }
      }
    })
    .transform((value) => {
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
      const used: [string, string][] = [];
      for (const [alias, canonical] of pairs) {
        if (!(alias in out)) continue;
        const aliased = out[alias];
        delete out[alias];
        if (aliased === undefined) continue;
        out[canonical] = aliased;
        used.push([alias, canonical]);
      }
      if (used.length > 0) Object.defineProperty(out, ALIASES_USED, { value: used, enumerable: false });
      return out as z.output<z.ZodObject<Shape, z.core.$strict>>;
    });
}

/** Every alias a parsed value was given, anywhere in it, as dotted paths. */
export function aliasesUsed(value: unknown, path: readonly string[] = []): AliasUse[] {
  if (value === null || typeof value !== "object") return [];
  const found: AliasUse[] = [];
  const here = (value as { [ALIASES_USED]?: [string, string][] })[ALIASES_USED] ?? [];
  for (const [alias, canonical] of here) found.push({ alias: [...path, alias].join("."), canonical: [...path, canonical].join(".") });
  for (const [key, child] of Object.entries(value)) found.push(...aliasesUsed(child, [...path, key]));
  return found;
}
