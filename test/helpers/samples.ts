/**
 * The real engine outputs in ../shared/reference/powerinfer-samples (read there, never
 * copied in). Tests that need them skip with a reason where they are absent.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import type { Timings } from "../../pipeline/model-bench/timings.js";
import { PROJECT_ROOT } from "./workspace.js";

export const SAMPLES = join(PROJECT_ROOT, "..", "shared", "reference", "powerinfer-samples");
export const haveSamples = existsSync(SAMPLES);
export const sample = (name: string) => readFileSync(join(SAMPLES, name), "utf8");

/** The error `fn` throws, asserted to be an instance of `type`. */
export function thrownBy<E>(type: abstract new (...args: never[]) => E, fn: () => unknown): E {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(type);
  return error as E;
}

/** The timings block of main-run.stderr.log, as parseTimings returns it. */
export const SAMPLE_TIMINGS: Timings = {
  loadMs: 0.89,
  sampleMs: 0.26,
  sampleRuns: 16,
  promptEvalMs: 0.48,
  promptTokens: 11,
  evalMs: 2.14,
  evalRuns: 15,
  totalMs: 3.59,
  promptTokensPerSecond: 22964.51,
  evalTokensPerSecond: 7025.76,
  msPerToken: 0.14,
  warnings: [],
};
