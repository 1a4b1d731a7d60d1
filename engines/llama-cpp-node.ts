/**
 * llama.cpp in process through node-llama-cpp. Imported only when the llama.cpp engine
 * runs, and node-llama-cpp itself only on first use: it is an optional dependency and
 * loading its native binding costs a second (it test-loads it in a child process first).
 * The binding is loaded once per process; the model and its context live for one request.
 */
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Llama, LlamaCompletionGenerationOptions } from "node-llama-cpp";
import type { RenderedGeneration, RenderedPolicy } from "../pipeline/policy/types.js";
import { StopScanner } from "./stop-scanner.js";
import { EngineError, type EngineProbe, type GenerateOptions, type GenerateResult, type RequestMetrics } from "./types.js";

type Loaded = { ok: true; llama: Llama; version: string } | { ok: false; reason: string };
let loading: Promise<Loaded> | undefined;

/** The package's version: its exports map hides package.json, so it is read beside the resolved entry point. */
function packageVersion(): string | null {
  try {
    const entry = createRequire(import.meta.url).resolve("node-llama-cpp");
    return JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")).version ?? null;
  } catch {
    return null;
  }
}

/**
 * node-llama-cpp test-loads its binary in a child_process.fork() of its own file, and fork
 * passes this process's execArgv on: under `node -e`/`-p` the child runs the eval'd code
 * instead, never answers, and the load fails with NoBinaryFoundError whatever the binary.
 */
function evalHint(): string {
  return process.execArgv.some((a) => /^(-e|--eval|-p|--print)(=|$)/.test(a)) ? " (this node was started with -e/-p, which node-llama-cpp's test process inherits: run a script file instead)" : "";
}

/** node-llama-cpp's CPU binding, or why it cannot load here. A failure is remembered too: each try costs a test process. */
export function loadLlama(): Promise<Loaded> {
  loading ??= (async (): Promise<Loaded> => {
    let lib: typeof import("node-llama-cpp");
    try {
      lib = await import("node-llama-cpp");
    } catch (error) {
      return { ok: false, reason: `node-llama-cpp is not installed (${(error as Error).message.split("\n")[0]})` };
    }
    try {
      const llama = await lib.getLlama({
        // CPU only, and never a build from source or a download at run time.
        gpu: false,
        build: "never",
        skipDownload: true,
        progressLogs: false,
        // llama.cpp's warnings (a context shorter than the training one, ...) are routine here and would interleave with streamed text.
        logLevel: lib.LlamaLogLevel.error,
        // 0: a context's thread count is used as given (runtime.threads), not capped at the core count.
        maxThreads: 0,
      });
      const release = llama.llamaCppRelease.release;
      return { ok: true, llama, version: `node-llama-cpp ${packageVersion() ?? "?"} (llama.cpp ${release}, ${llama.buildType} CPU)` };
    } catch (error) {
      return { ok: false, reason: `its prebuilt binary does not load: ${(error as Error).message.split("\n")[0]}${evalHint()}` };
    }
  })();
  return loading;
}

export async function probeNode(): Promise<Omit<EngineProbe, "name">> {
  const loaded = await loadLlama();
  if (!loaded.ok) return { available: false, version: null, commit: null, via: "node-llama-cpp", detail: loaded.reason };
  return { available: true, version: loaded.version, commit: null, via: "node-llama-cpp", detail: `in process, CPU (${loaded.llama.cpuMathCores} math cores)` };
}

/**
 * The policy's sampling settings as node-llama-cpp options; its "disabled" values match
 * llama.cpp's (top_k 0, top_p 1, penalty 1). Stop sequences are not passed as
 * customStopTriggers: where a stop begins inside a SentencePiece token, node-llama-cpp
 * drops that token's leading space from the text before it ("K on0", stop "n0" gave "Ko");
 * the StopScanner matches them on the streamed text instead, as for llama-cli.
 */
export function completionOptions(g: RenderedGeneration): LlamaCompletionGenerationOptions {
  return {
    temperature: g.temperature,
    topK: g.top_k,
    topP: g.top_p,
    repeatPenalty: g.repeat_penalty === 1 ? false : { penalty: g.repeat_penalty },
    // max_tokens -1/-2 (until end of text / a full context): no cap; the context bounds it (no context shift below).
    ...(g.max_tokens > 0 ? { maxTokens: g.max_tokens } : {}),
    ...(g.seed >= 0 ? { seed: g.seed } : {}),
    // llama.cpp's -n counts generated tokens in a fixed context: a run never silently drops its prompt to go on.
    disableContextShift: true,
  };
}

const FINISH: Record<string, string> = { eogToken: "stop", stopGenerationTrigger: "stop", customStopTrigger: "stop", maxTokens: "length", abort: "stop" };

/** Timestamps (performance.now()) and counts of one request, as metrics. */
export function measuredMetrics(t: { started: number; promptStart: number | null; firstTokenAt: number | null; end: number; promptTokens: number; generatedTokens: number }): RequestMetrics {
  // The first token's time is mostly prompt processing; the rest is generation proper.
  const promptMs = t.firstTokenAt !== null && t.promptStart !== null ? t.firstTokenAt - t.promptStart : null;
  const genMs = t.firstTokenAt !== null ? t.end - t.firstTokenAt : null;
  return {
    // From the request's start: the model is loaded for each request, and that is part of the wait.
    timeToFirstTokenMs: t.firstTokenAt === null ? null : t.firstTokenAt - t.started,
    totalMs: t.end - t.started,
    promptTokens: t.promptTokens,
    generatedTokens: t.generatedTokens,
    promptTokensPerSecond: promptMs && promptMs > 0 && t.promptTokens > 0 ? (t.promptTokens * 1000) / promptMs : null,
    generationTokensPerSecond: genMs && genMs > 0 && t.generatedTokens > 1 ? ((t.generatedTokens - 1) * 1000) / genMs : null,
    source: "measured",
  };
}

export async function generateNode(modelPath: string, prompt: string, policy: RenderedPolicy, request: GenerateOptions): Promise<GenerateResult> {
  const loaded = await loadLlama();
  if (!loaded.ok) throw new EngineError("E_ENGINE_UNAVAILABLE", `llama.cpp: ${loaded.reason}`);
  const { LlamaCompletion } = await import("node-llama-cpp");
  const g = policy.generation;
  const warnings = policy.runtime.gpu_layers !== null ? [`gpu_layers ${policy.runtime.gpu_layers} not used: node-llama-cpp runs on the CPU here`] : [];
  // Ends generation at a stop sequence; the caller's signal ends it too.
  const stopAt = new AbortController();
  const signal = request.signal ? AbortSignal.any([request.signal, stopAt.signal]) : stopAt.signal;
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  let peakRss = process.memoryUsage.rss();
  // In process: the whole process's RSS (the model is mapped into it), sampled per token.
  const sampleRss = () => (peakRss = Math.max(peakRss, process.memoryUsage.rss()));

  let model: Awaited<ReturnType<Llama["loadModel"]>> | undefined;
  let context: Awaited<ReturnType<NonNullable<typeof model>["createContext"]>> | undefined;
  let completion: InstanceType<typeof LlamaCompletion> | undefined;
  let text = "";
  let finishReason = "length";
  let promptStart: number | null = null;
  let firstTokenAt: number | null = null;
  let generated = 0;
  try {
    model = await loaded.llama.loadModel({ modelPath, gpuLayers: 0, loadSignal: signal });
    context = await model.createContext({
      // 0 = the model's training context, as llama.cpp's -c 0.
      contextSize: g.ctx_size > 0 ? g.ctx_size : model.trainContextSize,
      threads: policy.runtime.threads,
      ...(policy.runtime.batch_size !== null ? { batchSize: policy.runtime.batch_size } : {}),
      createSignal: signal,
    });
    sampleRss();
    const sequence = context.getSequence();
    completion = new LlamaCompletion({ contextSequence: sequence });
    const scanner = new StopScanner(g.stop);
    let stopped = false;
    const emit = (piece: string) => {
      if (!piece) return;
      firstTokenAt ??= performance.now();
      text += piece;
      request.onToken?.(piece);
    };

    // -n 0: nothing to generate (node-llama-cpp would read maxTokens 0 as "no limit").
    if (g.max_tokens !== 0) {
      promptStart = performance.now();
      const { metadata } = await completion.generateCompletionWithMeta(prompt, {
        ...completionOptions(g),
        signal,
        // A stop (ours or the caller's) returns what there is; the caller's is turned into E_ENGINE_ABORTED below.
        stopOnAbortSignal: true,
        onToken: (tokens) => {
          // The model's own tokens, so the count is exact (a text chunk may hold several, or wait for a UTF-8 tail).
          generated += tokens.length;
          sampleRss();
        },
        onTextChunk: (chunk) => {
          if (stopped) return;
          const { emit: out, stop } = scanner.push(chunk);
          emit(out);
          if (stop === undefined) return;
          stopped = true;
          stopAt.abort();
        },
      });
      if (!stopped) emit(scanner.flush());
      finishReason = stopped ? "stop" : (FINISH[metadata.stopReason] ?? metadata.stopReason);
    }
    if (request.signal?.aborted) throw request.signal.reason;
    const end = performance.now();
    sampleRss();
    const cpu = process.cpuUsage(cpuAtStart);
    const metrics = measuredMetrics({ started, promptStart, firstTokenAt, end, promptTokens: sequence.tokenMeter.usedInputTokens, generatedTokens: generated });
    return {
      text,
      finishReason,
      metrics: { ...metrics, peakRssBytes: peakRss, cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000 },
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  } catch (error) {
    if (request.signal?.aborted) throw new EngineError("E_ENGINE_ABORTED", "llama.cpp: stopped (interrupted)", { cause: error });
    if (error instanceof EngineError) throw error;
    throw new EngineError("E_ENGINE_FAILED", `llama.cpp: ${(error as Error).message ?? String(error)} (model ${modelPath})`, { cause: error });
  } finally {
    // Freed on every path, the abort included: a long-lived process runs many requests.
    completion?.dispose();
    await context?.dispose();
    await model?.dispose();
  }
}
