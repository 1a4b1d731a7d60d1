/**
 * Task `bench`: the converted model measured with the engine that was just built, into
 * models/powerinfer/<model>/bench.json: N counted runs of `main` after warm-up, each with
 * its timings, peak RSS and CPU time, their aggregates, llama-bench's JSON where the
 * build has it, and everything a number needs to mean something (command line, engine
 * build, model digest, host). Nothing is written for a failed run.
 */
import { join } from "node:path";
import which from "which";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import { atomicWriteFile, sha256File } from "../pipeline/core/files.js";
import { formatArgv } from "../pipeline/core/process.js";
import type { BenchSettings } from "../pipeline/config/recipe.js";
import { benchThreads, detectHost, type HostInfo } from "../pipeline/model-bench/host.js";
import { parseLlamaBenchJson, type LlamaBenchRow } from "../pipeline/model-bench/llama-bench.js";
import { buildAggregates, serializeBenchResult, type BenchResultInput } from "../pipeline/model-bench/result.js";
import { mainArgv, runMainOnce, type MainBenchSettings, type RunSample } from "../pipeline/model-bench/runner.js";
import type { BuildResult } from "./build.js";
import type { ConvertResult } from "./convert.js";
import { PAPER_PROMPTS } from "../pipeline/model-bench/paper-prompts.js";
import { PipelineError } from "../pipeline/core/errors.js";

export interface BenchTaskSettings {
  model: string;
  recipeFile: string;
  bench: BenchSettings;
}

export function benchTask(settings: BenchTaskSettings): TaskDefinition {
  const output = join("models", "powerinfer", settings.model, "bench.json");
  let host: Promise<HostInfo> | undefined;
  const hostInfo = () => (host ??= detectHost());

  return {
    id: "bench",
    instance: `bench--${settings.model}`,
    title: `Benchmark ${settings.model}`,
    version: 1,
    dependsOn: ["build", "convert"],

    // A different kind of machine is a different measurement; the load-dependent thread
    // count is not an input (it would rerun the bench whenever the load changed).
    inputs: async () => ({ values: { [`${settings.recipeFile}#bench`]: settings.bench, hostClass: (await hostInfo()).hostClass } }),
    outputs: () => [{ path: output, hash: true }],

    async run(ctx) {
      const build = ctx.deps.get("build")!.result as BuildResult;
      const converted = ctx.deps.get("convert")!.result as ConvertResult;
      const machine = await hostInfo();
      const auto = benchThreads(machine.physicalCores);
      const threads = settings.bench.threads ?? auto.threads;
      if (auto.noisy) {
        const note = `load average is high: numbers may be noisy (using ${threads} of ${machine.physicalCores} physical cores)`;
        ctx.log(`warning: ${note}`);
        ctx.progress({ message: `warning: ${note}` });
      }
      const main = join(ctx.root, build.binaries.main!);
      const modelFile = join(ctx.root, converted.output);
      const paper = settings.bench.profile === "paper";
      const gpuBuild = build.backend === "cuda" || build.backend === "hip";
      // The paper profile compares systems at one explicit budget: the engine's default (free VRAM - 256 MiB) varies run to run.
      if (paper && gpuBuild && settings.bench.vramBudgetGiB === undefined) {
        throw new PipelineError("E_CONFIG_INVALID", `${settings.recipeFile}: bench.profile paper on a ${build.backend} build needs bench.vramBudgetGiB (an explicit --vram-budget)`);
      }
      const vramBudgetGiB = gpuBuild ? settings.bench.vramBudgetGiB : undefined;
      if (settings.bench.vramBudgetGiB !== undefined && !gpuBuild) ctx.log(`note: bench.vramBudgetGiB ignored: a ${build.backend} build has no GPU`);
      const prompts = settings.bench.prompts ?? (paper ? [...PAPER_PROMPTS] : [settings.bench.prompt]);
      const run: MainBenchSettings = {
        main,
        model: modelFile,
        prompt: prompts[0]!,
        ...(vramBudgetGiB !== undefined ? { vramBudgetGiB } : {}),
        nPredict: settings.bench.nPredict,
        ctxSize: settings.bench.ctxSize,
        seed: settings.bench.seed,
        threads,
        temp: settings.bench.temperature,
        topP: settings.bench.top_p,
      };
      const timeoutMs = settings.bench.timeoutMinutes * 60_000;
      // GPU memory is sampled only where a GPU is listed (nvidia-smi answered for the host).
      const nvidiaSmi = machine.gpus.length > 0 ? ((await which("nvidia-smi", { nothrow: true, path: ctx.env.PATH ?? "" })) ?? undefined) : undefined;
      const logRoot = join(ctx.root, "build", "bench-logs", settings.model);
      const total = settings.bench.warmup + settings.bench.runs;
      const samples: RunSample[] = [];
      for (let i = 0; i < total; i++) {
        const warm = i < settings.bench.warmup;
        ctx.progress({ percent: Math.floor((100 * i) / total), message: warm ? `warm-up run ${i + 1}` : `run ${i + 1 - settings.bench.warmup}/${settings.bench.runs}` });
        // Measured runs take the prompt set in turn (one prompt: every run the same).
        const prompt = prompts[warm ? 0 : (i - settings.bench.warmup) % prompts.length]!;
        const sample = await runMainOnce(ctx.run, { ...run, prompt }, join(logRoot, `run-${i}`), { timeoutMs, cwd: ctx.root, env: ctx.env, ...(nvidiaSmi ? { nvidiaSmi } : {}) });
        if (!warm) samples.push(sample);
        const eval_ = sample.timings.evalTokensPerSecond;
        ctx.log(`${warm ? "warm-up" : "run"} ${i + 1}: eval ${eval_ === null ? "n/a" : eval_.toFixed(2)} tokens/s, prompt ${sample.timings.promptTokensPerSecond?.toFixed(2) ?? "n/a"} tokens/s, peak RSS ${sample.peakRssBytes ?? "?"} B (timings from ${sample.source})`);
      }

      let llamaBench: LlamaBenchRow[] | undefined;
      const llamaBenchBinary = build.binaries["llama-bench"];
      // The authors do not use llama-bench for their numbers (#121): the paper profile leaves it out.
      if (settings.bench.llamaBench && !paper && llamaBenchBinary) {
        ctx.progress({ percent: 95, message: "llama-bench -ngl 0" });
        // PWRI models need -ngl 0: with the default 99 every sparse model fails to load.
        const out = await ctx.run(
          [join(ctx.root, llamaBenchBinary), "-m", modelFile, "-ngl", "0", "-p", "16", "-n", String(settings.bench.nPredict), "-t", String(threads), "-r", String(settings.bench.runs), "-o", "json"],
          { cwd: ctx.root, captureStdout: true, timeoutMs },
        );
        llamaBench = parseLlamaBenchJson(out.stdout);
      }

      const runs = samples.map((s) => ({
        timings: s.timings,
        peakRssBytes: s.peakRssBytes ?? 0,
        cpuUserMs: s.cpuUserMs ?? 0,
        cpuSystemMs: s.cpuSystemMs ?? 0,
        ...(s.gpuMemoryBytes === undefined ? {} : { gpuMemoryBytes: s.gpuMemoryBytes }),
        ...(s.gpuLog ? { gpuLog: s.gpuLog } : {}),
        wallMs: s.wallMs,
        exitCode: s.exitCode,
      }));
      const result: BenchResultInput = {
        schemaVersion: 1,
        model: {
          name: settings.model,
          file: converted.output,
          sha256: ctx.deps.get("convert")!.outputs[converted.output]?.sha256 ?? (await sha256File(modelFile)),
          sparse: converted.gguf.magic === "PWRI",
          ...(converted.gguf.fileType === undefined || converted.gguf.fileType === null ? {} : { fileType: converted.gguf.fileType }),
        },
        engine: {
          buildDir: build.buildDir,
          backend: build.backend,
          buildNumber: build.buildInfo.number ?? 0,
          buildCommit: build.buildInfo.commit ?? build.sourceCommit.slice(0, 7),
          binarySha256: ctx.deps.get("build")!.outputs[build.binaries.main!]?.sha256 ?? (await sha256File(main)),
        },
        host: machine,
        settings: {
          threads,
          prompt: prompts[0]!,
          nPredict: settings.bench.nPredict,
          ctxSize: settings.bench.ctxSize,
          seed: settings.bench.seed,
          temp: settings.bench.temperature,
          topP: settings.bench.top_p,
          warmupRuns: settings.bench.warmup,
          runs: settings.bench.runs,
          ...(samples[0]?.timings.promptTokens ? { promptTokens: samples[0].timings.promptTokens } : {}),
          ...(vramBudgetGiB !== undefined ? { vramBudgetGiB } : {}),
          profile: settings.bench.profile,
          ...(prompts.length > 1 ? { prompts } : {}),
        },
        command: mainArgv(run, join(logRoot, "run-N")).map((a) => a.replace(ctx.root + "/", "")),
        runs,
        aggregates: buildAggregates(runs),
        ...(llamaBench ? { llamaBench } : {}),
        createdAt: new Date().toISOString(),
      };
      await atomicWriteFile(join(ctx.root, output), serializeBenchResult(result));
      const median = result.aggregates.evalTokensPerSecond?.median;
      ctx.log(`wrote ${output}: eval ${median?.toFixed(2) ?? "n/a"} tokens/s (median of ${runs.length}); ${formatArgv(result.command)}`);
      return { output, evalTokensPerSecond: median ?? null, threads, hostClass: machine.hostClass };
    },
  };
}
