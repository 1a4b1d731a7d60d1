/**
 * `ai-tools run` and its companions as a user runs them, on the fixture engine's `main`
 * (streaming output, the real timings format, crash and hang knobs) and a converted,
 * signed demo model.
 */
import { spawnSync, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";
import { createPowerInferEngine } from "../engines/powerinfer.js";
import { loadPolicy } from "../pipeline/policy/load.js";
import { renderPolicy } from "../pipeline/policy/render.js";
import type { RenderedPolicy } from "../pipeline/policy/types.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const POLICY = "models/powerinfer/tiny-relu-llama/policy.yaml";
const PROMPT = "Once upon a time";

describe.skipIf(!pythonReady)("ai-tools run / render / drift / engines (needs /usr/bin/python3 with numpy<2 and sentencepiece)", () => {
  let ws: TestWorkspace;
  let mainBinary: string;
  const modelFile = () => join(ws.root, "models", "powerinfer", "tiny-relu-llama", "model.powerinfer.gguf");
  beforeAll(async () => {
    ws = makeWorkspace();
    const converted = await ws.cli(["convert", "tiny-relu-llama"]);
    expect(converted.code, converted.stdout + converted.stderr).toBe(0);
    mainBinary = join(ws.root, (ws.record("build")!.result as { binaries: { main: string } }).binaries.main);
  }, 120_000);
  afterAll(() => ws.cleanup());

  async function rendered(): Promise<RenderedPolicy> {
    const { policy } = await loadPolicy(join(ws.root, POLICY));
    return renderPolicy(policy, { file: POLICY, host: { name: "t", source: "file", physicalCores: 2, memoryBytes: 2 ** 33, gpus: [] }, modelRoot: join(ws.root, "models"), gpuBuild: false });
  }

  it("streams the generated text (without main's echo of the prompt) and reports the engine's timings", async () => {
    const engine = createPowerInferEngine({ root: ws.root, env: { ...ws.env, FIXTURE_MAIN_TOKEN_DELAY_MS: "15" } });
    const pieces: string[] = [];
    const result = await engine.generate(PROMPT, await rendered(), { onToken: (p) => pieces.push(p) });
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join("")).toBe(result.text);
    expect(result.text.startsWith(PROMPT)).toBe(false);
    expect(result.text.length).toBeGreaterThan(0);
    expect(result.metrics).toMatchObject({ source: "engine", generatedTokens: 16 });
    expect(result.metrics.promptTokens).toBeGreaterThan(0);
    expect(result.metrics.generationTokensPerSecond).toBeGreaterThan(0);
    expect(result.metrics.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(result.metrics.timeToFirstTokenMs!).toBeLessThanOrEqual(result.metrics.totalMs);
  });

  it("on a GPU host, records the GPU memory the run used (nvidia-smi sampled while main runs)", async () => {
    const bin = join(ws.root, "fake-gpu-bin");
    mkdirSync(bin, { recursive: true });
    const counter = join(ws.root, "smi-calls");
    // 1000 MiB in use before the run, then 64 MiB more per call while it runs.
    writeFileSync(
      join(bin, "nvidia-smi"),
      `#!/bin/sh\ncase "$1" in\n  --query-gpu=memory.used) n=$(cat "${counter}" 2>/dev/null || echo 0); echo $((n + 1)) > "${counter}"; echo $((1000 + 64 * n)) ;;\n  *) exit 9 ;;\nesac\n`,
    );
    chmodSync(join(bin, "nvidia-smi"), 0o755);
    const engine = createPowerInferEngine({ root: ws.root, env: { ...ws.env, PATH: `${bin}:${process.env.PATH}`, FIXTURE_MAIN_SLEEP_MS: "1200" } });
    const result = await engine.generate(PROMPT, await rendered());
    expect(result.metrics.gpuMemoryBytes).toBeGreaterThanOrEqual(64 * 2 ** 20);
  });

  it("a crash is a clear error with main's own error line; a hang is stopped at the timeout", async () => {
    const crash = createPowerInferEngine({ root: ws.root, env: { ...ws.env, FIXTURE_MAIN_EXIT: "1" } });
    await expect(crash.generate(PROMPT, await rendered())).rejects.toMatchObject({ code: "E_ENGINE_FAILED", message: expect.stringContaining("exited with code 1") });
    const hang = createPowerInferEngine({ root: ws.root, env: { ...ws.env, FIXTURE_MAIN_SLEEP_MS: "30000" }, timeoutMs: 800 });
    const started = Date.now();
    await expect(hang.generate(PROMPT, await rendered())).rejects.toMatchObject({ code: "E_ENGINE_TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("run: text to stdout, diagnostics to stderr, the signature checked first, one metrics line per request", async () => {
    const result = await ws.cli(["run", "--config", POLICY, "--prompt", PROMPT, "--metrics-log", "build/metrics.jsonl"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().length).toBeGreaterThan(0);
    expect(result.stdout).not.toContain("llama_print_timings");
    expect(result.stderr).toMatch(/verified 4 files/);
    expect(result.stderr).toMatch(/powerinfer: 16 tokens, first token [\d.]+ ms/);
    const [line, ...more] = readFileSync(join(ws.root, "build", "metrics.jsonl"), "utf8").trim().split("\n");
    expect(more).toEqual([]);
    const record = JSON.parse(line!);
    expect(record).toMatchObject({
      exitStatus: "ok",
      model: { checksum: sha256(modelFile()), version: "0" },
      engine: { name: "powerinfer", commit: ws.commit },
      promptChars: PROMPT.length,
      metrics: { generatedTokens: 16, source: "engine" },
    });
    expect(record.policyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(record.prompt).toBeUndefined();
    expect(line).not.toContain(PROMPT);
  });

  it("reads the prompt from stdin, and --log-prompts keeps it in the log", async () => {
    const result = spawnSync(process.execPath, [CLI, "run", "--config", POLICY, "--metrics-log", "build/stdin.jsonl", "--log-prompts"], {
      cwd: ws.root,
      env: ws.env,
      input: "hello from stdin\n",
      encoding: "utf8",
    });
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(ws.root, "build", "stdin.jsonl"), "utf8")).prompt).toBe("hello from stdin");
  });

  it("a failed engine run exits 1 with the code and is logged as failed", async () => {
    const result = await ws.cli(["run", "--config", POLICY, "--prompt", PROMPT, "--metrics-log", "build/fail.jsonl"], { FIXTURE_MAIN_EXIT: "1" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error [E_ENGINE_FAILED]");
    expect(JSON.parse(readFileSync(join(ws.root, "build", "fail.jsonl"), "utf8")).exitStatus).toBe("E_ENGINE_FAILED");
  });

  it("Ctrl-C stops the engine (no process left behind) and exits 130", async () => {
    const { child, done } = ws.spawnCli(["run", "--config", POLICY, "--prompt", PROMPT], { FIXTURE_MAIN_SLEEP_MS: "30000" });
    await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()));
    child.kill("SIGINT");
    const result = await done;
    expect(result.code).toBe(130);
    const left = spawnSync("pgrep", ["-f", mainBinary]).stdout.toString().trim();
    expect(left, "main processes left running").toBe("");
  });

  it("refuses a tampered model before starting the engine, unless --no-verify", async () => {
    const original = readFileSync(modelFile());
    appendFileSync(modelFile(), "x");
    try {
      const refused = await ws.cli(["run", "--config", POLICY, "--prompt", PROMPT]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("[E_DIGEST_MISMATCH]");
      expect(refused.stderr).toContain("model.powerinfer.gguf");
      expect(refused.stdout).toBe("");
      const drift = await ws.cli(["drift", "--config", POLICY]);
      expect(drift.code).toBe(3);
      expect(drift.stdout).toMatch(/model\s+model\.powerinfer\.gguf\s+drift/);
    } finally {
      writeFileSync(modelFile(), original);
    }
    // An unsigned copy: fine by default, refused with --require-signature.
    copyFileSync(modelFile(), join(ws.root, "unsigned.gguf"));
    const unsigned = await ws.cli(["run", "--config", POLICY, "--model", join(ws.root, "unsigned.gguf"), "--prompt", PROMPT, "--require-signature"]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toContain("[E_NO_SIGNATURE]");
  });

  it("drift: none on the converted model; a changed policy and a changed engine build are each named (exit 3)", async () => {
    const clean = await ws.cli(["drift", "--config", POLICY, "--json"]);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    const [report] = parseEvents(clean.stdout) as { drift: boolean; rows: { subject: string; status: string }[] }[];
    expect(report!.drift).toBe(false);
    expect(report!.rows.map((r) => `${r.subject}:${r.status}`)).toEqual(expect.arrayContaining(["model:ok", "policy:ok", "engine:ok"]));

    writeFileSync(join(ws.root, "hot.yaml"), readFileSync(join(ws.root, POLICY), "utf8").replace("temperature: 0.8", "temperature: 1.3"));
    const policy = await ws.cli(["drift", "--config", "hot.yaml"]);
    expect(policy.code).toBe(3);
    expect(policy.stdout).toMatch(/policy\s+generation\.temperature\s+drift\s+0\.8 -> 1\.3/);

    const other = join(ws.root, "main-rebuilt");
    copyFileSync(mainBinary, other);
    appendFileSync(other, "\0");
    execFileSync("chmod", ["+x", other]);
    const engine = await ws.cli(["drift", "--config", POLICY, "--binary", other]);
    expect(engine.code).toBe(3);
    expect(engine.stdout).toMatch(/engine\s+main sha256\s+drift/);
  });

  it("render shows each value's source; --host renders for another machine", async () => {
    const here = await ws.cli(["render", "--config", POLICY]);
    expect(here.code, here.stderr).toBe(0);
    expect(here.stdout).toMatch(/runtime\.threads\s+\d+\s+host: "auto"/);
    const box = await ws.cli(["render", "--config", POLICY, "--host", join(PROJECT_ROOT, "configs", "hosts", "gpu-box.yaml"), "--json"]);
    expect(parseEvents(box.stdout)).toMatchObject([{ event: "rendered-policy", runtime: { threads: 16 }, host: { name: "gpu-box" } }]);
  });

  it("engines lists the registry; an unknown engine names the known ones (exit 2)", async () => {
    const list = await ws.cli(["engines", "--json"]);
    const engines = parseEvents(list.stdout) as { name: string }[];
    expect(engines.map((e: { name: string }) => e.name)).toEqual(["powerinfer", "llama.cpp", "openai"]);
    expect(engines[0]).toMatchObject({ available: true, via: mainBinary });
    const unknown = await ws.cli(["run", "--config", POLICY, "--engine", "vllm-turbo", "--prompt", "x"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown engine "vllm-turbo"; known engines: powerinfer, llama.cpp, openai');
  });

  it("metrics summary prints percentiles per model from the log", async () => {
    const summary = await ws.cli(["metrics", "summary", "build/metrics.jsonl"]);
    expect(summary.code, summary.stderr).toBe(0);
    expect(summary.stdout).toMatch(/p50/);
    expect(summary.stdout).toContain("model.powerinfer.gguf");
    expect(existsSync(join(ws.root, "build", "metrics.jsonl"))).toBe(true);
  });
});
