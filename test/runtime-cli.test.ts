/**
 * `ai-tools run` and its companions as a user runs them, on the fixture engine's `main`
 * (streaming output, the real timings format, crash and hang knobs) and a converted,
 * signed demo model.
 */
import { spawnSync, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
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

  it("run: a first generated piece that is a raw non-UTF-8 byte (as the real engine's can be) is streamed as U+FFFD, the prompt echo still cut off", async () => {
    // Seed 47 makes the fixture main's first piece the lone byte 0x9b, as in the real run of
    // reference/powerinfer-samples/main-logdir.yml ("Once upon a time\x9b the~,..."): main prints the prompt, then 0x9b.
    const direct = spawnSync(mainBinary, ["-m", modelFile(), "-p", PROMPT, "-n", "16", "-s", "47", "--log-disable"], { encoding: "buffer" });
    expect(direct.stdout.subarray(0, PROMPT.length + 1)).toEqual(Buffer.concat([Buffer.from(PROMPT), Buffer.from([0x9b])]));
    writeFileSync(join(ws.root, "raw-first-piece.yaml"), `engine: powerinfer\nmodel_path: powerinfer/tiny-relu-llama/model.powerinfer.gguf\ngeneration:\n  n_predict: 16\n  ctx_size: 256\n  seed: 47\n`);
    const result = await ws.cli(["run", "--config", "raw-first-piece.yaml", "--prompt", PROMPT, "--metrics-log", "build/raw-first.jsonl"]);
    expect(result.code, result.stderr).toBe(0);
    // The same bytes as main's, decoded: 0x9b alone is one replacement character, the rest as printed.
    expect(result.stdout.trimEnd()).toBe(new TextDecoder().decode(direct.stdout.subarray(PROMPT.length)).trimEnd());
    expect(result.stdout.startsWith("\ufffd")).toBe(true);
    expect(JSON.parse(readFileSync(join(ws.root, "build", "raw-first.jsonl"), "utf8"))).toMatchObject({ exitStatus: "ok", metrics: { generatedTokens: 16, source: "engine" } });
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

  describe("the integration blueprint, as written there", () => {
    /** The blueprint's example policy with only the model name (and the placeholder digest) filled in. */
    const blueprint = () => `engine: powerinfer
model_path: models/powerinfer/tiny-relu-llama/model.powerinfer.gguf
generation: { max_tokens: 512, temperature: 0.7, top_p: 0.9 }
runtime: { threads: 12, gpu_layers: 40, vram_budget_gb: 18, batch_size: 4 }
audit: { model_version: "mixtral-47b-turbosparse-v1", source_repo: "hf://turbosparse/mixtral-47b", checksum: "sha256:${sha256(modelFile())}" }
`;
    const cliFrom = (cwd: string, args: string[], env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [CLI, ...args], { cwd, env, encoding: "utf8" });

    it("its policy validates and runs: each setting reaches main or is dropped with the reason", async () => {
      writeFileSync(join(ws.root, "blueprint.yaml"), blueprint());
      const result = await ws.cli(["run", "--config", "blueprint.yaml", "--prompt", PROMPT]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.trim().length).toBeGreaterThan(0);
      expect(result.stderr, "no older key spelling to note").not.toMatch(/older spelling/);
      expect(result.stderr).toMatch(/powerinfer: 512 tokens/);
      // 12 threads on a smaller host are clamped; -ngl never reaches a sparse model; the CPU build has no --vram-budget.
      if (cpus().length < 12) expect(result.stderr).toMatch(/warning: runtime.threads: 12 threads on a host with \d+ physical cores/);
      expect(result.stderr).toMatch(/warning: runtime.gpu_layers: 40 is not passed: sparse PowerInfer models take vram_budget_gb instead/);
      expect(result.stderr).toMatch(/warning: runtime.vram_budget_gb: the powerinfer build has no GPU support: --vram-budget 18 is dropped/);
      const rendered = JSON.parse((await ws.cli(["render", "--config", "blueprint.yaml", "--json"])).stdout);
      expect(rendered).toMatchObject({ modelPath: modelFile(), generation: { max_tokens: 512, temperature: 0.7, top_p: 0.9 }, runtime: { batch_size: 4 }, audit: { checksum: sha256(modelFile()), source_repo: "turbosparse/mixtral-47b" } });
    });

    it("its command runs with the recipe as the config: ai-tools run --engine powerinfer --model <name> --config configs/models/powerinfer/<name>.yaml", async () => {
      const result = await ws.cli(["run", "--engine", "powerinfer", "--model", "tiny-relu-llama", "--config", "configs/models/powerinfer/tiny-relu-llama.yaml", "--prompt", PROMPT]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.trim().length).toBeGreaterThan(0);
      expect(result.stderr).toMatch(/verified 4 files/);
      expect(result.stderr).toMatch(/powerinfer: 16 tokens/);
    });

    it("the older key spellings still work, with a one-line note on stderr, once", async () => {
      writeFileSync(join(ws.root, "old.yaml"), blueprint().replace("max_tokens: 512", "n_predict: 512").replace("vram_budget_gb", "vram_budget_gib"));
      // drift reads the policy twice (to render it, and to name the keys that differ from the signed one).
      const result = await ws.cli(["drift", "--config", "old.yaml"]);
      expect(result.code, result.stderr).toBe(3);
      const notes = result.stderr.split("\n").filter((line) => line.includes("older spelling"));
      expect(notes).toEqual([
        "note: old.yaml: generation.n_predict is the older spelling of generation.max_tokens: accepted (write max_tokens)",
        "note: old.yaml: runtime.vram_budget_gib is the older spelling of runtime.vram_budget_gb: accepted (write vram_budget_gb)",
      ]);
    });

    it("model_path from the workspace root names the same file from any current directory", () => {
      writeFileSync(join(ws.root, "blueprint.yaml"), blueprint());
      const policy = join(ws.root, "blueprint.yaml");
      const env: NodeJS.ProcessEnv = { ...ws.env };
      delete env.AI_TOOLS_ROOT;
      const deep = join(ws.root, "some", "sub", "folder");
      mkdirSync(deep, { recursive: true });
      const outside = mkdtempSync(join(tmpdir(), "ai-tools-elsewhere-"));
      try {
        const places: [string, string, string][] = [
          ["the workspace root", ws.root, "blueprint.yaml"],
          ["a sub-folder", deep, "../../../blueprint.yaml"],
          ["outside the workspace", outside, policy],
        ];
        for (const [where, cwd, config] of places) {
          const r = cliFrom(cwd, ["render", "--config", config, "--json"], env);
          expect(r.status, `${where}: ${r.stderr}`).toBe(0);
          expect(JSON.parse(r.stdout).modelPath, where).toBe(modelFile());
        }
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });
  });

  it("metrics summary prints percentiles per model from the log", async () => {
    const summary = await ws.cli(["metrics", "summary", "build/metrics.jsonl"]);
    expect(summary.code, summary.stderr).toBe(0);
    expect(summary.stdout).toMatch(/p50/);
    expect(summary.stdout).toContain("model.powerinfer.gguf");
    expect(existsSync(join(ws.root, "build", "metrics.jsonl"))).toBe(true);
  });
});
