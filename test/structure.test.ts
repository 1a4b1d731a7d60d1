/**
 * The floors (issue 15, "Ground floor"), enforced on the real source tree: no import circle,
 * no import that climbs a floor, every area on a floor (scripts/check-structure.ts holds the
 * table and the check). Each rule is also shown to fail, on a tiny synthetic tree.
 * `spawn(` only in core/process.ts: test/process-layer.test.ts; main.ts under 150 lines and no
 * hand-written usage text: test/cli-help.test.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ALLOWED_EDGES, areaOf, checkStructure, FLOORS, readImportGraph } from "../scripts/check-structure.js";

const PROJECT_ROOT = join(import.meta.dirname, "..");

describe("the real tree", () => {
  const edges = readImportGraph(PROJECT_ROOT);

  it("reads the imports it must: static, type-only, re-exports and dynamic ones", () => {
    const has = (from: string, to: string) => edges.some((e) => e.from === from && e.to === to);
    expect(has("pipeline/core/files.ts", "pipeline/core/hash.ts")).toBe(true);
    expect(has("pipeline/config/recipe.ts", "pipeline/config/generation-schema.ts")).toBe(true);
    // `import type`, and a dynamic import() inside a function.
    expect(has("pipeline/metrics/record.ts", "engines/types.ts")).toBe(true);
    expect(has("pipeline/runtime/prepare.ts", "pipeline/gpu-index/placement.ts")).toBe(true);
    expect(edges.length).toBeGreaterThan(500);
  });

  it("has no import circle, no import that climbs a floor, and every area on a floor", () => {
    expect(checkStructure(edges).map((p) => `${p.rule}: ${p.message}`)).toEqual([]);
  });

  it("keeps what issue 15 asked for: core at the bottom, config below policy, engines below the runtime and importing no gpu-index code", () => {
    const floor = (area: string) => FLOORS.findIndex((areas) => areas.includes(area));
    expect(floor("pipeline/core")).toBe(0);
    expect(floor("pipeline/config")).toBeLessThan(floor("pipeline/policy"));
    expect(floor("engines")).toBeLessThan(floor("pipeline/runtime"));
    expect(edges.filter((e) => areaOf(e.from) === "engines" && areaOf(e.to) === "pipeline/gpu-index")).toEqual([]);
  });

  it("allows no exception: every import of the tree keeps the rules", () => {
    expect(ALLOWED_EDGES).toEqual([]);
  });
});

describe("each rule can fail (a synthetic tree)", () => {
  const roots: string[] = [];
  afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });
  function tree(files: Record<string, string>): string {
    const root = mkdtempSync(join(tmpdir(), "structure-"));
    roots.push(root);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  }
  const floors = [["pipeline/core"], ["pipeline/config"], ["engines"]];

  it("a circle is reported with its path, even through a type-only import", () => {
    const root = tree({
      "pipeline/core/a.ts": 'import { b } from "./b.js";\nexport const a = b;\n',
      "pipeline/core/b.ts": 'import type { C } from "./c.js";\nexport const b = 1 as unknown as C;\n',
      "pipeline/core/c.ts": 'export type C = number;\nexport const load = () => import("./a.js");\n',
    });
    expect(checkStructure(readImportGraph(root), floors, [])).toEqual([
      { rule: "cycle", message: "import circle: pipeline/core/a.ts -> pipeline/core/b.ts -> pipeline/core/c.ts -> pipeline/core/a.ts" },
    ]);
  });

  it("a climb is reported with the file, the import and both floors; a step down is fine", () => {
    const root = tree({
      "pipeline/core/files.ts": 'export type { Recipe } from "../config/recipe.js";\n',
      "pipeline/config/recipe.ts": 'import { x } from "../core/x.js";\nexport type Recipe = typeof x;\n',
      "pipeline/core/x.ts": "export const x = 1;\n",
      "engines/e.ts": 'export { x } from "../pipeline/core/x.js";\n',
    });
    expect(checkStructure(readImportGraph(root), floors, [])).toEqual([
      { rule: "climb", message: "pipeline/core/files.ts -> ../config/recipe.js (pipeline/config/recipe.ts): pipeline/core (floor 0) imports pipeline/config (floor 1); an area imports only its own area or lower floors" },
    ]);
  });

  it("a new folder on no floor fails, saying where to add it", () => {
    const root = tree({ "pipeline/fresh/thing.ts": 'import { x } from "../core/x.js";\nexport const y = x;\n', "pipeline/core/x.ts": "export const x = 1;\n" });
    const problems = checkStructure(readImportGraph(root), floors, []);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.rule).toBe("no-floor");
    expect(problems[0]!.message).toMatch(/^pipeline\/fresh \(pipeline\/fresh\/thing\.ts\) is on no floor: add it to FLOORS in scripts\/check-structure\.ts/);
  });

  it("an allowed edge is let through only while it exists", () => {
    const root = tree({ "pipeline/core/errors.ts": 'import type { C } from "../config/codes.js";\nexport type E = C;\n', "pipeline/config/codes.ts": 'export type C = "E_X";\n' });
    const allowed = [{ from: "pipeline/core/errors.ts", to: "pipeline/config/codes.ts", why: "issue 15 item 3" }];
    expect(checkStructure(readImportGraph(root), floors, allowed)).toEqual([]);
    expect(checkStructure(readImportGraph(root), floors, [...allowed, { from: "pipeline/core/errors.ts", to: "pipeline/config/gone.ts", why: "issue 15 item 3" }])).toEqual([
      { rule: "stale-allowance", message: "pipeline/core/errors.ts no longer imports pipeline/config/gone.ts: remove its entry from ALLOWED_EDGES in scripts/check-structure.ts (issue 15 item 3)" },
    ]);
  });
});
