/**
 * Once per test run: compile the CLI (the tests spawn it as users do) and create the
 * fixture upstream repository that every CLI test fetches from.
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
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
  execFileSync(process.execPath, [join(projectRoot, "bin", "ai-tools.mjs"), "--version"], { stdio: ["ignore", "ignore", "inherit"] });
  const fixture = createFixtureUpstream(projectRoot);
  project.provide("fixtureUpstream", fixture);
  return () => rmSync(dirname(fixture.bareDir), { recursive: true, force: true });
}
