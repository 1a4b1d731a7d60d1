/**
 * Runs the engine's `main` on a model the way a benchmark must: warm-up runs not
 * counted, a fixed prompt/seed/threads, one fresh `-ld` log folder per run (its YAML is
 * the primary source of timings; the stderr block supplies the total time, which the
 * YAML lacks, and is the fallback), and the child's peak RSS and CPU time. Those come
 * from the kernel's rusage of the finished child through GNU time (`/usr/bin/time -o`,
 * exact, about 1 ms); where it is missing, from /proc samples taken while it runs
 * (VmHWM is a high-water mark, but a run shorter than one interval is missed).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { CommandFailedError } from "../core/errors.js";
import type { CommandResult, RunCommandOptions } from "../core/process.js";
import { parseLogYaml, parseTimings, type Timings } from "./timings.js";
import { isGpuLogLine, parseGpuLog, type GpuLog } from "./gpu-log.js";

const GNU_TIME = "/usr/bin/time";

export interface MainBenchSettings {
  main: string;
  model: string;
  prompt: string;
  nPredict: number;
  ctxSize: number;
  seed: number;
  threads: number;
  temp: number;
  topP: number;
  vramBudgetGiB?: number;
}

export interface RunSample {
  timings: Timings;
  /** The GPU loader lines (offloaded FFN MiB, VRAM used, the index), where the build used a GPU. */
  gpuLog?: GpuLog;
  /** Peak GPU memory in use during the run above what was in use before it (nvidia-smi), where a GPU is present. */
  gpuMemoryBytes?: number;
  peakRssBytes: number | null;
  cpuUserMs: number | null;
  cpuSystemMs: number | null;
  wallMs: number;
  exitCode: number;
  /** Which output the timings came from. */
  source: "log-yaml" | "stderr";
}

export type Runner = (argv: readonly string[], options?: RunCommandOptions) => Promise<CommandResult>;

export function mainArgv(settings: MainBenchSettings, logDir: string): string[] {
  return [
    settings.main,
    "-m",
    settings.model,
    "-p",
    settings.prompt,
    "-n",
    String(settings.nPredict),
    "-c",
    String(settings.ctxSize),
    "-s",
    String(settings.seed),
    "-t",
    String(settings.threads),
    "--temp",
    String(settings.temp),
    "--top-p",
    String(settings.topP),
    // Every run generates exactly -n tokens: an early end-of-stream would make runs incomparable.
    "--ignore-eos",
    "--log-disable",
    "-ld",
    logDir,
    ...(settings.vramBudgetGiB !== undefined ? ["--vram-budget", String(settings.vramBudgetGiB)] : []),
  ];
}

/** Linux's USER_HZ: utime/stime in /proc/<pid>/stat count in these ticks. */
const CLOCK_TICKS_PER_SECOND = 100;
const SAMPLE_INTERVAL_MS = 20;

interface ProcSample {
  peakRssBytes: number | null;
  cpuUserMs: number | null;
  cpuSystemMs: number | null;
}

/** GNU time's `%M %U %S`: peak RSS in KiB, user and system CPU seconds. */
export function parseRusage(text: string): ProcSample | null {
  const match = /^(\d+) ([\d.]+) ([\d.]+)\s*$/m.exec(text);
  if (!match) return null;
  return { peakRssBytes: Number(match[1]) * 1024, cpuUserMs: Number(match[2]) * 1000, cpuSystemMs: Number(match[3]) * 1000 };
}

export function readProcSample(pid: number): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    return {
      peakRssBytes: hwm ? Number(hwm[1]) * 1024 : null,
      cpuUserMs: (Number(fields[11]) / CLOCK_TICKS_PER_SECOND) * 1000,
      cpuSystemMs: (Number(fields[12]) / CLOCK_TICKS_PER_SECOND) * 1000,
    };
  } catch {
    return null; // the process is gone
  }
}

/** Memory in use on each NVIDIA GPU, in bytes (null without nvidia-smi or a GPU). */
export async function gpuMemoryUsed(nvidiaSmi: string, env: NodeJS.ProcessEnv): Promise<number | null> {
  const { runCommand } = await import("../core/process.js");
  const out = await runCommand([nvidiaSmi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"], { env, captureStdout: true, allowFailure: true, timeoutMs: 5000 }).catch(() => null);
  if (!out || out.exitCode !== 0) return null;
  const values = out.stdout.split("\n").map((l) => Number(l.trim())).filter((n) => Number.isFinite(n));
  return values.length ? values.reduce((a, b) => a + b, 0) * 2 ** 20 : null;
}

const GPU_SAMPLE_INTERVAL_MS = 500;

export async function runMainOnce(
  run: Runner,
  settings: MainBenchSettings,
  logDir: string,
  options: { timeoutMs: number; cwd: string; nvidiaSmi?: string; env?: NodeJS.ProcessEnv },
): Promise<RunSample> {
  await rm(logDir, { recursive: true, force: true });
  await mkdir(logDir, { recursive: true });
  const argv = mainArgv(settings, logDir);
  const rusageFile = join(logDir, "rusage.txt");
  const viaTime = existsSync(GNU_TIME);
  let last: ProcSample | null = null;
  let timer: NodeJS.Timeout | undefined;
  // GPU memory: sampled while the engine runs, relative to what was in use before it.
  const env = options.env ?? process.env;
  const gpuBefore = options.nvidiaSmi ? await gpuMemoryUsed(options.nvidiaSmi, env) : null;
  let gpuPeak: number | null = null;
  let gpuTimer: NodeJS.Timeout | undefined;
  const gpuSamples: Promise<void>[] = [];
  if (options.nvidiaSmi && gpuBefore !== null) {
    const sampleGpu = () =>
      gpuSamples.push(
        gpuMemoryUsed(options.nvidiaSmi!, env).then((used) => {
          if (used !== null) gpuPeak = Math.max(gpuPeak ?? 0, used);
        }),
      );
    sampleGpu();
    gpuTimer = setInterval(sampleGpu, GPU_SAMPLE_INTERVAL_MS);
  }
  const started = performance.now();
  let result: CommandResult;
  const gpuLines: string[] = [];
  try {
    result = await run(viaTime ? [GNU_TIME, "-f", "%M %U %S", "-o", rusageFile, ...argv] : argv, {
      cwd: options.cwd,
      timeoutMs: options.timeoutMs,
      tailLines: 200,
      // The loader's GPU lines come first, far above the tail.
      onLine: (line, stream) => {
        if (stream === "stderr" && isGpuLogLine(line)) gpuLines.push(line);
      },
      // The generated text is not measured: piping it token by token into this process
      // would put our wake-ups on the engine's clock.
      discardStdout: true,
      ...(viaTime
        ? {}
        : {
            onSpawn: (pid: number) => {
              last = readProcSample(pid) ?? last;
              timer = setInterval(() => {
                last = readProcSample(pid) ?? last;
              }, SAMPLE_INTERVAL_MS);
            },
          }),
    });
  } catch (error) {
    // Name the engine, not the timing wrapper, in the error.
    if (viaTime && error instanceof CommandFailedError) {
      throw new CommandFailedError(argv, error.exitCode, error.signal, error.tail, error.logPath, {
        errorLines: error.errorLines,
        ...(error.timedOutAfterMs === undefined ? {} : { timedOutAfterMs: error.timedOutAfterMs }),
      });
    }
    throw error;
  } finally {
    if (timer) clearInterval(timer);
    if (gpuTimer) clearInterval(gpuTimer);
    await Promise.all(gpuSamples); // samples taken while it ran, a short run's first one included
  }
  const wallMs = performance.now() - started;
  const sample = viaTime ? parseRusage(await readFile(rusageFile, "utf8").catch(() => "")) : (last as ProcSample | null);
  const logs = readdirSync(logDir).filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"));
  let timings: Timings;
  let source: RunSample["source"];
  if (logs.length > 0) {
    timings = parseLogYaml(await readFile(join(logDir, logs.sort().at(-1)!), "utf8")).timings;
    source = "log-yaml";
    // The YAML has no total time; the stderr block does.
    const fromStderr = (() => {
      try {
        return parseTimings(result.tail.join("\n"));
      } catch {
        return null;
      }
    })();
    if (fromStderr?.totalMs !== null && fromStderr?.totalMs !== undefined) {
      timings = { ...timings, totalMs: fromStderr.totalMs, warnings: timings.warnings.filter((w) => !w.startsWith("total time")) };
    }
  } else {
    timings = parseTimings(result.tail.join("\n"));
    source = "stderr";
  }
  return {
    timings,
    peakRssBytes: sample?.peakRssBytes ?? null,
    cpuUserMs: sample?.cpuUserMs ?? null,
    cpuSystemMs: sample?.cpuSystemMs ?? null,
    wallMs,
    exitCode: result.exitCode,
    source,
    ...(parseGpuLog(gpuLines) ? { gpuLog: parseGpuLog(gpuLines)! } : {}),
    ...(gpuBefore !== null && gpuPeak !== null ? { gpuMemoryBytes: Math.max(0, (gpuPeak as number) - gpuBefore) } : {}),
  };
}
