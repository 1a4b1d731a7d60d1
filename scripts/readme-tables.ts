/**
 * Writes README.md's generated tables from their sources: today the Troubleshooting table,
 * from pipeline/cli/error-table.ts. `pnpm readme` (node --import tsx scripts/readme-tables.ts);
 * test/error-codes.test.ts fails when the README differs from what this would write.
 */
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { atomicWriteFile } from "../pipeline/core/files.js";
import { troubleshootingMarkdown } from "../pipeline/cli/error-table.js";

/** A generated block: its markers stay in the README, what lies between them is rewritten. */
export const GENERATED_SECTIONS: ReadonlyArray<{ name: string; source: string; render: () => string }> = [
  { name: "troubleshooting-table", source: "pipeline/cli/error-table.ts", render: troubleshootingMarkdown },
];

const startMarker = (name: string, source: string) => `<!-- ${name}: generated from ${source} by \`pnpm readme\`; edit it there -->`;
const endMarker = (name: string) => `<!-- /${name} -->`;

/** The README with every generated block rendered afresh; a missing or doubled marker is an error naming it. */
export function renderReadme(readme: string): string {
  let text = readme;
  for (const { name, source, render } of GENERATED_SECTIONS) {
    const start = startMarker(name, source);
    const end = endMarker(name);
    const from = text.indexOf(start);
    const to = text.indexOf(end);
    if (from < 0 || to < from || text.indexOf(start, from + 1) >= 0) throw new Error(`README.md needs exactly one "${start}" line followed by a "${end}" line`);
    text = `${text.slice(0, from + start.length)}\n${render()}\n${text.slice(to)}`;
  }
  return text;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = join(dirname(fileURLToPath(import.meta.url)), "..", "README.md");
  const before = await readFile(file, "utf8");
  const after = renderReadme(before);
  if (after === before) process.stdout.write("README.md: generated tables are up to date\n");
  else {
    await atomicWriteFile(file, after);
    process.stdout.write(`README.md: rewrote ${GENERATED_SECTIONS.map((s) => s.name).join(", ")}\n`);
  }
}
