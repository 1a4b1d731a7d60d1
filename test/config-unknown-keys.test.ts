/**
 * Strictness, section by section, through the loaders a user's file goes through: a key no section
 * knows (`bogus_key`) in the policy, a model recipe, a host profile, the trust file or the engine
 * config is an error naming file:line:col and the key path, never dropped in silence. The JSON
 * Schema snapshot (schemas/) says the same for editors; this is what the commands do.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../pipeline/config/load-yaml.js";
import { loadRecipe } from "../pipeline/config/recipe.js";
import { loadHostProfile } from "../pipeline/policy/host.js";
import { loadPolicy } from "../pipeline/policy/load.js";
import { loadTrustedKeys } from "../pipeline/signing/trust.js";
import { VerifyError } from "../pipeline/signing/errors.js";
import { loadEngineSettings, openWorkspace } from "../pipeline/workspace.js";

/** `text` with `bogus_key: 1` inserted after line `after` (1-based; 0: before the first), indented by `indent`. */
function withBogusKey(text: string, after: number, indent: number): string {
  const lines = text.split("\n");
  lines.splice(after, 0, `${" ".repeat(indent)}bogus_key: 1`);
  return lines.join("\n");
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

interface Case {
  section: string;
  after: number;
  indent: number;
  /** line:col of the inserted key, and its key path. */
  at: string;
  path: string;
  /** A key the section does know: the message lists it. */
  known: string;
}

const POLICY = `engine: powerinfer
model_path: powerinfer/tiny/model.powerinfer.gguf
generation:
  max_tokens: 16
runtime:
  threads: 2
audit:
  model_version: "1"
  source_repo: org/model
`;
const OPENAI_POLICY = `engine: openai
openai:
  base_url: http://127.0.0.1:8000/v1
  model: m
`;
const CONVERT_RECIPE = `name: bogus-check
title: Unknown keys
verified: false
family: relu-llama
model:
  repo: SparseLLM/ReluLLaMA-7B
predictor:
  repo: PowerInfer/ReluLLaMA-7B-Predictor
activation:
  repo: PowerInfer/ReluLLaMA-7B-PowerInfer-GGUF
convert:
  script: convert.py
gpuSplit:
  hosts: [gpu-box]
generation:
  max_tokens: 16
runtime:
  threads: auto
bench:
  runs: 2
audit:
  model_version: "1"
  source_repo: SparseLLM/ReluLLaMA-7B
`;
const GENERATE_RECIPE = `name: bogus-check
title: Unknown keys
verified: true
family: relu-llama
generate:
  script: scripts/make-tiny-relu-llama.py
convert:
  script: convert.py
audit:
  model_version: "0"
  source_repo: SparseLLM/ReluLLaMA-7B
`;
const GGUF_RECIPE = `name: bogus-check
title: Unknown keys
verified: true
family: relu-llama
gguf:
  repo: PowerInfer/ReluLLaMA-7B-PowerInfer-GGUF
  file: llama-7b-relu.powerinfer.gguf
  type: F16
audit:
  model_version: "1"
  source_repo: PowerInfer/ReluLLaMA-7B-PowerInfer-GGUF
`;
const HOST = `name: box
physical_cores: 8
memory_gib: 32
gpus:
  - name: RTX 4090
    memory_gib: 24
`;
const ENGINE = `upstream:
  url: https://github.com/SJTU-IPADS/PowerInfer
  commit: d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8
build:
  targets: [main]
  presets:
    cpu:
      cmakeFlags: []
`;
const TRUST = `keys:
  - id: release
    publicKeyFile: release.pub
`;

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "ai-tools-unknown-keys-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The one problem `load` reports, as a ConfigError with a single problem. */
async function configError(load: () => Promise<unknown>): Promise<ConfigError> {
  const error = await load().then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  const config = error as ConfigError;
  expect(config.code).toBe("E_CONFIG_INVALID");
  expect(config.problems).toHaveLength(1);
  return config;
}

function expectUnknownKey(error: ConfigError, file: string, c: Case): void {
  // file:line:col: key.path: unknown key "bogus_key"; expected one of: <the section's keys>
  expect(error.message).toMatch(new RegExp(`^${escape(file)}:${c.at}: ${escape(c.path)}: unknown key "bogus_key"; expected one of: (.+, )?${escape(c.known)}(, .+)?$`));
}

describe("the policy", () => {
  const cases: (Case & { base: string })[] = [
    { section: "top level", base: POLICY, after: 0, indent: 0, at: "1:1", path: "bogus_key", known: "model_path" },
    { section: "generation", base: POLICY, after: 3, indent: 2, at: "4:3", path: "generation.bogus_key", known: "max_tokens" },
    { section: "runtime", base: POLICY, after: 5, indent: 2, at: "6:3", path: "runtime.bogus_key", known: "threads" },
    { section: "audit", base: POLICY, after: 7, indent: 2, at: "8:3", path: "audit.bogus_key", known: "source_repo" },
    { section: "openai", base: OPENAI_POLICY, after: 2, indent: 2, at: "3:3", path: "openai.bogus_key", known: "base_url" },
  ];
  for (const c of cases) {
    it(`${c.section}: an unknown key is an error at ${c.at}, ${c.path}`, async () => {
      const file = join(root, `policy-${c.section.replace(" ", "-")}.yaml`);
      writeFileSync(file, withBogusKey(c.base, c.after, c.indent));
      expectUnknownKey(await configError(() => loadPolicy(file)), file, c);
    });
  }
});

describe("a model recipe", () => {
  const cases: (Case & { base: string })[] = [
    { section: "top level", base: CONVERT_RECIPE, after: 0, indent: 0, at: "1:1", path: "bogus_key", known: "family" },
    { section: "model", base: CONVERT_RECIPE, after: 5, indent: 2, at: "6:3", path: "model.bogus_key", known: "revision" },
    { section: "predictor", base: CONVERT_RECIPE, after: 7, indent: 2, at: "8:3", path: "predictor.bogus_key", known: "allowPatterns" },
    { section: "activation", base: CONVERT_RECIPE, after: 9, indent: 2, at: "10:3", path: "activation.bogus_key", known: "gated" },
    { section: "convert", base: CONVERT_RECIPE, after: 11, indent: 2, at: "12:3", path: "convert.bogus_key", known: "outtype" },
    { section: "gpuSplit", base: CONVERT_RECIPE, after: 13, indent: 2, at: "14:3", path: "gpuSplit.bogus_key", known: "ctxSize" },
    { section: "generation", base: CONVERT_RECIPE, after: 15, indent: 2, at: "16:3", path: "generation.bogus_key", known: "ctx_size" },
    { section: "runtime", base: CONVERT_RECIPE, after: 17, indent: 2, at: "18:3", path: "runtime.bogus_key", known: "threads" },
    { section: "bench", base: CONVERT_RECIPE, after: 19, indent: 2, at: "20:3", path: "bench.bogus_key", known: "warmup" },
    { section: "audit", base: CONVERT_RECIPE, after: 21, indent: 2, at: "22:3", path: "audit.bogus_key", known: "model_version" },
    { section: "generate", base: GENERATE_RECIPE, after: 5, indent: 2, at: "6:3", path: "generate.bogus_key", known: "seed" },
    { section: "gguf", base: GGUF_RECIPE, after: 5, indent: 2, at: "6:3", path: "gguf.bogus_key", known: "file" },
  ];
  for (const c of cases) {
    it(`${c.section}: an unknown key is an error at ${c.at}, ${c.path}`, async () => {
      const ws = join(root, `recipe-${c.section}`);
      mkdirSync(join(ws, "configs", "models", "powerinfer"), { recursive: true });
      writeFileSync(join(ws, "configs", "models", "powerinfer", "bogus-check.yaml"), withBogusKey(c.base, c.after, c.indent));
      expectUnknownKey(await configError(() => loadRecipe(ws, "bogus-check")), "configs/models/powerinfer/bogus-check.yaml", c);
    });
  }
});

describe("a host profile", () => {
  const cases: Case[] = [
    { section: "top level", after: 0, indent: 0, at: "1:1", path: "bogus_key", known: "physical_cores" },
    { section: "a GPU", after: 6, indent: 4, at: "7:5", path: "gpus.0.bogus_key", known: "free_memory_gib" },
  ];
  for (const c of cases) {
    it(`${c.section}: an unknown key is an error at ${c.at}, ${c.path}`, async () => {
      const file = join(root, `host-${c.section.replace(" ", "-")}.yaml`);
      writeFileSync(file, withBogusKey(HOST, c.after, c.indent));
      expectUnknownKey(await configError(() => loadHostProfile(file)), file, c);
    });
  }
});

describe("the engine config", () => {
  const cases: Case[] = [
    { section: "top level", after: 0, indent: 0, at: "1:1", path: "bogus_key", known: "upstream" },
    { section: "upstream", after: 1, indent: 2, at: "2:3", path: "upstream.bogus_key", known: "sparseCheckout" },
    { section: "build", after: 4, indent: 2, at: "5:3", path: "build.bogus_key", known: "targets" },
    { section: "a build preset", after: 7, indent: 6, at: "8:7", path: "build.presets.cpu.bogus_key", known: "cudaArchitectures" },
  ];
  for (const c of cases) {
    it(`${c.section}: an unknown key is an error at ${c.at}, ${c.path}`, async () => {
      const ws = join(root, `engine-${c.section.replace(/ /g, "-")}`);
      mkdirSync(join(ws, "configs", "engines"), { recursive: true });
      writeFileSync(join(ws, "configs", "engines", "powerinfer.yaml"), withBogusKey(ENGINE, c.after, c.indent));
      expectUnknownKey(await configError(() => loadEngineSettings(openWorkspace(ws))), "configs/engines/powerinfer.yaml", c);
    });
  }
});

describe("the trust file", () => {
  const cases: { section: string; after: number; indent: number; message: string }[] = [
    { section: "top level", after: 0, indent: 0, message: "1:1: bogus_key is not a known field (known: keys, certificateRoots)" },
    {
      section: "a key entry",
      after: 2,
      indent: 4,
      message: "3:5: keys[0].bogus_key is not a known field (known: id, publicKey, publicKeyFile, notBefore, notAfter, revoked, allowedBuilders, allowedSources)",
    },
  ];
  for (const c of cases) {
    it(`${c.section}: an unknown key is an error naming file:line:col and the key path`, async () => {
      const file = join(root, `trusted-keys-${c.section.replace(/ /g, "-")}.yaml`);
      writeFileSync(file, withBogusKey(TRUST, c.after, c.indent));
      const error = await loadTrustedKeys(file).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(VerifyError);
      expect(error).toMatchObject({ code: "E_TRUST_CONFIG", message: `${file}:${c.message}` });
    });
  }

  it("a bare list in JSON: the entry's unknown key at its line and column too", async () => {
    const file = join(root, "trusted-keys.json");
    writeFileSync(file, `[\n  {\n    "id": "release",\n    "bogus_key": 1\n  }\n]\n`);
    await expect(loadTrustedKeys(file)).rejects.toMatchObject({ code: "E_TRUST_CONFIG", message: expect.stringMatching(new RegExp(`^${escape(file)}:4:5: keys\\[0\\]\\.bogus_key is not a known field`)) });
  });
});
