/**
 * Opt-in: the real PowerInfer engine. Set AI_TOOLS_E2E_POWERINFER_URL to a git
 * repository of it (a mirror with uploadpack.allowFilter is fetched blob-filtered).
 * Takes minutes (a real CMake build), so it is skipped, and reported as skipped,
 * when the variable is unset.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { serveCli } from "./helpers/serve.js";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";

const url = process.env.AI_TOOLS_E2E_POWERINFER_URL;

describe.skipIf(!url)("real upstream (opt-in: AI_TOOLS_E2E_POWERINFER_URL names a PowerInfer repository to clone and build)", () => {
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

  it("serve builds the real engine's server target and answers the openai client, streamed and not", { timeout: 900_000 }, async () => {
    const served = await serveCli(ws, ["--config", "models/powerinfer/tiny-relu-llama/policy.yaml", "--backend", "cpu"], { AI_TOOLS_POWERINFER_URL: url! });
    try {
      expect(served.stderr()).toContain("[build-server] run:");
      const client = new OpenAI({ baseURL: `${served.base}/v1`, apiKey: "unused", maxRetries: 0 });
      const chat = await client.chat.completions.create({ model: "tiny-relu-llama", messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 8, seed: 1 });
      expect(chat.choices[0]!.message.content!.length).toBeGreaterThan(0);
      // At most max_tokens (the engine samples more), fewer if the random model ends its text first.
      expect(chat.usage!.completion_tokens).toBeGreaterThan(0);
      expect(chat.usage!.completion_tokens).toBeLessThanOrEqual(8);
      let usage;
      let text = "";
      for await (const chunk of await client.completions.create({ model: "tiny-relu-llama", prompt: "Once upon a time", max_tokens: 2, stream: true, stream_options: { include_usage: true } })) {
        text += chunk.choices[0]?.text ?? "";
        usage = chunk.usage ?? usage;
      }
      expect(text.length).toBeGreaterThan(0);
      expect((usage as { completion_tokens: number } | undefined)?.completion_tokens).toBeLessThanOrEqual(2);
    } finally {
      served.child.kill("SIGTERM");
      expect((await served.exit).code).toBe(0);
    }
  });

  const torchPython = ["python3", "/usr/bin/python3"].find((py) => spawnSync(py, ["-c", "import torch, cvxopt, numpy; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0);
  it.skipIf(!torchPython)("the real solver writes a GPU index for the demo model, signed with it (opt-in: needs python3-torch and python3-cvxopt)", { timeout: 600_000 }, async () => {
    // The demo model (FFN width 256: one solver batch) with a host class; its activation counts written by torch.
    const recipes = join(ws.root, "configs", "models", "powerinfer");
    mkdirSync(recipes, { recursive: true });
    mkdirSync(join(ws.root, "configs", "hosts"), { recursive: true });
    copyFileSync(join(PROJECT_ROOT, "configs", "hosts", "gpu-box.yaml"), join(ws.root, "configs", "hosts", "gpu-box.yaml"));
    const tiny = readFileSync(join(PROJECT_ROOT, "configs", "models", "powerinfer", "tiny-relu-llama.yaml"), "utf8");
    writeFileSync(join(recipes, "tiny-split.yaml"), tiny.replace("name: tiny-relu-llama", "name: tiny-split") + "\ngpuSplit:\n  hosts: [gpu-box]\n");
    const first = await ws.cli(["convert", "tiny-split", "--backend", "cpu"], { AI_TOOLS_POWERINFER_URL: url! });
    expect(first.code).not.toBe(0);
    expect(first.stdout + first.stderr).toContain("has no activation/");
    const activation = join(ws.root, "models", "powerinfer", "tiny-split", "activation");
    mkdirSync(activation, { recursive: true });
    const made = spawnSync(torchPython!, ["-c", `import torch\nfor i in range(2):\n    torch.save(torch.arange(256, dtype=torch.float32) * (i + 1), "${activation}/activation_%d.pt" % i)`], { encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
    const again = await ws.cli(["convert", "tiny-split", "--backend", "cpu"], { AI_TOOLS_POWERINFER_URL: url! });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain("[gpu-split] done");
    const inspect = await ws.cli(["inspect", "models/powerinfer/tiny-split/model.gpu-box.gpuidx", "--json"]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expect(readFileSync(join(ws.root, "models", "powerinfer", "tiny-split", "SHA256SUMS"), "utf8")).toContain("model.gpu-box.gpuidx");
    expect((await ws.cli(["verify", "models/powerinfer/tiny-split"])).code).toBe(0);
  });
});
