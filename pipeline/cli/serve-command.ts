/**
 * `ai-tools serve --config policy.yaml [--host H] [--port P]`: builds the engine's server when
 * needed (unless --binary), starts the OpenAI-compatible front and the engine, and serves
 * until `signal` aborts (SIGINT/SIGTERM): then in-flight requests finish and the engine's
 * process group is stopped, exit 0. The engine dying on its own ends it with exit 1.
 * Build progress and one line per request go to stderr; with --json, stdout gets one
 * `serve-ready` event.
 */
import { EVENT_SCHEMA_VERSION } from "../core/events.js";
import { PipelineError } from "../core/errors.js";
import type { CliOptions } from "./options.js";
import type { CommandIo } from "./signing-commands.js";

const DEFAULT_PORT = 8000;
const DEFAULT_QUEUE = 16;
/** How long in-flight requests get to finish after SIGINT/SIGTERM. */
const SHUTDOWN_GRACE_MS = 60_000;

export async function runServe(options: CliOptions, io: CommandIo, signal: AbortSignal): Promise<number> {
  const [{ startServe }, { resolvePowerInferBuild }, { loadPolicy }] = await Promise.all([
    import("../serve/serve.js"),
    import("../../engines/powerinfer.js"),
    import("../policy/load.js"),
  ]);
  // A broken policy fails now, not after minutes of building.
  await loadPolicy(options.config!);
  let server: { path: string; gpu: boolean; commit: string | null };
  if (options.binary) {
    const given = resolvePowerInferBuild({ binary: options.binary, env: io.env });
    if ("missing" in given) throw new PipelineError("E_ENGINE_UNAVAILABLE", `powerinfer: ${given.missing}`);
    server = { path: given.binary, gpu: given.gpu, commit: null };
  } else {
    const [{ buildServerBinary }, { plainReporter }] = await Promise.all([import("../serve/build.js"), import("./reporters/plain.js")]);
    const built = await buildServerBinary({
      root: io.root,
      env: io.env,
      signal,
      overrides: {
        ...(options.backend ? { backend: options.backend } : {}),
        ...(options.jobs ? { jobs: options.jobs } : {}),
        ...(options.upstreamUrl ? { upstreamUrl: options.upstreamUrl } : {}),
      },
      onEvent: plainReporter(io.err, { showPlan: false }),
    });
    server = { path: built.path, gpu: built.gpu, commit: built.sourceCommit };
  }
  signal.throwIfAborted();

  const handle = await startServe({
    root: io.root,
    env: io.env,
    policyFile: options.config!,
    ...(options.runModel ? { model: options.runModel } : {}),
    ...(options.modelRoot ? { modelRoot: options.modelRoot } : {}),
    strict: options.strict,
    server,
    listen: { host: options.listenHost ?? "127.0.0.1", port: options.port ?? DEFAULT_PORT },
    ...(options.apiKeyEnv ? { apiKeyEnv: options.apiKeyEnv } : {}),
    parallel: options.parallel ?? 1,
    queue: options.queue ?? DEFAULT_QUEUE,
    ...(options.chatTemplate ? { chatTemplate: options.chatTemplate } : {}),
    verify: options.verifyModel,
    ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
    ...((options.metricsLog ?? io.env.AI_TOOLS_METRICS_LOG) ? { metricsLog: (options.metricsLog ?? io.env.AI_TOOLS_METRICS_LOG)! } : {}),
    logPrompts: options.logPrompts,
    log: io.err,
    signal,
  });
  io.err(
    `serving ${handle.model} at ${handle.url}/v1 (chat template ${handle.template.name}: ${handle.template.reason}; ` +
      `${options.parallel ?? 1} slot(s), queue ${options.queue ?? DEFAULT_QUEUE}${options.apiKeyEnv ? `, API key from $${options.apiKeyEnv}` : ""}; engine ${handle.engineUrl}, pid ${handle.enginePid})`,
  );
  if (options.json) io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), event: "serve-ready", url: `${handle.url}/v1`, model: handle.model, engine: handle.engineUrl, enginePid: handle.enginePid }) + "\n");

  const stopRequested = new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));
  try {
    await Promise.race([stopRequested, handle.engineExited]);
  } catch (error) {
    // The engine died: what was in flight fails; nothing to drain.
    await handle.close(0);
    throw error;
  }
  const inFlight = handle.inFlight();
  io.err(`shutting down: ${inFlight ? `finishing ${inFlight} request(s) (at most ${SHUTDOWN_GRACE_MS / 1000} s), then ` : ""}stopping the engine`);
  await handle.close(SHUTDOWN_GRACE_MS);
  io.err("stopped");
  return 0;
}
