/**
 * The README's troubleshooting table names every error code the toolkit can print, so a
 * user who sees one finds what to do.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./helpers/workspace.js";

const codesIn = (file: string) => new Set(readFileSync(join(PROJECT_ROOT, file), "utf8").match(/"E_[A-Z_]+"/g)?.map((c) => c.slice(1, -1)) ?? []);

describe("README troubleshooting", () => {
  it("has a row for every error code", () => {
    const readme = readFileSync(join(PROJECT_ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Troubleshooting"), readme.indexOf("\n## ", readme.indexOf("## Troubleshooting") + 5));
    const codes = new Set([...codesIn("pipeline/core/errors.ts"), ...codesIn("pipeline/signing/errors.ts"), ...codesIn("engines/types.ts"), ...codesIn("pipeline/registry/errors.ts"), ...codesIn("pipeline/registry/pack-errors.ts")]);
    expect(codes.size).toBeGreaterThan(50);
    const missing = [...codes].filter((code) => !section.includes("`" + code + "`"));
    expect(missing).toEqual([]);
  });
});
