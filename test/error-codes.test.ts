/**
 * Error codes are declared once, by the domain that throws them, and the one error table
 * (pipeline/cli/error-table.ts) gives each its exit status and README row. The structure
 * check "no code string declared twice" scans pipeline/, tasks/ and engines/ with
 * helpers/code-declarations.ts; its own cases below show what it counts and that it fails.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENGINE_ERROR_CODES } from "../engines/errors.js";
import { BENCH_ERROR_CODES } from "../pipeline/model-bench/errors.js";
import { ERROR_TABLE, type ErrorRow } from "../pipeline/cli/error-table.js";
import { EXIT, exitForErrorCode } from "../pipeline/cli/exit.js";
import { MODEL_ERROR_CODES } from "../pipeline/config/errors.js";
import { ENGINE_BUILD_ERROR_CODES } from "../pipeline/engine-build/errors.js";
import { CORE_ERROR_CODES, PipelineError, type DeclaredCode, type ErrorCode } from "../pipeline/core/errors.js";
import { GGUF_ERROR_CODES } from "../pipeline/gguf/errors.js";
import { HUB_ERROR_CODES } from "../pipeline/hub/errors.js";
import { PYTHON_ERROR_CODES } from "../pipeline/python.js";
import { REGISTRY_ERROR_CODES } from "../pipeline/registry/errors.js";
import { PACK_ERROR_CODES } from "../pipeline/registry/pack-errors.js";
import { SIGN_ERROR_CODES, VERIFY_ERROR_CODES, type VerifyErrorCode } from "../pipeline/signing/errors.js";
import { TASK_ERROR_CODES } from "../tasks/errors.js";
import { codeDeclarations, declarationsUnder, duplicateDeclarations } from "./helpers/code-declarations.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

const SOURCE_DIRS = ["pipeline", "tasks", "engines"];

/** Each domain's runtime list, by the module that declares it. */
const DOMAIN_LISTS: Record<string, readonly string[]> = {
  "pipeline/core/errors.ts": CORE_ERROR_CODES,
  "pipeline/hub/errors.ts": HUB_ERROR_CODES,
  "pipeline/gguf/errors.ts": GGUF_ERROR_CODES,
  "pipeline/signing/errors.ts": [...SIGN_ERROR_CODES, ...VERIFY_ERROR_CODES],
  "pipeline/registry/errors.ts": REGISTRY_ERROR_CODES,
  "pipeline/registry/pack-errors.ts": PACK_ERROR_CODES,
  "pipeline/config/errors.ts": MODEL_ERROR_CODES,
  "pipeline/model-bench/errors.ts": BENCH_ERROR_CODES,
  "pipeline/engine-build/errors.ts": ENGINE_BUILD_ERROR_CODES,
  "pipeline/python.ts": PYTHON_ERROR_CODES,
  "engines/errors.ts": ENGINE_ERROR_CODES,
  "tasks/errors.ts": TASK_ERROR_CODES,
};

const sorted = (codes: Iterable<string>) => [...new Set(codes)].sort();

describe("no code string declared twice", () => {
  const declarations = declarationsUnder(PROJECT_ROOT, SOURCE_DIRS);

  it("holds for pipeline/, tasks/ and engines/", () => {
    expect(declarations.length).toBeGreaterThan(75); // the scan sees the declarations at all
    expect(duplicateDeclarations(declarations)).toEqual([]);
  });

  it("finds each code where its domain's list says, and nowhere else", () => {
    const byPlace = Object.fromEntries(Object.keys(DOMAIN_LISTS).map((file) => [file, [] as string[]]));
    for (const { code, place } of declarations) (byPlace[place.replace(/:\d+$/, "")] ??= []).push(code);
    expect(Object.fromEntries(Object.entries(byPlace).map(([file, codes]) => [file, sorted(codes)]))).toEqual(
      Object.fromEntries(Object.entries(DOMAIN_LISTS).map(([file, codes]) => [file, sorted(codes)])),
    );
  });

  it("counts code lists, unions and interface or enum members, and names both places of a code declared twice", () => {
    const found = [
      ...codeDeclarations("pipeline/hub/errors.ts", `export const HUB_ERROR_CODES = ["E_HUB_A", "E_SHARED"] as const;`),
      ...codeDeclarations("engines/types.ts", `export type EngineErrorCode =\n  | "E_ENGINE_A"\n  | ("E_SHARED" | "E_ENGINE_B");`),
      ...codeDeclarations("pipeline/core/errors.ts", `declare module "x" {\n  interface ErrorCodes { E_CORE_A: true; "E_HUB_A": true }\n}\nenum Old { E_OLD = "E_OLD" }`),
    ];
    expect(found.map((d) => d.code)).toEqual(["E_HUB_A", "E_SHARED", "E_ENGINE_A", "E_SHARED", "E_ENGINE_B", "E_CORE_A", "E_HUB_A", "E_OLD"]);
    expect(duplicateDeclarations(found)).toEqual([
      "E_HUB_A is declared 2 times: pipeline/hub/errors.ts:1, pipeline/core/errors.ts:2",
      "E_SHARED is declared 2 times: pipeline/hub/errors.ts:1, engines/types.ts:3",
    ]);
  });

  it("does not count throw sites, comparisons, table keys, type arguments or parameter types", () => {
    const uses = [
      `throw new PipelineError("E_A", "message");`,
      `if (error.code === "E_A") return 2;`,
      `const ERROR_TABLE = { E_A: { exit: 1 } };`,
      `const RETRYABLE = ["ECONNRESET", "E_A"];`,
      `class AError extends PipelineError<"E_A"> {}`,
      `type Failure = RegistryErrorCode | DeclaredCode<"E_A"> | Extract<ErrorCode, "E_A">;`,
      `function fail(code: "E_A" | "E_B"): never { throw new Error(code); }`,
    ].join("\n");
    expect(codeDeclarations("pipeline/x.ts", uses)).toEqual([]);
  });
});

describe("the error codes' owners", () => {
  it("core/errors.ts, the ground floor, imports no domain, not even a type", () => {
    const source = readFileSync(join(PROJECT_ROOT, "pipeline/core/errors.ts"), "utf8");
    const imports = [...source.matchAll(/^(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((path) => !path!.startsWith("./"))).toEqual([]);
  });

  it("keeps ai-tools/verify's VerifyErrorCode: the verifier's codes plus core's file codes", () => {
    const codes: VerifyErrorCode[] = [...VERIFY_ERROR_CODES, "E_DIGEST_MISMATCH", "E_MISSING_FILE", "E_NOT_REGULAR_FILE", "E_IO"];
    expect(codes).toHaveLength(16);
    // @ts-expect-error: a sign code is not a verification code
    const sign: VerifyErrorCode = "E_SIGN_INPUT";
    expect(sign).toBe("E_SIGN_INPUT");
  });

  it("makes tsc refuse a misspelled code at a throw site, and a reference to an undeclared one", () => {
    // `pnpm test` runs tsc first: each @ts-expect-error fails it when its line compiles.
    // @ts-expect-error: E_USAGEE is declared by no domain
    const misspelled = new PipelineError("E_USAGEE", "x");
    // @ts-expect-error: DeclaredCode names only declared codes
    type Undeclared = DeclaredCode<"E_NOT_DECLARED">;
    const undeclared: Undeclared = "E_NOT_DECLARED";
    expect([misspelled.code, undeclared]).toEqual(["E_USAGEE", "E_NOT_DECLARED"]);
  });
});

describe("the error table", () => {
  const declared = sorted(Object.values(DOMAIN_LISTS).flat());

  it("has one row per declared code and none for a code no domain declares", () => {
    expect(declared.length).toBeGreaterThan(75);
    expect(sorted(Object.keys(ERROR_TABLE))).toEqual(declared);
  });

  it("makes tsc refuse a table without a row for a code, or with a row for an undeclared code", () => {
    const { E_USAGE: _usage, ...withoutUsage } = ERROR_TABLE;
    // @ts-expect-error: E_USAGE has no row
    const missing = withoutUsage satisfies Record<ErrorCode, ErrorRow>;
    // @ts-expect-error: E_NOT_DECLARED is declared by no domain
    const extra = { ...ERROR_TABLE, E_NOT_DECLARED: ERROR_TABLE.E_USAGE } satisfies Record<ErrorCode, ErrorRow>;
    expect(Object.keys(missing)).not.toContain("E_USAGE");
    expect(Object.keys(extra)).toContain("E_NOT_DECLARED");
  });

  it("keeps every code's exit status from the prefix rules it replaced", () => {
    // The rules exitForErrorCode had before the table; E_ABORTED and E_LOCK_BUSY now carry the
    // status a run stopped by them already exits with (exitForOutcome: 130, 75), not 1.
    const before = (code: string) =>
      code === "E_ENGINE_ABORTED" ? 130 : ["E_USAGE", "E_ENGINE_UNKNOWN", "E_MODEL_UNSUPPORTED", "E_TRUST_CONFIG", "E_REGISTRY_REFERENCE", "E_REGISTRY_INSECURE"].includes(code) || code.startsWith("E_CONFIG") || code.startsWith("E_GRAPH") ? 2 : 1;
    const changed = { E_ABORTED: EXIT.interrupted, E_LOCK_BUSY: EXIT.busy };
    for (const code of declared) expect([code, exitForErrorCode(code)]).toEqual([code, changed[code as keyof typeof changed] ?? before(code)]);
  });

  it("gives a code no domain declares exit 1", () => {
    expect(exitForErrorCode("E_SOMETHING_NEW")).toBe(EXIT.failed);
    expect(exitForErrorCode("toString")).toBe(EXIT.failed);
  });
});
