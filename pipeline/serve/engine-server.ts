/**
 * The engine's own HTTP server (upstream examples/server) as a child process: its argv from
 * the rendered policy, started through the process layer (its own process group, killed
 * whole), ready when it answers GET /props (it loads the model before it binds its port, so
 * an answer means loaded), and stopped with its group.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { get } from "node:http";
import { filterArgv, gpuArgs, acceptedFlags } from "../../engines/powerinfer.js";
import { EngineError } from "../../engines/types.js";
import { AbortedError } from "../core/errors.js";
import { runCommand } from "../core/process.js";
import type { RenderedPolicy } from "../policy/types.js";

/** Loopback only: the engine has no authentication; the front is what clients reach. */
export const ENGINE_HOST = "127.0.0.1";

export interface EngineServerSpec {
  binary: string;
  /** The policy as the build runs it (policyForBuild): model path, threads, context, GPU settings. */
  policy: RenderedPolicy;
  sparse: boolean;
  /** Slots: requests the engine runs at once. */
  parallel: number;
}

/**
 * The server's argv. Each slot gets the policy's context size (the server splits -c between
 * its slots), and continuous batching lets several slots generate together.
 */
export function engineServerArgv(spec: EngineServerSpec, port: number): string[] {
  const { policy, parallel } = spec;
  const r = policy.runtime;
  return [
    spec.binary,
    "-m", policy.modelPath!,
    // 0: the model's training context (then split between the slots).
    "-c", String(policy.generation.ctx_size * parallel),
    "-t", String(r.threads),
    ...(r.batch_size !== null ? ["-b", String(r.batch_size)] : []),
    ...gpuArgs(policy, spec.sparse),
    "--host", ENGINE_HOST,
    "--port", String(port),
    "-np", String(parallel),
    ...(parallel > 1 ? ["-cb"] : []),
  ];
}

export interface EngineExit {
  /** null when stopped by us. */
  code: number | null;
  stopped: boolean;
  /** The last lines it printed. */
  tail: string[];
}

export interface RunningEngine {
  url: string;
  pid: number;
  argv: string[];
  /** "build 1590 (d3ebd7c)" from its start-up line, when it printed one. */
  version: string | null;
  /** Flags the binary does not list in --help, left out. */
  dropped: string[];
  /** Settles when the process ends, for whatever reason. */
  exited: Promise<EngineExit>;
  /** The engine's peak resident memory so far (Linux /proc), for the metrics. */
  peakRssBytes(): number | null;
  /** Stops the process group (SIGTERM, then SIGKILL). */
  stop(): Promise<EngineExit>;
}

export interface StartEngineOptions {
  env: NodeJS.ProcessEnv;
  /** Its working directory (it writes llama.log there). */
  cwd: string;
  /** Everything it prints goes here. */
  logFile: string;
  /** How long loading the model may take. */
  loadTimeoutMs: number;
  signal?: AbortSignal;
}

/** A free loopback port (the engine needs a number; it cannot report the one it got for 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, ENGINE_HOST, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

const BIND_FAILED = /couldn't bind to server socket/;

/** Starts the engine server and waits until it is ready; a port another process took in between is retried. */
export async function startEngineServer(spec: EngineServerSpec, options: StartEngineOptions): Promise<RunningEngine> {
  const accepted = await acceptedFlags(spec.binary, options.env);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(spec, await freePort(), accepted, options);
    } catch (error) {
      if (attempt < 3 && error instanceof EngineError && error.details.some((l) => BIND_FAILED.test(l))) continue;
      throw error;
    }
  }
}

async function startOnce(spec: EngineServerSpec, port: number, accepted: Set<string>, options: StartEngineOptions): Promise<RunningEngine> {
  const { argv, dropped } = filterArgv(engineServerArgv(spec, port), accepted);
  const url = `http://${ENGINE_HOST}:${port}`;
  const controller = new AbortController();
  const stopOnAbort = () => controller.abort();
  options.signal?.addEventListener("abort", stopOnAbort, { once: true });
  const tail: string[] = [];
  let version: string | null = null;
  let pid = 0;
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    // {"timestamp":...,"message":"build info","build":1590,"commit":"d3ebd7c"}
    if (version === null && line.includes('"build info"')) {
      try {
        const info = JSON.parse(line) as { build?: unknown; commit?: unknown };
        if (typeof info.build === "number") version = `build ${info.build} (${String(info.commit)})`;
      } catch {
        // Not the JSON line after all.
      }
    }
  };
  const exited: Promise<EngineExit> = runCommand(argv, {
    cwd: options.cwd,
    env: options.env,
    signal: controller.signal,
    logFile: options.logFile,
    allowFailure: true,
    killGraceMs: 5000,
    onLine,
    onSpawn: (p) => (pid = p),
  }).then(
    (result) => ({ code: result.exitCode, stopped: false, tail: [...tail] }),
    (error: unknown) => {
      if (controller.signal.aborted) return { code: null, stopped: true, tail: [...tail] };
      throw error;
    },
  );
  exited.finally(() => options.signal?.removeEventListener("abort", stopOnAbort)).catch(() => undefined);
  const stop = async () => {
    controller.abort();
    return exited;
  };

  const deadline = performance.now() + options.loadTimeoutMs;
  let ended: EngineExit | Error | undefined;
  exited.then(
    (exit) => (ended = exit),
    (error: Error) => (ended = error),
  );
  while (!(await answers(`${url}/props`))) {
    if (ended instanceof Error) throw ended;
    if (ended?.stopped) throw new AbortedError("interrupted while the engine server was starting");
    if (ended) {
      throw new EngineError(
        "E_ENGINE_FAILED",
        `the engine server exited with code ${ended.code} before it was ready${firstError(ended.tail)}`,
        { details: [`command: ${argv.join(" ")}`, "last lines:", ...ended.tail.slice(-12).map((l) => `  ${l}`), `full log: ${options.logFile}`] },
      );
    }
    if (performance.now() > deadline) {
      await stop();
      throw new EngineError("E_ENGINE_TIMEOUT", `the engine server did not answer within ${Math.round(options.loadTimeoutMs / 1000)} s of starting (still loading the model?)`, {
        details: [`full log: ${options.logFile}`],
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // Ready: from now on only stop() ends it (the caller drains requests first).
  options.signal?.removeEventListener("abort", stopOnAbort);
  return {
    url,
    pid,
    argv,
    // Read when asked: the start-up line may come after the port answers.
    get version() {
      return version;
    },
    dropped,
    exited,
    peakRssBytes: () => peakRss(pid),
    stop,
  };
}

function firstError(lines: readonly string[]): string {
  const line = lines.find((l) => /error|failed|couldn't|terminate/i.test(l));
  return line ? `: ${line.trim()}` : "";
}

/** GET `url` answers 200 (within a second). */
function answers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

/** VmHWM of /proc/<pid>/status: the process's peak resident set so far (null without /proc). */
function peakRss(pid: number): number | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : null;
}
