/**
 * The llama.cpp backend, for dense GGUF models, two ways:
 *
 * - node-llama-cpp (an optional dependency), in process and CPU-only: its prebuilt
 *   binary for the platform is loaded with `gpu: false, build: "never"`, so nothing is
 *   ever compiled or downloaded at run time (./llama-cpp-node.ts);
 * - a llama.cpp completion binary run as a child process (./llama-cpp-cli.ts), when one
 *   is named (--binary, AI_TOOLS_LLAMA_CLI: an explicit choice wins) or when
 *   node-llama-cpp cannot load here and one is on PATH.
 *
 * Both check the model file first: PowerInfer's sparse files (magic PWRI) look like GGUF
 * to a user but llama.cpp cannot read them.
 */
import { open } from "node:fs/promises";
import which from "which";
import type { RenderedPolicy } from "../pipeline/policy/types.js";
import { EngineError, type Engine, type EngineProbe, type GenerateOptions, type GenerateResult } from "./types.js";

export interface LlamaCppEngineOptions {
  /** A llama.cpp completion binary (llama-completion, or llama-cli before it became a chat UI); else AI_TOOLS_LLAMA_CLI. */
  binary?: string;
  env?: NodeJS.ProcessEnv;
}

const NAME = "llama.cpp";

/**
 * The model file's magic, checked before anything loads it: llama.cpp's own message for a
 * PWRI file ("invalid magic characters") does not say what to do instead.
 */
export async function checkDenseGguf(modelPath: string | null): Promise<string> {
  if (!modelPath) throw new EngineError("E_ENGINE_FAILED", `${NAME}: the policy names no model file (model_path)`);
  let magic: string;
  try {
    const file = await open(modelPath, "r");
    try {
      const { buffer, bytesRead } = await file.read(Buffer.alloc(4), 0, 4, 0);
      magic = buffer.subarray(0, bytesRead).toString("latin1");
    } finally {
      await file.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EISDIR" ? "is a directory" : `cannot be read (${code ?? String(error)})`;
    throw new EngineError("E_ENGINE_FAILED", `${NAME}: the model file ${modelPath} ${why}`, { cause: error });
  }
  if (magic === "PWRI") {
    throw new EngineError("E_ENGINE_FAILED", `${NAME}: ${modelPath} is a PowerInfer sparse model (PWRI), which llama.cpp cannot run: use --engine powerinfer`);
  }
  if (magic !== "GGUF") throw new EngineError("E_ENGINE_FAILED", `${NAME}: ${modelPath} is not a GGUF file (it starts with ${JSON.stringify(magic)}, not "GGUF")`);
  return modelPath;
}

/** The binary named by the caller or the environment; null when none was. */
function namedBinary(options: LlamaCppEngineOptions, env: NodeJS.ProcessEnv): { path: string; from: string } | null {
  if (options.binary) return { path: options.binary, from: "--binary" };
  if (env.AI_TOOLS_LLAMA_CLI) return { path: env.AI_TOOLS_LLAMA_CLI, from: "AI_TOOLS_LLAMA_CLI" };
  return null;
}

/**
 * llama-completion first: llama.cpp renamed its plain completion CLI to it (late 2025) and
 * made llama-cli an interactive chat UI that a scripted run would leave waiting for input.
 */
async function binaryOnPath(env: NodeJS.ProcessEnv): Promise<string | null> {
  for (const name of ["llama-completion", "llama-cli"]) {
    const found = await which(name, { path: env.PATH ?? "", nothrow: true });
    if (found) return found;
  }
  return null;
}

type Route = { kind: "node" } | { kind: "cli"; binary: string } | { kind: "none"; detail: string };

export function createLlamaCppEngine(options: LlamaCppEngineOptions = {}): Engine {
  const env = options.env ?? process.env;

  /** node-llama-cpp unless a binary was named or node-llama-cpp cannot load; the reason when neither works. */
  async function route(): Promise<Route> {
    const named = namedBinary(options, env);
    if (named) return { kind: "cli", binary: named.path };
    const { loadLlama } = await import("./llama-cpp-node.js");
    const loaded = await loadLlama();
    if (loaded.ok) return { kind: "node" };
    const onPath = await binaryOnPath(env);
    if (onPath) return { kind: "cli", binary: onPath };
    return { kind: "none", detail: `node-llama-cpp cannot run here (${loaded.reason}) and no llama-completion or llama-cli is on PATH (or set AI_TOOLS_LLAMA_CLI)` };
  }

  return {
    name: NAME,
    info: () => ({ name: NAME, description: "llama.cpp for dense GGUF models: node-llama-cpp in process (CPU), else a llama-completion/llama-cli binary", formats: [".gguf (dense)"] }),

    async probe(): Promise<EngineProbe> {
      const r = await route();
      if (r.kind === "none") return { name: NAME, available: false, version: null, commit: null, via: null, detail: r.detail };
      if (r.kind === "node") return { name: NAME, ...(await (await import("./llama-cpp-node.js")).probeNode()) };
      return { name: NAME, ...(await (await import("./llama-cpp-cli.js")).probeCli(r.binary, env)) };
    },

    async generate(prompt: string, policy: RenderedPolicy, request: GenerateOptions = {}): Promise<GenerateResult> {
      if (request.signal?.aborted) throw new EngineError("E_ENGINE_ABORTED", `${NAME}: stopped (interrupted) before it started`);
      const modelPath = await checkDenseGguf(policy.modelPath);
      const r = await route();
      if (r.kind === "none") throw new EngineError("E_ENGINE_UNAVAILABLE", `${NAME}: ${r.detail}`);
      if (r.kind === "node") return (await import("./llama-cpp-node.js")).generateNode(modelPath, prompt, policy, request);
      return (await import("./llama-cpp-cli.js")).generateCli(r.binary, modelPath, prompt, policy, { ...request, env });
    },
  };
}
