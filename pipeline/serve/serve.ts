/**
 * `ai-tools serve` as a library: the policy rendered for this host and this server build,
 * the model verified (as `run` does), the front bound first (a port in use fails at once,
 * not after the model loaded), the engine server started with the policy's flags and the
 * GPU index placement `run` uses, then the two joined. Every generation request becomes
 * one metrics record, as a `run` does: summarized for /metrics and appended to the metrics
 * log when one is set.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { UsageError } from "../core/errors.js";
import { EngineError } from "../../engines/types.js";
import { readGgufHeader } from "../gguf/reader.js";
import { appendMetricsRecord, buildMetricsRecord } from "../metrics/record.js";
import { checkModelIntegrity, policyForBuild, preparePolicy } from "../runtime/prepare.js";
import { AdmissionQueue } from "./admission.js";
import { detectChatTemplate, type ChatTemplateName } from "./chat-template.js";
import { countTokens, streamCompletion } from "./engine-client.js";
import { startEngineServer, type EngineExit, type RunningEngine } from "./engine-server.js";
import { startFront, type RequestOutcome } from "./front.js";
import { ServeMetrics } from "./serve-metrics.js";

export interface ServeOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  policyFile: string;
  /** --model: a model file or a converted model's name, instead of the policy's model_path. */
  model?: string;
  modelRoot?: string;
  strict?: boolean;
  /** The engine's server binary (built by buildServerBinary, or --binary). */
  server: { path: string; gpu: boolean; commit: string | null };
  listen: { host: string; port: number };
  /** The environment variable that holds the API key clients must send; none: no key. */
  apiKeyEnv?: string;
  /** Engine slots (requests generated at once). */
  parallel: number;
  /** Requests that may wait for a slot; one more gets 503. */
  queue: number;
  chatTemplate?: ChatTemplateName;
  verify: "auto" | "require" | "skip";
  trustedKeys?: string;
  metricsLog?: string;
  logPrompts?: boolean;
  /** How long the engine may take to load the model (default 15 min). */
  loadTimeoutMs?: number;
  /** An engine that sends nothing for this long is given up on (default 10 min). */
  engineIdleTimeoutMs?: number;
  log(line: string): void;
  /** Aborts start-up. */
  signal?: AbortSignal;
}

export interface ServeHandle {
  /** http://host:port; the API is under /v1. */
  url: string;
  engineUrl: string;
  enginePid: number;
  engineArgv: string[];
  model: string;
  template: { name: ChatTemplateName; reason: string };
  /** Rejects (E_ENGINE_FAILED) if the engine server exits on its own; never resolves otherwise. */
  engineExited: Promise<never>;
  inFlight(): number;
  /** Graceful: no new requests, those in flight finish (at most graceMs), then the engine's process group is stopped. */
  close(graceMs?: number): Promise<void>;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The model's name as clients ask for it: the converted model's folder name, else the file name without .gguf. */
export function servedModelName(modelPath: string): string {
  const converted = /\/powerinfer\/([^/]+)\/model\.powerinfer\.gguf$/.exec(modelPath);
  return converted ? converted[1]! : basename(modelPath).replace(/(\.powerinfer)?\.gguf$/, "");
}

export async function startServe(options: ServeOptions): Promise<ServeHandle> {
  const { log, env } = options;
  let apiKey: string | null = null;
  if (options.apiKeyEnv !== undefined) {
    if (!ENV_NAME.test(options.apiKeyEnv)) throw new UsageError(`--api-key-env must name an environment variable; got "${options.apiKeyEnv}"`);
    apiKey = env[options.apiKeyEnv] || null;
    if (apiKey === null) throw new UsageError(`--api-key-env ${options.apiKeyEnv}: the variable is unset or empty`, ["Set it to the key clients must send (Authorization: Bearer <key>), or leave --api-key-env out for no key."]);
  }

  const { loaded, rendered } = await preparePolicy({
    root: options.root,
    env,
    policyFile: options.policyFile,
    engine: "powerinfer",
    binary: options.server.path,
    ...(options.model ? { model: options.model } : {}),
    ...(options.modelRoot ? { modelRoot: options.modelRoot } : {}),
    ...(options.strict ? { strict: true } : {}),
  });
  if (loaded.policy.engine !== "powerinfer") log(`note: ${options.policyFile} names engine ${loaded.policy.engine}; serve runs PowerInfer's server on its model`);
  for (const warning of rendered.warnings) log(`warning: ${warning}`);
  const integrity = await checkModelIntegrity(rendered, {
    root: options.root,
    mode: options.verify,
    ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
    onNote: (line) => log(`note: ${line}`),
  });
  if (integrity.verified) log(`verified ${integrity.verified.files.length} files (root ${integrity.verified.rootDigest.slice(0, 16)}…, key ${integrity.verified.key.id})`);
  const { policy: effective, sparse, notes } = await policyForBuild(rendered, options.server.gpu, env);
  for (const note of notes) log(`note: ${note}`);

  const modelPath = rendered.modelPath!;
  const header = await readGgufHeader(modelPath);
  const chatTemplate = header.kv.get("tokenizer.chat_template");
  const template = options.chatTemplate
    ? { name: options.chatTemplate, reason: "--chat-template" }
    : detectChatTemplate(typeof chatTemplate === "string" ? chatTemplate : undefined);
  // ctx_size 0: the model's training context, split between the slots.
  const trained = header.kv.get(`${String(header.kv.get("general.architecture"))}.context_length`);
  const slotContext = rendered.generation.ctx_size > 0 ? rendered.generation.ctx_size : typeof trained === "number" ? Math.floor(trained / options.parallel) : null;
  const model = { id: servedModelName(modelPath), created: Math.floor((await stat(modelPath)).mtimeMs / 1000) };
  const metrics = new ServeMetrics();
  const queue = new AdmissionQueue(options.parallel, options.queue);

  let engineVersion: () => string | null = () => null;
  let peakRss: () => number | null = () => null;
  let metricsLogFailed = false;
  const onRequestEnd = (outcome: RequestOutcome) => {
    const rss = peakRss();
    const record = buildMetricsRecord({
      policy: rendered,
      probe: { name: "powerinfer", version: engineVersion(), commit: options.server.commit },
      prompt: outcome.prompt,
      output: outcome.output,
      metrics: outcome.metrics && rss !== null ? { ...outcome.metrics, peakRssBytes: rss } : outcome.metrics,
      ...(outcome.error === undefined ? {} : { error: outcome.error }),
      modelName: model.id,
      ...(options.logPrompts ? { logPrompts: true } : {}),
    });
    if (integrity.modelSha256) record.model.checksum = integrity.modelSha256;
    metrics.add(record);
    if (options.metricsLog) {
      appendMetricsRecord(options.metricsLog, record, { env }).catch((error: Error) => {
        if (!metricsLogFailed) log(`warning: cannot append to the metrics log ${options.metricsLog}: ${error.message}`);
        metricsLogFailed = true;
      });
    }
  };

  const front = await startFront({
    host: options.listen.host,
    port: options.listen.port,
    model,
    generation: rendered.generation,
    slotContext,
    template: template.name,
    apiKey,
    queue,
    metrics,
    onRequestEnd,
    log,
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "EADDRINUSE") throw new UsageError(`${options.listen.host}:${options.listen.port} is already in use: pass another --port (0 picks a free one)`);
    if (error.code === "EADDRNOTAVAIL" || error.code === "ENOTFOUND") throw new UsageError(`--host ${options.listen.host}: not an address of this machine`);
    throw error;
  });

  const scratch = await mkdtemp(join(tmpdir(), "ai-tools-serve-"));
  const port = new URL(front.url).port;
  // The engine gets no API key: it is the front's, and the engine listens on loopback only.
  const engineEnv = { ...env };
  if (options.apiKeyEnv) delete engineEnv[options.apiKeyEnv];
  let engine: RunningEngine;
  try {
    engine = await startEngineServer(
      { binary: options.server.path, policy: effective, sparse, parallel: options.parallel },
      {
        env: engineEnv,
        cwd: scratch,
        logFile: join(options.root, "build", "logs", `serve-${port}.log`),
        loadTimeoutMs: options.loadTimeoutMs ?? 15 * 60_000,
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
  } catch (error) {
    await front.shutdown(0);
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
  for (const flag of engine.dropped) log(`warning: ${options.server.path} does not accept ${flag}: not passed`);
  engineVersion = () => engine.version;
  peakRss = () => engine.peakRssBytes();
  const idleTimeoutMs = options.engineIdleTimeoutMs ?? 10 * 60_000;
  front.setEngine({
    stream: (body, signal) => streamCompletion(engine.url, body, { signal, idleTimeoutMs }),
    countTokens: (text, signal) => countTokens(engine.url, text, signal),
  });

  const engineExited = engine.exited.then((exit: EngineExit): Promise<never> => {
    // Stopped by close(): nothing to report, ever.
    if (exit.stopped) return new Promise<never>(() => undefined);
    front.setEngine(null);
    throw new EngineError("E_ENGINE_FAILED", `the engine server exited${exit.code === null ? "" : ` with code ${exit.code}`} while serving`, {
      details: ["last lines:", ...exit.tail.slice(-12).map((l) => `  ${l}`), `full log: build/logs/serve-${port}.log`],
    });
  });
  // Handled here too: a caller that stopped listening must not see an unhandled rejection.
  engineExited.catch(() => undefined);

  let closing: Promise<void> | undefined;
  return {
    url: front.url,
    engineUrl: engine.url,
    enginePid: engine.pid,
    engineArgv: engine.argv,
    model: model.id,
    template,
    engineExited,
    inFlight: () => front.inFlight(),
    close: (graceMs = 60_000) =>
      (closing ??= (async () => {
        await front.shutdown(graceMs);
        await engine.stop();
        await rm(scratch, { recursive: true, force: true });
      })()),
  };
}

