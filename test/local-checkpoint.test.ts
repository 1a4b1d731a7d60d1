/**
 * A checkpoint on disk, converted without a Hub: `convert --checkpoint DIR --predictor DIR
 * --name m` (no recipe file), a recipe file with `model: { path }` given by path, and a
 * workspace recipe folder that extends the built-in catalogue. The tiny ReLU-LLaMA comes
 * from the real generator script (numpy + sentencepiece), the conversion from the fixture
 * engine's converter; the provenance must name every input file's sha256.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));

interface ResolvedDependency {
  name?: string;
  uri?: string;
  digest: Record<string, string>;
}
function provenanceOf(modelDir: string): { resolved: ResolvedDependency[]; external: Record<string, unknown> } {
  const bundle = JSON.parse(readFileSync(join(modelDir, "provenance.sigstore.json"), "utf8")) as { dsseEnvelope: { payload: string } };
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
  return { resolved: statement.predicate.buildDefinition.resolvedDependencies, external: statement.predicate.buildDefinition.externalParameters };
}

describe.skipIf(!pythonReady)("convert a checkpoint on disk (needs /usr/bin/python3 with numpy<2 and sentencepiece)", () => {
  let ws: TestWorkspace;
  /** The generator's output: ckpt/model (config.json, tokenizer.model, model.safetensors) and ckpt/predictor. */
  const ckpt = () => join(ws.root, "ckpt");
  const env = () => ({ XDG_CACHE_HOME: join(ws.root, "user-cache") });
  beforeAll(() => {
    ws = makeWorkspace();
    const made = spawnSync("/usr/bin/python3", [join(PROJECT_ROOT, "scripts", "make-tiny-relu-llama.py"), "--out", ckpt(), "--seed", "7"], { encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
  });
  afterAll(() => ws.cleanup());

  describe("--checkpoint --predictor --name, no recipe file", () => {
    const modelDir = () => join(ws.root, "models", "powerinfer", "my-model");
    const flags = () => ["convert", "--checkpoint", "ckpt/model", "--predictor", "ckpt/predictor", "--name", "my-model"];

    it("converts, validates and signs it; the provenance names every input file by its sha256", async () => {
      const result = await ws.cli(flags(), env());
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toContain("running convert my-model: upstream -> build -> checkpoint -> convert");
      expect(readFileSync(join(modelDir(), "model.powerinfer.gguf")).subarray(0, 4).toString()).toBe("PWRI");
      const policy = readFileSync(join(modelDir(), "policy.yaml"), "utf8");
      expect(policy).toContain("from --checkpoint ckpt/model");
      expect(policy).toMatch(/checksum: sha256:[0-9a-f]{64}/);

      const { resolved, external } = provenanceOf(modelDir());
      const inputs = filesUnder(ckpt()).map((file) => {
        const [role, ...rest] = relative(ckpt(), file).split("/");
        return { name: `checkpoint ${role}/${rest.join("/")}`, sha256: sha256(file) };
      });
      expect(inputs.length).toBe(6);
      for (const input of inputs) expect(resolved, input.name).toContainEqual(expect.objectContaining({ name: input.name, digest: { sha256: input.sha256 } }));
      expect(external).toMatchObject({ source: { uri: `file://${join(ckpt(), "model")}` }, predictor: { uri: `file://${join(ckpt(), "predictor")}` } });

      const verified = await ws.cli(["verify", "models/powerinfer/my-model"]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    });

    it("is fresh on the next run; the digest cache holds every input file, so nothing is read again", async () => {
      const again = await ws.cli(flags(), env());
      expect(again.code, again.stdout + again.stderr).toBe(0);
      for (const step of ["checkpoint", "convert", "sign"]) expect(again.stdout).toContain(`[${step}] fresh, skipped`);
      const cache = JSON.parse(readFileSync(join(ws.root, "user-cache", "ai-tools", "digests.json"), "utf8")) as { body: string };
      const cached = (JSON.parse(cache.body) as { entries: [string, { sha256: string }][] }).entries;
      for (const file of filesUnder(ckpt())) expect(cached, file).toContainEqual([file, expect.objectContaining({ sha256: sha256(file) })]);
    });

    it("a changed input file makes the checkpoint and the conversion stale, naming the file", async () => {
      appendFileSync(join(ckpt(), "predictor", "config.json"), "\n");
      const result = await ws.cli(flags(), env());
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toMatch(/\[checkpoint\] run: input checkpoint predictor\/config\.json changed/);
      expect(result.stdout).toMatch(/\[convert\] run: dependency checkpoint changed/);
    });

    it("refuses a checkpoint that is not ReLU, before converting anything", async () => {
      const silu = join(ws.root, "ckpt-silu");
      mkdirSync(join(silu, "model"), { recursive: true });
      const config = JSON.parse(readFileSync(join(ckpt(), "model", "config.json"), "utf8")) as Record<string, unknown>;
      writeFileSync(join(silu, "model", "config.json"), JSON.stringify({ ...config, hidden_act: "silu" }));
      const result = await ws.cli(["convert", "--checkpoint", "ckpt-silu/model", "--predictor", "ckpt/predictor", "--name", "silu-model"], env());
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(/\[checkpoint\] .*\[E_MODEL_UNSUPPORTED\]: refusing .*ckpt-silu\/model: config.json has .*silu/);
      expect(ws.record("convert--silu-model")).toBeNull();
    });

    it("bad flags are usage errors: all three are needed; a model type the engine does not convert is named", async () => {
      const missing = await ws.cli(["convert", "--checkpoint", "ckpt/model", "--name", "x"]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain("needs all three: --checkpoint <dir> --predictor <dir> --name <model>");
      const badName = await ws.cli(["convert", "--checkpoint", "ckpt/model", "--predictor", "ckpt/predictor", "--name", "My Model"]);
      expect(badName.code).toBe(2);
      expect(badName.stderr).toContain('--name "My Model" is not a valid model name');
      const mistral = join(ws.root, "ckpt-mistral");
      mkdirSync(mistral, { recursive: true });
      writeFileSync(join(mistral, "config.json"), JSON.stringify({ model_type: "mistral", hidden_act: "relu" }));
      const unsupported = await ws.cli(["convert", "--checkpoint", "ckpt-mistral", "--predictor", "ckpt/predictor", "--name", "m"]);
      expect(unsupported.code).toBe(2);
      expect(unsupported.stderr).toMatch(/\[E_MODEL_UNSUPPORTED\]: .*config.json: model_type "mistral" is not one the pinned engine converts/);
    });
  });

  describe("recipe files", () => {
    const recipe = (name: string, modelPath: string, predictorPath: string) =>
      `name: ${name}\ntitle: ${name}\nverified: false\nfamily: relu-llama\nmodel: { path: ${modelPath} }\npredictor: { path: ${predictorPath} }\nconvert: { script: convert.py, outtype: f16 }\ngeneration: { max_tokens: 8 }\naudit: { model_version: v1, source_repo: "hf://SparseLLM/ReluLLaMA-7B" }\n`;

    it("a recipe given by path converts; its folders are relative to the recipe file", async () => {
      mkdirSync(join(ws.root, "recipes"), { recursive: true });
      writeFileSync(join(ws.root, "recipes", "by-path.yaml"), recipe("by-path", "../ckpt/model", "../ckpt/predictor"));
      const result = await ws.cli(["convert", "./recipes/by-path.yaml"], env());
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toContain("running convert by-path: upstream -> build -> checkpoint -> convert");
      const policy = readFileSync(join(ws.root, "models", "powerinfer", "by-path", "policy.yaml"), "utf8");
      expect(policy).toContain("max_tokens: 8");
      expect(policy).toContain("source_repo: hf://SparseLLM/ReluLLaMA-7B");
    });

    it("a workspace's configs/models/powerinfer/ extends the built-in catalogue: its recipe of the same name wins, and `models` says so", async () => {
      const dir = join(ws.root, "configs", "models", "powerinfer");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "team-model.yaml"), recipe("team-model", "../../../ckpt/model", "../../../ckpt/predictor"));
      const tiny = readFileSync(join(PROJECT_ROOT, "configs", "models", "powerinfer", "tiny-relu-llama.yaml"), "utf8");
      writeFileSync(join(dir, "tiny-relu-llama.yaml"), tiny.replace("title: Tiny random ReLU-LLaMA (offline demo)", "title: Our own tiny"));
      try {
        const models = await ws.cli(["models"]);
        expect(models.code, models.stderr).toBe(0);
        expect(models.stdout).toMatch(/^team-model\s+local\s+\?\s+local \.\.\/\.\.\/\.\.\/ckpt\/model\s+local \.\.\/\.\.\/\.\.\/ckpt\/predictor  \(workspace recipe\)$/m);
        expect(models.stdout).toMatch(/^tiny-relu-llama\s+generate .*workspace recipe: overrides the built-in one\)$/m);
        expect(models.stdout).toMatch(/^relu-llama-2-7b\s+convert\s/m);
        const json = (await ws.cli(["models", "--json"])).stdout.trim().split("\n").map((l) => JSON.parse(l) as { name: string; origin: string; overrides?: boolean; title: string });
        expect(json.find((m) => m.name === "tiny-relu-llama")).toMatchObject({ origin: "workspace", overrides: true, title: "Our own tiny" });
        expect(json.find((m) => m.name === "relu-llama-2-7b")).toMatchObject({ origin: "built-in" });
        const converted = await ws.cli(["convert", "team-model"], env());
        expect(converted.code, converted.stdout + converted.stderr).toBe(0);
      } finally {
        spawnSync("rm", ["-rf", join(ws.root, "configs", "models")]);
      }
    });
  });
});
