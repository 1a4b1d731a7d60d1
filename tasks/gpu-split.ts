/**
 * Task `gpu-split` (only for recipes with `gpuSplit:`): the GPU split PowerInfer's GPU builds
 * would otherwise compute on first load (python3 -m powerinfer, torch + cvxopt/GLPK, a 30 s
 * ILP), precomputed here per host class, on any machine, and signed with the model.
 *
 * For each host profile the recipe names: the VRAM budget is the host's (the recipe's
 * runtime.vram_budget_gb when smaller); the bytes left for the FFN split and the solver's
 * neuron capacity are derived from the GGUF header exactly as the engine derives them
 * (pipeline/gpu-index/budget.ts); upstream's solve_gpu_split and export_split then run with
 * activation files staged so the exporter's string sort equals layer order (its
 * activation_10-before-activation_2 bug), and the result is validated with our GGUF reader
 * before it is renamed to models/powerinfer/<m>/model.<host>.gpuidx.
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { delimiter, join } from "node:path";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import { PipelineError } from "../pipeline/core/errors.js";
import { readGgufHeader } from "../pipeline/gguf/reader.js";
import { hostVramBytes, modelShape, neuronCapacity, remainingBytes } from "../pipeline/gpu-index/budget.js";
import { SOLVER_DRIVER, stageActivations } from "../pipeline/gpu-index/solver.js";
import { hostIndexName, indexVramCapacity, validateGpuIndex } from "../pipeline/gpu-index/validate.js";
import { loadHostProfile } from "../pipeline/policy/host.js";
import { choosePython, installHint, type PythonChoice, type PythonModule } from "../pipeline/python.js";
import { PACKAGE_ROOT, type EngineSettings, type Workspace } from "../pipeline/workspace.js";
import type { ConvertResult } from "./convert.js";

export interface GpuSplitTaskSettings {
  model: string;
  recipeFile: string;
  hosts: readonly string[];
  ctxSize: number;
  /** recipe.runtime.vram_budget_gb: caps every host's budget. */
  vramBudgetGib?: number;
  python?: string;
}

export interface GpuSplitResult {
  indexes: { host: string; file: string; budgetBytes: number; vramCapacity: number; capacity: number; layers: number; ffn: number }[];
  python: { path: string; version: string; modules: PythonChoice["modules"] };
  ctxSize: number;
}

export const SOLVER_MODULES: PythonModule[] = ["powerinfer", "torch", "cvxopt"];
const GiB = 2 ** 30;

/** Where a host profile is: the workspace's configs/hosts, else the toolkit's. */
export function hostProfileFile(root: string, host: string): string {
  return [join(root, "configs", "hosts", `${host}.yaml`), join(PACKAGE_ROOT, "configs", "hosts", `${host}.yaml`)].find((f) => existsSync(f)) ?? join(root, "configs", "hosts", `${host}.yaml`);
}

export function gpuSplitTask(workspace: Workspace, engine: EngineSettings, settings: GpuSplitTaskSettings): TaskDefinition<GpuSplitResult> {
  const outDir = join("models", "powerinfer", settings.model);
  const upstreamDir = join(workspace.root, engine.upstream.path);
  // The checkout's powerinfer-py and gguf-py first, then whatever PYTHONPATH the user has.
  const pythonEnv = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
    ...env,
    PYTHONPATH: [join(upstreamDir, "powerinfer-py"), join(upstreamDir, "gguf-py"), ...(env.PYTHONPATH ? [env.PYTHONPATH] : [])].join(delimiter),
  });
  let python: Promise<PythonChoice> | undefined;
  const interpreter = () =>
    (python ??= choosePython(SOLVER_MODULES, { flag: settings.python, root: workspace.root, env: pythonEnv(workspace.env) }).catch((error: unknown) => {
      if (error instanceof PipelineError && error.code === "E_PYTHON_UNSUITABLE") {
        throw new PipelineError("E_PYTHON_UNSUITABLE", `no Python can run the GPU split solver that ${settings.recipeFile} (gpuSplit) asks for: it needs powerinfer (the engine checkout's powerinfer-py), torch and cvxopt.`, {
          details: [...(error.details ?? []).slice(0, -1), installHint(["torch", "cvxopt"]), `Or remove gpuSplit from ${settings.recipeFile}: GPU builds then compute the split at first load.`],
        });
      }
      throw error;
    }));

  return {
    id: "gpu-split",
    instance: `gpu-split--${settings.model}`,
    title: `Precompute ${settings.model}'s GPU split for ${settings.hosts.join(", ")}`,
    version: 1,
    dependsOn: ["upstream", "convert"],

    async inputs() {
      const py = await interpreter();
      return {
        values: {
          [`${settings.recipeFile}#gpuSplit`]: { hosts: settings.hosts, ctxSize: settings.ctxSize },
          [`${settings.recipeFile}#runtime.vram_budget_gb`]: settings.vramBudgetGib ?? null,
        },
        env: ["PYTHONPATH"],
        files: settings.hosts.map((h) => hostProfileFile(workspace.root, h)).map((f) => (f.startsWith(workspace.root + "/") ? f.slice(workspace.root.length + 1) : f)),
        tools: { python: `Python ${py.version} ${SOLVER_MODULES.map((m) => `${m} ${py.modules[m]}`).join(" ")} (${py.path})` },
      };
    },

    outputs: () => settings.hosts.map((h) => ({ path: join(outDir, hostIndexName(h)), hash: true })),

    async run(ctx) {
      const py = await interpreter();
      const converted = ctx.deps.get("convert")?.result as ConvertResult;
      const modelFile = join(ctx.root, converted.output);
      const header = await readGgufHeader(modelFile);
      const shape = modelShape(header);
      const activation = join(ctx.root, outDir, "activation");
      if (!existsSync(activation)) {
        throw new PipelineError("E_GPU_SPLIT", `${settings.model} has no activation/ (${join(outDir, "activation")}): the GPU split needs the activation counts`, {
          details: [`Name a GGUF repo under activation: in ${settings.recipeFile}, or remove gpuSplit.`],
        });
      }
      // Scratch space under build/, never in the model directory (which is signed as it is).
      await mkdir(join(ctx.root, "build", "tmp"), { recursive: true });
      const scratch = await mkdtemp(join(ctx.root, "build", "tmp", `gpu-split-${settings.model}-`));
      const indexes: GpuSplitResult["indexes"] = [];
      try {
        const staged = await stageActivations(activation, join(scratch, "activation"), shape.layers).catch((error: Error) => {
          throw new PipelineError("E_GPU_SPLIT", `cannot stage ${settings.model}'s activation files: ${error.message}`);
        });
        for (const hostName of settings.hosts) {
          const host = await loadHostProfile(hostProfileFile(ctx.root, hostName));
          const hostVram = hostVramBytes(host);
          if (hostVram === 0) throw new PipelineError("E_GPU_SPLIT", `host profile ${hostName} has no GPU: remove it from gpuSplit.hosts in ${settings.recipeFile}`);
          const budget = Math.min(hostVram, settings.vramBudgetGib === undefined ? Infinity : Math.floor(settings.vramBudgetGib * GiB));
          const remaining = remainingBytes(header, budget, settings.ctxSize);
          const capacity = remaining > 0 ? neuronCapacity(header, remaining) : 0;
          if (remaining <= 0 || capacity === 0) {
            throw new PipelineError("E_GPU_SPLIT", `${hostName}'s ${(budget / GiB).toFixed(2)} GiB VRAM budget leaves nothing for ${settings.model}'s FFN split (dense tensors and a ${settings.ctxSize}-token KV cache take it all)`, {
              details: [`Remove ${hostName} from gpuSplit.hosts in ${settings.recipeFile}, or lower gpuSplit.ctxSize.`],
            });
          }
          const file = join(outDir, hostIndexName(hostName));
          const temp = join(scratch, hostIndexName(hostName));
          ctx.progress({ message: `${hostName}: solving (${shape.layers} layers x ${shape.ffn} neurons, capacity ${capacity}, ${remaining} bytes)` });
          const argv = [
            py.path, "-c", SOLVER_DRIVER,
            "--activation", staged.solver,
            "--export-activation", staged.exporter,
            "--layer", String(shape.layers),
            "--neuron", String(shape.ffn),
            "--capacity", String(capacity),
            "--vram-capacity", String(remaining),
            "--output", temp,
          ];
          await ctx.run(argv, { cwd: scratch, env: { ...pythonEnv(ctx.env), PYTHONUNBUFFERED: "1" }, timeoutMs: 30 * 60_000 });
          if (!existsSync(temp)) throw new PipelineError("E_GPU_SPLIT", `the solver exited 0 but wrote no index for ${hostName}`, { details: [`Its output is in ${ctx.logFile}`] });
          const index = await readGgufHeader(temp, { powerInferIntegerTypes: true });
          const problems = validateGpuIndex(index, shape);
          const stored = indexVramCapacity(index);
          if (stored !== remaining) problems.push(`split.vram_capacity is ${stored}, not the ${remaining} bytes it was solved for`);
          if (problems.length > 0) {
            throw new PipelineError("E_GPU_SPLIT", `the solver's index for ${hostName} is not one the engine accepts: ${problems[0]}`, { details: [...problems.slice(1, 6), `Solver log: ${ctx.logFile}`] });
          }
          await rename(temp, join(ctx.root, file)).catch(async () => {
            // build/ on another filesystem: copy to a temporary name beside it, then rename.
            const near = join(ctx.root, outDir, `.${hostIndexName(hostName)}.tmp-${process.pid}`);
            await copyFile(temp, near);
            await rename(near, join(ctx.root, file));
          });
          ctx.log(`${hostName}: budget ${budget} bytes, ${remaining} left for the FFN split, capacity ${capacity} neurons -> ${file}`);
          indexes.push({ host: hostName, file, budgetBytes: budget, vramCapacity: remaining, capacity, layers: shape.layers, ffn: shape.ffn });
        }
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
      // Indexes of host classes the recipe no longer names would be signed as if current: removed.
      const wanted = new Set(settings.hosts.map(hostIndexName));
      for (const name of await readdir(join(ctx.root, outDir))) {
        if (/^model\.[^/]+\.gpuidx$/.test(name) && !name.endsWith(".generated.gpuidx") && !wanted.has(name)) {
          await rm(join(ctx.root, outDir, name), { force: true });
          ctx.log(`removed ${name}: its host class is no longer in gpuSplit.hosts`);
        }
      }
      return { indexes, python: { path: py.path, version: py.version, modules: py.modules }, ctxSize: settings.ctxSize };
    },
  };
}
