/**
 * The fixture "upstream": test/fixtures/upstream (a tiny CMake C project whose binaries
 * print the real engine's formats) committed into a local bare repository that
 * allows the same shallow, blob-filtered, by-commit fetches GitHub does.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FixtureUpstream {
  /** file:// URL of the bare repository. */
  url: string;
  bareDir: string;
  commit: string;
  /** A second commit on top (to test moving the pin). */
  nextCommit: string;
}

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: "fixture",
  GIT_AUTHOR_EMAIL: "fixture@example.invalid",
  GIT_COMMITTER_NAME: "fixture",
  GIT_COMMITTER_EMAIL: "fixture@example.invalid",
  GIT_AUTHOR_DATE: "2025-07-28T09:00:43+08:00",
  GIT_COMMITTER_DATE: "2025-07-28T09:00:43+08:00",
};

export function git(args: string[], cwd: string): string {
  return execFileSync("git", args, { cwd, env: GIT_ENV, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

export function createFixtureUpstream(projectRoot: string): FixtureUpstream {
  const base = mkdtempSync(join(tmpdir(), "ai-tools-fixture-upstream-"));
  const work = join(base, "work");
  cpSync(join(projectRoot, "test", "fixtures", "upstream"), work, { recursive: true });
  git(["init", "--quiet", "--initial-branch=main"], work);
  git(["add", "--all"], work);
  git(["commit", "--quiet", "-m", "fixture engine"], work);
  const commit = git(["rev-parse", "HEAD"], work);
  git(["commit", "--quiet", "--allow-empty", "-m", "a later commit"], work);
  const nextCommit = git(["rev-parse", "HEAD"], work);
  const bareDir = join(base, "powerinfer-fixture.git");
  git(["clone", "--quiet", "--bare", work, bareDir], base);
  git(["config", "uploadpack.allowFilter", "true"], bareDir);
  git(["config", "uploadpack.allowAnySHA1InWant", "true"], bareDir);
  return { url: `file://${bareDir}`, bareDir, commit, nextCommit };
}
