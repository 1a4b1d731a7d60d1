/**
 * The engine interface every backend implements, and the registry's view of it. A
 * backend turns a prompt and a rendered policy into streamed text and metrics.
 */
import type { RenderedPolicy } from "../pipeline/policy/types.js";

export interface EngineProbe {
  name: string;
  available: boolean;
  /** Engine version or build ("build 1590 (d3ebd7c)", "node-llama-cpp 3.21.1", server model list). */
  version: string | null;
  /** Source commit when the engine reports one. */
  commit: string | null;
  /** How it would run: a binary path, a library, a URL. */
  via: string | null;
  /** One sentence: why it is (not) available. */
  detail: string;
}

export interface RequestMetrics {
  /** From the start of the request to the first generated text. */
  timeToFirstTokenMs: number | null;
  totalMs: number;
  promptTokens: number | null;
  generatedTokens: number | null;
  promptTokensPerSecond: number | null;
  generationTokensPerSecond: number | null;
  /** "engine": the engine's own timings; "measured": from stream timestamps and counts here. */
  source: "engine" | "measured";
  peakRssBytes?: number;
  cpuUserMs?: number;
  cpuSystemMs?: number;
  gpuMemoryBytes?: number;
}

export interface GenerateOptions {
  signal?: AbortSignal;
  /** Called with each piece of generated text as the engine produces it. */
  onToken?: (text: string) => void;
}

export interface GenerateResult {
  text: string;
  metrics: RequestMetrics;
  /** "stop", "length", ... where the engine says. */
  finishReason?: string;
  /** Settings the engine could not take (e.g. a flag this build does not accept), one sentence each. */
  warnings?: string[];
}

export interface Engine {
  readonly name: string;
  /** Short description and the model formats it takes, for `ai-tools engines`. */
  info(): { name: string; description: string; formats: string[] };
  /**
   * Whether the engine can run now. Given the rendered policy, it checks what that policy
   * would use (the openai engine: the policy's server, with the policy's key).
   */
  probe(policy?: RenderedPolicy): Promise<EngineProbe>;
  generate(prompt: string, policy: RenderedPolicy, options?: GenerateOptions): Promise<GenerateResult>;
}

export { EngineError, type EngineErrorCode } from "./errors.js";
