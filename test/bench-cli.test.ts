/**
 * The bench step and `pnpm pipeline bench` as users run them, with the fixture engine
 * (its `main` prints the real timings block and -ld YAML log, and can be told to fail,
 * print no timings or hang).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseBenchResult, type BenchResult } from "../pipeline/model-bench/result.js";
import { PAPER_PROMPTS } from "../pipeline/model-bench/paper-prompts.js";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece"]).status === 0;

describe.skipIf(!pythonReady)("bench (needs /usr/bin/python3 with numpy and sentencepiece to make the demo model)", () => {
  let ws: TestWorkspace;
  const benchFile = () => join(ws.root, "models", "powerinfer", "tiny-bench", "bench.json");
  const read = (): BenchResult => parseBenchResult(readFileSync(benchFile(), "utf8"));
  const writeBaseline = (name: string, change: (r: BenchResult) => void) => {
    const baseline = structuredClone(read());
    change(baseline);
    const path = join(ws.root, name);
    writeFileSync(path, JSON.stringify(baseline));
    return path;
  };

  beforeAll(() => {
    ws = makeWorkspace();
    const recipes = join(ws.root, "configs", "models", "powerinfer");
    mkdirSync(recipes, { recursive: true });
    const tiny = readFileSync(join(PROJECT_ROOT, "configs", "models", "powerinfer", "tiny-relu-llama.yaml"), "utf8");
    writeFileSync(join(recipes, "tiny-bench.yaml"), tiny.replace("name: tiny-relu-llama", "name: tiny-bench").replace("  warmup: 1\n", "  warmup: 1\n  timeoutMinutes: 0.05\n"));
  });
  afterAll(() => ws.cleanup());

  it("convert ends with bench.json: runs, aggregates, the command, the engine and the host", async () => {
    const result = await ws.cli(["convert", "tiny-bench"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("running convert tiny-bench: upstream -> build -> generate -> convert -> bench");
    const bench = read();
    expect(bench.runs).toHaveLength(5);
    expect(bench.settings).toMatchObject({ warmupRuns: 1, runs: 5, nPredict: 16, prompt: "Once upon a time" });
    for (const run of bench.runs) {
      expect(run.timings.evalRuns).toBe(15);
      expect(run.timings.evalTokensPerSecond).toBeGreaterThan(0);
      expect(run.peakRssBytes).toBeGreaterThan(100 * 1024);
      expect(run.exitCode).toBe(0);
    }
    expect(bench.aggregates.evalTokensPerSecond!.samples).toHaveLength(5);
    expect(bench.model).toMatchObject({ name: "tiny-bench", sparse: true, fileType: 1 });
    expect(bench.command).toContain("--log-disable");
    expect(bench.command[bench.command.indexOf("-t") + 1]).toBe(String(bench.settings.threads));
    expect(bench.settings.threads).toBeLessThanOrEqual(bench.host.physicalCores);
    expect(bench.host.hostClass).toMatch(/\/\d+c/);
    expect(bench.llamaBench?.length).toBeGreaterThan(0);
  });

  it("the paper profile: the fixed prompt set in turn, no llama-bench, the end-to-end metric, the loader's GPU lines", async () => {
    const recipes = join(ws.root, "configs", "models", "powerinfer");
    const tiny = readFileSync(join(PROJECT_ROOT, "configs", "models", "powerinfer", "tiny-relu-llama.yaml"), "utf8");
    writeFileSync(join(recipes, "tiny-paper.yaml"), tiny.replace("name: tiny-relu-llama", "name: tiny-paper").replace("  runs: 5\n", "  runs: 4\n").replace("  warmup: 1\n", "  warmup: 1\n  profile: paper\n  vramBudgetGiB: 4\n"));
    const result = await ws.cli(["convert", "tiny-paper"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const bench = parseBenchResult(readFileSync(join(ws.root, "models", "powerinfer", "tiny-paper", "bench.json"), "utf8"));
    expect(bench.settings.profile).toBe("paper");
    expect(bench.settings.prompts).toEqual([...PAPER_PROMPTS]);
    // A CPU build takes no --vram-budget (the note says so); a GPU build would need it.
    expect(bench.settings.vramBudgetGiB).toBeUndefined();
    expect(bench.llamaBench).toBeUndefined();
    // Each measured run had its own prompt: its prompt token count differs (the fixture counts ~1 token per 3 bytes).
    expect(new Set(bench.runs.map((r) => r.timings.promptTokens)).size).toBe(4);
    const e2e = bench.aggregates.endToEndTokensPerSecond!;
    expect(e2e.samples).toHaveLength(4);
    const t = bench.runs[0]!.timings;
    expect(e2e.samples[0]).toBeCloseTo((t.evalRuns + 1) / ((t.promptEvalMs! + t.evalMs!) / 1000), 6);
    expect(bench.runs[0]!.gpuLog).toMatchObject({ offloadedFfnMiB: 0, offloadedLayers: { layers: 0, of: 2, budgetBytes: 0 } });
    const shown = await ws.cli(["bench", "tiny-paper"]);
    expect(shown.stdout).toMatch(/profile\s+paper \(4 prompts in turn/);
    expect(shown.stdout).toMatch(/end-to-end tokens\/s/);
  });

  it("bench measures again and prints the result", async () => {
    const before = read().createdAt;
    const result = await ws.cli(["bench", "tiny-bench"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("[bench] run: forced (--force)");
    expect(result.stdout).toMatch(/eval tokens\/s\s+[\d.]+/);
    expect(read().createdAt).not.toBe(before);
    const json = await ws.cli(["bench", "tiny-bench", "--json"]);
    const last = parseEvents(json.stdout).at(-1) as { event: string; result: BenchResult };
    expect(last.event).toBe("bench-result");
    expect(last.result.runs).toHaveLength(5);
    const markdown = await ws.cli(["bench", "tiny-bench", "--markdown"]);
    expect(markdown.stdout).toMatch(/^\|.*\|$/m);
  });

  it("--compare passes within the noise and fails on a real regression (exit 1)", async () => {
    const same = writeBaseline("same.json", () => undefined);
    const ok = await ws.cli(["bench", "tiny-bench", "--compare", same]);
    expect(ok.code, ok.stdout).toBe(0);

    const faster = writeBaseline("faster.json", (b) => {
      const agg = b.aggregates.evalTokensPerSecond!;
      agg.samples = agg.samples.map((x) => x * 100);
      agg.median *= 100;
      agg.min *= 100;
      agg.max *= 100;
      agg.mean *= 100;
    });
    const summary = join(ws.root, "summary.md");
    const regressed = await ws.cli(["bench", "tiny-bench", "--baseline", faster, "--markdown"], { GITHUB_STEP_SUMMARY: summary });
    expect(regressed.code, regressed.stdout).toBe(1);
    expect(regressed.stdout).toMatch(/regression/);
    expect(readFileSync(summary, "utf8")).toMatch(/\|.*eval tokens\/s.*\|/);
  });

  it("a result from another kind of machine is not compared unless --force-compare", async () => {
    const elsewhere = writeBaseline("elsewhere.json", (b) => {
      b.host.hostClass = "amd-epyc-9654/96c/nvidia-h100";
    });
    const refused = await ws.cli(["bench", "tiny-bench", "--compare", elsewhere]);
    expect(refused.code).toBe(0);
    expect(refused.stdout).toContain("different host class");
    const forced = await ws.cli(["bench", "tiny-bench", "--compare", elsewhere, "--force-compare", "--json"]);
    expect(parseEvents(forced.stdout).at(-1)).toMatchObject({ event: "bench-comparison", forced: true, comparable: true });
  });

  it("an engine that fails or hangs is a clear error, and bench.json keeps the last good result", async () => {
    const goodBefore = statSync(benchFile()).mtimeMs;
    const failed = await ws.cli(["bench", "tiny-bench"], { FIXTURE_MAIN_EXIT: "3" });
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/\[bench\] bench failed \[E_COMMAND_FAILED\]: \S*\/bin\/main exited with code 3/);
    expect(failed.stdout).toMatch(/command: \S*\/bin\/main -m \S*model.powerinfer.gguf/);
    expect(failed.stdout).toMatch(/full log: \S*build\/logs\/bench--tiny-bench\.log/);

    const started = Date.now();
    const hung = await ws.cli(["bench", "tiny-bench"], { FIXTURE_MAIN_SLEEP_MS: "600000" });
    expect(hung.code).toBe(1);
    expect(hung.stdout).toMatch(/\[E_COMMAND_TIMEOUT\]: \S*\/bin\/main timed out after 3 s/);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(statSync(benchFile()).mtimeMs).toBe(goodBefore);
    expect(existsSync(benchFile())).toBe(true);
  });

  it("on a machine with an NVIDIA GPU, records the GPU and the memory the run used (nvidia-smi)", async () => {
    const bin = join(ws.root, "fake-gpu-bin");
    mkdirSync(bin, { recursive: true });
    const counter = join(ws.root, "smi-calls");
    // 1000 MiB in use before a run, then 1000 + 64 * call count while it runs.
    writeFileSync(
      join(bin, "nvidia-smi"),
      `#!/bin/sh
case "$1" in
  --query-gpu=name,driver_version,memory.total) echo "NVIDIA H100 80GB HBM3, 550.54.15, 81559" ;;
  --query-gpu=memory.used) n=$(cat "${counter}" 2>/dev/null || echo 0); echo $((n + 1)) > "${counter}"; echo $((1000 + 64 * n)) ;;
  *) exit 9 ;;
esac
`,
    );
    chmodSync(join(bin, "nvidia-smi"), 0o755);
    const result = await ws.cli(["bench", "tiny-bench"], { PATH: `${bin}:${process.env.PATH}` });
    expect(result.code, result.stdout).toBe(0);
    const bench = read();
    expect(bench.host.gpus).toEqual([{ name: "NVIDIA H100 80GB HBM3", driver: "550.54.15", memoryBytes: 81559 * 2 ** 20 }]);
    expect(bench.host.hostClass).toContain("nvidia-h100-80gb-hbm3");
    for (const run of bench.runs) expect(run.gpuMemoryBytes).toBeGreaterThan(0);
  });
});
