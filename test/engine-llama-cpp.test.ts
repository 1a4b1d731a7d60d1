/**
 * The llama.cpp backend. node-llama-cpp generates for real from a tiny llama GGUF written
 * here (test/helpers/tiny-llama.ts); the child-process path runs a fake llama-cli (a node
 * script that prints words and llama.cpp's perf lines) so its argv, streaming, stops and
 * aborts are checked without a llama.cpp build.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test, vi } from "vitest";
import { createLlamaCppEngine } from "../engines/llama-cpp.js";
import { END_OF_TEXT, parseCliTimings, parseCliVersion } from "../engines/llama-cpp-cli.js";
import { StopScanner } from "../engines/stop-scanner.js";
import type { Engine, GenerateResult } from "../engines/types.js";
import type { RenderedGeneration, RenderedPolicy } from "../pipeline/policy/types.js";
import { powerInferModelSpec, writeGguf } from "./helpers/gguf-writer.js";
import { writeTinyLlama } from "./helpers/tiny-llama.js";

const dir = mkdtempSync(join(tmpdir(), "ai-tools-llama-cpp-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const model = writeTinyLlama(join(dir, "tiny.gguf"));
const sparse = join(dir, "tiny.powerinfer.gguf");
writeGguf(sparse, powerInferModelSpec());

function policy(generation: Partial<RenderedGeneration> = {}, modelPath: string | null = model): RenderedPolicy {
  return {
    file: "test.yaml",
    engine: "llama.cpp",
    modelPath,
    generation: { temperature: 0, top_p: 1, top_k: 40, repeat_penalty: 1, max_tokens: 8, ctx_size: 256, seed: 1, stop: [], ...generation },
    runtime: { threads: 2, vram_budget_gb: null, gpu_layers: null, batch_size: null },
    sources: {},
    warnings: [],
    policyHash: "0".repeat(64),
    host: { name: "detected", source: "detected", physicalCores: 2, memoryBytes: 8 << 30, gpus: [] },
  };
}

/** generate(), collecting what was streamed. */
async function run(engine: Engine, p: RenderedPolicy, onFirst?: () => void): Promise<GenerateResult & { streamed: string[] }> {
  const streamed: string[] = [];
  const result = await engine.generate("Hello world", p, {
    onToken: (t) => {
      streamed.push(t);
      if (streamed.length === 1) onFirst?.();
    },
  });
  return { ...result, streamed };
}

async function abortAfterFirstToken(engine: Engine, p: RenderedPolicy): Promise<unknown> {
  const controller = new AbortController();
  return engine.generate("Hello world", p, { signal: controller.signal, onToken: () => controller.abort() }).then(
    () => new Error("expected a rejection"),
    (error: unknown) => error,
  );
}

// No named binary and no llama-cli on PATH: node-llama-cpp or nothing.
const nodeEnv = { ...process.env, AI_TOOLS_LLAMA_CLI: "", PATH: dir };
const nodeEngine = createLlamaCppEngine({ env: nodeEnv });
const nodeProbe = await nodeEngine.probe();

describe.skipIf(!nodeProbe.available)(nodeProbe.available ? "node-llama-cpp" : `node-llama-cpp (skipped: ${nodeProbe.detail})`, () => {
  test("probe reports node-llama-cpp and its version", () => {
    expect(nodeProbe).toMatchObject({ name: "llama.cpp", available: true, via: "node-llama-cpp" });
    expect(nodeProbe.version).toMatch(/^node-llama-cpp 3\.21\.1 \(llama\.cpp /);
  });

  let greedy: Awaited<ReturnType<typeof run>>;
  test("generates for real, streaming what it returns", async () => {
    greedy = await run(nodeEngine, policy({ max_tokens: 8 }));
    expect(greedy.text).not.toBe("");
    expect(greedy.streamed.join("")).toBe(greedy.text);
    expect(greedy.finishReason).toBe("length");
    const m = greedy.metrics;
    expect(m.generatedTokens).toBeGreaterThan(0);
    expect(m.generatedTokens).toBeLessThanOrEqual(8);
    expect(m.promptTokens).toBeGreaterThan(0);
    expect(m.totalMs).toBeGreaterThan(0);
    expect(m.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(m.timeToFirstTokenMs!).toBeLessThanOrEqual(m.totalMs);
    expect(m.source).toBe("measured");
    expect(m.peakRssBytes).toBeGreaterThan(0);
  });

  test("greedy decoding repeats itself; a seed makes sampling repeat too", async () => {
    expect((await run(nodeEngine, policy({ max_tokens: 8 }))).text).toBe(greedy.text);
    const sampled = policy({ max_tokens: 8, temperature: 1, top_k: 0, seed: 42 });
    expect((await run(nodeEngine, sampled)).text).toBe((await run(nodeEngine, sampled)).text);
  });

  test("a stop sequence ends the text before it", async () => {
    const stop = greedy.text.slice(3, 5);
    const r = await run(nodeEngine, policy({ max_tokens: 8, stop: [stop] }));
    expect(r.text).toBe(greedy.text.slice(0, greedy.text.indexOf(stop)));
    expect(r.streamed.join("")).toBe(r.text);
    expect(r.finishReason).toBe("stop");
  });

  test("an abort after the first token rejects with E_ENGINE_ABORTED, and the engine runs again", async () => {
    expect(await abortAfterFirstToken(nodeEngine, policy({ max_tokens: 200 }))).toMatchObject({ code: "E_ENGINE_ABORTED" });
    expect((await run(nodeEngine, policy({ max_tokens: 8 }))).text).toBe(greedy.text);
  });
});

describe("model files", () => {
  test("a PowerInfer (PWRI) file is refused, pointing at --engine powerinfer", async () => {
    await expect(nodeEngine.generate("hi", policy({}, sparse))).rejects.toMatchObject({ code: "E_ENGINE_FAILED", message: expect.stringMatching(/PowerInfer.*--engine powerinfer/) });
  });

  test("a missing model file is named", async () => {
    const missing = join(dir, "nope.gguf");
    await expect(nodeEngine.generate("hi", policy({}, missing))).rejects.toMatchObject({ code: "E_ENGINE_FAILED", message: expect.stringContaining(`${missing} does not exist`) });
  });
});

// ---- the child-process path, with a fake llama-cli -------------------------------------------------------------

const fake = join(dir, "bin", "llama-cli");
const argvFile = join(dir, "argv.json");
writeFakeLlamaCli();

function writeFakeLlamaCli(): void {
  const script = `#!${process.execPath}
const args = process.argv.slice(2);
if (args[0] === "--version") { process.stderr.write("version: 4242 (deadbee)\\nbuilt with cc for x86_64-linux-gnu\\n"); process.exit(0); }
if (args[0] === "--help") { console.log("-m, --model FNAME\\n-p, --prompt\\n-n, --n-predict N\\n-c -t -s --temp --top-p --top-k --repeat-penalty -b -ngl\\n-no-cnv, --no-conversation\\n--no-display-prompt"); process.exit(0); }
const opt = (f) => args[args.indexOf(f) + 1];
require("node:fs").writeFileSync(${JSON.stringify(argvFile)}, JSON.stringify({ args, pid: process.pid }));
if (process.env.FAKE_FAIL) { process.stderr.write("llama_model_load: error loading model: bad tensor\\n"); process.exit(1); }
const words = ["alpha", " beta", " gamma", " delta", " epsilon", " zeta"];
const n = Number(opt("-n"));
let i = 0;
const timer = setInterval(() => {
  if (process.env.FAKE_EOS && i === 3) return done("${END_OF_TEXT}\\n");
  if (i === n) return done("");
  process.stdout.write(words[i++ % words.length]);
}, 15);
function done(tail) {
  clearInterval(timer);
  process.stdout.write(tail);
  process.stderr.write([
    "llama_perf_sampler_print:    sampling time =       0.50 ms /    " + (i + 3) + " runs   (    0.04 ms per token, 26000.00 tokens per second)",
    "llama_perf_context_print:        load time =     500.00 ms",
    "llama_perf_context_print: prompt eval time =      20.00 ms /     3 tokens (    6.67 ms per token,   150.00 tokens per second)",
    "llama_perf_context_print:        eval time =     100.00 ms /     " + (i - 1) + " runs   (   25.00 ms per token,    40.00 tokens per second)",
    "llama_perf_context_print:       total time =     130.00 ms /    " + (i + 2) + " tokens", ""].join("\\n"));
}
`;
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(fake, script);
  chmodSync(fake, 0o755);
}

describe("llama-cli (a fake one)", () => {
  const cliEngine = (extra: NodeJS.ProcessEnv = {}) => createLlamaCppEngine({ binary: fake, env: { ...process.env, ...extra } });

  test("probe reports the binary and its build", async () => {
    expect(await cliEngine().probe()).toMatchObject({ name: "llama.cpp", available: true, via: fake, version: "build 4242 (deadbee)", commit: "deadbee" });
    expect(await createLlamaCppEngine({ binary: join(dir, "none") }).probe()).toMatchObject({ available: false, detail: expect.stringContaining("does not exist") });
  });

  test("streams stdout, passes the policy as flags, takes llama.cpp's perf lines", async () => {
    const p = policy({ max_tokens: 5, temperature: 0.5, top_k: 7, top_p: 0.9, repeat_penalty: 1.2, seed: 7, ctx_size: 128 });
    p.runtime.threads = 3;
    const r = await run(cliEngine(), p);
    expect(r.text).toBe("alpha beta gamma delta epsilon");
    expect(r.streamed.join("")).toBe(r.text);
    expect(r.streamed.length).toBeGreaterThan(1);
    expect(r.finishReason).toBe("length");
    expect(r.metrics).toMatchObject({ promptTokens: 3, generatedTokens: 5, promptTokensPerSecond: 150, generationTokensPerSecond: 40, source: "engine" });
    expect(r.metrics.totalMs).toBeGreaterThan(0);
    const { args } = JSON.parse(readFileSync(argvFile, "utf8"));
    expect(args).toEqual(["-m", model, "-p", "Hello world", "-n", "5", "-c", "128", "-t", "3", "-s", "7", "--temp", "0.5", "--top-p", "0.9", "--top-k", "7", "--repeat-penalty", "1.2", "-no-cnv", "--no-display-prompt"]);
  });

  test("AI_TOOLS_LLAMA_CLI names the binary too", async () => {
    const engine = createLlamaCppEngine({ env: { ...process.env, AI_TOOLS_LLAMA_CLI: fake } });
    expect((await engine.probe()).via).toBe(fake);
  });

  test("a stop sequence stops the process; the end-of-text marker is no part of the text", async () => {
    const stopped = await run(cliEngine(), policy({ max_tokens: 50, stop: [" gam"] }));
    expect(stopped).toMatchObject({ text: "alpha beta", finishReason: "stop" });
    expect(stopped.streamed.join("")).toBe("alpha beta");
    const eos = await run(cliEngine({ FAKE_EOS: "1" }), policy({ max_tokens: 50 }));
    expect(eos).toMatchObject({ text: "alpha beta gamma", finishReason: "stop" });
    expect(eos.metrics.generatedTokens).toBe(3);
  });

  test("an abort after the first token kills it and rejects with E_ENGINE_ABORTED", async () => {
    expect(await abortAfterFirstToken(cliEngine(), policy({ max_tokens: 1000 }))).toMatchObject({ code: "E_ENGINE_ABORTED" });
    const { pid } = JSON.parse(readFileSync(argvFile, "utf8"));
    expect(() => process.kill(pid, 0)).toThrow();
  });

  test("a failing run is E_ENGINE_FAILED with llama.cpp's error line; a missing binary is E_ENGINE_UNAVAILABLE", async () => {
    await expect(cliEngine({ FAKE_FAIL: "1" }).generate("hi", policy())).rejects.toMatchObject({ code: "E_ENGINE_FAILED", message: expect.stringContaining("error loading model: bad tensor") });
    await expect(createLlamaCppEngine({ binary: join(dir, "none") }).generate("hi", policy())).rejects.toMatchObject({ code: "E_ENGINE_UNAVAILABLE" });
  });

  test("when node-llama-cpp cannot load, llama-completion or llama-cli on PATH is used", async () => {
    vi.doMock("../engines/llama-cpp-node.js", () => ({ loadLlama: async () => ({ ok: false, reason: "mocked: no binding" }) }));
    try {
      const env = { ...process.env, AI_TOOLS_LLAMA_CLI: "", PATH: join(dir, "bin") };
      expect(await createLlamaCppEngine({ env }).probe()).toMatchObject({ available: true, via: fake });
      expect((await run(createLlamaCppEngine({ env }), policy({ max_tokens: 2 }))).text).toBe("alpha beta");
      const none = createLlamaCppEngine({ env: { ...env, PATH: dir } });
      expect(await none.probe()).toMatchObject({ available: false, detail: expect.stringContaining("mocked: no binding") });
      await expect(none.generate("hi", policy())).rejects.toMatchObject({ code: "E_ENGINE_UNAVAILABLE" });
    } finally {
      vi.doUnmock("../engines/llama-cpp-node.js");
    }
  });
});

describe("llama-cli output helpers", () => {
  test("StopScanner holds back a possible stop across pieces and cuts at the earliest stop", () => {
    const s = new StopScanner(["END", "xy"]);
    expect(s.push("abcE")).toEqual({ emit: "abc" });
    expect(s.push("N")).toEqual({ emit: "" });
    expect(s.push("Dtail")).toEqual({ emit: "", stop: "END" });
    const t = new StopScanner(["xy"]);
    expect(t.push("ax")).toEqual({ emit: "a" });
    expect(t.push("z")).toEqual({ emit: "xz" });
    expect(t.flush()).toBe("");
    expect(new StopScanner(["b", "abc"]).push("zabc")).toEqual({ emit: "z", stop: "abc" });
  });

  test("timings from old and new perf lines; the version line", () => {
    const old = "llama_print_timings: prompt eval time =   10.00 ms /     4 tokens (    2.50 ms per token,   400.00 tokens per second)\nllama_print_timings:        eval time =   50.00 ms /     9 runs   (    5.56 ms per token,   180.00 tokens per second)";
    expect(parseCliTimings(old)).toEqual({ promptTokens: 4, promptTokensPerSecond: 400, evalRuns: 9, evalTokensPerSecond: 180 });
    expect(parseCliTimings("common_perf_print:        eval time =       0.00 ms /     0 runs   (     nan ms per token,      nan tokens per second)\ncommon_perf_print: prompt eval time = 1.00 ms / 2 tokens (0.5 ms per token, 2000.0 tokens per second)")).toMatchObject({ evalRuns: 0, evalTokensPerSecond: null, promptTokens: 2 });
    expect(parseCliTimings("no timings here")).toBeNull();
    expect(parseCliVersion("version: 6100 (abc1234)\nbuilt with gcc")).toEqual({ version: "build 6100 (abc1234)", commit: "abc1234" });
  });
});
