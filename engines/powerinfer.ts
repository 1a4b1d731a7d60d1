/**
 * The powerinfer backend: runs the `main` binary the pipeline built (or --binary /
 * AI_TOOLS_POWERINFER_BIN) on a .powerinfer.gguf, streams its stdout as it generates,
 * and takes the metrics from the timings block `main` prints on stderr (the bench
 * step's parser). `main` echoes the prompt before generating and may split a UTF-8
 * character across writes: the echo is cut off by bytes, the rest decoded as a stream.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { parseTimings } from "../pipeline/model-bench/timings.js";
import { gpuMemoryUsed, parseRusage } from "../pipeline/model-bench/runner.js";
import type { RenderedPolicy } from "../pipeline/policy/types.js";
import { commonGenerationArgs } from "./llama-flags.js";
import { CUDA_LIBRARY } from "../pipeline/engine-build/nvidia.js";
import { atomicWriteFile } from "../pipeline/core/files.js";
import { startProcess } from "../pipeline/core/process.js";
import { defaultDigestCacheDir } from "../pipeline/core/digest-cache.js";
import { EngineError, type Engine, type EngineProbe, type GenerateOptions, type GenerateResult } from "./types.js";

const GNU_TIME = "/usr/bin/time";

export interface PowerInferEngineOptions {
  /** Workspace root: the build step's record names the binary and its backend. */
  root?: string;
  binary?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill a request that runs longer than this (default 30 min). */
  timeoutMs?: number;
}

/** What the engine binary is and can do. */
export interface PowerInferBuild {
  binary: string;
  /** From the build record; "unknown" for a binary given by path. */
  backend: string;
  gpu: boolean;
  version: string | null;
  commit: string | null;
  /** sha256 of the binary as the build step recorded it (null for a binary given by path). */
  sha256: string | null;
}

export function resolvePowerInferBuild(options: PowerInferEngineOptions): PowerInferBuild | { missing: string } {
  const env = options.env ?? process.env;
  const given = options.binary ?? env.AI_TOOLS_POWERINFER_BIN;
  if (given) {
    if (!existsSync(given)) return { missing: `${given} does not exist (${options.binary ? "--binary" : "AI_TOOLS_POWERINFER_BIN"})` };
    return { binary: given, backend: "unknown", gpu: linksGpuLibraries(given), version: null, commit: null, sha256: null };
  }
  if (!options.root) return { missing: "no engine binary: pass --binary or set AI_TOOLS_POWERINFER_BIN" };
  const recordFile = join(options.root, "build", "state", "build.lock.json");
  let record: {
    result?: { binaries?: Record<string, string>; backend?: string; buildInfo?: { number?: number; commit?: string }; sourceCommit?: string };
    outputs?: Record<string, { sha256?: string }>;
  };
  try {
    record = JSON.parse(readFileSync(recordFile, "utf8"));
  } catch {
    return { missing: "the engine is not built here: run `pnpm pipeline engine` (or pass --binary / set AI_TOOLS_POWERINFER_BIN)" };
  }
  const main = record.result?.binaries?.main;
  if (!main || !existsSync(join(options.root, main))) return { missing: `the build record names no existing main binary (${recordFile}): run \`pnpm pipeline engine\`` };
  const backend = record.result?.backend ?? "unknown";
  const info = record.result?.buildInfo;
  return {
    binary: join(options.root, main),
    backend,
    gpu: backend === "cuda" || backend === "hip",
    version: info?.number !== undefined ? `build ${info.number} (${info.commit ?? "?"})` : null,
    commit: record.result?.sourceCommit ?? null,
    sha256: record.outputs?.[main]?.sha256 ?? null,
  };
}

/**
 * A binary given by path: a GPU build links the CUDA libraries (pipeline/engine-build/nvidia.ts's list) or hipBLAS.
 * Read once per binary identity, not on every request (a CUDA main is hundreds of MB).
 */
const gpuBinaries = new Map<string, boolean>();
function linksGpuLibraries(binary: string): boolean {
  try {
    const info = statSync(binary);
    const key = `${binary}\0${info.size}\0${info.mtimeMs}`;
    let gpu = gpuBinaries.get(key);
    if (gpu === undefined) {
      const text = readFileSync(binary).toString("latin1");
      gpu = new RegExp(CUDA_LIBRARY.source).test(text) || text.includes("libhipblas");
      gpuBinaries.set(key, gpu);
    }
    return gpu;
  } catch {
    return false;
  }
}

/**
 * Flags `main --help` lists, asked once per binary identity (path, size, mtime) and kept
 * in memory and in the user's cache folder: never pass a flag the build does not accept,
 * and do not pay a `--help` spawn on every request.
 */
const helpCache = new Map<string, Set<string>>();

export async function acceptedFlags(binary: string, env: NodeJS.ProcessEnv): Promise<Set<string>> {
  const info = statSync(binary);
  const key = `${binary}\0${info.size}\0${Math.trunc(info.mtimeMs)}`;
  const cached = helpCache.get(key);
  if (cached) return cached;
  const file = join(defaultDigestCacheDir(env), "engine-flags.json");
  const stored = (await readFile(file, "utf8").then(JSON.parse).catch(() => ({}))) as Record<string, string[]>;
  if (stored[key]) {
    const flags = new Set(stored[key]);
    helpCache.set(key, flags);
    return flags;
  }
  const help = await new Promise<string>((resolve) => {
    const { child } = startProcess([binary, "--help"], { env });
    let text = "";
    child.stdout.on("data", (d) => (text += d));
    child.stderr.on("data", (d) => (text += d));
    child.on("error", () => resolve(""));
    child.on("close", () => resolve(text));
  });
  const flags = new Set(help.match(/(?<![\w-])--?[A-Za-z][\w-]*/g) ?? []);
  helpCache.set(key, flags);
  if (flags.size > 0) {
    // Best effort: a cache that cannot be written costs one spawn next time.
    await atomicWriteFile(file, JSON.stringify({ ...stored, [key]: [...flags] })).catch(() => undefined);
  }
  return flags;
}

/** The GPU flags `main` and `server` share. Sparse models never get -ngl: on GPU builds their load fails with it. */
export function gpuArgs(policy: RenderedPolicy, sparse: boolean): string[] {
  const r = policy.runtime;
  return [
    ...(r.vram_budget_gb !== null ? ["--vram-budget", String(r.vram_budget_gb)] : []),
    ...(r.gpu_layers !== null && !sparse ? ["-ngl", String(r.gpu_layers)] : []),
  ];
}

/** main's argv for a request. */
export function powerInferArgv(binary: string, prompt: string, policy: RenderedPolicy, sparse: boolean): string[] {
  return [
    binary,
    "-m", policy.modelPath!,
    "-p", prompt,
    ...commonGenerationArgs(policy),
    ...gpuArgs(policy, sparse),
    // Without it main writes main.log into the working directory on every run.
    "--log-disable",
  ];
}

/** Flags of powerInferArgv (and the server's argv) that take no value. */
const NO_VALUE = new Set(["--log-disable", "-cb"]);

/** Drops flag/value pairs the binary does not list, saying which (argv as powerInferArgv builds it: flag, value, ...). */
export function filterArgv(argv: readonly string[], accepted: Set<string>): { argv: string[]; dropped: string[] } {
  if (accepted.size === 0) return { argv: [...argv], dropped: [] };
  const out = [argv[0]!];
  const dropped: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i]!;
    const hasValue = !NO_VALUE.has(flag);
    if (!accepted.has(flag)) {
      dropped.push(flag);
      if (hasValue) i++;
      continue;
    }
    out.push(flag);
    if (hasValue) out.push(argv[++i]!);
  }
  return { argv: out, dropped };
}

/** PowerInfer's sparse files start with the magic PWRI (dense GGUF files with GGUF). */
export function isSparseModel(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const magic = Buffer.alloc(4);
    readSync(fd, magic, 0, 4, 0);
    return magic.toString("latin1") === "PWRI";
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function createPowerInferEngine(options: PowerInferEngineOptions = {}): Engine {
  const env = options.env ?? process.env;
  return {
    name: "powerinfer",
    info: () => ({ name: "powerinfer", description: "PowerInfer's main, built by `pnpm pipeline engine` (sparse CPU/GPU hybrid inference)", formats: [".powerinfer.gguf (PWRI)", ".gguf (dense)"] }),

    async probe(): Promise<EngineProbe> {
      const build = resolvePowerInferBuild(options);
      if ("missing" in build) return { name: "powerinfer", available: false, version: null, commit: null, via: null, detail: build.missing };
      const flags = await acceptedFlags(build.binary, env);
      const runs = flags.has("-m") && flags.has("--vram-budget");
      return {
        name: "powerinfer",
        available: runs,
        version: build.version,
        commit: build.commit,
        via: build.binary,
        detail: runs ? `${build.backend} build${build.gpu ? " (GPU)" : ""}` : `${build.binary} --help does not look like PowerInfer's main`,
      };
    },

    async generate(prompt: string, policy: RenderedPolicy, request: GenerateOptions = {}): Promise<GenerateResult> {
      const build = resolvePowerInferBuild(options);
      if ("missing" in build) throw new EngineError("E_ENGINE_UNAVAILABLE", `powerinfer: ${build.missing}`);
      // On a GPU build the runtime has already placed the host's GPU index (runtime/prepare.ts policyForBuild): the policy says where main runs and its budget.
      const { argv, dropped } = filterArgv(powerInferArgv(build.binary, prompt, policy, isSparseModel(policy.modelPath!)), await acceptedFlags(build.binary, env));
      const warnings = dropped.map((flag) => `${build.binary} does not accept ${flag}: not passed`);
      return runMain(argv, prompt, { env, timeoutMs: options.timeoutMs ?? 30 * 60_000, ...request }, warnings);
    },
  };
}

async function runMain(argv: string[], prompt: string, options: GenerateOptions & { env: NodeJS.ProcessEnv; timeoutMs: number }, warnings: string[]): Promise<GenerateResult> {
  const scratch = await mkdtemp(join(tmpdir(), "ai-tools-run-"));
  const rusageFile = join(scratch, "rusage.txt");
  // GNU time reports the kernel's peak RSS and CPU time of the finished engine; stdout and stderr pass through.
  const command = existsSync(GNU_TIME) ? [GNU_TIME, "-o", rusageFile, "-f", "%M %U %S", ...argv] : argv;
  // GPU memory the run uses: nvidia-smi sampled while it runs, above what was in use before (GPU hosts only).
  const nvidiaSmi = (options.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, "nvidia-smi")).find((p) => existsSync(p));
  const gpuBefore = nvidiaSmi ? await gpuMemoryUsed(nvidiaSmi, options.env) : null;
  let gpuPeak: number | null = null;
  const gpuTimer =
    nvidiaSmi && gpuBefore !== null
      ? setInterval(() => void gpuMemoryUsed(nvidiaSmi, options.env).then((used) => used !== null && (gpuPeak = Math.max(gpuPeak ?? 0, used - gpuBefore))), 500)
      : undefined;
  const started = performance.now();
  const { child, killGroup } = startProcess(command, { env: options.env });
  let stopped: "aborted" | "timeout" | null = null;
  const onAbort = () => {
    stopped = "aborted";
    killGroup("SIGINT");
    setTimeout(() => killGroup("SIGKILL"), 2000).unref();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => {
    stopped = "timeout";
    killGroup("SIGKILL");
  }, options.timeoutMs);

  const echo = Buffer.from(prompt, "utf8");
  let echoLeft: Buffer | null = echo; // bytes of the echoed prompt still to cut off
  const decoder = new TextDecoder("utf-8", { fatal: false });
  let text = "";
  let firstTokenAt: number | null = null;
  let stderr = "";
  const emit = (piece: string) => {
    if (!piece) return;
    if (firstTokenAt === null) firstTokenAt = performance.now();
    text += piece;
    options.onToken?.(piece);
  };
  child.stdout.on("data", (chunk: Buffer) => {
    let data = chunk;
    if (echoLeft) {
      // The echo may start with the tokenizer's leading space; it always comes first.
      const n = Math.min(echoLeft.length, data.length);
      if (data.subarray(0, n).equals(echoLeft.subarray(0, n))) {
        echoLeft = echoLeft.length > n ? echoLeft.subarray(n) : null;
        data = data.subarray(n);
      } else echoLeft = null;
    }
    if (data.length > 0) emit(decoder.decode(data, { stream: true }));
  });
  child.stderr.on("data", (chunk: Buffer) => {
    // Only the last part matters (the timings block at the end); keep it bounded.
    stderr = (stderr + chunk.toString("utf8")).slice(-256 * 1024);
  });
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal }));
  }).finally(() => {
    clearTimeout(timer);
    clearInterval(gpuTimer);
    options.signal?.removeEventListener("abort", onAbort);
  });
  emit(decoder.decode());
  const totalMs = performance.now() - started;
  const rusage = parseRusage(await readFile(rusageFile, "utf8").catch(() => ""));
  await rm(scratch, { recursive: true, force: true });

  if (stopped === "aborted") throw new EngineError("E_ENGINE_ABORTED", "powerinfer: stopped (interrupted)");
  if (stopped === "timeout") throw new EngineError("E_ENGINE_TIMEOUT", `powerinfer: no result after ${Math.round(options.timeoutMs / 1000)} s; the engine was stopped`);
  if (exit.code !== 0) {
    const lines = stderr.trimEnd().split("\n");
    const errors = lines.filter((l) => /error|failed|not found|unknown argument/i.test(l)).slice(0, 5);
    throw new EngineError("E_ENGINE_FAILED", `powerinfer: main ${exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`}${errors[0] ? `: ${errors[0].trim()}` : ""}`, {
      details: [`command: ${argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")}`, ...errors.slice(1), "last lines:", ...lines.slice(-10).map((l) => `  ${l}`)],
    });
  }
  const timings = parseTimings(stderr);
  const fromEngine = timings.evalTokensPerSecond !== null;
  const generated = timings.sampleRuns || (timings.evalRuns ? timings.evalRuns + 1 : null);
  return {
    text,
    metrics: {
      timeToFirstTokenMs: firstTokenAt === null ? null : firstTokenAt - started,
      totalMs,
      promptTokens: timings.promptTokens || null,
      generatedTokens: generated,
      promptTokensPerSecond: timings.promptTokensPerSecond,
      generationTokensPerSecond: timings.evalTokensPerSecond,
      source: fromEngine ? "engine" : "measured",
      ...(rusage?.peakRssBytes ? { peakRssBytes: rusage.peakRssBytes } : {}),
      ...(gpuPeak !== null ? { gpuMemoryBytes: gpuPeak } : {}),
      ...(rusage?.cpuUserMs != null && rusage.cpuSystemMs != null ? { cpuUserMs: rusage.cpuUserMs, cpuSystemMs: rusage.cpuSystemMs } : {}),
    },
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}
