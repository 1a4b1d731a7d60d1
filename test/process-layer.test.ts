/**
 * One process layer: every child the toolkit starts goes through pipeline/core/process.ts
 * (runCommand or startProcess), so each runs in its own group that the exit hook and a
 * step's lock takeover can stop. A `spawn(` anywhere else would escape both.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./helpers/workspace.js";
import { SOURCE_ROOTS, sourceFiles } from "../scripts/check-structure.js";

describe("the process layer", () => {
  it("spawn( appears only in pipeline/core/process.ts", () => {
    const files = SOURCE_ROOTS.flatMap((d) => sourceFiles(PROJECT_ROOT, d));
    expect(files.length).toBeGreaterThan(50);
    const offenders = files.filter((f) => /\bspawn(Sync)?\(/.test(readFileSync(join(PROJECT_ROOT, f), "utf8")));
    expect(offenders).toEqual(["pipeline/core/process.ts"]);
  });
});
