/**
 * GPU split precomputed offline (tasks/gpu-split.ts, pipeline/gpu-index/placement.ts): the step on
 * a 12-layer model with the fixture solver (test/fixtures/upstream/powerinfer-py, stubs in test/fixtures/gpu-split: upstream's CLI, functions,
 * file listing flaw and index format; no torch), the layer-order proof, the Python refusal,
 * signing of the indexes, and `run` placing the index for a GPU build. No network, a few seconds.
 */
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync, lstatSync, readlinkSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executeGraph } from "../pipeline/core/executor.js";
import type { Graph, TaskDefinition } from "../pipeline/core/graph.js";
import { readGgufHeader } from "../pipeline/gguf/reader.js";
import { validateGpuIndex } from "../pipeline/gpu-index/validate.js";
import { gpuSplitTask } from "../tasks/gpu-split.js";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { createPowerInferEngine } from "../engines/powerinfer.js";
import { policyForBuild } from "../pipeline/runtime/prepare.js";
import { loadHostProfile } from "../pipeline/policy/host.js";
import { renderPolicy } from "../pipeline/policy/render.js";
import type { EngineSettings, Workspace } from "../pipeline/workspace.js";
import { powerInferModelSpec, writeGguf } from "./helpers/gguf-writer.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

const LAYERS = 12;
const FFN = 256;
const HOT = 8;
const SITE = join(PROJECT_ROOT, "test", "fixtures", "upstream", "powerinfer-py");
const STUBS = join(PROJECT_ROOT, "test", "fixtures", "gpu-split", "stubs");
const MODEL = "split-demo";
const python3 = spawnSync("python3", ["-c", "print(1)"]).status === 0;
/** torch + cvxopt under an interpreter the step would pick (PATH python3 or /usr/bin/python3, e.g. Debian's python3-torch and python3-cvxopt). */
const solverPython = ["python3", "/usr/bin/python3"].some((py) => spawnSync(py, ["-c", "import torch, cvxopt, numpy; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0);
const realSolver = solverPython && existsSync(join(PROJECT_ROOT, "external", "powerinfer", "powerinfer-py", "powerinfer", "solver.py"));

/** Layer i's activation counts: neurons i*8 .. i*8+7 are the hot ones (text: the fixture solver's format). */
function activationText(i: number): string {
  return Array.from({ length: FFN }, (_, j) => (j >= i * HOT && j < (i + 1) * HOT ? 1000 + j : (j * 7 + i) % 50)).join(" ");
}

/** An I32 tensor's values from an index file. */
async function i32Tensor(file: string, name: string): Promise<number[]> {
  const header = await readGgufHeader(file, { powerInferIntegerTypes: true });
  const t = header.tensors.find((x) => x.name === name)!;
  const bytes = readFileSync(file).subarray(header.dataOffset + t.offset, header.dataOffset + t.offset + t.byteSize);
  return Array.from(new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
}

describe.skipIf(!python3)("gpu-split: precomputed GPU index per host class (needs python3)", () => {
  let root: string;
  const modelDir = () => join(root, "models", "powerinfer", MODEL);
  const modelFile = () => join(modelDir(), "model.powerinfer.gguf");
  const index = () => join(modelDir(), "model.gpu-box.gpuidx");
  const log = () => join(root, "solver-order.log");

  function graph(env: NodeJS.ProcessEnv): { graph: Graph; task: TaskDefinition } {
    const workspace = { root, stateDir: join(root, "build", "state"), logDir: join(root, "build", "logs"), env } as unknown as Workspace;
    const settings = { upstream: { path: "external/powerinfer" } } as unknown as EngineSettings;
    const task = gpuSplitTask(workspace, settings, { model: MODEL, recipeFile: "configs/models/powerinfer/split-demo.yaml", hosts: ["gpu-box"], ctxSize: 256 });
    const stub = (id: string, result: unknown, dependsOn: string[] = []): TaskDefinition => ({ id, title: id, version: 1, dependsOn, inputs: () => ({}), run: async () => result });
    return { task, graph: { name: "gpu-split test", tasks: [stub("upstream", {}), stub("convert", { output: `models/powerinfer/${MODEL}/model.powerinfer.gguf` }, ["upstream"]), task] } };
  }
  const env = (pythonPath: string) => ({ ...process.env, PYTHONPATH: pythonPath, FIXTURE_GPU_SPLIT_LOG: log(), XDG_CACHE_HOME: join(root, "cache") });

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "ai-tools-gpu-split-"));
    mkdirSync(join(modelDir(), "activation"), { recursive: true });
    writeGguf(modelFile(), powerInferModelSpec({ layers: LAYERS, ffn: FFN, hidden: 64 }));
    for (let i = 0; i < LAYERS; i++) writeFileSync(join(modelDir(), "activation", `activation_${i}.pt`), activationText(i));
  });
  afterAll(() => {
    spawnSync("chmod", ["-R", "u+w", root]);
    rmSync(root, { recursive: true, force: true });
  });

  // Where torch and cvxopt are installed the step finds them (the real-solver test below runs instead).
  it.skipIf(solverPython)("without torch/cvxopt importable, the step fails with E_PYTHON_UNSUITABLE naming gpuSplit (runs where torch and cvxopt are not importable; the real-solver test runs instead)", async () => {
    const { task } = graph(env(SITE));
    await expect(Promise.resolve(task.inputs({} as never))).rejects.toMatchObject({ code: "E_PYTHON_UNSUITABLE", message: expect.stringContaining("gpuSplit") });
  });

  it("solves per host class from the GGUF header and writes a valid index whose layer N comes from activation N", async () => {
    const e = env([SITE, STUBS].join(delimiter));
    const outcome = await executeGraph(graph(e).graph, { root, stateDir: join(root, "build", "state"), logDir: join(root, "build", "logs"), env: e, onEvent: () => undefined });
    const split = outcome.tasks.get("gpu-split")!;
    expect(split.status, JSON.stringify(split.status === "failed" ? String((split as { error: unknown }).error) : "")).toBe("ran");
    const header = await readGgufHeader(index(), { powerInferIntegerTypes: true });
    expect(validateGpuIndex(header, { layers: LAYERS, ffn: FFN })).toEqual([]);
    expect(header.magic).toBe("PWRI");
    // --vram-capacity (stored as split.vram_capacity) and --capacity, by hand (formulas: gpu-split-arithmetic.test.ts):
    // dense per layer 4 x 64*64*2 + 2 x 64*4 + 64*32*2 + 32*256*2 = 53760, x 12 = 645120, + output 65536 + output_norm 256
    // = 710912; KV at -c 256: 2 x 64 * 12 * 256 * 2 = 786432; gpu-box's 24 GiB 25769803776 - 710912 - 786432 = 25768306432.
    expect(header.kv.get("split.vram_capacity")).toBe(25_768_306_432n);
    const result = (split as { record: { result: { indexes: { capacity: number; vramCapacity: number; budgetBytes: number }[] } } }).record.result;
    // floor(25768306432 / (256*2 * 4.5 = 2304)) = 11184160; x 4 = 44736640.
    expect(result.indexes[0]).toMatchObject({ budgetBytes: 25_769_803_776, vramCapacity: 25_768_306_432, capacity: 44_736_640 });

    // Solver opened activation_0..11 by number; the exporter saw zero-padded names whose string order is layer order.
    const order = readFileSync(log(), "utf8").trim().split("\n");
    expect(order.filter((l) => l.startsWith("solver"))).toEqual(Array.from({ length: LAYERS }, (_, i) => `solver activation_${i}.pt`));
    expect(order.filter((l) => l.startsWith("export"))).toEqual(Array.from({ length: LAYERS }, (_, i) => `export activation_${String(i).padStart(2, "0")}.pt`));
    for (let n = 0; n < LAYERS; n++) {
      expect(await i32Tensor(index(), `blk.${n}.gpu_bucket`)).toEqual(Array.from({ length: HOT }, (_, j) => n * HOT + j));
      const mask = await i32Tensor(index(), `blk.${n}.gpu_idx`);
      expect(mask.reduce((a, b) => a + b, 0)).toBe(HOT);
      expect(mask[n * HOT]).toBe(1);
    }
  });

  it("control: upstream's CLI on the unstaged folder assigns layer 10's hot neurons to blk.2 (the flaw staging avoids)", async () => {
    const out = join(root, "unstaged.gpuidx");
    const run = spawnSync("python3", ["-m", "powerinfer", "--activation", join(modelDir(), "activation"), "--layer", String(LAYERS), "--neuron", String(FFN), "--capacity", "4096", "--vram-capacity", "1", "--output", out], {
      env: { ...process.env, PYTHONPATH: SITE },
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    expect(await i32Tensor(out, "blk.2.gpu_bucket")).toEqual(Array.from({ length: HOT }, (_, j) => 10 * HOT + j));
  });

  it("the host-class index is signed like any file; the runtime-written .generated.gpuidx is not", async () => {
    const dir = mkdtempSync(join(root, "sign-"));
    copyFileSync(index(), join(dir, "model.gpu-box.gpuidx"));
    writeFileSync(join(dir, "model.powerinfer.gguf"), "weights");
    writeFileSync(join(dir, "model.powerinfer.gguf.generated.gpuidx"), "runtime");
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const signed = await signModelDirectory(dir, { privateKey });
    const names = signed.resources.map((r) => r.name);
    expect(names).toContain("model.gpu-box.gpuidx");
    expect(names).not.toContain("model.powerinfer.gguf.generated.gpuidx");
  });

  describe("run on a GPU build", () => {
    let fakeMain: string;
    let argvLog: string;
    beforeAll(() => {
      // A stand-in main that a GPU build is recognised by (it names libcublas/libcudart) and that records its argv.
      argvLog = join(root, "main-argv.log");
      fakeMain = join(root, "bin", "main");
      mkdirSync(join(root, "bin"), { recursive: true });
      writeFileSync(
        fakeMain,
        `#!/bin/sh\n# NEEDED libcudart.so.12 libcublas.so.12\nif [ "$1" = "--help" ]; then echo "usage: main -m -p -n -c -s -t -b --temp --top-p --top-k --repeat-penalty --vram-budget --log-disable"; exit 0; fi\n` +
          `printf '%s\\n' "$@" > "${argvLog}"\nm=""; while [ $# -gt 0 ]; do [ "$1" = "-m" ] && m="$2"; shift; done\n` +
          `[ -f "$m.generated.gpuidx" ] && echo "INDEX-FOUND" || echo "NO-INDEX"\n` +
          `for k in load sample "prompt eval" eval total; do echo "llama_print_timings: $k time = 1.00 ms / 4 runs ( 0.25 ms per token, 4000.00 tokens per second)" >&2; done\n`,
      );
      chmodSync(fakeMain, 0o755);
    });

    async function runOnce(): Promise<{ argv: string[]; text: string; warnings: string[] }> {
      const host = await loadHostProfile(join(PROJECT_ROOT, "configs", "hosts", "gpu-box.yaml"));
      const rendered = renderPolicy(
        { engine: "powerinfer", model_path: modelFile(), generation: { ctx_size: 256, max_tokens: 4 }, runtime: { threads: 1 } },
        { file: "policy.yaml", host, modelRoot: join(root, "models"), gpuBuild: true },
      );
      const env = { ...process.env, XDG_CACHE_HOME: join(root, "cache"), XDG_RUNTIME_DIR: join(root, "runtime") };
      mkdirSync(join(root, "runtime"), { recursive: true });
      // As `ai-tools run` does: the runtime places the index for this GPU build, then the engine runs the policy it got.
      const placed = await policyForBuild(rendered, true, env);
      const result = await createPowerInferEngine({ binary: fakeMain, env }).generate("hi", placed.policy);
      return { argv: readFileSync(argvLog, "utf8").trim().split("\n"), text: result.text, warnings: [...placed.notes, ...(result.warnings ?? [])] };
    }
    const flag = (argv: string[], name: string) => argv[argv.indexOf(name) + 1];

    it("places model.<host>.gpuidx as <model>.generated.gpuidx next to the model and passes a --vram-budget the engine accepts it under", async () => {
      const { argv, text, warnings } = await runOnce();
      expect(text).toContain("INDEX-FOUND");
      expect(flag(argv, "-m")).toBe(modelFile());
      const placed = modelFile() + ".generated.gpuidx";
      expect(readFileSync(placed).equals(readFileSync(index()))).toBe(true);
      // The engine's remainder under --vram-budget must be at least the stored 25768306432: that + 710912 dense
      // + 786432 KV = 25769803776 bytes = 24 GiB exactly (already whole MiB), so the flag is 24.
      expect(flag(argv, "--vram-budget")).toBe("24");
      expect(warnings.join("\n")).toContain("GPU split for gpu-box");
      rmSync(placed);
    });

    it("an unsigned index left beside a signed model is replaced by the host's signed one, and the run says so", async () => {
      const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
      await signModelDirectory(modelDir(), { privateKey });
      const placed = modelFile() + ".generated.gpuidx";
      writeFileSync(placed, "UNSIGNED INDEX");
      const { argv, text, warnings } = await runOnce();
      expect(text).toContain("INDEX-FOUND");
      expect(flag(argv, "-m")).toBe(modelFile());
      expect(readFileSync(placed).equals(readFileSync(index()))).toBe(true);
      expect(warnings.join("\n")).toContain("replacing the unsigned model.powerinfer.gguf.generated.gpuidx that was there");
      rmSync(placed);
    });

    it("a read-only model folder: a private run folder with a link to the model and the index", async () => {
      chmodSync(modelDir(), 0o555);
      try {
        const { argv, text } = await runOnce();
        expect(text).toContain("INDEX-FOUND");
        const m = flag(argv, "-m")!;
        expect(m.startsWith(join(root, "runtime", "ai-tools"))).toBe(true);
        expect(lstatSync(m).isSymbolicLink()).toBe(true);
        expect(realpathSync(readlinkSync(m))).toBe(realpathSync(modelFile()));
        expect(readFileSync(m + ".generated.gpuidx").equals(readFileSync(index()))).toBe(true);
        expect(existsSync(modelFile() + ".generated.gpuidx")).toBe(false);
        expect(Number(flag(argv, "--vram-budget"))).toBeGreaterThan(0);
      } finally {
        chmodSync(modelDir(), 0o755);
      }
    });

    it("a CPU build does nothing with the index", async () => {
      const cpuMain = join(root, "bin", "cpu-main");
      writeFileSync(cpuMain, readFileSync(fakeMain, "utf8").replace("# NEEDED libcudart.so.12 libcublas.so.12\n", ""));
      chmodSync(cpuMain, 0o755);
      const host = await loadHostProfile(join(PROJECT_ROOT, "configs", "hosts", "gpu-box.yaml"));
      const rendered = renderPolicy({ engine: "powerinfer", model_path: modelFile(), generation: { max_tokens: 4 }, runtime: { threads: 1 } }, { file: "p.yaml", host, modelRoot: root, gpuBuild: false });
      const env = { ...process.env, XDG_CACHE_HOME: join(root, "cache") };
      const placed = await policyForBuild(rendered, false, env);
      expect(placed).toMatchObject({ policy: rendered, notes: [] });
      const result = await createPowerInferEngine({ binary: cpuMain, env }).generate("hi", placed.policy);
      expect(result.text).toContain("NO-INDEX");
      const argv = readFileSync(argvLog, "utf8").trim().split("\n");
      expect(argv).not.toContain("--vram-budget");
      expect(existsSync(modelFile() + ".generated.gpuidx")).toBe(false);
    });
  });

  describe.skipIf(!realSolver)("the real upstream solver (opt-in: python3-torch and python3-cvxopt, and the engine checkout from `pnpm pipeline engine`)", () => {
    it("solves from torch activation files and writes an index the engine accepts: layer N's GPU neurons are activation N's hottest", { timeout: 300_000 }, async () => {
      const real = mkdtempSync(join(tmpdir(), "ai-tools-real-split-"));
      try {
        mkdirSync(join(real, "external"), { recursive: true });
        symlinkSync(join(PROJECT_ROOT, "external", "powerinfer"), join(real, "external", "powerinfer"));
        const dir = join(real, "models", "powerinfer", MODEL);
        mkdirSync(join(dir, "activation"), { recursive: true });
        writeGguf(join(dir, "model.powerinfer.gguf"), powerInferModelSpec({ layers: LAYERS, ffn: FFN, hidden: 64 }));
        // Real .pt files: layer i's hot neurons are i*8 .. i*8+7 (as activationText), written by torch itself.
        const made = spawnSync(
          spawnSync("python3", ["-c", "import torch"]).status === 0 ? "python3" : "/usr/bin/python3",
          ["-c", `import torch, sys\nfor i in range(${LAYERS}):\n    t = torch.tensor([float(1000 + j) if i*${HOT} <= j < (i+1)*${HOT} else float((j*7+i) % 50) for j in range(${FFN})])\n    torch.save(t, f"${join(dir, "activation")}/activation_{i}.pt")`],
          { encoding: "utf8" },
        );
        expect(made.status, made.stderr).toBe(0);
        const workspace = { root: real, stateDir: join(real, "build", "state"), logDir: join(real, "build", "logs"), env: process.env } as unknown as Workspace;
        const settings = { upstream: { path: "external/powerinfer" } } as unknown as EngineSettings;
        const task = gpuSplitTask(workspace, settings, { model: MODEL, recipeFile: "configs/models/powerinfer/split-demo.yaml", hosts: ["gpu-box"], ctxSize: 256 });
        const stub = (id: string, result: unknown, dependsOn: string[] = []): TaskDefinition => ({ id, title: id, version: 1, dependsOn, inputs: () => ({}), run: async () => result });
        const g: Graph = { name: "real split", tasks: [stub("upstream", {}), stub("convert", { output: `models/powerinfer/${MODEL}/model.powerinfer.gguf` }, ["upstream"]), task] };
        const outcome = await executeGraph(g, { root: real, stateDir: join(real, "build", "state"), logDir: join(real, "build", "logs"), env: process.env, onEvent: () => undefined });
        const split = outcome.tasks.get("gpu-split")!;
        expect(split.status, split.status === "failed" ? String((split as { error: unknown }).error) : "").toBe("ran");
        const file = join(dir, "model.gpu-box.gpuidx");
        const header = await readGgufHeader(file, { powerInferIntegerTypes: true });
        expect(validateGpuIndex(header, { layers: LAYERS, ffn: FFN })).toEqual([]);
        for (let n = 0; n < LAYERS; n++) {
          const bucket = await i32Tensor(file, `blk.${n}.gpu_bucket`);
          // The budget fits every neuron of this tiny model: each layer's hottest 8 are among its GPU neurons.
          for (let j = 0; j < HOT; j++) expect(bucket, `layer ${n}`).toContain(n * HOT + j);
        }
      } finally {
        rmSync(real, { recursive: true, force: true });
      }
    });
  });
});
