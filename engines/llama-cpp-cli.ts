/**
 * llama.cpp as a child process: llama-completion (or a llama-cli from before it became a
 * chat UI) run with an argv, never a shell. Its stdout is the generated text, streamed as
 * it comes; its stderr ends with llama.cpp's perf lines, which give the token counts and
 * rates when it finishes by itself. Stop sequences are matched here (llama.cpp's -r only
 * hands control back in interactive mode), and the process is stopped at the first one.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import type { RenderedPolicy } from "../pipeline/policy/types.js";
import { startProcess } from "../pipeline/core/process.js";
import { commonGenerationArgs } from "./llama-flags.js";
import { StopScanner } from "./stop-scanner.js";
import { EngineError, type EngineProbe, type GenerateOptions, type GenerateResult } from "./types.js";

// ---- pure helpers ----------------------------------------------------------------------------------------------

/** "version: 4589 (abc1234)" as `--version` prints it (on stderr), with what came before llama.cpp's build numbers. */
export function parseCliVersion(output: string): { version: string; commit: string | null } | null {
  const m = /version:\s*(\d+)\s*\(([0-9a-f]+)\)/i.exec(output);
  if (m) return { version: `build ${m[1]} (${m[2]})`, commit: m[2]! };
  const first = output.split("\n").find((l) => l.trim() !== "");
  return first ? { version: first.trim(), commit: null } : null;
}

/** The flags a `--help` text lists (both spellings: `-n, --n-predict`). */
export function helpFlags(help: string): Set<string> {
  return new Set(help.match(/(?<![\w-])--?[A-Za-z][\w-]*/g) ?? []);
}

/**
 * The completion argv. Flags that only some builds have are passed where `--help` lists
 * them: -no-cnv (2025 llama-cli starts a chat when the model has a template) and
 * --no-display-prompt (else the prompt is echoed into the output).
 */
export function llamaCliArgv(binary: string, modelPath: string, prompt: string, policy: RenderedPolicy, accepted: ReadonlySet<string>): string[] {
  const r = policy.runtime;
  const optional = (flag: string) => (accepted.has(flag) ? [flag] : []);
  return [
    binary,
    "-m", modelPath,
    "-p", prompt,
    ...commonGenerationArgs(policy),
    ...(r.gpu_layers !== null ? ["-ngl", String(r.gpu_layers)] : []),
    ...optional("-no-cnv"),
    ...optional("--no-display-prompt"),
  ];
}

export interface CliTimings {
  promptTokens: number;
  promptTokensPerSecond: number | null;
  evalRuns: number;
  evalTokensPerSecond: number | null;
}

/**
 * The `prompt eval time` and `eval time` lines, whatever prints them (llama_print_timings,
 * llama_perf_context_print, common_perf_print); the last of each wins. Null without both.
 */
export function parseCliTimings(stderr: string): CliTimings | null {
  const line = /(prompt )?eval time\s*=\s*[\d.]+ ms\s*\/\s*(\d+) (?:tokens|runs)(?:\s*\(\s*\S+ ms per token,\s*(\S+) tokens per second\))?/g;
  let prompt: RegExpExecArray | null = null;
  let evalLine: RegExpExecArray | null = null;
  for (const m of stderr.matchAll(line)) {
    if (m[1]) prompt = m;
    else evalLine = m;
  }
  if (!prompt || !evalLine) return null;
  // llama.cpp prints inf/nan for zero-time lines: no rate then.
  const rate = (text: string | undefined) => (text !== undefined && Number.isFinite(Number(text)) ? Number(text) : null);
  return { promptTokens: Number(prompt[2]), promptTokensPerSecond: rate(prompt[3]), evalRuns: Number(evalLine[2]), evalTokensPerSecond: rate(evalLine[3]) };
}

/** llama-cli prints this on stdout when the model ends the text; it is no part of the text. */
export const END_OF_TEXT = " [end of text]";

// ---- the process -----------------------------------------------------------------------------------------------

function run(binary: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const { child, killGroup } = startProcess([binary, ...args], { env });
    let output = "";
    const timer = setTimeout(() => killGroup("SIGKILL"), timeoutMs);
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", (error) => resolve({ code: null, output: String(error) }));
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** `--help` flags per binary identity (path, size, mtime): one run per binary, not per request. */
const helpCache = new Map<string, Set<string>>();

async function acceptedFlags(binary: string, env: NodeJS.ProcessEnv): Promise<Set<string>> {
  const info = statSync(binary);
  const key = `${binary}\0${info.size}\0${info.mtimeMs}`;
  let flags = helpCache.get(key);
  if (!flags) {
    flags = helpFlags((await run(binary, ["--help"], env, 10_000)).output);
    helpCache.set(key, flags);
  }
  return flags;
}

export async function probeCli(binary: string, env: NodeJS.ProcessEnv): Promise<Omit<EngineProbe, "name">> {
  if (!existsSync(binary)) return { available: false, version: null, commit: null, via: binary, detail: `${binary} does not exist` };
  const { code, output } = await run(binary, ["--version"], env, 10_000);
  const parsed = parseCliVersion(output);
  if (code !== 0) return { available: false, version: null, commit: null, via: binary, detail: `${binary} --version exited with ${code ?? "an error"}: ${output.trim().split("\n")[0] ?? ""}` };
  return { available: true, version: parsed?.version ?? null, commit: parsed?.commit ?? null, via: binary, detail: "a llama.cpp completion binary (child process)" };
}

/** The kernel's high-water mark of the child's RSS while it runs (Linux); undefined elsewhere. */
function peakRssOf(pid: number | undefined): number | undefined {
  try {
    const kb = /VmHWM:\s*(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export async function generateCli(binary: string, modelPath: string, prompt: string, policy: RenderedPolicy, request: GenerateOptions & { env: NodeJS.ProcessEnv }): Promise<GenerateResult> {
  if (!existsSync(binary)) throw new EngineError("E_ENGINE_UNAVAILABLE", `llama.cpp: ${binary} does not exist`);
  const argv = llamaCliArgv(binary, modelPath, prompt, policy, await acceptedFlags(binary, request.env));
  const started = performance.now();
  // Its own process group, so a stop reaches anything it started too.
  const { child, killGroup } = startProcess(argv, { env: request.env });
  let stopped: "aborted" | "stop sequence" | null = null;
  const stop = (why: "aborted" | "stop sequence") => {
    stopped ??= why;
    killGroup("SIGTERM");
    setTimeout(() => killGroup("SIGKILL"), 2000).unref();
  };
  const onAbort = () => stop("aborted");
  request.signal?.addEventListener("abort", onAbort, { once: true });

  const scanner = new StopScanner([...policy.generation.stop, END_OF_TEXT]);
  const decoder = new TextDecoder();
  let text = "";
  let ended: string | undefined; // the stop sequence or end marker seen
  let firstTokenAt: number | null = null;
  let peakRss: number | undefined;
  let lastRssRead = 0;
  const emit = (piece: string) => {
    if (!piece || stopped === "aborted") return;
    firstTokenAt ??= performance.now();
    text += piece;
    request.onToken?.(piece);
  };
  const take = (piece: string) => {
    if (ended !== undefined) return;
    const { emit: out, stop: hit } = scanner.push(piece);
    emit(out);
    if (hit === undefined) return;
    ended = hit;
    // The end marker: llama.cpp finishes by itself and prints its timings; a user's stop sequence: stop it now.
    if (hit !== END_OF_TEXT) stop("stop sequence");
  };
  child.stdout.on("data", (chunk: Buffer) => {
    take(decoder.decode(chunk, { stream: true }));
    if (performance.now() - lastRssRead > 100) {
      lastRssRead = performance.now();
      peakRss = peakRssOf(child.pid) ?? peakRss;
    }
  });
  let stderr = "";
  // Only the end matters (the perf lines); bounded, a long run logs a lot.
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-64 * 1024)));

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.on("error", (error) => resolve({ code: null, signal: null, error }));
    child.on("close", (code, signal) => resolve({ code, signal }));
  }).finally(() => request.signal?.removeEventListener("abort", onAbort));
  take(decoder.decode());
  if (ended === undefined) emit(scanner.flush());
  const totalMs = performance.now() - started;

  if (stopped === "aborted") throw new EngineError("E_ENGINE_ABORTED", "llama.cpp: stopped (interrupted)");
  if (exit.error) throw new EngineError("E_ENGINE_UNAVAILABLE", `llama.cpp: cannot run ${binary}: ${exit.error.message}`, { cause: exit.error });
  if (stopped === null && exit.code !== 0) {
    const lines = stderr.trimEnd().split("\n");
    const firstError = lines.find((l) => /error|failed|unknown argument|invalid/i.test(l));
    throw new EngineError("E_ENGINE_FAILED", `llama.cpp: ${binary} ${exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`}${firstError ? `: ${firstError.trim()}` : ""}`, {
      details: ["last lines:", ...lines.slice(-10).map((l) => `  ${l}`)],
    });
  }

  // Stopped at a stop sequence, it prints no timings: then only the times measured here.
  const timings = stopped === null ? parseCliTimings(stderr) : null;
  const cap = policy.generation.max_tokens > 0 ? policy.generation.max_tokens : Infinity;
  return {
    text,
    // Ending by itself without the end marker: the -n limit.
    finishReason: ended !== undefined ? "stop" : "length",
    metrics: {
      timeToFirstTokenMs: firstTokenAt === null ? null : firstTokenAt - started,
      totalMs,
      promptTokens: timings?.promptTokens ?? null,
      // The first generated token comes out of the prompt pass: eval runs are one fewer.
      generatedTokens: timings ? Math.min(timings.evalRuns + 1, cap) : null,
      promptTokensPerSecond: timings?.promptTokensPerSecond ?? null,
      generationTokensPerSecond: timings?.evalTokensPerSecond ?? null,
      source: timings ? "engine" : "measured",
      ...(peakRss !== undefined ? { peakRssBytes: peakRss } : {}),
    },
  };
}
