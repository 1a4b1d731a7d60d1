/**
 * The real engine outputs in ../shared/reference/powerinfer-samples (read there, never
 * copied in). Tests that need them skip with a reason where they are absent.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
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
