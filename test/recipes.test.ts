/**
 * Model recipes (configs/models/powerinfer/*.yaml): every shipped recipe loads and names the
 * upstream README's repos (original weights + predictor, or a ready-made GGUF file), or why the
 * pinned engine cannot run it; bad recipes get errors with file:line:col and the key path; a
 * missing recipe lists the ones there are; a listing survives a broken file.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../pipeline/config/load-yaml.js";
import {
  DEFAULT_MODEL_ALLOW_PATTERNS,
  DEFAULT_PREDICTOR_ALLOW_PATTERNS,
  RECIPE_DIR,
  RecipeNotFoundError,
  isPinnedRevision,
  listRecipes,
  loadRecipe,
  rankByCloseness,
  recipeHubRepos,
  recipeKind,
} from "../pipeline/config/recipe.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

/** A recipe source that must be a Hub repo (not a local folder). */
function hub<T extends object>(source: T | undefined): Extract<T, { repo: string }> {
  expect(source !== undefined && "repo" in source, "a Hub repo source").toBe(true);
  return source as Extract<T, { repo: string }>;
}

/** powerinfer-upstream.md §11 / powerinfer-users.md §2: original weights + predictor, as the upstream README links them, and the GGUF repo whose activation/ a conversion takes. */
const UPSTREAM_TABLE: Record<string, { model: string; predictor: string; activation?: string }> = {
  "relu-llama-2-7b": { model: "SparseLLM/ReluLLaMA-7B", predictor: "PowerInfer/ReluLLaMA-7B-Predictor", activation: "PowerInfer/ReluLLaMA-7B-PowerInfer-GGUF" },
  "relu-llama-2-13b": { model: "SparseLLM/ReluLLaMA-13B", predictor: "PowerInfer/ReluLLaMA-13B-Predictor", activation: "PowerInfer/ReluLLaMA-13B-PowerInfer-GGUF" },
  "relu-llama-2-70b": { model: "SparseLLM/ReluLLaMA-70B", predictor: "PowerInfer/ReluLLaMA-70B-Predictor", activation: "PowerInfer/ReluLLaMA-70B-PowerInfer-GGUF" },
  "relu-falcon-40b": { model: "SparseLLM/ReluFalcon-40B", predictor: "PowerInfer/ReluFalcon-40B-Predictor", activation: "PowerInfer/ReluFalcon-40B-PowerInfer-GGUF" },
  "prosparse-llama-2-7b": { model: "SparseLLM/prosparse-llama-2-7b", predictor: "PowerInfer/prosparse-llama-2-7b-predictor" },
  "prosparse-llama-2-13b": { model: "SparseLLM/prosparse-llama-2-13b", predictor: "PowerInfer/prosparse-llama-2-13b-predictor" },
  "bamboo-base-7b": { model: "PowerInfer/Bamboo-base-v0_1", predictor: "PowerInfer/Bamboo-base-v0.1-predictor", activation: "PowerInfer/Bamboo-base-v0.1-gguf" },
  "bamboo-dpo-7b": { model: "PowerInfer/Bamboo-DPO-v0_1", predictor: "PowerInfer/Bamboo-DPO-v0.1-predictor", activation: "PowerInfer/Bamboo-DPO-v0.1-gguf" },
};
/** powerinfer-users.md §2, "Download PowerInfer GGUF via Hugging Face": repo, the sparse file, its type; verified false where the reference is unsure. */
const GGUF_TABLE: Record<string, { repo: string; file: string; type: "F16" | "Q4_0"; verified: boolean; gated?: true }> = {
  "relu-llama-2-7b-gguf": { repo: "PowerInfer/ReluLLaMA-7B-PowerInfer-GGUF", file: "llama-7b-relu.powerinfer.gguf", type: "F16", verified: true },
  "relu-llama-2-13b-gguf": { repo: "PowerInfer/ReluLLaMA-13B-PowerInfer-GGUF", file: "llama-13b-relu.powerinfer.gguf", type: "F16", verified: true },
  "relu-llama-2-70b-q4-gguf": { repo: "PowerInfer/ReluLLaMA-70B-PowerInfer-GGUF", file: "llama-70b-relu.q4.powerinfer.gguf", type: "Q4_0", verified: true },
  "relu-falcon-40b-q4-gguf": { repo: "PowerInfer/ReluFalcon-40B-PowerInfer-GGUF", file: "falcon-40b-relu.q4.powerinfer.gguf", type: "Q4_0", verified: false, gated: true },
  "prosparse-llama-2-7b-gguf": { repo: "PowerInfer/prosparse-llama-2-7b-gguf", file: "prosparse-llama-2-7b.gguf", type: "F16", verified: true },
  "prosparse-llama-2-7b-clip15-gguf": { repo: "PowerInfer/prosparse-llama-2-7b-gguf", file: "prosparse-llama-2-7b-clip15.gguf", type: "F16", verified: true },
  "prosparse-llama-2-13b-gguf": { repo: "PowerInfer/prosparse-llama-2-13b-gguf", file: "prosparse-llama-2-13b.gguf", type: "F16", verified: true },
  "bamboo-base-7b-gguf": { repo: "PowerInfer/Bamboo-base-v0.1-gguf", file: "bamboo-7b-v0.1.powerinfer.gguf", type: "F16", verified: true },
  "bamboo-base-7b-q4-gguf": { repo: "PowerInfer/Bamboo-base-v0.1-gguf", file: "bamboo-7b-v0.1.Q4_0.powerinfer.gguf", type: "Q4_0", verified: true },
  "bamboo-dpo-7b-gguf": { repo: "PowerInfer/Bamboo-DPO-v0.1-gguf", file: "bamboo-7b-dpo-v0.1.powerinfer.gguf", type: "F16", verified: false },
  "bamboo-dpo-7b-q4-gguf": { repo: "PowerInfer/Bamboo-DPO-v0.1-gguf", file: "bamboo-7b-dpo-v0.1.Q4_0.powerinfer.gguf", type: "Q4_0", verified: false },
};
/** Models the pinned engine cannot run sparse at all (README News), refused by name: the reason must name what is missing. */
const NOT_RUNNABLE: Record<string, { model: string; reason: RegExp }> = {
  "turbosparse-mixtral": { model: "PowerInfer/TurboSparse-Mixtral", reason: /mixture-of-experts.*no MoE support/s },
  "turbosparse-mistral-instruct": { model: "PowerInfer/TurboSparse-Mistral-Instruct", reason: /PR #212/ },
  "smallthinker-21ba3b-instruct": { model: "PowerInfer/SmallThinker-21BA3B-Instruct", reason: /smallthinker\/ framework/ },
  "smallthinker-4ba0.6b-instruct": { model: "PowerInfer/SmallThinker-4BA0.6B-Instruct", reason: /smallthinker\/ framework/ },
};
const SHIPPED = readdirSync(join(PROJECT_ROOT, RECIPE_DIR))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => f.slice(0, -".yaml".length))
  .sort();
/** The offline demo model is generated here, not downloaded: it has no upstream repos. */
const GENERATED = ["tiny-relu-llama"];
const FROM_HUB = Object.keys(UPSTREAM_TABLE).sort();
const READY_MADE = Object.keys(GGUF_TABLE).sort();

describe("the shipped recipes", () => {
  it("are exactly the models of the upstream tables (both kinds), the not-runnable ones, and the offline demo", () => {
    expect(SHIPPED).toEqual([...FROM_HUB, ...READY_MADE, ...Object.keys(NOT_RUNNABLE), ...GENERATED].sort());
  });

  it("the offline demo is generated by a script, seeded, with no Hub repositories", async () => {
    const { recipe } = await loadRecipe(PROJECT_ROOT, "tiny-relu-llama");
    expect(recipe.generate).toEqual({ script: "scripts/make-tiny-relu-llama.py", seed: 0 });
    expect(recipe.model).toBeUndefined();
    expect(recipe.predictor).toBeUndefined();
    expect(recipeKind(recipe)).toBe("generate");
  });

  it.each(FROM_HUB)("%s loads, is named after its file and names the upstream repos", async (name) => {
    const loaded = await loadRecipe(PROJECT_ROOT, name);
    expect(loaded.name).toBe(name);
    expect(loaded.recipe.name).toBe(name);
    expect(loaded.file).toBe(join(PROJECT_ROOT, RECIPE_DIR, `${name}.yaml`));
    const { recipe } = loaded;
    expect(hub(recipe.model).repo).toBe(UPSTREAM_TABLE[name]?.model);
    expect(hub(recipe.predictor).repo).toBe(UPSTREAM_TABLE[name]?.predictor);
    expect(recipe.verified).toBe(true);
    expect(recipe.audit.source_repo).toBe(hub(recipe.model).repo);
    // Nothing is pinned yet (no commits are known offline); releases pin a full hash.
    expect(hub(recipe.model).revision).toBe("main");
    expect(hub(recipe.predictor).revision).toBe("main");
    expect(isPinnedRevision(hub(recipe.model).revision)).toBe(false);
    expect(hub(recipe.predictor).allowPatterns).toEqual(DEFAULT_PREDICTOR_ALLOW_PATTERNS);
    expect(recipe.convert!.outtype).toBe("f16");
    expect(recipe.runtime.threads).toBe("auto");
    // Predictor repos have no activation/: a convertible model takes it from its GGUF repo.
    expect(recipe.activation?.repo).toBe(UPSTREAM_TABLE[name]?.activation);
    expect(recipeKind(recipe)).toBe(recipe.convert!.unsupported ? "unsupported" : "convert");
  });

  it("converts Falcon with the hf script from .bin shards, the others with convert.py from safetensors", async () => {
    for (const name of FROM_HUB) {
      const { recipe } = await loadRecipe(PROJECT_ROOT, name);
      if (recipe.family === "relu-falcon") {
        expect(recipe.convert!.script).toBe("convert-hf-to-powerinfer-gguf.py");
        expect(recipe.convert!.vocabtype).toBeUndefined();
        expect(hub(recipe.model).allowPatterns).toEqual(["pytorch_model*.bin", "*.json"]);
        // Its GGUF repo (where activation/ comes from) is gated, and its config may name no activation.
        expect(recipe.activation).toMatchObject({ gated: true });
        expect(hub(recipe.model).assumeRelu).toMatch(/ReLU/);
      } else {
        expect(recipe.convert!.script).toBe("convert.py");
        expect(hub(recipe.model).allowPatterns).toEqual(DEFAULT_MODEL_ALLOW_PATTERNS);
        expect(hub(recipe.model).assumeRelu).toBeUndefined();
      }
      // ProSparse does not convert on the pinned engine (issue #201): the recipe says so and names the ready-made one.
      expect(recipe.convert!.unsupported !== undefined).toBe(recipe.family === "prosparse-llama");
      if (recipe.convert!.unsupported) expect(recipe.convert!.unsupported).toContain(`${name}-gguf`);
    }
  });

  it.each(READY_MADE)("%s takes one named sparse file from its GGUF repo, with nothing to convert", async (name) => {
    const { recipe } = await loadRecipe(PROJECT_ROOT, name);
    const expected = GGUF_TABLE[name]!;
    expect(recipeKind(recipe)).toBe("gguf");
    expect(recipe.gguf).toMatchObject({ repo: expected.repo, file: expected.file, type: expected.type, revision: "main", gated: expected.gated ?? false });
    expect(recipe.verified).toBe(expected.verified);
    expect(recipe.model).toBeUndefined();
    expect(recipe.predictor).toBeUndefined();
    expect(recipe.convert).toBeUndefined();
    expect(recipe.audit.source_repo).toBe(expected.repo);
    expect(recipe.gguf!.sizeBytes).toBeGreaterThan(1e9);
    expect(recipe.notes).toBeDefined();
    // A Q4_0 file is named as one, and the F16 ones are not.
    expect(/q4/i.test(recipe.gguf!.file)).toBe(expected.type === "Q4_0");
  });

  it("has both kinds for the models the README lists in both tables", async () => {
    for (const base of ["relu-llama-2-7b", "relu-llama-2-13b", "bamboo-base-7b", "bamboo-dpo-7b"]) {
      const { recipe: converted } = await loadRecipe(PROJECT_ROOT, base);
      const { recipe: readyMade } = await loadRecipe(PROJECT_ROOT, `${base}-gguf`);
      expect(converted.activation!.repo).toBe(readyMade.gguf!.repo);
    }
    for (const base of ["relu-llama-2-70b", "relu-falcon-40b"]) {
      const { recipe: readyMade } = await loadRecipe(PROJECT_ROOT, `${base}-q4-gguf`);
      expect((await loadRecipe(PROJECT_ROOT, base)).recipe.activation!.repo).toBe(readyMade.gguf!.repo);
    }
  });

  it.each(Object.keys(NOT_RUNNABLE))("%s is refused by name with the reason", async (name) => {
    const { recipe } = await loadRecipe(PROJECT_ROOT, name);
    expect(recipeKind(recipe)).toBe("unsupported");
    expect(hub(recipe.model).repo).toBe(NOT_RUNNABLE[name]!.model);
    expect(recipe.unsupported).toMatch(NOT_RUNNABLE[name]!.reason);
    expect(recipe.predictor).toBeUndefined();
    expect(recipe.convert).toBeUndefined();
  });

  it("are all listed, sorted, none broken, with their kind and size", async () => {
    const list = await listRecipes(PROJECT_ROOT);
    expect(list.map((r) => r.name)).toEqual(SHIPPED);
    const kinds: Record<string, number> = {};
    for (const entry of list) {
      expect(entry.ok, entry.ok ? "" : entry.error.message).toBe(true);
      if (!entry.ok) continue;
      kinds[entry.kind] = (kinds[entry.kind] ?? 0) + 1;
      expect(entry.file).toBe(join(PROJECT_ROOT, RECIPE_DIR, `${entry.name}.yaml`));
      if (entry.name in UPSTREAM_TABLE) {
        expect(entry.modelRepo).toBe(UPSTREAM_TABLE[entry.name]?.model);
        expect(entry.predictorRepo).toBe(UPSTREAM_TABLE[entry.name]?.predictor);
        expect(entry.activationRepo).toBe(UPSTREAM_TABLE[entry.name]?.activation);
        expect(entry.verified).toBe(true);
      } else if (entry.name in GGUF_TABLE) {
        const expected = GGUF_TABLE[entry.name]!;
        expect(entry).toMatchObject({ kind: "gguf", modelRepo: expected.repo, predictorRepo: `in ${expected.file}`, ggufFile: expected.file, ggufType: expected.type, verified: expected.verified });
        expect(entry.sizeBytes).toBeGreaterThan(1e9);
      } else if (entry.name in NOT_RUNNABLE) {
        expect(entry).toMatchObject({ kind: "unsupported", modelRepo: NOT_RUNNABLE[entry.name]!.model, predictorRepo: "-" });
        expect(entry.unsupported).toMatch(NOT_RUNNABLE[entry.name]!.reason);
      }
      // Gated: the Falcon GGUF repo, directly or as the source of activation/.
      expect(entry.gated === true).toBe(entry.name.startsWith("relu-falcon-40b"));
    }
    expect(kinds).toEqual({ convert: 6, gguf: 11, generate: 1, unsupported: 6 });
  });
});

describe("recipe errors", () => {
  const roots: string[] = [];
  afterEach(async () => {
    await Promise.all(roots.splice(0).map((root) => rm(root, { recursive: true, force: true })));
  });

  async function workspace(files: Record<string, string>): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), "ai-tools-recipes-"));
    roots.push(root);
    await mkdir(join(root, RECIPE_DIR), { recursive: true });
    for (const [file, text] of Object.entries(files)) await writeFile(join(root, RECIPE_DIR, file), text);
    return root;
  }

  const validFor = async (name: string) =>
    (await readFile(join(PROJECT_ROOT, RECIPE_DIR, "relu-llama-2-7b.yaml"), "utf8")).replace(/^name: .*$/m, `name: ${name}`);

  /** The recipe's problems as "line:col path: message"; fails when it loads. */
  async function problems(text: string, name = "bad"): Promise<{ error: ConfigError; found: string[] }> {
    const root = await workspace({ [`${name}.yaml`]: text });
    const error = await loadRecipe(root, name).then(
      () => {
        throw new Error("expected the recipe to be rejected");
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    return { error: configError, found: configError.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`) };
  }

  const lineOf = (text: string, needle: string) => text.split("\n").findIndex((l) => l.includes(needle)) + 1;

  it("names the file, line, column and key path of an unknown key and lists the known ones", async () => {
    const text = (await validFor("bad")).replace("  repo: SparseLLM/ReluLLaMA-7B\n  revision: main", "  repo: SparseLLM/ReluLLaMA-7B\n  revison: main");
    const { error, found } = await problems(text);
    expect(error.code).toBe("E_CONFIG_INVALID");
    const line = lineOf(text, "revison:");
    expect(found).toEqual([`${line}:3 model.revison: unknown key "revison"; expected one of: repo, revision, allowPatterns, ignorePatterns, sizeBytes, gated, assumeRelu`]);
    expect(error.message).toBe(`${RECIPE_DIR}/bad.yaml:${line}:3: model.revison: unknown key "revison"; expected one of: repo, revision, allowPatterns, ignorePatterns, sizeBytes, gated, assumeRelu`);
  });

  it("needs either a generate block or both Hub repositories, not both", async () => {
    const valid = await validFor("bad");
    const both = `${valid}generate:\n  script: scripts/make-tiny-relu-llama.py\n`;
    expect((await problems(both)).found).toEqual([expect.stringMatching(/ generate: a generated model has no model\/predictor repositories/)]);
    const neither = valid.replace(/^predictor:\n(  .*\n)+/m, "");
    expect((await problems(neither)).found).toEqual([expect.stringMatching(/ predictor: required key is missing/)]);
  });

  it("refuses unknown keys at the top level too", async () => {
    const text = `${await validFor("bad")}quantise: Q4_0\n`;
    const { found } = await problems(text);
    expect(found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(text, "quantise:")}:1 quantise: unknown key "quantise"; expected one of: name, title, verified, family, notes, generate, model, predictor, activation, gguf, convert, unsupported, gpuSplit, generation, runtime, bench, audit$`))]);
  });

  it("reports every wrong type at once, each at its value", async () => {
    const text = (await validFor("bad"))
      .replace("verified: true", "verified: yes")
      .replace("threads: auto", "threads: lots")
      .replace("max_tokens: 128", "max_tokens: 1.5")
      .replace("top_p: 0.9", "top_p: 1.5");
    const { found } = await problems(text);
    expect(found).toHaveLength(4);
    expect(found).toContainEqual(expect.stringMatching(new RegExp(`^${lineOf(text, "verified:")}:11 verified: .*boolean`)));
    expect(found).toContainEqual(`${lineOf(text, "threads:")}:12 runtime.threads: a thread count from 1 to 1024, or "auto"`);
    expect(found).toContainEqual(expect.stringMatching(new RegExp(`^${lineOf(text, "max_tokens:")}:15 generation.max_tokens: .*int`)));
    expect(found).toContainEqual(expect.stringMatching(new RegExp(`^${lineOf(text, "top_p:")}:10 generation.top_p: .*<=1`)));
  });

  it.each([
    ["no org", "ReluLLaMA-7B", /repo id "org\/name"/],
    ["a space", "SparseLLM/Relu LLaMA", /repo id "org\/name"/],
    ["a double dash", "SparseLLM/Relu--LLaMA-7B", /may not contain "--"/],
    ["a URL", "https://huggingface.co/SparseLLM/ReluLLaMA-7B", /repo id "org\/name"/],
  ])("refuses a repo id with %s", async (_what, repo, message) => {
    const text = (await validFor("bad")).replace("  repo: SparseLLM/ReluLLaMA-7B", `  repo: "${repo}"`);
    const { found } = await problems(text);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(new RegExp(`^${lineOf(text, "  repo: \"")}:9 model\\.repo: `));
    expect(found[0]).toMatch(message);
  });

  it("wants the name key to equal the file name, and points at it", async () => {
    const text = await validFor("relu-llama-2-7b");
    const { found } = await problems(text, "my-model");
    expect(found).toEqual([`${lineOf(text, "name:")}:7 name: must equal the file name "my-model"`]);
  });

  it("points a missing required section at the document", async () => {
    const text = (await validFor("bad")).replace(/^predictor:\n(?: {2}.*\n)+/m, "");
    const { found } = await problems(text);
    expect(found).toEqual([expect.stringMatching(/^\d+:1 predictor: required key is missing/)]);
  });

  it("reports YAML syntax errors with their position", async () => {
    const { error, found } = await problems("name: bad\nmodel: [unclosed\n");
    expect(error.code).toBe("E_CONFIG_SYNTAX");
    expect(found[0]).toMatch(/^\d+:\d+ : YAML syntax error/);
  });

  it("refuses converter settings that cannot work", async () => {
    const base = await validFor("bad");
    // f32 and q8_0 are valid recipe values: the convert step refuses them with the reason
    // unless --allow-unsafe-outtype (test/convert-cli.test.ts).
    const q4 = await problems(base.replace("outtype: f16", "outtype: q4_0"));
    expect(q4.found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(base, "outtype:")}:12 convert\\.outtype: Invalid option`))]);
    const hfVocab = await problems(base.replace("script: convert.py", "script: convert-hf-to-powerinfer-gguf.py"));
    expect(hfVocab.found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(base, "vocabtype:")}:14 convert\\.vocabtype: convert-hf-to-powerinfer-gguf.py has no --vocabtype`))]);
    const script = await problems(base.replace("script: convert.py", "script: convert-dense.py"));
    expect(script.found).toEqual([expect.stringMatching(/convert\.script: Invalid option/)]);
  });

  it("accepts f32 as the input of quantize, and a pinned revision", async () => {
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const text = (await validFor("ok"))
      .replace("outtype: f16", "outtype: f32\n  quantize: Q4_0")
      .replace("  repo: SparseLLM/ReluLLaMA-7B\n  revision: main", `  repo: SparseLLM/ReluLLaMA-7B\n  revision: ${commit}`);
    const root = await workspace({ "ok.yaml": text });
    const { recipe } = await loadRecipe(root, "ok");
    expect(recipe.convert).toMatchObject({ outtype: "f32", quantize: "Q4_0" });
    expect(hub(recipe.model).revision).toBe(commit);
    expect(isPinnedRevision(hub(recipe.model).revision)).toBe(true);
  });

  it("refuses an abbreviated commit as a revision", async () => {
    const text = (await validFor("bad")).replace("  repo: SparseLLM/ReluLLaMA-7B\n  revision: main", "  repo: SparseLLM/ReluLLaMA-7B\n  revision: 0123abc");
    const { found } = await problems(text);
    expect(found).toEqual([`${lineOf(text, "revision: 0123abc")}:13 model.revision: abbreviated commit hashes are not resolved by the Hub: use the full 40-character hash`]);
  });

  it("asks to quote a revision that YAML read as a number", async () => {
    const text = (await validFor("bad")).replace("  repo: SparseLLM/ReluLLaMA-7B\n  revision: main", "  repo: SparseLLM/ReluLLaMA-7B\n  revision: 1234567");
    const { found } = await problems(text);
    expect(found).toEqual([expect.stringMatching(/^\d+:13 model\.revision: a string: quote it \(YAML reads unquoted digits as a number\)/)]);
  });

  it("refuses patterns that can never match a repo path", async () => {
    const text = (await validFor("bad")).replace("  repo: PowerInfer/ReluLLaMA-7B-Predictor", '  repo: PowerInfer/ReluLLaMA-7B-Predictor\n  allowPatterns: ["/model_*.pt"]');
    const { found } = await problems(text);
    expect(found).toEqual([expect.stringMatching(/predictor\.allowPatterns\.0: a pattern relative to the repo root/)]);
  });

  const ggufFor = async (name: string) => (await readFile(join(PROJECT_ROOT, RECIPE_DIR, "bamboo-base-7b-gguf.yaml"), "utf8")).replace(/^name: .*$/m, `name: ${name}`);

  it("a ready-made GGUF excludes model, predictor, activation, generate and convert", async () => {
    const gguf = await ggufFor("bad");
    const withModel = gguf.replace("\ngguf:\n", "\nmodel:\n  repo: PowerInfer/Bamboo-base-v0_1\ngguf:\n");
    expect((await problems(withModel)).found).toEqual([expect.stringMatching(/ model: a ready-made GGUF \(gguf\) is not converted: remove model/)]);
    const withConvert = `${gguf}convert:\n  script: convert.py\n`;
    expect((await problems(withConvert)).found).toEqual([expect.stringMatching(/^\d+:\d+ convert: a ready-made GGUF \(gguf\) is not converted: remove convert/)]);
    const withActivation = `${gguf}activation:\n  repo: PowerInfer/Bamboo-base-v0.1-gguf\n`;
    expect((await problems(withActivation)).found).toEqual([expect.stringMatching(/ activation: a ready-made GGUF/)]);
  });

  it("a ready-made GGUF names one .gguf file of a sparse type", async () => {
    const gguf = await ggufFor("bad");
    const wildcard = await problems(gguf.replace("file: bamboo-7b-v0.1.powerinfer.gguf", 'file: "*.powerinfer.gguf"'));
    expect(wildcard.found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(gguf, "  file:")}:9 gguf\\.file: one file name, without wildcards`))]);
    const notGguf = await problems(gguf.replace("file: bamboo-7b-v0.1.powerinfer.gguf", "file: model.safetensors"));
    expect(notGguf.found).toEqual([expect.stringMatching(/gguf\.file: a GGUF file name/)]);
    const escape = await problems(gguf.replace("file: bamboo-7b-v0.1.powerinfer.gguf", "file: ../x.gguf"));
    expect(escape.found).toEqual([expect.stringMatching(/gguf\.file: a path relative to the repo root/)]);
    const q8 = await problems(gguf.replace("type: F16", "type: Q8_0"));
    expect(q8.found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(gguf, "  type:")}:9 gguf\\.type: Invalid option`))]);
    const noType = await problems(gguf.replace(/^ {2}type: F16\n/m, ""));
    expect(noType.found).toEqual([expect.stringMatching(/gguf\.type: /)]);
  });

  it("a converted model needs convert; activation/ only comes with model and predictor", async () => {
    const valid = await validFor("bad");
    const noConvert = valid.replace(/^convert:\n(?: {2}.*\n)+/m, "");
    expect((await problems(noConvert)).found).toEqual([expect.stringMatching(/^\d+:1 convert: required key is missing/)]);
    const tiny = (await readFile(join(PROJECT_ROOT, RECIPE_DIR, "tiny-relu-llama.yaml"), "utf8")).replace(/^name: .*$/m, "name: bad");
    const generatedWithActivation = `${tiny}activation:\n  repo: PowerInfer/ReluLLaMA-7B-PowerInfer-GGUF\n`;
    expect((await problems(generatedWithActivation)).found).toEqual([expect.stringMatching(/ activation: activation\/ is taken for a converted model/)]);
  });

  it("an unsupported recipe needs no predictor or convert, and any recipe kind lists its Hub repos", async () => {
    const root = await workspace({
      "not-runnable.yaml": "name: not-runnable\ntitle: T\nverified: false\nfamily: turbosparse\nmodel:\n  repo: PowerInfer/TurboSparse-Mixtral\nunsupported: MoE\naudit:\n  model_version: unversioned\n  source_repo: PowerInfer/TurboSparse-Mixtral\n",
    });
    const { recipe } = await loadRecipe(root, "not-runnable");
    expect(recipeKind(recipe)).toBe("unsupported");
    expect(recipeHubRepos(recipe)).toEqual(["PowerInfer/TurboSparse-Mixtral"]);
    expect(recipeHubRepos((await loadRecipe(PROJECT_ROOT, "relu-llama-2-7b")).recipe)).toEqual(["SparseLLM/ReluLLaMA-7B", "PowerInfer/ReluLLaMA-7B-Predictor", "PowerInfer/ReluLLaMA-7B-PowerInfer-GGUF"]);
    expect(recipeHubRepos((await loadRecipe(PROJECT_ROOT, "bamboo-base-7b-gguf")).recipe)).toEqual(["PowerInfer/Bamboo-base-v0.1-gguf"]);
    expect(recipeHubRepos((await loadRecipe(PROJECT_ROOT, "tiny-relu-llama")).recipe)).toEqual([]);
  });
});

describe("a missing recipe", () => {
  it("is E_CONFIG_MISSING and lists the recipes there are, closest first", async () => {
    const error = await loadRecipe(PROJECT_ROOT, "relu-lama-2-7b").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecipeNotFoundError);
    expect(error).toBeInstanceOf(ConfigError);
    const notFound = error as RecipeNotFoundError;
    expect(notFound.code).toBe("E_CONFIG_MISSING");
    expect(notFound.recipe).toBe("relu-lama-2-7b");
    expect(notFound.available[0]).toBe("relu-llama-2-7b");
    expect([...notFound.available].sort()).toEqual(SHIPPED);
    expect(notFound.message).toContain(`unknown model recipe "relu-lama-2-7b" (${RECIPE_DIR}/relu-lama-2-7b.yaml: file not found). Did you mean "relu-llama-2-7b"? Available: relu-llama-2-7b, `);
    for (const name of SHIPPED) expect(notFound.message).toContain(name);
  });

  it("suggests nothing for a name unlike any recipe, but still lists them", async () => {
    const error = (await loadRecipe(PROJECT_ROOT, "qwen").catch((e: unknown) => e)) as RecipeNotFoundError;
    expect(error.code).toBe("E_CONFIG_MISSING");
    expect(error.message).not.toContain("Did you mean");
    expect(error.message).toContain("Available: ");
  });

  it("refuses a name that is not a plain file name", async () => {
    const error = (await loadRecipe(PROJECT_ROOT, "../engines/powerinfer").catch((e: unknown) => e)) as RecipeNotFoundError;
    expect(error).toBeInstanceOf(RecipeNotFoundError);
    expect(error.message).toMatch(/not a valid recipe name/);
  });

  it("a workspace without recipes of its own has the built-in ones; a missing name lists them all", async () => {
    const root = await mkdtemp(join(tmpdir(), "ai-tools-recipes-"));
    try {
      expect((await loadRecipe(root, "relu-llama-2-7b")).origin).toBe("built-in");
      const error = (await loadRecipe(root, "relu-lama-2-7b").catch((e: unknown) => e)) as RecipeNotFoundError;
      expect(error.code).toBe("E_CONFIG_MISSING");
      expect(error.available[0]).toBe("relu-llama-2-7b");
      expect(error.message).toContain('Did you mean "relu-llama-2-7b"?');
      const listed = await listRecipes(root);
      expect(listed.map((r) => r.name)).toEqual(readdirSync(join(PROJECT_ROOT, RECIPE_DIR)).filter((f) => f.endsWith(".yaml")).map((f) => f.slice(0, -5)).sort());
      expect(new Set(listed.map((r) => r.ok && r.origin))).toEqual(new Set(["built-in"]));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("ranks substring matches, then edit distance", () => {
    expect(rankByCloseness("bamboo", ["relu-llama-2-7b", "bamboo-dpo-7b", "bamboo-base-7b"])).toEqual(["bamboo-base-7b", "bamboo-dpo-7b", "relu-llama-2-7b"]);
    expect(rankByCloseness("relu-llama-2-13", ["relu-llama-2-70b", "relu-llama-2-13b", "bamboo-base-7b"])[0]).toBe("relu-llama-2-13b");
  });
});

describe("listRecipes", () => {
  it("lists a broken recipe with its error instead of failing", async () => {
    const root = await mkdtemp(join(tmpdir(), "ai-tools-recipes-"));
    try {
      const dir = join(root, RECIPE_DIR);
      await mkdir(dir, { recursive: true });
      // The shipped recipe states the model's size (14.5 GB); the predictor's is added here.
      const good = (await readFile(join(PROJECT_ROOT, RECIPE_DIR, "bamboo-base-7b.yaml"), "utf8"))
        .replace(/^name: .*$/m, "name: good")
        .replace("  repo: PowerInfer/Bamboo-base-v0.1-predictor\n  revision: main", "  repo: PowerInfer/Bamboo-base-v0.1-predictor\n  revision: main\n  sizeBytes: 500000000");
      await writeFile(join(dir, "good.yaml"), good);
      await writeFile(join(dir, "broken.yaml"), "name: broken\nmodel: [unclosed\n");
      await writeFile(join(dir, "invalid.yaml"), good.replace("name: good", "name: invalid").replace("family: bamboo", "family: mistral"));
      await writeFile(join(dir, "README.md"), "not a recipe\n");
      const all = await listRecipes(root);
      // The workspace's recipes extend the built-in catalogue.
      expect(all.filter((r) => r.ok && r.origin === "built-in").map((r) => r.name)).toContain("tiny-relu-llama");
      const list = all.filter((r) => r.file.startsWith(root));
      expect(list.map((r) => [r.name, r.ok])).toEqual([
        ["broken", false],
        ["good", true],
        ["invalid", false],
      ]);
      const [broken, ok, invalid] = list;
      expect(broken?.ok === false && broken.error.code).toBe("E_CONFIG_SYNTAX");
      expect(broken?.file).toBe(join(dir, "broken.yaml"));
      expect(invalid?.ok === false && invalid.error.message).toMatch(new RegExp(`^${RECIPE_DIR}/invalid.yaml:\\d+:9: family: Invalid option`));
      expect(ok).toEqual({
        ok: true,
        name: "good",
        file: join(dir, "good.yaml"),
        title: "Bamboo-base-7B v0.1",
        family: "bamboo",
        kind: "convert",
        modelRepo: "PowerInfer/Bamboo-base-v0_1",
        predictorRepo: "PowerInfer/Bamboo-base-v0.1-predictor",
        activationRepo: "PowerInfer/Bamboo-base-v0.1-gguf",
        verified: true,
        sizeBytes: 15_000_000_000,
        origin: "workspace",
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
