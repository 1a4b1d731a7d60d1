/**
 * The GPU split through the CLI, as a user runs it (issue "Done when": a `gguf` recipe and a
 * `convert` recipe both end signed with per-host GPU indexes; `ai-tools run` on a GPU host
 * class starts without invoking Python).
 *
 * The solver is where the real one lives: the fixture engine checkout carries the fixture
 * `powerinfer` package in powerinfer-py/ (test/fixtures/upstream/powerinfer-py), which the
 * gpu-split step puts on PYTHONPATH itself; only the torch/cvxopt stubs
 * (test/fixtures/gpu-split/stubs) come from the user's PYTHONPATH. The Hub is the local
 * imitation; the host class is a copy of configs/hosts/gpu-box.yaml in the workspace.
 *
 * 1. `convert` of a ready-made GGUF recipe with `gpuSplit: { hosts: [gpu-box] }`: the
 *    gpu-split step runs, models/powerinfer/<m>/model.gpu-box.gpuidx is a valid index, listed
 *    in SHA256SUMS and model.sig, and `verify` passes.
 * 2. The same for a converted recipe (the tiny demo checkpoint, activation/ from the GGUF repo);
 *    needs /usr/bin/python3 with numpy<2 and sentencepiece (the generator and converter probe).
 * 3. `ai-tools run --host gpu-box --binary <stand-in GPU main>` with a PATH on which there is no
 *    Python at all: exits 0, the index is placed as <model>.generated.gpuidx and --vram-budget
 *    is passed.
 */
import { spawnSync, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineEvent } from "../pipeline/core/events.js";
import { readGgufHeader } from "../pipeline/gguf/reader.js";
import { validateGpuIndex } from "../pipeline/gpu-index/validate.js";
import { seededBytes, startHubServer, type HubServer } from "./helpers/hub-server.js";
import { makeWorkspace, pathWithOnly, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";
import { makeReadyMadeGguf } from "./helpers/ready-made-gguf.js";

/** The fixture converter and the fixture solver are Python standard library only (torch/cvxopt: stubs). */
const python = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import json, struct, argparse"]).status === 0);
const SYSTEM_PYTHON = "/usr/bin/python3";
const demoReady = spawnSync(SYSTEM_PYTHON, ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const STUBS = join(PROJECT_ROOT, "test", "fixtures", "gpu-split", "stubs");
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

const GGUF_REPO = "PowerInfer/Tiny-Split-GGUF";
const MODEL_REPO = "SparseLLM/Tiny-Split-ReLU-LLaMA";
const PREDICTOR_REPO = "PowerInfer/Tiny-Split-ReLU-LLaMA-Predictor";
const LAYERS = 2;
const FFN = 256;
const HOT = 8;
const HOST = "gpu-box";

/** Layer i's activation counts in the fixture solver's format (text): neurons i*8 .. i*8+7 are hot. */
function activationText(i: number): string {
  return Array.from({ length: FFN }, (_, j) => (j >= i * HOT && j < (i + 1) * HOT ? 1000 + j : (j * 7 + i) % 50)).join(" ");
}


const GPU_SPLIT = `gpuSplit:
  hosts: [${HOST}]
`;
const GENERATION = `generation:
  max_tokens: 16
  ctx_size: 256
bench:
  prompt: Once upon a time
  nPredict: 16
  ctxSize: 256
  runs: 2
  warmup: 0
`;

const ggufRecipe = (name: string) => `name: ${name}
title: ${name}
verified: true
family: relu-llama
gguf:
  repo: ${GGUF_REPO}
  revision: main
  file: tiny.powerinfer.gguf
  type: F16
${GPU_SPLIT}${GENERATION}audit:
  model_version: "1"
  source_repo: ${GGUF_REPO}
`;

const convertRecipe = (name: string) => `name: ${name}
title: ${name}
verified: true
family: relu-llama
model:
  repo: ${MODEL_REPO}
  revision: main
predictor:
  repo: ${PREDICTOR_REPO}
  revision: main
activation:
  repo: ${GGUF_REPO}
convert:
  script: convert.py
  outtype: f16
  vocabtype: spm
${GPU_SPLIT}${GENERATION}audit:
  model_version: "0"
  source_repo: ${MODEL_REPO}
`;

function payloadOf(file: string): Record<string, any> {
  const bundle = JSON.parse(readFileSync(file, "utf8")) as { dsseEnvelope: { payload: string } };
  return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
}

/** A stand-in GPU main: names libcudart/libcublas (what a CUDA build is recognised by), records its argv, says whether the index is where the engine looks. */
function writeStandInMain(file: string, argvLog: string): void {
  writeFileSync(
    file,
    `#!/bin/sh\n# NEEDED libcudart.so.12 libcublas.so.12\nif [ "$1" = "--help" ]; then echo "usage: main -m -p -n -c -s -t -b --temp --top-p --top-k --repeat-penalty --vram-budget --log-disable"; exit 0; fi\n` +
      `printf '%s\\n' "$@" > "${argvLog}"\nm=""; while [ $# -gt 0 ]; do [ "$1" = "-m" ] && m="$2"; shift; done\n` +
      `[ -f "$m.generated.gpuidx" ] && echo "INDEX-FOUND" || echo "NO-INDEX"\n` +
      `for k in load sample "prompt eval" eval total; do echo "llama_print_timings: $k time = 1.00 ms / 4 runs ( 0.25 ms per token, 4000.00 tokens per second)" >&2; done\n`,
  );
  chmodSync(file, 0o755);
}

describe.skipIf(!python)("gpu-split through the CLI: signed per-host GPU indexes, and a run without Python (needs python3)", () => {
  let server: HubServer;
  let ws: TestWorkspace;
  let env: NodeJS.ProcessEnv;
  let scratch: string;
  const modelDir = (name: string) => join(ws.root, "models", "powerinfer", name);

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "ai-tools-gpu-split-cli-"));
    const sparse = makeReadyMadeGguf(scratch, { layers: LAYERS, ffn: FFN });
    server = await startHubServer();
    server.addRepo({
      id: GGUF_REPO,
      files: [
        { path: "tiny.powerinfer.gguf", content: sparse, lfs: true },
        ...Array.from({ length: LAYERS }, (_, i) => ({ path: `activation/activation_${i}.pt`, content: Buffer.from(activationText(i)), lfs: true })),
      ],
    });
    if (demoReady) {
      // The tiny demo checkpoint (2 layers, ffn 256: the activation files above fit it too).
      const generated = join(scratch, "generated");
      execFileSync(SYSTEM_PYTHON, [join(PROJECT_ROOT, "scripts", "make-tiny-relu-llama.py"), "--out", generated, "--seed", "0"], { stdio: "ignore" });
      const filesOf = (dir: string) => readdirSync(dir).sort().map((name) => ({ path: name, content: readFileSync(join(dir, name)) }));
      server.addRepo({ id: MODEL_REPO, files: filesOf(join(generated, "model")) });
      server.addRepo({ id: PREDICTOR_REPO, files: filesOf(join(generated, "predictor")) });
    }

    ws = makeWorkspace();
    const recipes = join(ws.root, "configs", "models", "powerinfer");
    mkdirSync(recipes, { recursive: true });
    writeFileSync(join(recipes, "split-gguf.yaml"), ggufRecipe("split-gguf"));
    writeFileSync(join(recipes, "split-relu.yaml"), convertRecipe("split-relu"));
    mkdirSync(join(ws.root, "configs", "hosts"), { recursive: true });
    copyFileSync(join(PROJECT_ROOT, "configs", "hosts", `${HOST}.yaml`), join(ws.root, "configs", "hosts", `${HOST}.yaml`));
    env = {
      HF_ENDPOINT: server.endpoint,
      HF_HUB_CACHE: join(ws.root, "hf-cache"),
      HF_TOKEN: "",
      HF_HOME: join(ws.root, "no-hf-home"),
      XDG_CACHE_HOME: join(ws.root, "cache"),
      // torch and cvxopt only: powerinfer comes from the engine checkout's powerinfer-py.
      PYTHONPATH: STUBS,
    };
  });
  afterAll(async () => {
    await server?.close();
    ws?.cleanup();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** `convert <name> --json`, then the checks every recipe kind must pass: the step ran, the index is valid, signed, and verifies. */
  async function convertAndCheck(name: string, steps: string[]): Promise<void> {
    const result = await ws.cli(["convert", name, "--json"], env);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const events = result.stdout.trim().split("\n").map((l) => JSON.parse(l) as PipelineEvent);
    const start = events[0] as Extract<PipelineEvent, { event: "graph-start" }>;
    expect(start.tasks.map((t) => t.id)).toEqual(steps);
    expect(events.some((e) => e.event === "task-end" && e.task === "gpu-split")).toBe(true);
    expect(events.at(-1)).toMatchObject({ event: "graph-end", status: "success" });

    // The solver that ran is the checkout's powerinfer-py: the user's PYTHONPATH has only the torch/cvxopt stubs.
    const record = ws.record(`gpu-split--${name}`)!;
    expect(record).not.toBeNull();
    const splitResult = record.result as { indexes: { host: string; file: string; vramCapacity: number }[]; python: { modules: Record<string, string> } };
    expect(splitResult.indexes.map((i) => [i.host, i.file])).toEqual([[HOST, `models/powerinfer/${name}/model.${HOST}.gpuidx`]]);
    expect(splitResult.python.modules).toMatchObject({ powerinfer: "fixture", torch: "fixture", cvxopt: "fixture" });
    const log = readFileSync(join(ws.root, "build", "logs", `gpu-split--${name}.log`), "utf8");
    expect(existsSync(join(ws.root, "external", "powerinfer", "powerinfer-py", "powerinfer", "solver.py"))).toBe(true);
    expect(log).toContain(`solved: [${Array(LAYERS).fill(HOT).join(", ")}]`);

    // A valid index for this model and host: layer n's hot neurons, the remainder of gpu-box's budget.
    const dir = modelDir(name);
    const indexFile = join(dir, `model.${HOST}.gpuidx`);
    expect(existsSync(indexFile)).toBe(true);
    const index = await readGgufHeader(indexFile, { powerInferIntegerTypes: true });
    expect(validateGpuIndex(index, { layers: LAYERS, ffn: FFN })).toEqual([]);
    // Both recipes' models are the demo's shape (2 layers, n_embd 64, n_ff 256, vocab 512, predictor 32, F16; as many
    // KV heads as heads): dense 2 x 53760 + 65536 + 256 = 173312, KV at -c 256 2 x 64 * 2 * 256 * 2 = 131072, so
    // gpu-box's 24 GiB leaves 25769803776 - 173312 - 131072 = 25769499392 (derivation: gpu-split-arithmetic.test.ts).
    expect(index.kv.get("split.vram_capacity")).toBe(25_769_499_392n);
    expect(splitResult.indexes[0]!.vramCapacity).toBe(25_769_499_392);

    // Signed with the model: SHA256SUMS and model.sig's resources list it; the provenance is bound to that root.
    const digest = sha256(readFileSync(indexFile));
    expect(readFileSync(join(dir, "SHA256SUMS"), "utf8")).toMatch(new RegExp(`^${digest}  \\*?model\\.${HOST}\\.gpuidx$`, "m"));
    const oms = payloadOf(join(dir, "model.sig"));
    expect(oms.predicate.resources).toContainEqual(expect.objectContaining({ name: `model.${HOST}.gpuidx`, digest }));
    const slsa = payloadOf(join(dir, "provenance.sigstore.json"));
    expect(slsa.subject[0].digest.sha256).toBe(oms.subject[0].digest.sha256);
    expect(slsa.predicate.buildDefinition.externalParameters.options).toMatchObject({ gpuSplit: { hosts: [HOST] } });
    const verified = await ws.cli(["verify", `models/powerinfer/${name}`], env);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }

  it("a gguf recipe with gpuSplit: convert runs gpu-split and ends signed with model.gpu-box.gpuidx", async () => {
    await convertAndCheck("split-gguf", ["upstream", "build", "download", "convert", "gpu-split", "bench", "sign"]);
  }, 180_000);

  it.skipIf(!demoReady)("a convert recipe with gpuSplit (tiny demo checkpoint, activation/ from the GGUF repo): ends signed with model.gpu-box.gpuidx too (needs numpy<2, sentencepiece)", async () => {
    await convertAndCheck("split-relu", ["upstream", "build", "download", "convert", "gpu-split", "bench", "sign"]);
  }, 180_000);

  it("`ai-tools run --host gpu-box` on a GPU build with no Python on PATH: places the index and passes --vram-budget", async () => {
    const name = "split-gguf";
    const dir = modelDir(name);
    const modelFile = join(dir, "model.powerinfer.gguf");
    expect(existsSync(join(dir, `model.${HOST}.gpuidx`)), "the gguf recipe's test above ran").toBe(true);
    const bin = join(scratch, "run-bin");
    const argvLog = join(scratch, "main-argv.log");
    const main = join(bin, "main");
    pathWithOnly(bin, []);
    writeStandInMain(main, argvLog);
    const path = pathWithOnly(join(scratch, "empty-path"), []);
    // Nothing named python on that PATH (the stand-in main is /bin/sh, named by absolute path).
    for (const p of ["python3", "python"]) expect(spawnSync("sh", ["-c", `command -v ${p}`], { env: { PATH: path } }).status).not.toBe(0);

    const result = await ws.cli(["run", "--config", `models/powerinfer/${name}/policy.yaml`, "--host", HOST, "--binary", main, "--prompt", "hi"], {
      ...env,
      PATH: path,
      PYTHONPATH: "",
      XDG_RUNTIME_DIR: join(scratch, "runtime"),
    });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("INDEX-FOUND");
    expect(result.stderr).toContain(`GPU split for ${HOST}`);
    expect(result.stderr.toLowerCase()).not.toContain("python");

    const argv = readFileSync(argvLog, "utf8").trim().split("\n");
    const flag = (f: string) => argv[argv.indexOf(f) + 1];
    expect(flag("-m")).toBe(modelFile);
    const placed = modelFile + ".generated.gpuidx";
    expect(readFileSync(placed).equals(readFileSync(join(dir, `model.${HOST}.gpuidx`)))).toBe(true);
    expect(argv).toContain("--vram-budget");
    // The stored 25769499392 + 173312 dense + 131072 KV = 25769803776 = 24 GiB: the smallest budget the engine accepts it under.
    expect(flag("--vram-budget")).toBe("24");

    // The placed runtime file is not part of what was signed: the directory still verifies.
    const verified = await ws.cli(["verify", `models/powerinfer/${name}`], env);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }, 60_000);
});
