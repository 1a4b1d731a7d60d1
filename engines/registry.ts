/**
 * Engines by name. A backend loads only when it is asked for (node-llama-cpp is large,
 * and the openai backend needs nothing local). Other code may register more.
 */
import { createPowerInferEngine } from "./powerinfer.js";
import { EngineError, type Engine } from "./types.js";

export interface EngineContext {
  /** Workspace root (the powerinfer build record lives under it). */
  root?: string;
  env: NodeJS.ProcessEnv;
  /** --binary: the engine executable, for engines that run one. */
  binary?: string;
}

export type EngineFactory = (context: EngineContext) => Promise<Engine>;

const factories = new Map<string, EngineFactory>([
  ["powerinfer", async (c) => createPowerInferEngine({ env: c.env, ...(c.root ? { root: c.root } : {}), ...(c.binary ? { binary: c.binary } : {}) })],
  ["llama.cpp", async (c) => (await import("./llama-cpp.js")).createLlamaCppEngine({ env: c.env, ...(c.binary ? { binary: c.binary } : {}) })],
  ["openai", async (c) => (await import("./openai.js")).createOpenAiEngine({ env: c.env })],
]);

export function registerEngine(name: string, factory: EngineFactory): void {
  factories.set(name, factory);
}

export function engineNames(): string[] {
  return [...factories.keys()];
}

export async function getEngine(name: string, context: EngineContext): Promise<Engine> {
  const factory = factories.get(name);
  if (!factory) throw new EngineError("E_ENGINE_UNKNOWN", `unknown engine "${name}"; known engines: ${engineNames().join(", ")}`);
  return factory(context);
}
