/**
 * Once per test run: compile the CLI (the tests spawn it as users do), create the
 * fixture upstream repository that every CLI test fetches from, and give the run its own
 * temporary folder (TMPDIR, which the test workers and everything they spawn inherit),
 * removed at the end: the tests' scratch folders do not pile up in /tmp run after run.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { createFixtureUpstream, type FixtureUpstream } from "./fixture-upstream.js";

declare module "vitest" {
  export interface ProvidedContext {
    fixtureUpstream: FixtureUpstream;
  }
}

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export default function setup(project: TestProject) {
  // Short: unix socket paths under it must stay within 108 bytes.
  const scratch = mkdtempSync(join(tmpdir(), "ait-"));
  process.env.TMPDIR = scratch;
  execFileSync(process.execPath, [join(projectRoot, "bin", "ai-tools.mjs"), "--version"], { stdio: ["ignore", "ignore", "inherit"] });
  const fixture = createFixtureUpstream(projectRoot);
  project.provide("fixtureUpstream", fixture);
  return () => {
    rmSync(dirname(fixture.bareDir), { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  };
}
