/**
 * `serve --config policy.yaml [--host H] [--port P]`: builds the engine's server when needed
 * (unless --binary), starts the OpenAI-compatible front and the engine, and serves until
 * SIGINT/SIGTERM: then in-flight requests finish and the engine's process group is stopped,
 * exit 0; a second signal exits at once (130; the process layer's exit hook kills the
 * engine's group). The engine dying on its own ends it with exit 1. Build progress and one
 * line per request go to stderr; with --json, stdout gets one `serve-ready` event.
 */
import { Option } from "commander";
import { isPipelineError, PipelineError } from "../../core/errors.js";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { binaryFlag, buildFlags, integerIn, type BuildFlags } from "../flags.js";
import { printEvent, type CliIo } from "../output.js";

const DEFAULT_PORT = 8000;
const DEFAULT_QUEUE = 16;
/** How long in-flight requests get to finish after SIGINT/SIGTERM. */
const SHUTDOWN_GRACE_MS = 60_000;

interface ServeFlags extends BuildFlags {
  config: string;
  model?: string;
  modelRoot?: string;
  strict?: boolean;
  binary?: string;
  /** The address to listen on (not a host profile, unlike run's --host). */
  host?: string;
  port?: number;
  apiKeyEnv?: string;
  queue?: number;
  parallel?: number;
  chatTemplate?: "plain" | "chatml" | "llama-2";
  /** false with --no-verify. */
  verify: boolean;
  requireSignature?: boolean;
  trustedKeys?: string;
  metricsLog?: string;
  logPrompts?: boolean;
  json?: boolean;
}

export const serve: CliCommand<ServeFlags> = {
  name: "serve",
  group: "Run models",
  define(command) {
    const policy = "Policy:";
    const listen = "Listening:";
    command
      .description("serve a policy's model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions, /metrics, /healthz)")
      .addOption(new Option("--config <policy.yaml>", "a policy YAML, or a model recipe").makeOptionMandatory().helpGroup(policy))
      .addOption(new Option("--model <name|file>", "a converted model's name or a model file").helpGroup(policy))
      .addOption(new Option("--model-root <dir>", "where model_path is resolved (default models/)").helpGroup(policy))
      .addOption(new Option("--strict", "refuse a policy the host cannot honour instead of clamping it").helpGroup(policy))
      .addOption(binaryFlag().helpGroup(policy))
      .addOption(new Option("--host <address>", "the address to listen on (default 127.0.0.1)").helpGroup(listen))
      .addOption(new Option("--port <port>", `the port (default ${DEFAULT_PORT}; 0: any free one)`).argParser(integerIn(0, 65535)).helpGroup(listen))
      .addOption(new Option("--api-key-env <name>", "require this environment variable's value as the Bearer key").helpGroup(listen))
      .addOption(new Option("--queue <n>", `requests waiting for a slot before 503 (default ${DEFAULT_QUEUE})`).argParser(integerIn(0, 100_000)).helpGroup(listen))
      .addOption(new Option("--parallel <n>", "engine slots (requests generated at once; default 1)").argParser(integerIn(1, 256)).helpGroup(listen))
      .addOption(new Option("--chat-template <name>", "the chat template (default: the model's, else plain)").choices(["plain", "chatml", "llama-2"]).helpGroup(listen))
      .addOption(new Option("--no-verify", "skip the model's signature check").helpGroup("Integrity:"))
      .addOption(new Option("--require-signature", "refuse an unsigned model").conflicts("verify").helpGroup("Integrity:"))
      .addOption(new Option("--trusted-keys <file>", "the trust store for the signature check").helpGroup("Integrity:"))
      .addOption(new Option("--metrics-log <file>", "append one JSON line per request").env("AI_TOOLS_METRICS_LOG").helpGroup("Metrics:"))
      .addOption(new Option("--log-prompts", "store prompt and output in the metrics log").helpGroup("Metrics:"))
      .option("--json", "one serve-ready event on stdout once the endpoint answers");
    return buildFlags(command);
  },
  async run({ options }, io) {
    const controller = new AbortController();
    const onSignal = () => (controller.signal.aborted ? process.exit(EXIT.interrupted) : controller.abort());
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      return await serveUntilStopped(options, io, controller.signal);
    } catch (error) {
      if (controller.signal.aborted && isPipelineError(error) && error.code === "E_ABORTED") return EXIT.interrupted;
      throw error;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};

async function serveUntilStopped(options: ServeFlags, io: CliIo, signal: AbortSignal): Promise<number> {
  const [{ startServe }, { resolvePowerInferBuild }, { loadPolicy }] = await Promise.all([
    import("../../serve/serve.js"),
    import("../../../engines/powerinfer.js"),
    import("../../policy/load.js"),
  ]);
  // A broken policy fails now, not after minutes of building.
  await loadPolicy(options.config!);
  let server: { path: string; gpu: boolean; commit: string | null };
  if (options.binary) {
    const given = resolvePowerInferBuild({ binary: options.binary, env: io.env });
    if ("missing" in given) throw new PipelineError("E_ENGINE_UNAVAILABLE", `powerinfer: ${given.missing}`);
    server = { path: given.binary, gpu: given.gpu, commit: null };
  } else {
    const [{ buildServerBinary }, { plainReporter }] = await Promise.all([import("../../serve/build.js"), import("../reporters/plain.js")]);
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
    ...(options.model ? { model: options.model } : {}),
    ...(options.modelRoot ? { modelRoot: options.modelRoot } : {}),
    strict: options.strict ?? false,
    server,
    listen: { host: options.host ?? "127.0.0.1", port: options.port ?? DEFAULT_PORT },
    ...(options.apiKeyEnv ? { apiKeyEnv: options.apiKeyEnv } : {}),
    parallel: options.parallel ?? 1,
    queue: options.queue ?? DEFAULT_QUEUE,
    ...(options.chatTemplate ? { chatTemplate: options.chatTemplate } : {}),
    verify: options.verify === false ? "skip" : options.requireSignature ? "require" : "auto",
    ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
    ...((options.metricsLog ?? io.env.AI_TOOLS_METRICS_LOG) ? { metricsLog: (options.metricsLog ?? io.env.AI_TOOLS_METRICS_LOG)! } : {}),
    logPrompts: options.logPrompts ?? false,
    log: io.err,
    signal,
  });
  io.err(
    `serving ${handle.model} at ${handle.url}/v1 (chat template ${handle.template.name}: ${handle.template.reason}; ` +
      `${options.parallel ?? 1} slot(s), queue ${options.queue ?? DEFAULT_QUEUE}${options.apiKeyEnv ? `, API key from $${options.apiKeyEnv}` : ""}; engine ${handle.engineUrl}, pid ${handle.enginePid})`,
  );
  if (options.json) printEvent(io, { event: "serve-ready", url: `${handle.url}/v1`, model: handle.model, engine: handle.engineUrl, enginePid: handle.enginePid });

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
