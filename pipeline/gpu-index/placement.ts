/**
 * `ai-tools run` on a GPU build: the precomputed GPU split of the rendered host class
 * (`model.<host>.gpuidx` beside the model, made and signed by `gpu-split`) is put where
 * the engine looks for it, `<model file>.generated.gpuidx`, and the run gets a
 * `--vram-budget` under which the engine accepts it (its stored capacity plus the dense
 * tensors and the KV cache at this context size; never more than the policy allows). No
 * Python at run time.
 *
 * Beside the model when its directory is writable (a hard link, else a copy, renamed into
 * place); a read-only directory (no write permission bits, or a read-only mount) gets a
 * private run directory under $XDG_RUNTIME_DIR (else the user cache dir) with a symbolic
 * link to the model (and to activation/) plus the index, and main runs on that path.
 *
 * A `<model>.generated.gpuidx` beside a signed model that this run did not put there is
 * not signed (signatures leave the runtime file out), so the engine must not load it: the
 * signed index for the host replaces it, or, with none to place, main runs from a private
 * directory without it (where the engine computes and keeps its own split). Either way
 * the run says so.
 */
import { constants, existsSync } from "node:fs";
import { access, copyFile, link, lstat, mkdir, readFile, readlink, rename, rm, stat, symlink } from "node:fs/promises";
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { readGgufHeader } from "../gguf/reader.js";
import { hostVramBytes, modelShape, neededBudgetBytes } from "./budget.js";
import { GENERATED_GPUIDX_SUFFIX, hostIndexName, indexVramCapacity, validateGpuIndex } from "./validate.js";
import { defaultDigestCacheDir } from "../core/digest-cache.js";
import { SIGNATURE_FILE } from "../signing/oms.js";
import type { RenderedPolicy } from "../policy/types.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

export interface PlacedIndex {
  /** The model path main is given (the model itself, or its link in the private run directory). */
  modelPath: string;
  /** --vram-budget in GiB. */
  vramBudgetGib: number;
  /** Where the index was put. */
  indexPath: string;
  privateDir: boolean;
}

/**
 * Placed; or not, with why (null note: nothing to do) and, when an unsigned index beside a
 * signed model is avoided, the model path main must run on instead.
 */
export type PlaceOutcome = { placed: PlacedIndex; note: string } | { placed: null; note: string | null; modelPath?: string };

async function writable(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
  } catch {
    return false;
  }
  // root passes access(W_OK) on a chmod 555 folder: a folder nobody may write is read-only to us too.
  return ((await stat(dir)).mode & 0o222) !== 0;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    if (sa.size !== sb.size) return false;
    if (sa.ino === sb.ino && sa.dev === sb.dev) return true;
    return (await readFile(a)).equals(await readFile(b));
  } catch {
    return false;
  }
}

/** Puts `source` at `target` (a hard link, else a copy) through a temporary name: never half a file. */
async function install(source: string, target: string): Promise<void> {
  if (await sameBytes(source, target)) return;
  const temp = `${target}.tmp-${process.pid}`;
  await rm(temp, { force: true });
  try {
    await link(source, temp).catch(() => copyFile(source, temp));
    await rename(temp, target);
  } finally {
    await rm(temp, { force: true });
  }
}

async function ensureSymlink(target: string, path: string): Promise<void> {
  const current = await lstat(path).then((s) => (s.isSymbolicLink() ? readlink(path) : "")).catch(() => null);
  if (current === target) return;
  if (current !== null) await rm(path, { recursive: true, force: true });
  await symlink(target, path);
}

/**
 * The index for this run, placed; or why not (null note: nothing to do). Only for GPU builds
 * of sparse models: callers check that.
 */
export async function placeGpuIndex(policy: RenderedPolicy, env: NodeJS.ProcessEnv): Promise<PlaceOutcome> {
  const model = policy.modelPath;
  if (!model) return { placed: null, note: null };
  const dir = dirname(model);
  const generated = model + GENERATED_GPUIDX_SUFFIX;
  const stray = existsSync(join(dir, SIGNATURE_FILE)) && existsSync(generated) ? generated : null;
  const outcome = await placeHostIndex(policy, env, stray);
  if (outcome.placed || stray === null) return outcome;

  // Nothing placed, and an unsigned index lies beside the signed model: run without it.
  const { linked } = await privateRunDir(model, `${policy.host.name}\0without-unsigned-index`, "run", env);
  const avoided = `${basename(stray)} beside the signed model is not signed (written by an earlier run or by hand): not loaded; main runs on ${linked} (a private folder without it, where the engine computes its own split)`;
  return { placed: null, note: outcome.note ? `${outcome.note}; ${avoided}` : avoided, modelPath: linked };
}

/** model.<host>.gpuidx for the rendered host, placed where the engine looks; or why not. */
async function placeHostIndex(policy: RenderedPolicy, env: NodeJS.ProcessEnv, stray: string | null): Promise<PlaceOutcome> {
  const model = policy.modelPath!;
  const source = join(dirname(model), hostIndexName(policy.host.name));
  if (!existsSync(source)) return { placed: null, note: null };

  const [modelHeader, indexHeader] = await Promise.all([readGgufHeader(model), readGgufHeader(source, { powerInferIntegerTypes: true })]);
  const shape = modelShape(modelHeader);
  const problems = validateGpuIndex(indexHeader, shape);
  const capacity = indexVramCapacity(indexHeader);
  if (problems.length > 0 || capacity === undefined) {
    return { placed: null, note: `${source} is not an index for ${basename(model)} (${problems[0] ?? "no split.vram_capacity"}): not used` };
  }
  // The budget under which the engine's remainder is at least the stored capacity, rounded up to whole MiB.
  const needed = Math.ceil(neededBudgetBytes(modelHeader, capacity, policy.generation.ctx_size) / MiB) * MiB;
  const allowed = policy.runtime.vram_budget_gb !== null ? policy.runtime.vram_budget_gb * GiB : hostVramBytes(policy.host);
  if (needed > allowed) {
    return {
      placed: null,
      note: `${basename(source)} needs a ${(needed / GiB).toFixed(2)} GiB VRAM budget at -c ${policy.generation.ctx_size}, more than the ${(allowed / GiB).toFixed(2)} GiB allowed: not used (the engine computes its own split)`,
    };
  }
  const vramBudgetGib = needed / GiB;

  const dir = dirname(model);
  if (await writable(dir)) {
    const target = model + GENERATED_GPUIDX_SUFFIX;
    const replaced = stray !== null && !(await sameBytes(source, stray)) ? ` (replacing the unsigned ${basename(stray)} that was there)` : "";
    await install(source, target);
    return { placed: { modelPath: model, vramBudgetGib, indexPath: target, privateDir: false }, note: `GPU split for ${policy.host.name}: ${basename(source)} -> ${basename(target)}${replaced}, --vram-budget ${vramBudgetGib}` };
  }
  // Read-only: a private directory per (model path, host class).
  const { privateDir, linked } = await privateRunDir(model, policy.host.name, "gpu", env);
  const target = linked + GENERATED_GPUIDX_SUFFIX;
  await install(source, target);
  return {
    placed: { modelPath: linked, vramBudgetGib, indexPath: target, privateDir: true },
    note: `GPU split for ${policy.host.name}: ${dir} is read-only, so ${basename(source)} is used from ${privateDir} (main runs on ${linked}), --vram-budget ${vramBudgetGib}`,
  };
}

/**
 * A private (0700) directory per (model path, purpose) under $XDG_RUNTIME_DIR (else the user
 * cache dir), holding a symbolic link to the model and to its activation/: main runs on the link.
 */
async function privateRunDir(model: string, purpose: string, prefix: string, env: NodeJS.ProcessEnv): Promise<{ privateDir: string; linked: string }> {
  const dir = dirname(model);
  const base = env.XDG_RUNTIME_DIR && existsSync(env.XDG_RUNTIME_DIR) ? join(env.XDG_RUNTIME_DIR, "ai-tools") : join(defaultDigestCacheDir(env), "run");
  const key = createHash("sha256").update(`${model}\0${purpose}`).digest("hex").slice(0, 16);
  const privateDir = join(base, `${prefix}-${key}`);
  await mkdir(privateDir, { recursive: true, mode: 0o700 });
  const linked = join(privateDir, basename(model));
  await ensureSymlink(model, linked);
  // The engine regenerates from <dir>/activation when it rejects an index: keep that reachable.
  if (existsSync(join(dir, "activation"))) await ensureSymlink(join(dir, "activation"), join(privateDir, "activation"));
  return { privateDir, linked };
}
