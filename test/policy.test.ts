/**
 * Policies: each bad value reported at its file:line:col and key path; rendering against
 * a host (clamps, strict refusals, GPU settings on CPU builds, sparse models and -ngl);
 * the policy hash; the JSON Schemas committed match the zod schemas.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPolicy, policyHash } from "../pipeline/policy/load.js";
import { renderPolicy, type RenderOptions } from "../pipeline/policy/render.js";
import { parseNvidiaSmi, parseRocmSmi } from "../pipeline/policy/host.js";
import { schemaDocuments } from "../pipeline/policy/json-schema.js";
import type { HostProfile } from "../pipeline/policy/types.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ai-tools-policy-"));
  mkdirSync(join(dir, "models", "powerinfer", "m"), { recursive: true });
  writeFileSync(join(dir, "models", "powerinfer", "m", "model.powerinfer.gguf"), "PWRI\x03\x00\x00\x00");
  writeFileSync(join(dir, "models", "dense.gguf"), "GGUF\x03\x00\x00\x00");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = `engine: powerinfer
model_path: powerinfer/m/model.powerinfer.gguf
generation:
  temperature: 0.7
  top_p: 0.9
runtime:
  threads: 4
`;

async function problemOf(yaml: string): Promise<{ code: string; message: string; details: readonly string[] }> {
  const file = join(dir, `p-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  try {
    await loadPolicy(file);
  } catch (error) {
    const e = error as { code: string; message: string; details: readonly string[] };
    return { code: e.code, message: e.message.replace(file, "POLICY"), details: e.details.map((d) => d.replace(file, "POLICY")) };
  }
  throw new Error("the policy loaded");
}

describe("policy validation", () => {
  const bad: [string, string, string, RegExp][] = [
    ["temperature < 0", GOOD.replace("temperature: 0.7", "temperature: -0.1"), "POLICY:4:16: generation.temperature", />=\s*0|too small/i],
    ["top_p = 0", GOOD.replace("top_p: 0.9", "top_p: 0"), "POLICY:5:10: generation.top_p", /greater than 0/],
    ["top_p > 1", GOOD.replace("top_p: 0.9", "top_p: 1.5"), "POLICY:5:10: generation.top_p", /<=\s*1|too big/i],
    ["threads < 1", GOOD.replace("threads: 4", "threads: 0"), "POLICY:7:12: runtime.threads", /too small: expected number to be >=1|thread count/i],
    ["negative VRAM", GOOD + "  vram_budget_gb: -2\n", "POLICY:8:19: runtime.vram_budget_gb", /cannot be negative/],
    ["a wrong type", GOOD.replace("temperature: 0.7", "temperature: warm"), "POLICY:4:16: generation.temperature", /number/],
    ["an unknown key", GOOD.replace("top_p: 0.9", "top_pp: 0.9"), "POLICY:5:3: generation", /top_pp/],
    ["an unknown top-level key", GOOD + "gpu: true\n", "POLICY:8:1", /gpu/],
    ["a missing model_path", GOOD.replace("model_path: powerinfer/m/model.powerinfer.gguf\n", ""), "model_path", /needs model_path/],
    ["openai without its block", "engine: openai\n", "openai", /needs openai: \{ base_url, model \}/],
    ["a bad base_url", "engine: openai\nopenai:\n  base_url: ftp://x\n  model: m\n", "POLICY:3:13: openai.base_url", /http\(s\) URL/],
    ["a YAML syntax error", GOOD.replace("top_p: 0.9", "top_p: [0.9"), "POLICY:", /POLICY:\d+:\d+: .*(flow|collection|\]|YAML)/i],
    ["a list instead of a mapping", "- engine: powerinfer\n", "POLICY:1:1", /object|mapping/i],
  ];
  for (const [what, yaml, location, message] of bad) {
    it(`rejects ${what}, naming the place`, async () => {
      const problem = await problemOf(yaml);
      expect(problem.code).toMatch(/^E_CONFIG_(INVALID|SYNTAX)$/);
      const text = [problem.message, ...problem.details].join("\n");
      expect(text).toContain(location);
      expect(text).toMatch(message);
    });
  }

  it("reads a model recipe as the policy of the model it converts", async () => {
    const { policy, kind } = await loadPolicy(join(PROJECT_ROOT, "configs", "models", "powerinfer", "tiny-relu-llama.yaml"));
    expect(kind).toBe("recipe");
    expect(policy).toMatchObject({ engine: "powerinfer", model_path: "powerinfer/tiny-relu-llama/model.powerinfer.gguf", generation: { max_tokens: 16 }, audit: { model_version: "0" } });
  });

  it("hashes the policy with defaults applied and keys sorted: spelling a default out changes nothing, a value does", async () => {
    const file = (text: string) => {
      const f = join(dir, `h-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(f, text);
      return f;
    };
    const base = (await loadPolicy(file(GOOD))).policy;
    const explicit = (await loadPolicy(file(GOOD.replace("runtime:", "  top_k: 40\nruntime:")))).policy;
    const reordered = (await loadPolicy(file(GOOD.replace("  temperature: 0.7\n  top_p: 0.9\n", "  top_p: 0.9\n  temperature: 0.7\n")))).policy;
    const changed = (await loadPolicy(file(GOOD.replace("temperature: 0.7", "temperature: 0.6")))).policy;
    expect(policyHash(explicit)).toBe(policyHash(base));
    expect(policyHash(reordered)).toBe(policyHash(base));
    expect(policyHash(changed)).not.toBe(policyHash(base));
  });
});

describe("the integration blueprint's policy, as written there", () => {
  /** The blueprint's example, with only the model name (and the placeholder digest) filled in. */
  const BLUEPRINT = (digest: string) => `engine: powerinfer
model_path: models/powerinfer/m/model.powerinfer.gguf
generation: { max_tokens: 512, temperature: 0.7, top_p: 0.9 }
runtime: { threads: 12, gpu_layers: 40, vram_budget_gb: 18, batch_size: 4 }
audit: { model_version: "mixtral-47b-turbosparse-v1", source_repo: "hf://turbosparse/mixtral-47b", checksum: "sha256:${digest}" }
`;
  const DIGEST = "ab".repeat(32);
  const write = (text: string) => {
    const f = join(dir, `b-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, text);
    return f;
  };

  it("validates with every key as the blueprint spells it; values are read in one canonical form", async () => {
    const notes: string[] = [];
    const { policy } = await loadPolicy(write(BLUEPRINT(DIGEST)), { onNote: (n) => notes.push(n) });
    expect(policy).toEqual({
      engine: "powerinfer",
      model_path: "models/powerinfer/m/model.powerinfer.gguf",
      generation: { max_tokens: 512, temperature: 0.7, top_p: 0.9 },
      runtime: { threads: 12, gpu_layers: 40, vram_budget_gb: 18, batch_size: 4 },
      audit: { model_version: "mixtral-47b-turbosparse-v1", source_repo: "turbosparse/mixtral-47b", checksum: DIGEST },
    });
    expect(notes).toEqual([]);
  });

  it("the blueprint's placeholder digest is refused with what a digest looks like", async () => {
    const problem = await problemOf(BLUEPRINT("..."));
    expect(problem.code).toBe("E_CONFIG_INVALID");
    expect(problem.message).toMatch(/POLICY:5:\d+: audit.checksum: a sha256 digest: "sha256:" and 64 hex characters, or the 64 hex characters alone/);
  });

  it("the older spellings are aliases: accepted with a one-line note each, and the same policy (same hash)", async () => {
    const notes: string[] = [];
    const old = BLUEPRINT(DIGEST).replace("max_tokens", "n_predict").replace("vram_budget_gb", "vram_budget_gib").replace("hf://", "").replace("sha256:", "");
    const file = write(old);
    const aliased = await loadPolicy(file, { onNote: (n) => notes.push(n) });
    const canonical = await loadPolicy(write(BLUEPRINT(DIGEST)));
    expect(aliased.policy).toEqual(canonical.policy);
    expect(policyHash(aliased.policy)).toBe(policyHash(canonical.policy));
    expect(notes).toEqual([
      `${file}: generation.n_predict is the older spelling of generation.max_tokens: accepted (write max_tokens)`,
      `${file}: runtime.vram_budget_gib is the older spelling of runtime.vram_budget_gb: accepted (write vram_budget_gb)`,
    ]);
  });

  it("both spellings of one key at once are an error at the alias; unknown keys are offered the canonical names only", async () => {
    const both = await problemOf(GOOD.replace("top_p: 0.9", "top_p: 0.9\n  max_tokens: 8\n  n_predict: 8"));
    expect(both.message).toMatch(/POLICY:7:14: generation.n_predict: n_predict and max_tokens are two spellings of one key: keep max_tokens/);
    const unknown = await problemOf(GOOD.replace("top_p: 0.9", "max_token: 8"));
    expect(unknown.message).toMatch(/unknown key "max_token"; expected one of: temperature, top_p, top_k, repeat_penalty, max_tokens, ctx_size, seed, stop$/);
  });

  it("source_repo takes hf://org/name and org/name; hf:// must be followed by a repo id", async () => {
    for (const repo of ["hf://SparseLLM/ReluLLaMA-7B", "SparseLLM/ReluLLaMA-7B"]) {
      const { policy } = await loadPolicy(write(BLUEPRINT(DIGEST).replace("hf://turbosparse/mixtral-47b", repo)));
      expect(policy.audit?.source_repo).toBe("SparseLLM/ReluLLaMA-7B");
    }
    const bad = await problemOf(BLUEPRINT(DIGEST).replace("hf://turbosparse/mixtral-47b", "hf://not a repo"));
    expect(bad.message).toMatch(/audit.source_repo: hf:\/\/ must be followed by a Hugging Face repo id/);
  });

  it("checksum takes sha256:<hex> and bare hex, either case", async () => {
    for (const digest of [`sha256:${DIGEST}`, DIGEST, `sha256:${DIGEST.toUpperCase()}`]) {
      const { policy } = await loadPolicy(write(BLUEPRINT(DIGEST).replace(`sha256:${DIGEST}`, digest)));
      expect(policy.audit?.checksum).toBe(DIGEST);
    }
  });

  it("the JSON Schema knows both spellings, the older ones marked deprecated", async () => {
    const schema = (await schemaDocuments())["policy.schema.json"] as { properties: Record<string, { properties: Record<string, { deprecated?: boolean; description?: string }> }> };
    expect(schema.properties.generation!.properties.max_tokens!.deprecated).toBeUndefined();
    expect(schema.properties.generation!.properties.n_predict).toMatchObject({ deprecated: true, description: expect.stringContaining("max_tokens") });
    expect(schema.properties.runtime!.properties.vram_budget_gb!.deprecated).toBeUndefined();
    expect(schema.properties.runtime!.properties.vram_budget_gib).toMatchObject({ deprecated: true });
    expect(JSON.stringify(schema.properties.audit)).toContain("(sha256:)?");
  });
});

describe("rendering for a host", () => {
  const host: HostProfile = { name: "box", source: "file", physicalCores: 8, memoryBytes: 32 * 2 ** 30, gpus: [{ name: "GPU", memoryTotalBytes: 24 * 2 ** 30, memoryFreeBytes: 20 * 2 ** 30 }] };
  const cpuHost: HostProfile = { ...host, gpus: [] };
  const options = (over: Partial<RenderOptions> = {}): RenderOptions => ({ file: "policy.yaml", host, modelRoot: join(dir, "models"), gpuBuild: true, sparseModel: (p) => p.endsWith(".powerinfer.gguf"), ...over });
  const policy = (runtime: Record<string, unknown>, model = "powerinfer/m/model.powerinfer.gguf") => ({ engine: "powerinfer", model_path: model, generation: {}, runtime });

  it("resolves every value and says where it came from", () => {
    const r = renderPolicy(policy({ threads: "auto" }), options());
    expect(r.runtime.threads).toBe(8);
    expect(r.sources["runtime.threads"]).toEqual({ source: "host", note: '"auto": 8 physical cores' });
    expect(r.generation).toMatchObject({ temperature: 0.8, top_p: 0.9, max_tokens: 128 });
    expect(r.sources["generation.temperature"]).toEqual({ source: "default" });
    expect(r.modelPath).toBe(join(dir, "models", "powerinfer", "m", "model.powerinfer.gguf"));
    expect(r.warnings).toEqual([]);
  });

  it("clamps threads and VRAM to the host with a warning, or refuses with --strict", () => {
    const r = renderPolicy(policy({ threads: 64, vram_budget_gb: 40 }), options());
    expect(r.runtime).toMatchObject({ threads: 8, vram_budget_gb: 20 });
    expect(r.warnings.join("\n")).toMatch(/64 threads on a host with 8 physical cores/);
    expect(r.warnings.join("\n")).toMatch(/40 GiB exceeds the host's 20.0 GiB of free VRAM/);
    expect(r.sources["runtime.threads"]!.source).toBe("host clamp");
    expect(() => renderPolicy(policy({ threads: 64 }), options({ strict: true }))).toThrow(/does not fit host box \(--strict\)/);
  });

  it("drops GPU settings on a CPU build, with a note", () => {
    const r = renderPolicy(policy({ vram_budget_gb: 8, gpu_layers: 10 }, "dense.gguf"), options({ gpuBuild: false }));
    expect(r.runtime).toMatchObject({ vram_budget_gb: null, gpu_layers: null });
    expect(r.warnings.join("\n")).toMatch(/no GPU support: --vram-budget 8 is dropped/);
    expect(r.warnings.join("\n")).toMatch(/no GPU support: -ngl 10 is dropped/);
    expect(() => renderPolicy(policy({ vram_budget_gb: 8 }), options({ gpuBuild: false, strict: true }))).toThrow(/--strict/);
    expect(renderPolicy(policy({ vram_budget_gb: 8 }), options({ host: cpuHost })).warnings.join()).toMatch(/the host has no GPU/);
  });

  it("never gives a sparse model -ngl (its load fails with it): only the VRAM budget", () => {
    const r = renderPolicy(policy({ gpu_layers: 33, vram_budget_gb: 8 }), options());
    expect(r.runtime).toMatchObject({ gpu_layers: null, vram_budget_gb: 8 });
    expect(r.warnings.join("\n")).toMatch(/sparse PowerInfer models take vram_budget_gb instead/);
    const dense = renderPolicy(policy({ gpu_layers: 33 }, "dense.gguf"), options());
    expect(dense.runtime.gpu_layers).toBe(33);
  });

  it("resolves model_path under the model root, and says which key when the file is not there", () => {
    expect(() => renderPolicy(policy({}, "powerinfer/absent/model.powerinfer.gguf"), options())).toThrow(/policy.yaml: model_path: .*absent\/model.powerinfer.gguf does not exist: looked for .* \(model root/);
    expect(() => renderPolicy(policy({}, "powerinfer/m"), options())).toThrow(/model_path: .* is not a regular file/);
    expect(renderPolicy(policy({}), options({ model: "m" })).modelPath).toBe(join(dir, "models", "powerinfer", "m", "model.powerinfer.gguf"));
    const absolute = join(dir, "models", "dense.gguf");
    expect(renderPolicy(policy({}, absolute), options()).modelPath).toBe(absolute);
  });
});

describe("host detection parsers", () => {
  it("reads nvidia-smi and rocm-smi", () => {
    expect(parseNvidiaSmi("NVIDIA H100 80GB HBM3, 81559, 80000\n")).toEqual([{ name: "NVIDIA H100 80GB HBM3", memoryTotalBytes: 81559 * 2 ** 20, memoryFreeBytes: 80000 * 2 ** 20 }]);
    expect(parseRocmSmi(JSON.stringify({ card0: { "VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "1000" } }))).toEqual([
      { name: "AMD card0", memoryTotalBytes: 25753026560, memoryFreeBytes: 25753025560 },
    ]);
  });
});

describe("JSON Schemas", () => {
  it("the committed schemas/ files are what the zod schemas generate (run `pnpm pipeline schemas` after a schema change)", async () => {
    const documents = await schemaDocuments();
    // events.schema.json is the CLI's (test/events.test.ts).
    expect(Object.keys(documents).sort()).toEqual(readdirSync(join(PROJECT_ROOT, "schemas")).filter((f) => f.endsWith(".json") && f !== "events.schema.json").sort());
    for (const [name, document] of Object.entries(documents)) {
      expect(JSON.parse(readFileSync(join(PROJECT_ROOT, "schemas", name), "utf8")), name).toEqual(document);
    }
  });
});
