/**
 * What the bench scripts share: a scratch folder that goes away however the run ends, and
 * a command timed by GNU time (wall, CPU and peak RSS as the kernel counts them).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface BenchScratch {
  dir: string;
  /** Removes the folder (and `alsoRemove`); call it in a `finally`. */
  cleanup(): void;
}

/** A new folder under the temp directory, removed by cleanup() and on Ctrl-C or SIGTERM (exit 130). */
export function benchScratch(name: string, alsoRemove: readonly string[] = []): BenchScratch {
  const dir = mkdtempSync(join(tmpdir(), `ai-tools-bench-${name}-`));
  const cleanup = () => {
    rmSync(dir, { recursive: true, force: true });
    for (const path of alsoRemove) rmSync(path, { recursive: true, force: true });
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      cleanup();
      process.exit(130);
    });
  return { dir, cleanup };
}

export interface Timed {
  wallS: number;
  /** User + system CPU seconds. */
  cpuS: number;
  maxRssBytes: number;
  stdout: string;
}

/**
 * `argv` run to completion under /usr/bin/time, which writes its numbers to `timeFile`.
 * `stderr`: "inherit" shows the command's progress; "pipe" keeps it for the error message.
 * @throws Error when the command fails.
 */
export function timedUnderGnuTime(argv: readonly string[], timeFile: string, options: { env?: NodeJS.ProcessEnv; stderr?: "inherit" | "pipe" } = {}): Timed {
  const result = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", "-o", timeFile, ...argv], {
    encoding: "utf8",
    env: options.env ?? process.env,
    maxBuffer: 1 << 26,
    stdio: ["ignore", "pipe", options.stderr ?? "pipe"],
  });
  if (result.status !== 0) throw new Error(`${argv.join(" ")} exited with ${result.status ?? result.signal}\n${result.stderr ?? ""}`);
  // The last line: GNU time puts "Command exited with non-zero status" lines before it.
  const [wall, user, system, rssKiB] = readFileSync(timeFile, "utf8").trim().split(/\s+/).slice(-4).map(Number);
  return { wallS: wall!, cpuS: user! + system!, maxRssBytes: rssKiB! * 1024, stdout: result.stdout };
}
