/**
 * run, render, drift, engines, metrics summary, schemas: the consumer side. Generated text
 * goes to stdout as the engine produces it; everything else goes to stderr.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { CliOptions } from "./options.js";
import { EVENT_SCHEMA_VERSION } from "../core/events.js";
import { UsageError } from "../core/errors.js";
import type { CommandIo } from "./signing-commands.js";

export const EXIT_DRIFT = 3;

function prepareOptions(options: CliOptions, io: CommandIo) {
  return {
    root: io.root,
    env: io.env,
    policyFile: options.config!,
    ...(options.engine ? { engine: options.engine } : {}),
    ...(options.runModel ? { model: options.runModel } : {}),
    ...(options.modelRoot ? { modelRoot: options.modelRoot } : {}),
    ...(options.host ? { host: options.host } : {}),
    ...(options.binary ? { binary: options.binary } : {}),
    strict: options.strict,
    ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
    // Once each: drift and run prepare the policy more than once.
    onNote: onceEach((line: string) => io.err(`note: ${line}`)),
    ...(options.allowOutsideRoot ? { allowOutsideRoot: true } : {}),
  };
}

async function readPrompt(options: CliOptions): Promise<string> {
  if (options.prompt !== undefined) return options.prompt;
  if (options.promptFile !== undefined) return readFile(options.promptFile, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`--prompt-file ${options.promptFile}: ${error.code === "ENOENT" ? "no such file" : error.message}`);
  });
  if (process.stdin.isTTY) throw new UsageError("no prompt: pass --prompt <text> or --prompt-file <file>, or pipe it in on stdin");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (!text) throw new UsageError("the prompt from stdin is empty");
  return text;
}

export async function runRun(options: CliOptions, io: CommandIo, signal: AbortSignal): Promise<number> {
  // AI_TOOLS_TIMING=1: where start-up time goes, on stderr (process start to each phase).
  const timing = io.env.AI_TOOLS_TIMING === "1";
  const phase = (name: string) => timing && io.err(`timing: ${name} at ${performance.now().toFixed(1)} ms`);
  phase("cli ready");
  const [{ preparePolicy, checkModelIntegrity }, metrics] = await Promise.all([import("../runtime/prepare.js"), import("../metrics/record.js")]);
  phase("modules loaded");
  const prompt = await readPrompt(options);
  const { rendered, engine, root } = await preparePolicy(prepareOptions(options, io));
  phase("policy rendered");
  for (const warning of rendered.warnings) io.err(`warning: ${warning}`);
  const integrity = await checkModelIntegrity(rendered, {
    root,
    mode: options.verifyModel,
    ...(options.trustedKeys ? { trustedKeys: options.trustedKeys } : {}),
    onNote: (line) => io.err(`note: ${line}`),
  });
  phase("model verified");
  if (integrity.verified) io.err(`verified ${integrity.verified.files.length} files (root ${integrity.verified.rootDigest.slice(0, 16)}…, key ${integrity.verified.key.id})`);
  const probe = await engine.probe(rendered);
  if (!probe.available) {
    const { EngineError } = await import("../../engines/types.js");
    throw new EngineError("E_ENGINE_UNAVAILABLE", `${engine.name} is not available: ${probe.detail}`);
  }
  phase("engine probed");
  const metricsLog = options.metricsLog ?? io.env.AI_TOOLS_METRICS_LOG;
  let output = "";
  let failure: unknown;
  let result: Awaited<ReturnType<typeof engine.generate>> | undefined;
  try {
    result = await engine.generate(prompt, rendered, {
      signal,
      onToken: (piece) => {
        output += piece;
        io.out(piece);
      },
    });
    io.out("\n");
    for (const warning of result.warnings ?? []) io.err(`warning: ${warning}`);
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
    logPrompts: options.logPrompts,
  });
  if (integrity.modelSha256) record.model.checksum = integrity.modelSha256;
  if (metricsLog) await metrics.appendMetricsRecord(metricsLog, record, { env: io.env });
  if (options.promTextfile) {
    const { writePrometheusTextfile } = await import("../metrics/prometheus.js");
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
  return 0;
}

export async function runRender(options: CliOptions, io: CommandIo): Promise<number> {
  const { preparePolicy } = await import("../runtime/prepare.js");
  const { rendered } = await preparePolicy(prepareOptions(options, io));
  if (options.json) {
    io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "rendered-policy", ...rendered }) + "\n");
    return 0;
  }
  const rows: [string, unknown][] = [
    ["engine", rendered.engine],
    ["model_path", rendered.modelPath],
    ...Object.entries(rendered.generation).map(([k, v]) => [`generation.${k}`, v] as [string, unknown]),
    ...Object.entries(rendered.runtime).map(([k, v]) => [`runtime.${k}`, v] as [string, unknown]),
  ];
  io.out(`${rendered.file} for host ${rendered.host.name} (${rendered.host.physicalCores} physical cores, ${(rendered.host.memoryBytes / 2 ** 30).toFixed(1)} GiB RAM, ${rendered.host.gpus.length ? rendered.host.gpus.map((g) => `${g.name} ${(g.memoryTotalBytes / 2 ** 30).toFixed(0)} GiB`).join(", ") : "no GPU"})\n`);
  for (const [key, value] of rows) {
    const source = rendered.sources[key];
    const shown = value === null ? "(not set)" : JSON.stringify(value);
    io.out(`  ${key.padEnd(28)} ${shown.padEnd(24)} ${source ? source.source : "default"}${source?.note ? `: ${source.note}` : ""}\n`);
  }
  io.out(`  policy hash ${rendered.policyHash}\n`);
  for (const warning of rendered.warnings) io.err(`warning: ${warning}`);
  return 0;
}

export async function runDrift(options: CliOptions, io: CommandIo): Promise<number> {
  const [{ preparePolicy }, { detectDrift }] = await Promise.all([import("../runtime/prepare.js"), import("../runtime/drift.js")]);
  const { rendered, pulled } = await preparePolicy(prepareOptions(options, io));
  const report = await detectDrift(rendered, { root: io.root, env: io.env, ...(options.binary ? { binary: options.binary } : {}), ...(pulled ? { pulled } : {}) });
  if (options.json) io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "drift", ...report }) + "\n");
  else {
    io.out(`${"".padEnd(2)}${"what".padEnd(8)} ${"item".padEnd(36)} ${"status".padEnd(8)} expected -> actual\n`);
    for (const row of report.rows) {
      io.out(`  ${row.subject.padEnd(8)} ${row.item.padEnd(36)} ${row.status.padEnd(8)} ${row.expected ?? "?"}${row.status === "ok" ? "" : ` -> ${row.actual ?? "?"}`}\n`);
    }
    io.out(report.drift ? `drift: ${report.rows.filter((r) => r.status === "drift").length} difference(s)\n` : "no drift\n");
  }
  return report.drift ? EXIT_DRIFT : 0;
}

export async function runEngines(options: CliOptions, io: CommandIo): Promise<number> {
  const { engineNames, getEngine } = await import("../../engines/registry.js");
  for (const name of engineNames()) {
    const engine = await getEngine(name, { root: io.root, env: io.env, ...(options.binary ? { binary: options.binary } : {}) });
    const probe = await engine.probe().catch((error: Error) => ({ name, available: false, version: null, commit: null, via: null, detail: error.message }));
    if (options.json) io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "engine", ...engine.info(), ...probe }) + "\n");
    else io.out(`${name.padEnd(11)} ${(probe.available ? "available" : "absent").padEnd(9)} ${probe.version ?? ""}${probe.via ? `  via ${probe.via}` : ""}\n${"".padEnd(21)} ${probe.detail}\n`);
  }
  return 0;
}

export async function runMetricsSummary(options: CliOptions, io: CommandIo): Promise<number> {
  const { summarizeMetricsLog, formatSummaryTable } = await import("../metrics/summary.js");
  const summary = await summarizeMetricsLog(options.metricsFile!);
  io.out(options.json ? JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "metrics-summary", ...summary }) + "\n" : formatSummaryTable(summary) + "\n");
  return 0;
}

/** JSON Schemas of the YAML files, generated from the zod schemas, for editors (yaml-language-server). */
export async function runSchemas(_options: CliOptions, io: CommandIo): Promise<number> {
  const { writeSchemas } = await import("../policy/json-schema.js");
  const written = await writeSchemas(join(io.root, "schemas"));
  for (const file of written) io.out(`wrote ${file}\n`);
  return 0;
}


function onceEach(print: (line: string) => void): (line: string) => void {
  const seen = new Set<string>();
  return (line) => {
    if (seen.has(line)) return;
    seen.add(line);
    print(line);
  };
}
