/**
 * Recipes for what people actually run, end to end against the local Hub imitation:
 * a ready-made PowerInfer GGUF recipe downloads only its named file and activation/,
 * is validated, benchmarked (fixture engine) and signed like a converted model, with
 * no converter; and the refusals that must come before anything large is downloaded
 * (a non-ReLU checkpoint, a gated repository without a token, a model the pinned
 * engine cannot run).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineEvent } from "../pipeline/core/events.js";
import { seededBytes, startHubServer, type HubServer } from "./helpers/hub-server.js";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";
import { makeReadyMadeGguf } from "./helpers/ready-made-gguf.js";

/** The fixture converter is Python standard library only: any python3 can make the "ready-made" file. */
const python = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import json, struct"]).status === 0);
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const TOKEN = "hf_gguf_recipe_token_7";
const GGUF_REPO = "PowerInfer/Tiny-PowerInfer-GGUF";
const GATED_REPO = "PowerInfer/Tiny-Gated-PowerInfer-GGUF";
const ACTIVATION = [seededBytes("activation-0", 1024), seededBytes("activation-1", 1024)];


const GENERATION = `generation:
  max_tokens: 16
  ctx_size: 256
bench:
  nPredict: 16
  ctxSize: 256
  runs: 2
  warmup: 0
`;

function ggufRecipe(name: string, repo: string, file: string, extra = ""): string {
  return `name: ${name}
title: ${name}
verified: true
family: relu-llama
gguf:
  repo: ${repo}
  revision: main
  file: ${file}
  type: F16
${extra}${GENERATION}audit:
  model_version: "1"
  source_repo: ${repo}
`;
}

describe.skipIf(!python)("ready-made GGUF recipes and refusals, against the local Hub imitation (needs python3 for the fixture converter)", () => {
  let server: HubServer;
  let ws: TestWorkspace;
  let env: NodeJS.ProcessEnv;
  let sparse: Buffer;
  let scratch: string;
  const modelDir = (name: string) => join(ws.root, "models", "powerinfer", name);
  /** Repository files the Hub or its CDN was asked for, since the last resetLog. */
  const requestedFiles = () => [...new Set(server.requests.filter((r) => r.file !== undefined && r.method === "GET").map((r) => `${r.repo ?? "(cdn)"}:${r.file}`))].sort();

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "ai-tools-gguf-"));
    sparse = makeReadyMadeGguf(scratch);
    const dense = Buffer.concat([Buffer.from("GGUF"), sparse.subarray(4)]);
    server = await startHubServer();
    const activation = ACTIVATION.map((content, i) => ({ path: `activation/activation_${i}.pt`, content, lfs: true }));
    server.addRepo({
      id: GGUF_REPO,
      files: [
        { path: "tiny.powerinfer.gguf", content: sparse, lfs: true },
        // What must not be downloaded: the other files of the repo.
        { path: "tiny.q4.powerinfer.gguf", content: seededBytes("q4-file", 300_000), lfs: true },
        { path: "tiny.gguf", content: dense, lfs: true },
        { path: "config.json", content: '{"model_type": "llama", "hidden_act": "relu"}\n' },
        { path: "README.md", content: "# tiny\n" },
        ...activation,
      ],
    });
    server.addRepo({ id: GATED_REPO, gated: "auto", token: TOKEN, files: [{ path: "tiny.powerinfer.gguf", content: sparse, lfs: true }, ...activation] });
    // A dense (SiLU) Mistral and a predictor someone paired with it: refused on its config.json alone.
    server.addRepo({
      id: "mistralai/Tiny-Mistral",
      files: [
        { path: "config.json", content: JSON.stringify({ architectures: ["MistralForCausalLM"], model_type: "mistral", hidden_act: "silu", num_hidden_layers: 2 }) },
        { path: "model.safetensors", content: seededBytes("mistral-weights", 400_000), lfs: true },
        { path: "tokenizer.model", content: seededBytes("mistral-tok", 100), lfs: true },
      ],
    });
    server.addRepo({ id: "someone/Tiny-Mistral-Predictor", files: [{ path: "model_0.pt", content: seededBytes("mp0", 5000), lfs: true }] });
    // A ReLU checkpoint and its predictor (no activation/, as real predictor repos).
    server.addRepo({
      id: "SparseLLM/Tiny-Relu",
      files: [
        { path: "config.json", content: JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_act: "relu", num_hidden_layers: 2 }) },
        { path: "model.safetensors", content: seededBytes("relu-weights", 50_000), lfs: true },
        { path: "tokenizer.model", content: seededBytes("relu-tok", 100), lfs: true },
      ],
    });
    server.addRepo({
      id: "PowerInfer/Tiny-Relu-Predictor",
      files: [...[0, 1].map((i) => ({ path: `model_${i}.pt`, content: seededBytes(`rp${i}`, 2000), lfs: true })), { path: "config.json", content: '{"sparse_threshold": 0.0}\n' }],
    });

    ws = makeWorkspace();
    const recipes = join(ws.root, "configs", "models", "powerinfer");
    mkdirSync(recipes, { recursive: true });
    writeFileSync(join(recipes, "tiny-gguf.yaml"), ggufRecipe("tiny-gguf", GGUF_REPO, "tiny.powerinfer.gguf"));
    writeFileSync(join(recipes, "tiny-dense-gguf.yaml"), ggufRecipe("tiny-dense-gguf", GGUF_REPO, "tiny.gguf"));
    writeFileSync(join(recipes, "tiny-missing-gguf.yaml"), ggufRecipe("tiny-missing-gguf", GGUF_REPO, "tiny.f16.powerinfer.gguf"));
    writeFileSync(join(recipes, "tiny-gated-gguf.yaml"), ggufRecipe("tiny-gated-gguf", GATED_REPO, "tiny.powerinfer.gguf", "  gated: true\n"));
    writeFileSync(
      join(recipes, "tiny-mistral.yaml"),
      `name: tiny-mistral
title: A dense model
verified: false
family: relu-llama
model:
  repo: mistralai/Tiny-Mistral
predictor:
  repo: someone/Tiny-Mistral-Predictor
convert:
  script: convert.py
audit:
  model_version: "0"
  source_repo: mistralai/Tiny-Mistral
`,
    );
    const converted = (name: string, activationRepo: string) => `name: ${name}
title: ${name}
verified: true
family: relu-llama
model:
  repo: SparseLLM/Tiny-Relu
predictor:
  repo: PowerInfer/Tiny-Relu-Predictor
activation:
  repo: ${activationRepo}
convert:
  script: convert.py
audit:
  model_version: "0"
  source_repo: SparseLLM/Tiny-Relu
`;
    writeFileSync(join(recipes, "tiny-relu.yaml"), converted("tiny-relu", GGUF_REPO));
    writeFileSync(join(recipes, "tiny-relu-no-activation.yaml"), converted("tiny-relu-no-activation", "someone/Tiny-Mistral-Predictor"));
    // The shipped not-runnable recipes, as they are.
    for (const name of ["turbosparse-mixtral", "smallthinker-4ba0.6b-instruct"]) copyFileSync(join(PROJECT_ROOT, "configs", "models", "powerinfer", `${name}.yaml`), join(recipes, `${name}.yaml`));
    env = { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: join(ws.root, "hf-cache"), HF_TOKEN: "", HF_HOME: join(ws.root, "no-hf-home") };
  });
  afterAll(async () => {
    await server?.close();
    ws?.cleanup();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("convert <gguf recipe> downloads only the named file and activation/, then validates, benches and signs it with no converter", async () => {
    server.resetLog();
    const result = await ws.cli(["convert", "tiny-gguf", "--json"], env);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const events = parseEvents(result.stdout) as PipelineEvent[];
    const start = events[0] as Extract<PipelineEvent, { event: "graph-start" }>;
    expect(start.tasks.map((t) => t.id)).toEqual(["upstream", "build", "download", "convert", "bench", "sign"]);
    expect(events.at(-1)).toMatchObject({ event: "graph-end", status: "success" });

    // The Hub was asked for the named file and activation/ only (not the Q4 file, the dense one, config.json or the README).
    expect(requestedFiles().filter((f) => !f.startsWith("(cdn)"))).toEqual([
      `${GGUF_REPO}:activation/activation_0.pt`,
      `${GGUF_REPO}:activation/activation_1.pt`,
      `${GGUF_REPO}:tiny.powerinfer.gguf`,
    ]);
    expect(server.requests.filter((r) => r.host === "cdn").map((r) => r.file).sort()).toEqual(["activation/activation_0.pt", "activation/activation_1.pt", "tiny.powerinfer.gguf"]);

    // The file is the Hub's, byte for byte, placed as a hard link to the cache blob (no copy, no symbolic link).
    const gguf = join(modelDir("tiny-gguf"), "model.powerinfer.gguf");
    expect(readFileSync(gguf).equals(sparse)).toBe(true);
    expect(statSync(gguf).nlink).toBe(2);
    expect(readdirSync(join(modelDir("tiny-gguf"), "activation")).sort()).toEqual(["activation_0.pt", "activation_1.pt"]);
    expect(readFileSync(join(modelDir("tiny-gguf"), "activation", "activation_1.pt")).equals(ACTIVATION[1]!)).toBe(true);
    const policy = readFileSync(join(modelDir("tiny-gguf"), "policy.yaml"), "utf8");
    expect(policy).toContain("model_path: powerinfer/tiny-gguf/model.powerinfer.gguf");
    expect(policy).toContain(`checksum: sha256:${sha256(sparse)}`);
    expect(policy).toContain("max_tokens: 16");

    // The convert record has the converted shape: bench and sign read it as they read a conversion.
    const download = ws.record("download--tiny-gguf")!.result as { gguf: { commit: string; files: { path: string }[] }; model?: unknown };
    expect(download.model).toBeUndefined();
    expect(download.gguf.files.map((f) => f.path).sort()).toEqual(["activation/activation_0.pt", "activation/activation_1.pt", "tiny.powerinfer.gguf"]);
    const commit = server.resolveRevision(GGUF_REPO, "main");
    expect(download.gguf.commit).toBe(commit);
    const converted = ws.record("convert--tiny-gguf")!;
    expect(converted.result).toMatchObject({
      output: "models/powerinfer/tiny-gguf/model.powerinfer.gguf",
      converter: { script: "(ready-made)", argv: [] },
      python: null,
      activation: true,
      gguf: { magic: "PWRI", architecture: "llama", blockCount: 2, fileType: 1, predictorLayers: 2 },
      readyMade: { repo: GGUF_REPO, revision: "main", commit, file: "tiny.powerinfer.gguf", sha256: sha256(sparse) },
    });
    expect(converted.outputs["models/powerinfer/tiny-gguf/model.powerinfer.gguf"]!.sha256).toBe(sha256(sparse));
    const bench = JSON.parse(readFileSync(join(modelDir("tiny-gguf"), "bench.json"), "utf8")) as { model: { sha256: string; sparse: boolean } };
    expect(bench.model).toMatchObject({ sha256: sha256(sparse), sparse: true });

    // Signed; the provenance names the GGUF repo at its commit and each file's sha256, and no converter.
    const bundle = JSON.parse(readFileSync(join(modelDir("tiny-gguf"), "provenance.sigstore.json"), "utf8")) as { dsseEnvelope: { payload: string } };
    const slsa = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
    const def = slsa.predicate.buildDefinition;
    expect(def.externalParameters).toMatchObject({ recipe: "tiny-gguf", source: { uri: `${server.endpoint}/${GGUF_REPO}`, revision: "main", file: "tiny.powerinfer.gguf" }, options: { readyMade: true }, model: { quantization: "F16" } });
    expect(def.resolvedDependencies).toContainEqual({ name: "ready-made GGUF", uri: `git+${server.endpoint}/${GGUF_REPO}@${commit}`, digest: { gitCommit: commit }, annotations: { revision: "main" } });
    expect(def.resolvedDependencies).toContainEqual({ uri: `${server.endpoint}/${GGUF_REPO}/resolve/${commit}/tiny.powerinfer.gguf`, digest: { sha256: sha256(sparse) } });
    expect(def.resolvedDependencies).toContainEqual({ uri: `${server.endpoint}/${GGUF_REPO}/resolve/${commit}/activation/activation_0.pt`, digest: { sha256: sha256(ACTIVATION[0]!) } });
    expect(def.resolvedDependencies.some((d: { name?: string }) => d.name?.startsWith("converter"))).toBe(false);
    expect(def.internalParameters).toMatchObject({ converter: null, python: null, readyMade: { repo: GGUF_REPO, commit, file: "tiny.powerinfer.gguf" } });
    expect(slsa.subject).toContainEqual({ name: "model.powerinfer.gguf", digest: { sha256: sha256(sparse) } });
    const verified = await ws.cli(["verify", "models/powerinfer/tiny-gguf"], env);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });

  it("is fresh on the next run without a request, and `download` alone shares the record", async () => {
    server.resetLog();
    const again = await ws.cli(["convert", "tiny-gguf"], env);
    expect(again.code, again.stdout).toBe(0);
    for (const step of ["download", "convert", "bench", "sign"]) expect(again.stdout).toContain(`[${step}] fresh, skipped`);
    const download = await ws.cli(["download", "tiny-gguf"], env);
    expect(download.stdout).toContain("[download] fresh, skipped");
    expect(server.requests).toEqual([]);
  });

  it("`models` lists each recipe's kind", async () => {
    const result = await ws.cli(["models", "--json"], env);
    expect(result.code).toBe(0);
    const models = Object.fromEntries((parseEvents(result.stdout) as { name: string; kind: string }[]).map((m) => [m.name, m]));
    expect(models["tiny-gguf"]).toMatchObject({ kind: "gguf", modelRepo: GGUF_REPO, ggufFile: "tiny.powerinfer.gguf", ggufType: "F16" });
    expect(models["tiny-mistral"]).toMatchObject({ kind: "convert" });
    expect(models["turbosparse-mixtral"]).toMatchObject({ kind: "unsupported" });
    expect(models["tiny-gated-gguf"]).toMatchObject({ kind: "gguf", gated: true });
  });

  it("a dense GGUF named by mistake is refused by the validation, and nothing is placed", async () => {
    const result = await ws.cli(["convert", "tiny-dense-gguf"], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/\[convert\] convert failed \[E_CONVERT_OUTPUT\]: the ready-made PowerInfer\/Tiny-PowerInfer-GGUF@[0-9a-f]{12}\/tiny\.gguf is not a valid PowerInfer model for tiny-dense-gguf: magic is "GGUF", expected "PWRI"/);
    expect(existsSync(join(modelDir("tiny-dense-gguf"), "model.powerinfer.gguf"))).toBe(false);
    expect(ws.record("convert--tiny-dense-gguf")).toBeNull();
    expect(ws.record("sign--tiny-dense-gguf")).toBeNull();
  });

  it("a file name the repository does not have is refused before any download", async () => {
    server.resetLog();
    const result = await ws.cli(["download", "tiny-missing-gguf"], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('[E_HUB_ENTRY_NOT_FOUND]: PowerInfer/Tiny-PowerInfer-GGUF@main: the pattern "tiny.f16.powerinfer.gguf" names a file the repository does not have');
    expect(requestedFiles()).toEqual([]);
  });

  it("a gated repository the recipe marks gated is refused without a token before any request, and downloads with one", async () => {
    server.resetLog();
    const refused = await ws.cli(["download", "tiny-gated-gguf"], env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain(
      `[E_HUB_GATED]: ${GATED_REPO} is a gated repository (configs/models/powerinfer/tiny-gated-gguf.yaml: gguf.gated): set HF_TOKEN (or run \`hf auth login\`) with a token of an account that has accepted its conditions at ${server.endpoint}/${GATED_REPO}.`,
    );
    expect(server.requests).toEqual([]);
    const allowed = await ws.cli(["download", "tiny-gated-gguf"], { ...env, HF_TOKEN: TOKEN });
    expect(allowed.code, allowed.stdout).toBe(0);
    const record = ws.record("download--tiny-gated-gguf")!.result as { gguf: { dir: string } };
    expect(readFileSync(join(record.gguf.dir, "tiny.powerinfer.gguf")).equals(sparse)).toBe(true);
    for (const text of [allowed.stdout, allowed.stderr, JSON.stringify(record)]) expect(text).not.toContain(TOKEN);
  });

  it("a checkpoint whose config.json is not a ReLU model is refused before its weights or predictor are requested", async () => {
    server.resetLog();
    const result = await ws.cli(["convert", "tiny-mistral"], env);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      '[download] download failed [E_MODEL_UNSUPPORTED]: refusing mistralai/Tiny-Mistral@main: config.json has model_type "mistral", architectures MistralForCausalLM, hidden_act "silu": not an architecture the pinned engine supports. PowerInfer needs a ReLU-sparsified model',
    );
    expect(result.stdout).toContain("see the catalogue: `pnpm pipeline models`");
    // config.json was the only file asked for.
    expect(requestedFiles()).toEqual(["mistralai/Tiny-Mistral:config.json"]);
    expect(server.requests.some((r) => r.file === "model.safetensors" || r.file === "tokenizer.model")).toBe(false);
    expect(server.requests.some((r) => r.repo === "someone/Tiny-Mistral-Predictor" || r.path.includes("Tiny-Mistral-Predictor"))).toBe(false);
    expect(ws.record("download--tiny-mistral")).toBeNull();
  });

  it("a converted model takes only activation/ from the GGUF repo its recipe names", async () => {
    server.resetLog();
    // A cache of its own: the GGUF repo's activation/ blobs are cached already by the ready-made download above.
    const result = await ws.cli(["download", "tiny-relu"], { ...env, HF_HUB_CACHE: join(ws.root, "hf-cache-converted") });
    expect(result.code, result.stdout).toBe(0);
    const record = ws.record("download--tiny-relu")!.result as Record<string, { repo: string; dir: string; files: { path: string }[] }> & { architecture: unknown };
    expect(record.activation!.repo).toBe(GGUF_REPO);
    expect(record.activation!.files.map((f) => f.path).sort()).toEqual(["activation/activation_0.pt", "activation/activation_1.pt"]);
    expect(record.architecture).toEqual({ modelType: "llama", architectures: ["LlamaForCausalLM"], activation: "relu", activationKey: "hidden_act" });
    expect(requestedFiles().filter((f) => f.startsWith(GGUF_REPO))).toEqual([`${GGUF_REPO}:activation/activation_0.pt`, `${GGUF_REPO}:activation/activation_1.pt`]);
    expect(readFileSync(join(ws.root, "build", "logs", "download--tiny-relu.log"), "utf8")).toMatch(/SparseLLM\/Tiny-Relu@main config\.json: model_type "llama", architectures LlamaForCausalLM, hidden_act "relu": a ReLU-family model the engine supports/);

    const missing = await ws.cli(["download", "tiny-relu-no-activation"], env);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain("[E_HUB_NO_MATCH]: someone/Tiny-Mistral-Predictor@main has no activation/ folder (configs/models/powerinfer/tiny-relu-no-activation.yaml: activation)");
  });

  it("a model the pinned engine cannot run is refused by name, for download too, with no request", async () => {
    server.resetLog();
    const convert = await ws.cli(["convert", "turbosparse-mixtral"], env);
    expect(convert.code).toBe(2);
    expect(convert.stderr).toContain("error [E_MODEL_UNSUPPORTED]: turbosparse-mixtral cannot run on the pinned engine: TurboSparse-Mixtral is a mixture-of-experts model");
    expect(convert.stderr).toContain("`pnpm pipeline models` lists the models it runs");
    const download = await ws.cli(["download", "smallthinker-4ba0.6b-instruct"], env);
    expect(download.code).toBe(2);
    expect(download.stderr).toContain("smallthinker-4ba0.6b-instruct cannot run on the pinned engine: SmallThinker runs only in PowerInfer's separate smallthinker/ framework");
    expect(server.requests).toEqual([]);
  });
});
