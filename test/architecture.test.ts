/**
 * The architecture allow-list the download applies to a checkpoint's config.json before
 * anything large is requested (pipeline/config/architecture.ts): pure, so every case is a
 * config object.
 */
import { describe, expect, it } from "vitest";
import { checkReluCheckpoint, describeCheckpoint } from "../pipeline/config/architecture.js";

const check = (config: Record<string, unknown>, assumeRelu?: string) => checkReluCheckpoint(describeCheckpoint(config), { assumeRelu });

describe("the ReLU allow-list", () => {
  it.each([
    ["ReLU-LLaMA", { model_type: "llama", architectures: ["LlamaForCausalLM"], hidden_act: "relu" }, "llama"],
    ["ProSparse (FATReLU)", { model_type: "llama", architectures: ["SparseLlamaForCausalLM"], hidden_act: "fatrelu" }, "llama"],
    ["Bamboo", { model_type: "bamboo", hidden_act: "relu" }, "bamboo"],
    ["a Falcon that names ReLU", { model_type: "falcon", activation: "relu" }, "falcon"],
    ["OPT (ReLU by default)", { model_type: "opt", architectures: ["OPTForCausalLM"] }, "opt"],
    ["OPT that says so", { model_type: "opt", activation_function: "relu" }, "opt"],
    ["squared ReLU", { model_type: "llama", hidden_act: "relu2" }, "llama"],
  ])("accepts %s", (_what, config, architecture) => {
    expect(check(config)).toMatchObject({ ok: true, architecture });
  });

  it.each([
    ["a dense LLaMA", { model_type: "llama", hidden_act: "silu" }, /hidden_act "silu": not a ReLU-family activation/],
    ["a LLaMA config naming no activation (transformers: SiLU)", { model_type: "llama" }, /transformers would use silu, not ReLU/],
    ["Mistral", { model_type: "mistral", architectures: ["MistralForCausalLM"], hidden_act: "silu" }, /model_type "mistral", architectures MistralForCausalLM, hidden_act "silu": not an architecture the pinned engine supports/],
    ["Qwen2 even with ReLU", { model_type: "qwen2", hidden_act: "relu" }, /not an architecture the pinned engine supports/],
    ["TurboSparse-Mixtral", { model_type: "turbosparsemixtral" }, /not an architecture/],
    ["a config without model_type", {}, /model_type missing/],
    ["leaky ReLU (not sparse)", { model_type: "llama", hidden_act: "leaky_relu" }, /not a ReLU-family activation/],
    ["a Falcon naming no activation (transformers: GELU)", { model_type: "RefinedWeb" }, /transformers would use gelu.*model\.assumeRelu/],
    ["Bamboo naming no activation", { model_type: "bamboo" }, /the activation is unknown/],
  ])("refuses %s, pointing at the catalogue", (_what, config, reason) => {
    const result = check(config);
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(reason);
    expect(result.reason).toContain("PowerInfer needs a ReLU-sparsified model");
    expect(result.reason).toContain("`pnpm pipeline models`");
  });

  it("lets a recipe vouch for ReLU only where the config names no activation", () => {
    expect(check({ model_type: "RefinedWeb" }, "SparseLLM's ReLU fine-tune")).toMatchObject({ ok: true, architecture: "falcon" });
    expect(check({ model_type: "falcon", activation: "gelu" }, "SparseLLM's ReLU fine-tune").ok).toBe(false);
    expect(check({ model_type: "mistral" }, "trust me").ok).toBe(false);
  });

  it("reads only string fields of an untrusted config", () => {
    expect(describeCheckpoint({ model_type: 7, architectures: ["A", 3], hidden_act: null, activation: "relu" })).toEqual({ modelType: null, architectures: ["A"], activation: "relu", activationKey: "activation" });
    expect(describeCheckpoint(null)).toEqual({ modelType: null, architectures: [], activation: null, activationKey: null });
    expect(describeCheckpoint([1, 2])).toEqual({ modelType: null, architectures: [], activation: null, activationKey: null });
  });
});
