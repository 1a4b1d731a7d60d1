/**
 * Everything before an engine runs: the policy loaded and rendered for this host and this
 * engine build, the engine chosen, and the model checked (its signature when the model
 * directory has one, its audit checksum when the policy pins one). Shared by `run`,
 * `render` and `drift`.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { PipelineError } from "../core/errors.js";
import { ENGINE_CONFIG, findRoot, PACKAGE_ROOT } from "../root.js";
import { loadPolicy, type LoadedPolicy } from "../policy/load.js";
import { detectHostProfile, loadHostProfile } from "../policy/host.js";
import { renderPolicy } from "../policy/render.js";
import type { HostProfile, RenderedPolicy } from "../policy/types.js";
import { getEngine } from "../../engines/registry.js";
import { isSparseModel, resolvePowerInferBuild } from "../../engines/powerinfer.js";
import type { Engine } from "../../engines/types.js";
import { SIGNATURE_FILE } from "../signing/oms.js";
import type { VerifyResult } from "../signing/verify.js";

export interface PrepareOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  policyFile: string;
  engine?: string;
  model?: string;
  modelRoot?: string;
  /** A host profile file (configs/hosts/<name>.yaml) or name; default: this machine. */
  host?: string;
  strict?: boolean;
  binary?: string;
  /** The trust store for a model pulled from a registry (default: the workspace's). */
  trustedKeys?: string;
  /** --allow-outside-root: the policy's model_path may name a file outside the model root and the workspace. */
  allowOutsideRoot?: boolean;
  /** Notes about the policy (an older key spelling accepted); default: stderr, once each. */
  onNote?: (line: string) => void;
}

export interface Prepared {
  loaded: LoadedPolicy;
  rendered: RenderedPolicy;
  engine: Engine;
  /** When the model came from `oci://…` (--model or model_path): the pull it resolved to. */
  pulled?: import("../registry/transfer.js").PullRecord;
  /** The workspace the run belongs to (options.root, or the policy file's when the current directory has none). */
  root: string;
  /** The engine is a GPU build of PowerInfer (it honours --vram-budget / -ngl, and runs with the host's GPU index). */
  gpuBuild: boolean;
}

/**
 * The policy file --config names: as given (relative to the current directory) when it is
 * there, else under the workspace root, else (a built-in recipe, configs/models/...) under
 * the package's own folder. Missing everywhere: as given, for the loader to report.
 */
export function resolvePolicyFile(given: string, root: string): string {
  if (isAbsolute(given) || existsSync(given)) return resolve(given);
  return [join(root, given), join(PACKAGE_ROOT, given)].find((candidate) => existsSync(candidate)) ?? resolve(given);
}

/**
 * The workspace: `root` when it is one (AI_TOOLS_ROOT, or a folder with the engine config at
 * or above the current directory); else the workspace the policy file lies in, so that
 * `ai-tools run --config /ws/policy.yaml` from elsewhere resolves model_path in /ws.
 */
export function workspaceOf(root: string, policyFile: string, env: NodeJS.ProcessEnv): string {
  if (env.AI_TOOLS_ROOT || existsSync(join(root, ENGINE_CONFIG))) return root;
  const insidePackage = !relative(PACKAGE_ROOT, policyFile).startsWith("..");
  const candidate = findRoot({}, dirname(policyFile));
  return !insidePackage && existsSync(join(candidate, ENGINE_CONFIG)) ? candidate : root;
}

export function modelRootOf(options: Pick<PrepareOptions, "root" | "env" | "modelRoot">): string {
  return options.modelRoot ?? options.env.AI_TOOLS_MODEL_ROOT ?? join(options.root, "models");
}

export async function resolveHost(root: string, host: string | undefined, env: NodeJS.ProcessEnv): Promise<HostProfile> {
  if (!host) return detectHostProfile(env);
  const file = existsSync(host) ? host : join(root, "configs", "hosts", `${host}.yaml`);
  if (!existsSync(file)) throw new PipelineError("E_CONFIG_MISSING", `no host profile ${host} (looked for ${file})`, { details: ["Host profiles live in configs/hosts/<name>.yaml."] });
  return loadHostProfile(file);
}

export async function preparePolicy(given: PrepareOptions): Promise<Prepared> {
  const policyFile = resolvePolicyFile(given.policyFile, given.root);
  const options = { ...given, root: workspaceOf(given.root, policyFile, given.env) };
  const loaded = await loadPolicy(policyFile, options.onNote ? { onNote: options.onNote } : {});
  const engineName = options.engine ?? loaded.policy.engine;
  const engine = await getEngine(engineName, { env: options.env, root: options.root, ...(options.binary ? { binary: options.binary } : {}) });
  const host = await resolveHost(options.root, options.host, options.env);
  // What the engine build can do: only a GPU build of PowerInfer honours --vram-budget / -ngl.
  let gpuBuild = false;
  if (engineName === "powerinfer") {
    const build = resolvePowerInferBuild({ root: options.root, env: options.env, ...(options.binary ? { binary: options.binary } : {}) });
    gpuBuild = !("missing" in build) && build.gpu;
  }
  // oci://… (from --model or model_path): pulled and verified once, then the local copy is used.
  const ociReference = [options.model, loaded.policy.model_path].find((m) => m?.startsWith("oci://"));
  const pulled = ociReference ? await localModelFromRegistry(ociReference, options) : undefined;
  const model = pulled ? modelFileIn(pulled.dir) : options.model;
  const rendered = renderPolicy(loaded.policy, {
    file: options.policyFile,
    host,
    modelRoot: modelRootOf(options),
    workspaceRoot: options.root,
    gpuBuild,
    sparseModel: isSparseModel,
    ...(options.engine ? { engine: options.engine } : {}),
    ...(model ? { model } : {}),
    ...(options.strict ? { strict: true } : {}),
    ...(options.allowOutsideRoot ? { allowOutsideRoot: true } : {}),
  });
  return { loaded, rendered, engine, root: options.root, gpuBuild, ...(pulled ? { pulled } : {}) };
}

/** The pull this reference resolved to before, else a pull now (store, verify, record). */
async function localModelFromRegistry(reference: string, options: PrepareOptions) {
  const [{ pullWorkspaceModel, readPullRecord }, { workspaceTrustStore }] = await Promise.all([import("../registry/transfer.js"), import("../signing/trust-store.js")]);
  const known = await readPullRecord(options.root, reference);
  if (known) return known;
  const { keys, certificateRoots, notes } = await workspaceTrustStore(options.root, options.trustedKeys);
  for (const note of notes) options.onNote?.(note);
  const pulled = await pullWorkspaceModel({ root: options.root, reference, env: options.env, trustedKeys: keys, certificateRoots });
  options.onNote?.(`pulled ${pulled.reference} into ${pulled.dir} (${pulled.bytesFetched} bytes fetched, signature verified)`);
  return { reference, digest: pulled.digest, dir: pulled.dir, pulledAt: new Date().toISOString() };
}

/** The GGUF a pulled model directory runs: model.powerinfer.gguf, else its only .gguf file. */
function modelFileIn(dir: string): string {
  const preferred = join(dir, "model.powerinfer.gguf");
  if (existsSync(preferred)) return preferred;
  const ggufs = readdirSync(dir).filter((f) => f.endsWith(".gguf"));
  if (ggufs.length !== 1) {
    throw new PipelineError("E_CONFIG_INVALID", `${dir} holds ${ggufs.length === 0 ? "no" : ggufs.length} .gguf files; cannot tell which one to run`, { details: ["Name the file with --model <dir>/<file>.gguf."] });
  }
  return join(dir, ggufs[0]!);
}

export interface IntegrityOptions {
  root: string;
  /** "auto": verify when the model directory has model.sig; "require": refuse unsigned models; "skip". */
  mode: "auto" | "require" | "skip";
  trustedKeys?: string;
  digestCacheDir?: string;
  onNote?: (line: string) => void;
}

export interface IntegrityResult {
  verified: VerifyResult | null;
  /** sha256 of the model file when known (verified, or hashed for audit.checksum). */
  modelSha256: string | null;
  skipped?: string;
}

/** The model's signature (digest cache on: start-up stays fast) and audit checksum. */
export async function checkModelIntegrity(rendered: RenderedPolicy, options: IntegrityOptions): Promise<IntegrityResult> {
  if (!rendered.modelPath) return { verified: null, modelSha256: null, skipped: "no local model file" };
  const dir = dirname(rendered.modelPath);
  const signed = existsSync(join(dir, SIGNATURE_FILE));
  let verified: VerifyResult | null = null;
  if (options.mode === "skip") {
    options.onNote?.("model signature not checked (--no-verify)");
  } else if (!signed) {
    if (options.mode === "require") {
      throw new PipelineError("E_NO_SIGNATURE", `${dir} has no ${SIGNATURE_FILE}, and --require-signature is set`, { details: ["Sign the model (pnpm pipeline sign <dir>) or drop --require-signature."] });
    }
  } else {
    const [{ verifyModel }, { workspaceTrustStore }] = await Promise.all([import("../signing/verify.js"), import("../signing/trust-store.js")]);
    const { keys, certificateRoots, notes } = await workspaceTrustStore(options.root, options.trustedKeys);
    for (const note of notes) options.onNote?.(note);
    verified = await verifyModel(dir, { trustedKeys: keys, certificateRoots, digestCache: options.digestCacheDir ? { dir: options.digestCacheDir } : true, allowExtraFiles: false });
  }
  const name = dirname(rendered.modelPath) === dir ? rendered.modelPath.slice(dir.length + 1) : rendered.modelPath;
  let modelSha256 = verified?.files.find((f) => f.name === name)?.digest ?? null;
  const expected = rendered.audit?.checksum;
  if (expected) {
    if (modelSha256 === null) {
      const [{ digestFiles }, { DigestCache }] = await Promise.all([import("../core/hash.js"), import("../core/digest-cache.js")]);
      const cache = await DigestCache.open(options.digestCacheDir);
      modelSha256 = (await digestFiles([rendered.modelPath], { cache }))[0]!.digest;
      await cache.save();
    }
    if (modelSha256 !== expected) {
      throw new PipelineError("E_DIGEST_MISMATCH", `${rendered.modelPath} has sha256 ${modelSha256}; ${rendered.file} (audit.checksum) expects ${expected}`, {
        details: ["This is not the model the policy was written for: restore it, or update audit.checksum if the change is intended."],
      });
    }
  }
  return { verified, modelSha256 };
}

/**
 * The policy as this build runs it. GPU builds of sparse models: the host class's precomputed
 * split put where the engine looks for it (gpu-index/placement.ts), with a budget it accepts
 * (`notes` say what was done). The runtime places it before the engine runs: engines only run
 * what the policy says.
 */
export async function policyForBuild(policy: RenderedPolicy, gpu: boolean, env: NodeJS.ProcessEnv): Promise<{ policy: RenderedPolicy; sparse: boolean; notes: string[] }> {
  const sparse = isSparseModel(policy.modelPath!);
  if (!gpu || !sparse) return { policy, sparse, notes: [] };
  const { placeGpuIndex } = await import("../gpu-index/placement.js");
  const outcome = await placeGpuIndex(policy, env);
  const notes = outcome.note ? [outcome.note] : [];
  // No signed index for this host: a private folder without the stray unsigned one, when there was one.
  if (!outcome.placed) return { policy: outcome.modelPath ? { ...policy, modelPath: outcome.modelPath } : policy, sparse, notes };
  return { policy: { ...policy, modelPath: outcome.placed.modelPath, runtime: { ...policy.runtime, vram_budget_gb: outcome.placed.vramBudgetGib } }, sparse, notes };
}

/**
 * The policy as the engine runs it: on a GPU build of PowerInfer (preparePolicy's `gpuBuild`,
 * resolved once there) the host's GPU index is placed first; anything else runs as rendered.
 */
export async function policyForEngine(policy: RenderedPolicy, gpuBuild: boolean, env: NodeJS.ProcessEnv): Promise<{ policy: RenderedPolicy; notes: string[] }> {
  if (!gpuBuild || !policy.modelPath) return { policy, notes: [] };
  const { policy: effective, notes } = await policyForBuild(policy, true, env);
  return { policy: effective, notes };
}

