/**
 * `run --config <policy>`: generate with an engine. The text streams to stdout as the engine
 * produces it; everything else goes to stderr. Ctrl-C stops the engine (exit 130).
 */
import { Option } from "commander";
import { UsageError } from "../../core/errors.js";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { policyFlags, prepareOptionsOf, type PolicyFlags } from "../flags.js";

interface RunFlags extends PolicyFlags {
  prompt?: string;
  promptFile?: string;
  /** false with --no-verify. */
  verify: boolean;
  requireSignature?: boolean;
  metricsLog?: string;
  promTextfile?: string;
  logPrompts?: boolean;
}

export const run: CliCommand<RunFlags> = {
  name: "run",
  group: "Run models",
  define(command) {
    return policyFlags(command.description("generate with an engine: text streams to stdout, diagnostics to stderr"))
      .addOption(new Option("--prompt <text>", "the prompt (else --prompt-file, else stdin)").conflicts("promptFile").helpGroup("Prompt:"))
      .addOption(new Option("--prompt-file <file>", "read the prompt from a file").helpGroup("Prompt:"))
      .addOption(new Option("--no-verify", "skip the model's signature check").helpGroup("Integrity:"))
      .addOption(new Option("--require-signature", "refuse an unsigned model").conflicts("verify").helpGroup("Integrity:"))
      .addOption(new Option("--trusted-keys <file>", "the trust store for the signature check (default: configs/trusted-keys.yaml plus the development key)").helpGroup("Integrity:"))
      .addOption(new Option("--metrics-log <file>", "append one JSON line per request").env("AI_TOOLS_METRICS_LOG").helpGroup("Metrics:"))
      .addOption(new Option("--prom-textfile <file>", "also write the metrics as a node_exporter textfile").helpGroup("Metrics:"))
      .addOption(new Option("--log-prompts", "store prompt and output in the metrics log (default: only their lengths)").helpGroup("Metrics:"));
  },
  async run({ options }, io) {
    const controller = new AbortController();
    const onSignal = () => controller.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      return await generate(options, io, controller.signal);
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  },
};

async function generate(options: RunFlags, io: Parameters<CliCommand["run"]>[1], signal: AbortSignal): Promise<number> {
  // AI_TOOLS_TIMING=1: where start-up time goes, on stderr (process start to each phase).
  const timing = io.env.AI_TOOLS_TIMING === "1";
  const phase = (name: string) => timing && io.err(`timing: ${name} at ${performance.now().toFixed(1)} ms`);
  phase("cli ready");
  const [{ preparePolicy, checkModelIntegrity, policyForEngine }, metrics] = await Promise.all([import("../../runtime/prepare.js"), import("../../metrics/record.js")]);
  phase("modules loaded");
  const prompt = await readPrompt(options);
  const prepareOptions = prepareOptionsOf(options, io.root, io.env, io.err);
  const { rendered, engine, root, gpuBuild } = await preparePolicy(prepareOptions);
  phase("policy rendered");
  for (const warning of rendered.warnings) io.err(`warning: ${warning}`);
  const integrity = await checkModelIntegrity(rendered, {
    root,
    mode: options.verify === false ? "skip" : options.requireSignature ? "require" : "auto",
    ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
    onNote: (line) => io.err(`note: ${line}`),
  });
  phase("model verified");
  if (integrity.verified) io.err(`verified ${integrity.verified.files.length} files (root ${integrity.verified.rootDigest.slice(0, 16)}…, key ${integrity.verified.key.id})`);
  const probe = await engine.probe(rendered);
  if (!probe.available) {
    const { EngineError } = await import("../../../engines/types.js");
    throw new EngineError("E_ENGINE_UNAVAILABLE", `${engine.name} is not available: ${probe.detail}`);
  }
  phase("engine probed");
  let output = "";
  let failure: unknown;
  let result: Awaited<ReturnType<typeof engine.generate>> | undefined;
  let placementNotes: string[] = [];
  try {
    // What the engine build needs in place first (a GPU build's index for this host), then the run.
    const forEngine = await policyForEngine(rendered, gpuBuild, io.env);
    placementNotes = forEngine.notes;
    result = await engine.generate(prompt, forEngine.policy, {
      signal,
      onToken: (piece) => {
        output += piece;
        io.out(piece);
      },
    });
    io.out("\n");
    for (const warning of [...placementNotes, ...(result.warnings ?? [])]) io.err(`warning: ${warning}`);
  } catch (error) {
    failure = error;
  }
  const record = metrics.buildMetricsRecord({
    policy: rendered,
    probe,
    prompt,
    output,
    metrics: result?.metrics ?? null,
    ...(failure === undefined ? {} : { error: failure }),
    logPrompts: options.logPrompts ?? false,
  });
  if (integrity.modelSha256) record.model.checksum = integrity.modelSha256;
  if (options.metricsLog) await metrics.appendMetricsRecord(options.metricsLog, record, { env: io.env });
  if (options.promTextfile) {
    const { writePrometheusTextfile } = await import("../../metrics/prometheus.js");
    await writePrometheusTextfile(options.promTextfile, [record]);
  }
  phase("generated and logged");
  if (failure !== undefined) throw failure;
  const m = result!.metrics;
  const fmt = (n: number | null, unit: string) => (n === null ? "n/a" : `${n.toFixed(n >= 100 ? 0 : 2)}${unit}`);
  io.err(
    `${engine.name}: ${m.generatedTokens ?? "?"} tokens, first token ${fmt(m.timeToFirstTokenMs, " ms")}, total ${fmt(m.totalMs, " ms")}, ` +
      `generation ${fmt(m.generationTokensPerSecond, " tokens/s")}, prompt ${fmt(m.promptTokensPerSecond, " tokens/s")}` +
      `${m.peakRssBytes ? `, peak RSS ${(m.peakRssBytes / 2 ** 20).toFixed(0)} MiB` : ""} (${m.source})`,
  );
  return EXIT.ok;
}

async function readPrompt(options: RunFlags): Promise<string> {
  if (options.prompt !== undefined) return options.prompt;
  if (options.promptFile !== undefined) {
    const { readFile } = await import("node:fs/promises");
    return readFile(options.promptFile, "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(`--prompt-file ${options.promptFile}: ${error.code === "ENOENT" ? "no such file" : error.message}`);
    });
  }
  if (process.stdin.isTTY) throw new UsageError("no prompt: pass --prompt <text> or --prompt-file <file>, or pipe it in on stdin");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (!text) throw new UsageError("the prompt from stdin is empty");
  return text;
}
