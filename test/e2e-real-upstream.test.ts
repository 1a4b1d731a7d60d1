/**
 * Opt-in: the real PowerInfer engine. Set AI_TOOLS_E2E_POWERINFER_URL to a git
 * repository of it (a mirror with uploadpack.allowFilter is fetched blob-filtered).
 * Takes minutes (a real CMake build), so it is skipped, and reported as skipped,
 * when the variable is unset.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";

const url = process.env.AI_TOOLS_E2E_POWERINFER_URL;

describe.skipIf(!url)("real upstream (AI_TOOLS_E2E_POWERINFER_URL)", () => {
  let ws: TestWorkspace;
  afterAll(() => ws?.cleanup());

  it("pnpm pipeline engine fetches and builds the real engine, and main --help runs", { timeout: 900_000 }, async () => {
    ws = makeWorkspace();
    copyFileSync(join(PROJECT_ROOT, "configs", "engines", "powerinfer.yaml"), ws.configFile);
    const result = await ws.cli(["engine", "--backend", "cpu"], { AI_TOOLS_POWERINFER_URL: url! });
    expect(result.code, result.stdout + result.stderr).toBe(0);

    const build = ws.record("build")!.result as { binaries: Record<string, string>; buildInfo: { commit: string } };
    expect(build.buildInfo.commit).toBe("d3ebd7c");
    const help = execFileSync(join(ws.root, build.binaries.main!), ["--help"], { encoding: "utf8" });
    expect(help).toContain("usage:");
    expect(help).toContain("--vram-budget");

    const again = await ws.cli(["engine", "--backend", "cpu"], { AI_TOOLS_POWERINFER_URL: url! });
    expect(again.stdout).toContain("[build] fresh, skipped");
  });

  it("convert tiny-relu-llama runs the real converter, and main generates 16 tokens from the result", { timeout: 900_000 }, async () => {
    const result = await ws.cli(["convert", "tiny-relu-llama", "--backend", "cpu"], { AI_TOOLS_POWERINFER_URL: url! });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const gguf = join(ws.root, "models", "powerinfer", "tiny-relu-llama", "model.powerinfer.gguf");
    const build = ws.record("build")!.result as { binaries: Record<string, string> };
    const run = spawnSync(join(ws.root, build.binaries.main!), ["-m", gguf, "-n", "16", "-t", "2", "-p", "Once upon a time", "--seed", "42"], { cwd: ws.root, encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toContain("PowerInfer model loaded. Sparse inference will be used.");
    expect(run.stderr).toMatch(/llama_print_timings:\s+eval time =\s+\S+ ms \/\s+15 runs/);
    expect(run.stdout.startsWith("Once upon a time")).toBe(true);

    // The convert graph ended with the bench step: plausible numbers from the real engine.
    const bench = JSON.parse(readFileSync(join(ws.root, "models", "powerinfer", "tiny-relu-llama", "bench.json"), "utf8")) as {
      aggregates: { evalTokensPerSecond: { median: number }; peakRssBytes: { median: number } };
      runs: { timings: { evalRuns: number } }[];
      llamaBench?: unknown[];
    };
    expect(bench.aggregates.evalTokensPerSecond.median).toBeGreaterThan(0);
    expect(bench.aggregates.peakRssBytes.median).toBeGreaterThan(1 << 20);
    expect(bench.runs.every((r) => r.timings.evalRuns === 15)).toBe(true);
    expect(bench.llamaBench?.length).toBeGreaterThan(0);
  });

  it("the converted model is signed and verifies; ai-tools run generates from it and writes a metrics line", { timeout: 300_000 }, async () => {
    const verify = await ws.cli(["verify", "models/powerinfer/tiny-relu-llama", "--require-provenance"]);
    expect(verify.code, verify.stderr).toBe(0);
    const run = await ws.cli(["run", "--config", "models/powerinfer/tiny-relu-llama/policy.yaml", "--prompt", "Once upon a time", "--metrics-log", "build/metrics.jsonl"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().length).toBeGreaterThan(0);
    expect(run.stderr).toMatch(/verified 4 files/);
    const record = JSON.parse(readFileSync(join(ws.root, "build", "metrics.jsonl"), "utf8").trim());
    expect(record).toMatchObject({ exitStatus: "ok", engine: { name: "powerinfer" }, metrics: { source: "engine", generatedTokens: 16 } });
    expect(record.metrics.generationTokensPerSecond).toBeGreaterThan(0);
    const drift = await ws.cli(["drift", "--config", "models/powerinfer/tiny-relu-llama/policy.yaml"]);
    expect(drift.code, drift.stdout).toBe(0);
  });
});
