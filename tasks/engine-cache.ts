/**
 * The build step's use of the shared engine build cache (pipeline/registry/build-cache.ts):
 * restore a build of the same fingerprint instead of compiling, and store a fresh build for
 * the next machine. Both are best effort by design: a miss, an unreachable registry, an
 * untrusted or damaged entry each cost one `note:` line and a compile, never a failed build
 * and never an unverified binary.
 */
import { join, relative } from "node:path";
import type { TaskRunContext } from "../pipeline/core/graph.js";
import { isPipelineError } from "../pipeline/core/errors.js";
import { redact } from "../pipeline/core/redact.js";
import type { Workspace } from "../pipeline/workspace.js";

export interface EngineCacheTarget {
  /** oci://HOST/REPO */
  cache: string;
  backend: string;
  targets: readonly string[];
  /** Relative build folder (build/powerinfer/<backend>-<fp12>). */
  buildDir: string;
}

function why(error: unknown): string {
  const text = isPipelineError(error) ? `${error.code}: ${error.message}` : (error as Error).message;
  return redact(text.split("\n")[0]!);
}

/** The cached build's result, or undefined (after one note line saying why) to compile. */
export async function restoreCachedBuild<R>(workspace: Workspace, ctx: TaskRunContext, target: EngineCacheTarget): Promise<R | undefined> {
  const [{ buildCacheReference, pullBuild }, { registryClient }, { workspaceTrustStore }] = await Promise.all([
    import("../pipeline/registry/build-cache.js"),
    import("../pipeline/registry/transfer.js"),
    import("../pipeline/signing/trust-store.js"),
  ]);
  try {
    const reference = buildCacheReference(target.cache, target.backend, ctx.fingerprint);
    const { keys } = await workspaceTrustStore(ctx.root);
    const client = await registryClient(reference, { env: workspace.env, signal: ctx.signal });
    try {
      const pulled = await pullBuild({ client, reference, buildDir: join(ctx.root, target.buildDir), fingerprint: ctx.fingerprint, trustedKeys: keys, targets: target.targets, signal: ctx.signal });
      if ("miss" in pulled) {
        ctx.progress({ message: `note: build cache miss (${pulled.miss}): compiling` });
        return undefined;
      }
      ctx.progress({ message: `note: restored from the build cache ${reference.registry}/${reference.repository}@${pulled.digest} (signature and binaries verified): not compiling` });
      return pulled.record.result as R;
    } finally {
      await client.close();
    }
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    ctx.progress({ message: `note: build cache not used (${why(error)}): compiling` });
    return undefined;
  }
}

/** Pushes a fresh build, signed with the pipeline's signing key; a failure is one note line. */
export async function storeCachedBuild(workspace: Workspace, ctx: TaskRunContext, target: EngineCacheTarget, binaries: Record<string, string>, result: unknown, keyFile: string | undefined): Promise<void> {
  const [{ buildCacheReference, pushBuild }, { registryClient }, { loadSigningKey }] = await Promise.all([
    import("../pipeline/registry/build-cache.js"),
    import("../pipeline/registry/transfer.js"),
    import("../pipeline/signing/signing-key.js"),
  ]);
  try {
    const reference = buildCacheReference(target.cache, target.backend, ctx.fingerprint);
    const key = await loadSigningKey({ env: workspace.env, developmentKeyRoot: ctx.root, ...(keyFile ? { keyFile } : {}) });
    const client = await registryClient(reference, { env: workspace.env, signal: ctx.signal });
    try {
      const pushed = await pushBuild({
        client,
        reference,
        buildDir: join(ctx.root, target.buildDir),
        backend: target.backend,
        fingerprint: ctx.fingerprint,
        // The record keeps workspace-relative paths; the entry holds the files below the build folder.
        binaries: Object.fromEntries(Object.entries(binaries).map(([name, path]) => [name, relative(target.buildDir, path)])),
        result,
        privateKey: key.privateKey,
        scratchDir: join(ctx.root, "build", "tmp"),
        signal: ctx.signal,
      });
      ctx.progress({ message: `note: stored in the build cache as ${pushed.reference}${key.development ? " (signed with this machine's development key: other machines will not trust it)" : ""}` });
    } finally {
      await client.close();
    }
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    ctx.progress({ message: `note: build not stored in the cache (${why(error)})` });
  }
}
