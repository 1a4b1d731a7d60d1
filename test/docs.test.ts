/**
 * The README's Troubleshooting table is the error table (pipeline/cli/error-table.ts)
 * rendered, so a user who sees a code finds what happened, what to do and the exit status;
 * its Exit codes table describes every status the CLI and that table use.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_TABLE, troubleshootingMarkdown } from "../pipeline/cli/error-table.js";
import { EXIT } from "../pipeline/cli/exit.js";
import { renderReadme } from "../scripts/readme-tables.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

const readme = readFileSync(join(PROJECT_ROOT, "README.md"), "utf8");

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  expect(start, `README.md has a "## ${title}" section`).toBeGreaterThanOrEqual(0);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

const tableLines = (text: string) => text.split("\n").filter((line) => line.startsWith("|"));

describe("README troubleshooting", () => {
  it("is the error table rendered: one row per row of it, each code listed once (`pnpm readme` rewrites it)", () => {
    expect(tableLines(section("Troubleshooting"))).toEqual(troubleshootingMarkdown().split("\n"));
    expect(renderReadme(readme) === readme, "README.md differs from what `pnpm readme` writes").toBe(true);
    const listed = tableLines(section("Troubleshooting")).flatMap((line) => line.split(" | ")[0]!.match(/`E_[A-Z0-9_]+`/g) ?? []);
    expect(listed.sort()).toEqual(Object.keys(ERROR_TABLE).map((code) => `\`${code}\``).sort());
  });

  it("renders codes that share a row on one line, with the exit status the CLI uses", () => {
    const markdown = troubleshootingMarkdown();
    expect(markdown).toContain("| `E_GGUF_IO`, `E_GGUF_TRUNCATED`, `E_GGUF_MAGIC`, `E_GGUF_VERSION`, `E_GGUF_LIMIT`, `E_GGUF_INVALID` | 1 | a GGUF file is unreadable");
    expect(markdown).toContain("| `E_ENGINE_UNKNOWN` | 2 | no engine of that name |");
    expect(markdown).toContain("| `E_ENGINE_ABORTED` | 130 |");
    // A cell with a pipe stays one cell.
    expect(troubleshootingMarkdown({ E_X: { exit: 1, what: "a | b", todo: "c" } })).toContain("| `E_X` | 1 | a \\| b | c |");
  });

  it("refuses to render a README whose markers are missing", () => {
    expect(() => renderReadme("# no markers\n")).toThrow(/README.md needs exactly one "<!-- troubleshooting-table: generated from pipeline\/cli\/error-table.ts/);
  });
});

describe("README exit codes", () => {
  it("describes every exit status the CLI has and every status the error table gives a code", () => {
    const described = tableLines(section("Exit codes")).map((line) => Number(line.split("|")[1]!.trim())).filter(Number.isInteger);
    const used = new Set([...Object.values(EXIT), ...Object.values(ERROR_TABLE).map((row) => row.exit)]);
    expect([...used].filter((status) => !described.includes(status))).toEqual([]);
    expect(described.filter((status) => !used.has(status as never))).toEqual([]);
  });
});

describe("README dependencies", () => {
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
  const declared = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies }).sort();
  // Each row's first cell names its packages in backticks; the "not used" rows say why a specified package is absent.
  const rows = tableLines(section("Dependencies")).slice(2).map((line) => ({ packages: line.split(" | ")[0]!.match(/`[^`]+`/g)!.map((p) => p.slice(1, -1)), unused: / \| not used \| /.test(line) }));

  it("lists every package of package.json, with its pin", () => {
    const listed = rows.filter((r) => !r.unused).flatMap((r) => r.packages).sort();
    expect(listed).toEqual(declared);
    for (const row of tableLines(section("Dependencies")).slice(2).filter((line) => !/ \| not used \| /.test(line))) {
      const [names, pins] = row.split(" | ");
      const versions = pins!.split(",").map((v) => v.trim());
      names!.match(/`[^`]+`/g)!.forEach((name, i) => {
        const pin = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies }[name.slice(1, -1)];
        expect(versions[i], `${name}'s pin in the README`).toBe(pin);
      });
    }
  });

  it("lists no package that package.json lacks, except the specified ones it says are not used", () => {
    for (const row of rows.filter((r) => r.unused)) for (const name of row.packages) expect(declared).not.toContain(name);
  });
});
