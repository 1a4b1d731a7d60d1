/**
 * The CLI: parse argv, open the workspace, pick a reporter, run a graph, map the
 * outcome to an exit code. Everything it does is a library call tests make directly.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseCli, USAGE, type CliOptions } from "./options.js";
import { isPipelineError } from "../core/errors.js";
import { EVENT_SCHEMA_VERSION, type PipelineEvent, type TaskPlanEvent } from "../core/events.js";
import type { GraphOutcome } from "../core/executor.js";
import type { Workspace } from "../workspace.js";
import type { TaskErrorEvent } from "../core/events.js";
// Only what every command needs loads up front: `run`, `verify` and the rest do not pay for the
// graph engine, the tasks and the engine config schema (see bench/run-overhead.mjs).
import { findRoot, PACKAGE_ROOT } from "../root.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 75, interrupted: 130 } as const;

// A reader that goes away (`| head`) must not crash a run that is building: stop
// writing to it and carry on.
let stdoutClosed = false;
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  stdoutClosed = true;
});
const out = (text: string) => {
  if (!stdoutClosed) process.stdout.write(text);
};
const err = (line: string) => process.stderr.write(line + "\n");

export async function main(argv: readonly string[]): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCli(argv);
  } catch (error) {
    return reportError(error, argv.includes("--json"));
  }
  if (options.command === "help") {
    out(USAGE + "\n");
    return EXIT.ok;
  }
  if (options.command === "version") {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };
    out(`ai-tools ${pkg.version}\n`);
    return EXIT.ok;
  }

  // Signature commands need no engine configuration: verify runs in other repositories too.
  if (options.command === "keygen" || options.command === "verify") {
    const { runKeygen, runVerify } = await import("./signing-commands.js");
    const io = { out, err, env: process.env, root: findRoot(process.env) };
    try {
      return options.command === "keygen" ? await runKeygen(options, io) : await runVerify(options, io);
    } catch (error) {
      return reportError(error, options.json);
    }
  }

  if (options.command === "report") {
    const { runReport } = await import("../report/command.js");
    const { out: file, models, metricsLog, baselines, maxRegressionPercent, trustedKeys, json } = options;
    try {
      return await runReport({ ...(file ? { out: file } : {}), models, ...(metricsLog ? { metricsLog } : {}), baselines, maxRegressionPercent, ...(trustedKeys ? { trustedKeys } : {}), json }, { out, err, env: process.env, root: findRoot(process.env), command: `ai-tools ${argv.join(" ")}` });
    } catch (error) {
      return reportError(error, options.json);
    }
  }

  if (["run", "render", "drift", "engines", "schemas", "metrics"].includes(options.command)) return runtimeCommand(options);

  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    if (!options.json) err(`\n${signal}: stopping running steps (press Ctrl-C again to quit at once)...`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    const [{ executeGraph }, { engineGraph }, { loadEngineSettings, openWorkspace }, { failureLines }] = await Promise.all([
      import("../core/executor.js"),
      import("../graphs.js"),
      import("../workspace.js"),
      import("./reporters/format.js"),
    ]);
    const printFailure = (event: TaskErrorEvent, json: boolean) => {
      if (json) out(JSON.stringify(event) + "\n");
      else for (const line of failureLines(event)) err(line);
    };
    const workspace = openWorkspace(findRoot(process.env), process.env);
    const settings = await loadEngineSettings(workspace, {
      upstreamUrl: options.upstreamUrl,
      backend: options.backend,
      jobs: options.jobs,
      native: options.native,
      cudaArch: options.cudaArch,
      resetUpstream: options.resetUpstream,
    });
    if (options.command === "models") return await printModels(workspace.root, options.json);
    if (options.command === "clean") return await runClean(workspace, options);
    if (options.command === "doctor") return await printDoctor(workspace, options.json);
    if (options.command === "inspect") return await printInspect(options.file!, options.json);
    if (options.command === "setup-python") {
      const { setupPythonVenv } = await import("../python.js");
      const py = await setupPythonVenv({ root: workspace.root, env: workspace.env, logFile: join(workspace.logDir, "setup-python.log") });
      out(`${py.path}: Python ${py.version}, numpy ${py.modules.numpy}, sentencepiece ${py.modules.sentencepiece}; the converter will use it.\n`);
      return EXIT.ok;
    }
    if (options.command === "sign") {
      // A converted model is re-signed by its graph's sign step (with provenance from the
      // step records); any other directory is signed as it is.
      const model = await convertedModelOf(workspace.root, options.dir!);
      if (model === undefined) {
        const { runSignDirectory } = await import("./signing-commands.js");
        return await runSignDirectory(options, { out, err, env: process.env, root: workspace.root });
      }
      options = { ...options, model, only: "sign", force: ["sign"] };
    }
    if (options.command === "release") {
      const { configuredKeySource } = await import("../signing/signing-key.js");
      const key = configuredKeySource({ env: workspace.env, ...(options.key ? { keyFile: options.key } : {}) });
      if (key === null && !options.dryRun) {
        const { PipelineError } = await import("../core/errors.js");
        throw new PipelineError("E_SIGNING_KEY", "a release is signed with a configured key, not the development key: set AI_TOOLS_SIGNING_KEY (a CI secret), AI_TOOLS_SIGNING_KEY_FILE, or pass --key", {
          details: ["`pnpm pipeline convert <model>` signs with the development key for local use."],
        });
      }
    }
    const command = options.command === "plan" ? options.target : options.command === "sign" || options.command === "release" ? "convert" : options.command;
    const downloadOptions = {
      ...(options.connections ? { connectionsPerFile: options.connections } : {}),
      ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
      ...(options.python ? { python: options.python } : {}),
      ...(options.allowUnsafeOuttype ? { allowUnsafeOuttype: true } : {}),
      ...(options.key ? { signingKeyFile: options.key } : {}),
      ...(options.allowInsecureKeyPermissions ? { allowInsecureKeyPermissions: true } : {}),
    };
    // Model steps (and their dependencies: the Hub client, GGUF, Python) load only when a model is named.
    let graph = engineGraph(workspace, settings);
    if (options.model !== undefined) {
      const [{ loadRecipe }, { convertGraph, downloadGraph }] = await Promise.all([import("../config/recipe.js"), import("../model-graphs.js")]);
      const recipe = await loadRecipe(await recipeRoot(workspace.root), options.model);
      graph = command === "download" ? downloadGraph(workspace, recipe, downloadOptions) : convertGraph(workspace, settings, recipe, downloadOptions);
    }
    // `bench` measures again: the point is a fresh number, even when nothing changed.
    const force = options.command === "bench" && options.force !== true ? [...(options.force || []), "bench"] : options.force;
    const planning = options.command === "plan" || options.command === "status" || options.dryRun;

    if (options.command === "status") {
      const plans: TaskPlanEvent[] = [];
      const outcome = await executeGraph(graph, {
        root: workspace.root,
        stateDir: workspace.stateDir,
        logDir: workspace.logDir,
        env: workspace.env,
        dryRun: true,
        signal: controller.signal,
        onEvent: (event) => (event.event === "task-plan" ? plans.push(event) : event.event === "task-error" && printFailure(event, options.json)),
      });
      // In graph order, not in the order the concurrent checks finished.
      const order = graph.tasks.map((t) => t.id);
      printStatus(plans.sort((a, b) => order.indexOf(a.task) - order.indexOf(b.task)), options.json);
      return exitCode(outcome);
    }

    const { onEvent, close } = await pickReporter(options, planning);
    let lastEvent: PipelineEvent | undefined;
    const outcome = await executeGraph(graph, {
      root: workspace.root,
      stateDir: workspace.stateDir,
      logDir: workspace.logDir,
      env: workspace.env,
      dryRun: planning,
      force,
      only: options.only,
      from: options.from,
      noWait: options.noWait,
      signal: controller.signal,
      onEvent: (event) => {
        lastEvent = event;
        onEvent(event);
      },
    });
    await close(lastEvent);
    if (options.command === "release") return await finishRelease(workspace, options, outcome);
    if (options.command === "bench" && outcome.status === "success" && options.model !== undefined) {
      return await reportBench(workspace.root, options);
    }
    return exitCode(outcome);
  } catch (error) {
    return reportError(error, options.json);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function pickReporter(options: CliOptions, planning: boolean) {
  if (options.json) {
    const { jsonReporter } = await import("./reporters/json.js");
    return { onEvent: jsonReporter(out), close: async () => undefined };
  }
  // A pty with no size (some CI runners) would make listr2 wrap every character.
  const interactive = process.stdout.isTTY && (process.stdout.columns ?? 0) > 0 && !process.env.CI && process.env.TERM !== "dumb";
  if (interactive && !planning) {
    const { ttyReporter } = await import("./reporters/tty.js");
    const { reporter, close } = ttyReporter(err);
    return { onEvent: reporter, close };
  }
  const { plainReporter } = await import("./reporters/plain.js");
  return { onEvent: plainReporter((line) => out(line + "\n"), { showPlan: planning }), close: async () => undefined };
}

/**
 * After a release's convert graph (or in its place, with --dry-run): the bench gate against the
 * baseline and the manifest folder to publish, as the release workflow uses them.
 */
async function finishRelease(workspace: Workspace, options: CliOptions, outcome: GraphOutcome): Promise<number> {
  const [{ loadRecipe }, { configuredKeySource }] = await Promise.all([import("../config/recipe.js"), import("../signing/signing-key.js")]);
  const { recipe } = await loadRecipe(await recipeRoot(workspace.root), options.model!);
  const development = configuredKeySource({ env: workspace.env, ...(options.key ? { keyFile: options.key } : {}) }) === null;
  const manifestDir = join(development ? join("build", "manifests") : "manifests", options.model!, recipe.audit.model_version);
  const bench = join("models", "powerinfer", options.model!, "bench.json");
  if (options.dryRun) {
    out(`then: bench gate: ${options.compare ? `compare ${bench} with ${options.compare} (fail above ${options.maxRegressionPercent}% slower eval tokens/s), Markdown table to $GITHUB_STEP_SUMMARY` : "no --baseline: skipped"}\n`);
    out(`then: publish ${manifestDir}/ (model.sig, provenance.sigstore.json, SHA256SUMS, bench.json, policy.yaml)${development ? "  [no signing key configured: a real release refuses to run]" : ""}\n`);
    return exitCode(outcome);
  }
  if (outcome.status !== "success") return exitCode(outcome);
  // With a baseline: the gate and its table; without: the result table (both to $GITHUB_STEP_SUMMARY with --markdown / a baseline).
  const gate = options.compare || options.markdown ? await reportBench(workspace.root, { ...options, markdown: true }) : EXIT.ok;
  out(`release ${options.model}: signed files in ${manifestDir}/${gate === EXIT.ok ? "" : " (bench gate failed)"}\n`);
  return gate;
}

async function runClean(workspace: Workspace, options: CliOptions): Promise<number> {
  const [{ planClean, executeClean, formatBytes }, { hubSettings }] = await Promise.all([import("../clean.js"), import("../hub/env.js")]);
  let modelRepos: string[] = [];
  if (options.model !== undefined && options.cache) {
    const { loadRecipe, recipeHubRepos } = await import("../config/recipe.js");
    const { recipe } = await loadRecipe(await recipeRoot(workspace.root), options.model);
    modelRepos = recipeHubRepos(recipe);
  }
  const { items, kept } = planClean({
    root: workspace.root,
    cache: options.cache,
    hubCacheDir: hubSettings(workspace.env).cacheDir,
    modelRepos,
    ...(options.model !== undefined ? { model: options.model } : {}),
  });
  const total = items.reduce((sum, i) => sum + i.bytes, 0);
  const shown = (path: string) => (path.startsWith(workspace.root + "/") ? path.slice(workspace.root.length + 1) : path);
  if (options.json) {
    out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "clean", dryRun: options.dryRun, items: items.map((i) => ({ ...i, path: shown(i.path) })), kept, bytes: total }) + "\n");
  } else {
    for (const item of items) out(`${options.dryRun ? "would remove" : "removing"} ${shown(item.path)} (${formatBytes(item.bytes)}): ${item.why}\n`);
    for (const k of kept) out(`kept ${k}\n`);
  }
  if (!options.dryRun) await executeClean(items);
  if (!options.json) out(`${options.dryRun ? "would free" : "freed"} ${formatBytes(total)} in ${items.length} path${items.length === 1 ? "" : "s"}\n`);
  return EXIT.ok;
}

/** The consumer side: no engine configuration needed; Ctrl-C stops the engine and exits 130. */
async function runtimeCommand(options: CliOptions): Promise<number> {
  const commands = await import("./runtime-commands.js");
  const io = { out, err, env: process.env, root: findRoot(process.env) };
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    switch (options.command) {
      case "run":
        return await commands.runRun(options, io, controller.signal);
      case "render":
        return await commands.runRender(options, io);
      case "drift":
        return await commands.runDrift(options, io);
      case "engines":
        return await commands.runEngines(options, io);
      case "metrics":
        return await commands.runMetricsSummary(options, io);
      default:
        return await commands.runSchemas(options, io);
    }
  } catch (error) {
    if (isPipelineError(error) && error.code === "E_ENGINE_ABORTED") {
      err(`\n${error.message}`);
      return EXIT.interrupted;
    }
    return reportError(error, options.json);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** The recipe name when `dir` is models/powerinfer/<name> of this workspace and <name> has a recipe. */
async function convertedModelOf(root: string, dir: string): Promise<string | undefined> {
  const { resolve, relative, sep } = await import("node:path");
  const parts = relative(join(root, "models", "powerinfer"), resolve(dir)).split(sep);
  if (parts.length !== 1 || !parts[0] || parts[0].startsWith("..")) return undefined;
  const { RECIPE_DIR } = await import("../config/recipe.js");
  return existsSync(join(await recipeRoot(root), RECIPE_DIR, `${parts[0]}.yaml`)) ? parts[0] : undefined;
}

/** The workspace's recipes, else (installed as a package, no recipes of its own) the packaged ones. */
async function recipeRoot(root: string): Promise<string> {
  const { RECIPE_DIR } = await import("../config/recipe.js");
  return existsSync(join(root, RECIPE_DIR)) ? root : PACKAGE_ROOT;
}

async function printModels(root: string, json: boolean): Promise<number> {
  const { listRecipes } = await import("../config/recipe.js");
  const recipes = await listRecipes(await recipeRoot(root));
  if (json) {
    for (const r of recipes) {
      const entry = r.ok ? { ...r, file: undefined } : { name: r.name, ok: false, error: r.error.message };
      out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "model", ...entry }) + "\n");
    }
    return EXIT.ok;
  }
  const size = (bytes: number | undefined) => (bytes === undefined ? "?" : `${(bytes / 1e9).toFixed(1)} GB`);
  const width = Math.max(24, ...recipes.map((r) => r.name.length));
  out(`${"model".padEnd(width)} ${"kind".padEnd(11)} ${"size".padStart(8)}  ${"source repo".padEnd(42)} predictor / file\n`);
  for (const r of recipes) {
    if (!r.ok) {
      out(`${r.name.padEnd(width)} ${"".padEnd(11)} ${"".padStart(8)}  broken recipe: ${r.error.message}\n`);
      continue;
    }
    const notes = [
      r.verified ? "" : "unverified repo ids",
      r.gated ? "gated: needs HF_TOKEN" : "",
      r.kind === "unsupported" ? "refused: not runnable or convertible on the pinned engine" : r.unsupported ? "cannot be converted by the pinned engine" : "",
    ]
      .filter(Boolean)
      .join("; ");
    out(`${r.name.padEnd(width)} ${r.kind.padEnd(11)} ${size(r.sizeBytes).padStart(8)}  ${r.modelRepo.padEnd(42)} ${r.ggufFile ? `${r.ggufFile} (${r.ggufType})` : r.predictorRepo}${notes ? `  (${notes})` : ""}\n`);
  }
  return EXIT.ok;
}

async function printDoctor(workspace: Workspace, json: boolean): Promise<number> {
  const { runDoctor } = await import("../doctor.js");
  const rows = await runDoctor(workspace);
  for (const row of rows) {
    if (json) out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "doctor", ...row }) + "\n");
    else {
      const mark = row.status === "ok" ? "ok     " : row.status === "missing" ? "MISSING" : "absent ";
      out(`${mark} ${row.name.padEnd(34)} ${row.detail}\n`);
      if (row.hint) out(`        ${"".padEnd(34)} -> ${row.hint}\n`);
    }
  }
  return rows.some((r) => r.status === "missing") ? EXIT.failed : EXIT.ok;
}

async function printInspect(file: string, json: boolean): Promise<number> {
  const [{ readGgufHeader }, { formatSummary, summarizeGguf }] = await Promise.all([import("../gguf/reader.js"), import("../gguf/validate.js")]);
  // PowerInfer index files (.gpuidx) hold I32 tensors, which plain GGUF readers do not know.
  const summary = summarizeGguf(await readGgufHeader(file, { powerInferIntegerTypes: true }));
  if (json) out(JSON.stringify(summary) + "\n");
  else out(formatSummary(summary).join("\n") + "\n");
  return EXIT.ok;
}

/** After `bench`: the result, and with --compare the gate's verdict (exit 1 on a real regression). */
async function reportBench(root: string, options: CliOptions): Promise<number> {
  const [{ readFile, appendFile }, { parseBenchResult }, compare] = await Promise.all([
    import("node:fs/promises"),
    import("../bench/result.js"),
    import("../bench/compare.js"),
  ]);
  const file = join(root, "models", "powerinfer", options.model!, "bench.json");
  const fresh = parseBenchResult(await readFile(file, "utf8"), file);
  if (!options.compare) {
    if (options.json) out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), event: "bench-result", result: fresh }) + "\n");
    else out((options.markdown ? compare.formatResultMarkdown(fresh) : compare.formatResultTable(fresh)) + "\n");
    if (options.markdown && process.env.GITHUB_STEP_SUMMARY) await appendFile(process.env.GITHUB_STEP_SUMMARY, compare.formatResultMarkdown(fresh) + "\n");
    return EXIT.ok;
  }
  const old = parseBenchResult(await readFile(options.compare, "utf8"), options.compare);
  const result = compare.compareResults(old, fresh, { maxRegressionPercent: options.maxRegressionPercent, forceCompare: options.forceCompare });
  const text = options.markdown ? compare.formatComparisonMarkdown(result) : compare.formatComparisonTable(result);
  if (options.json) out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), event: "bench-comparison", ...result }) + "\n");
  else out(text + "\n");
  if (options.markdown && process.env.GITHUB_STEP_SUMMARY) await appendFile(process.env.GITHUB_STEP_SUMMARY, text + "\n");
  return result.failed ? EXIT.failed : EXIT.ok;
}

function exitCode(outcome: GraphOutcome): number {
  if (outcome.status === "aborted") return EXIT.interrupted;
  if (outcome.status === "success") return EXIT.ok;
  const busy = [...outcome.tasks.values()].some((o) => o.status === "failed" && isPipelineError(o.error) && o.error.code === "E_LOCK_BUSY");
  return busy ? EXIT.busy : EXIT.failed;
}

function printStatus(plans: TaskPlanEvent[], json: boolean): void {
  for (const plan of plans) {
    const state = plan.action === "skip" ? "fresh" : plan.reasons[0] === "no record of a successful run" ? "missing" : "stale";
    if (json) {
      out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, time: plan.time, event: "task-status", task: plan.task, state, reasons: plan.action === "skip" ? [] : plan.reasons }) + "\n");
    } else {
      out(`${plan.task.padEnd(10)} ${state}${state === "stale" ? ` (${plan.reasons.join("; ")})` : ""}\n`);
    }
  }
}


/** Errors before or around the graph: bad flags, bad config, unknown task. */
function reportError(error: unknown, json: boolean): number {
  const code = isPipelineError(error) ? error.code : "E_INTERNAL";
  const message = error instanceof Error ? error.message : String(error);
  const details = isPipelineError(error) ? [...error.details] : error instanceof Error && error.stack ? [error.stack] : [];
  if (json) out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), event: "error", code, message, details }) + "\n");
  err(`error [${code}]: ${message}`);
  for (const detail of details) err(`  ${detail}`);
  return code === "E_USAGE" || code === "E_ENGINE_UNKNOWN" || code === "E_MODEL_UNSUPPORTED" || code.startsWith("E_CONFIG") || code.startsWith("E_GRAPH") ? EXIT.usage : EXIT.failed;
}
