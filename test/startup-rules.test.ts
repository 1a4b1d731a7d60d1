/**
 * Source rules that keep the CLI's start-up small (bench/cli-startup.mjs measures it): the
 * bundler can only drop what the sources let it see is unused.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./helpers/workspace.js";
import { SOURCE_ROOTS, sourceFiles } from "../scripts/check-structure.js";

describe("start-up rules", () => {
  it('zod is imported as a namespace (`import * as z from "zod"`), which lets the bundle leave out what no schema uses', () => {
    // `import { z }` takes zod's whole namespace object, so nothing can be dropped: the zod chunk
    // that `run` and `verify` compile at every start was 288 KB that way, 152 KB as a namespace.
    const files = SOURCE_ROOTS.flatMap((d) => sourceFiles(PROJECT_ROOT, d));
    const importing = files.filter((f) => /from "zod(\/[^"]*)?"/.test(readFileSync(join(PROJECT_ROOT, f), "utf8")));
    expect(importing.length).toBeGreaterThan(5);
    const offenders = importing.filter((f) => /import\s+(type\s+)?\{[^}]*\}\s+from\s+"zod/.test(readFileSync(join(PROJECT_ROOT, f), "utf8")));
    expect(offenders).toEqual([]);
  });
});
