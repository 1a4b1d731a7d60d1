/**
 * Model recipes (configs/models/powerinfer/*.yaml): every shipped recipe loads and names the
 * upstream README's repos; bad recipes get errors with file:line:col and the key path; a
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
} from "../pipeline/config/recipe.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

/** powerinfer-upstream.md §11: original weights + predictor, as the upstream README links them. */
const UPSTREAM_TABLE: Record<string, { model: string; predictor: string }> = {
  "relu-llama-2-7b": { model: "SparseLLM/ReluLLaMA-7B", predictor: "PowerInfer/ReluLLaMA-7B-Predictor" },
  "relu-llama-2-13b": { model: "SparseLLM/ReluLLaMA-13B", predictor: "PowerInfer/ReluLLaMA-13B-Predictor" },
  "relu-llama-2-70b": { model: "SparseLLM/ReluLLaMA-70B", predictor: "PowerInfer/ReluLLaMA-70B-Predictor" },
  "relu-falcon-40b": { model: "SparseLLM/ReluFalcon-40B", predictor: "PowerInfer/ReluFalcon-40B-Predictor" },
  "prosparse-llama-2-7b": { model: "SparseLLM/prosparse-llama-2-7b", predictor: "PowerInfer/prosparse-llama-2-7b-predictor" },
  "prosparse-llama-2-13b": { model: "SparseLLM/prosparse-llama-2-13b", predictor: "PowerInfer/prosparse-llama-2-13b-predictor" },
  "bamboo-base-7b": { model: "PowerInfer/Bamboo-base-v0_1", predictor: "PowerInfer/Bamboo-base-v0.1-predictor" },
  "bamboo-dpo-7b": { model: "PowerInfer/Bamboo-DPO-v0_1", predictor: "PowerInfer/Bamboo-DPO-v0.1-predictor" },
};
const SHIPPED = readdirSync(join(PROJECT_ROOT, RECIPE_DIR))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => f.slice(0, -".yaml".length))
  .sort();

describe("the shipped recipes", () => {
  it("are exactly the models of the upstream table", () => {
    expect(SHIPPED).toEqual(Object.keys(UPSTREAM_TABLE).sort());
  });

  it.each(SHIPPED)("%s loads, is named after its file and names the upstream repos", async (name) => {
    const loaded = await loadRecipe(PROJECT_ROOT, name);
    expect(loaded.name).toBe(name);
    expect(loaded.recipe.name).toBe(name);
    expect(loaded.file).toBe(join(PROJECT_ROOT, RECIPE_DIR, `${name}.yaml`));
    const { recipe } = loaded;
    expect(recipe.model.repo).toBe(UPSTREAM_TABLE[name]?.model);
    expect(recipe.predictor.repo).toBe(UPSTREAM_TABLE[name]?.predictor);
    expect(recipe.verified).toBe(true);
    expect(recipe.audit.source_repo).toBe(recipe.model.repo);
    // Nothing is pinned yet (no commits are known offline); releases pin a full hash.
    expect(recipe.model.revision).toBe("main");
    expect(recipe.predictor.revision).toBe("main");
    expect(isPinnedRevision(recipe.model.revision)).toBe(false);
    expect(recipe.predictor.allowPatterns).toEqual(DEFAULT_PREDICTOR_ALLOW_PATTERNS);
    expect(recipe.convert.outtype).toBe("f16");
    expect(recipe.runtime.threads).toBe("auto");
  });

  it("converts Falcon with the hf script from .bin shards, the others with convert.py from safetensors", async () => {
    for (const name of SHIPPED) {
      const { recipe } = await loadRecipe(PROJECT_ROOT, name);
      if (recipe.family === "relu-falcon") {
        expect(recipe.convert.script).toBe("convert-hf-to-powerinfer-gguf.py");
        expect(recipe.convert.vocabtype).toBeUndefined();
        expect(recipe.model.allowPatterns).toEqual(["pytorch_model*.bin", "*.json"]);
      } else {
        expect(recipe.convert.script).toBe("convert.py");
        expect(recipe.model.allowPatterns).toEqual(DEFAULT_MODEL_ALLOW_PATTERNS);
      }
      // ProSparse does not convert on the pinned engine (issue #201): the recipe says so.
      expect(recipe.convert.unsupported !== undefined).toBe(recipe.family === "prosparse-llama");
    }
  });

  it("are all listed, sorted, none broken", async () => {
    const list = await listRecipes(PROJECT_ROOT);
    expect(list.map((r) => r.name)).toEqual(SHIPPED);
    for (const entry of list) {
      expect(entry.ok, entry.ok ? "" : entry.error.message).toBe(true);
      if (!entry.ok) continue;
      expect(entry.modelRepo).toBe(UPSTREAM_TABLE[entry.name]?.model);
      expect(entry.predictorRepo).toBe(UPSTREAM_TABLE[entry.name]?.predictor);
      expect(entry.verified).toBe(true);
      expect(entry.file).toBe(join(PROJECT_ROOT, RECIPE_DIR, `${entry.name}.yaml`));
    }
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
    const text = (await validFor("bad")).replace("  revision: main\npredictor:", "  revison: main\npredictor:");
    const { error, found } = await problems(text);
    expect(error.code).toBe("E_CONFIG_INVALID");
    const line = lineOf(text, "revison:");
    expect(found).toEqual([`${line}:3 model.revison: unknown key "revison"; expected one of: repo, revision, allowPatterns, ignorePatterns, sizeBytes`]);
    expect(error.message).toBe(`${RECIPE_DIR}/bad.yaml:${line}:3: model.revison: unknown key "revison"; expected one of: repo, revision, allowPatterns, ignorePatterns, sizeBytes`);
  });

  it("refuses unknown keys at the top level too", async () => {
    const text = `${await validFor("bad")}quantise: Q4_0\n`;
    const { found } = await problems(text);
    expect(found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(text, "quantise:")}:1 quantise: unknown key "quantise"; expected one of: name, title, verified, family, notes, model, predictor, convert, generation, runtime, audit$`))]);
  });

  it("reports every wrong type at once, each at its value", async () => {
    const text = (await validFor("bad"))
      .replace("verified: true", "verified: yes")
      .replace("threads: auto", "threads: lots")
      .replace("n_predict: 128", "n_predict: 1.5")
      .replace("top_p: 0.9", "top_p: 1.5");
    const { found } = await problems(text);
    expect(found).toHaveLength(4);
    expect(found).toContainEqual(expect.stringMatching(new RegExp(`^${lineOf(text, "verified:")}:11 verified: .*boolean`)));
    expect(found).toContainEqual(`${lineOf(text, "threads:")}:12 runtime.threads: a thread count from 1 to 1024, or "auto"`);
    expect(found).toContainEqual(expect.stringMatching(new RegExp(`^${lineOf(text, "n_predict:")}:14 generation.n_predict: .*int`)));
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
    const q8 = await problems(base.replace("outtype: f16", "outtype: q8_0"));
    expect(q8.found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(base, "outtype:")}:12 convert\\.outtype: q8_0 sparse models give NaN logits`))]);
    const f32 = await problems(base.replace("outtype: f16", "outtype: f32"));
    expect(f32.found).toEqual([expect.stringMatching(/convert\.outtype: f32 sparse models give NaN logits/)]);
    const hfVocab = await problems(base.replace("script: convert.py", "script: convert-hf-to-powerinfer-gguf.py"));
    expect(hfVocab.found).toEqual([expect.stringMatching(new RegExp(`^${lineOf(base, "vocabtype:")}:14 convert\\.vocabtype: convert-hf-to-powerinfer-gguf.py has no --vocabtype`))]);
    const script = await problems(base.replace("script: convert.py", "script: convert-dense.py"));
    expect(script.found).toEqual([expect.stringMatching(/convert\.script: Invalid option/)]);
  });

  it("accepts f32 as the input of quantize, and a pinned revision", async () => {
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const text = (await validFor("ok"))
      .replace("outtype: f16", "outtype: f32\n  quantize: Q4_0")
      .replace("  repo: SparseLLM/ReluLLaMA-7B\n  revision: main", `  repo: SparseLLM/ReluLLaMA-7B\n  revision: ${commit}\n  sizeBytes: 13500000000`);
    const root = await workspace({ "ok.yaml": text });
    const { recipe } = await loadRecipe(root, "ok");
    expect(recipe.convert).toMatchObject({ outtype: "f32", quantize: "Q4_0" });
    expect(recipe.model.revision).toBe(commit);
    expect(isPinnedRevision(recipe.model.revision)).toBe(true);
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
    const error = (await loadRecipe(PROJECT_ROOT, "mistral").catch((e: unknown) => e)) as RecipeNotFoundError;
    expect(error.code).toBe("E_CONFIG_MISSING");
    expect(error.message).not.toContain("Did you mean");
    expect(error.message).toContain("Available: ");
  });

  it("refuses a name that is not a plain file name", async () => {
    const error = (await loadRecipe(PROJECT_ROOT, "../engines/powerinfer").catch((e: unknown) => e)) as RecipeNotFoundError;
    expect(error).toBeInstanceOf(RecipeNotFoundError);
    expect(error.message).toMatch(/not a valid recipe name/);
  });

  it("says so when there are no recipes at all", async () => {
    const root = await mkdtemp(join(tmpdir(), "ai-tools-recipes-"));
    try {
      const error = (await loadRecipe(root, "relu-llama-2-7b").catch((e: unknown) => e)) as RecipeNotFoundError;
      expect(error.code).toBe("E_CONFIG_MISSING");
      expect(error.available).toEqual([]);
      expect(error.message).toContain(`There are no recipes in ${RECIPE_DIR}/`);
      expect(await listRecipes(root)).toEqual([]);
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
      const good = (await readFile(join(PROJECT_ROOT, RECIPE_DIR, "bamboo-base-7b.yaml"), "utf8"))
        .replace(/^name: .*$/m, "name: good")
        .replace("  repo: PowerInfer/Bamboo-base-v0_1\n  revision: main", "  repo: PowerInfer/Bamboo-base-v0_1\n  revision: main\n  sizeBytes: 14500000000")
        .replace("  repo: PowerInfer/Bamboo-base-v0.1-predictor\n  revision: main", "  repo: PowerInfer/Bamboo-base-v0.1-predictor\n  revision: main\n  sizeBytes: 500000000");
      await writeFile(join(dir, "good.yaml"), good);
      await writeFile(join(dir, "broken.yaml"), "name: broken\nmodel: [unclosed\n");
      await writeFile(join(dir, "invalid.yaml"), good.replace("name: good", "name: invalid").replace("family: bamboo", "family: mistral"));
      await writeFile(join(dir, "README.md"), "not a recipe\n");
      const list = await listRecipes(root);
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
        modelRepo: "PowerInfer/Bamboo-base-v0_1",
        predictorRepo: "PowerInfer/Bamboo-base-v0.1-predictor",
        verified: true,
        sizeBytes: 15_000_000_000,
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
