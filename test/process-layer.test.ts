/**
 * One process layer: every child the toolkit starts goes through pipeline/core/process.ts
 * (runCommand or startProcess), so each runs in its own group that the exit hook and a
 * step's lock takeover can stop. A `spawn(` anywhere else would escape both.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./helpers/workspace.js";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

describe("the process layer", () => {
  it("spawn( appears only in pipeline/core/process.ts", () => {
    const files = ["pipeline", "tasks", "engines"].flatMap((d) => sources(join(PROJECT_ROOT, d)));
    expect(files.length).toBeGreaterThan(50);
    const offenders = files.filter((f) => /\bspawn(Sync)?\(/.test(readFileSync(f, "utf8"))).map((f) => relative(PROJECT_ROOT, f));
    expect(offenders).toEqual(["pipeline/core/process.ts"]);
  });
});
