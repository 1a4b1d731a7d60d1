/**
 * Task `sign`: the last step of `convert`. Signs models/powerinfer/<model>/ (SHA256SUMS,
 * model.sig as OMS v1.0, provenance.sigstore.json as SLSA v1 built from the records of the
 * steps before it) and copies the signed files that are not weights to
 * manifests/<model>/<model_version>/ for a release job to publish.
 *
 * With no key configured it signs with a development key under build/keys/ and says so,
 * in the log and in the provenance: the main command works on a fresh machine, and nobody
 * mistakes the result for a release.
 */
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import type { TaskDefinition, TaskRunContext } from "../pipeline/core/graph.js";
import { sha256File } from "../pipeline/core/files.js";
import { redact } from "../pipeline/core/redact.js";
import { escapeForTerminal } from "../pipeline/core/escape.js";
import { PipelineError } from "../pipeline/core/errors.js";
import { configuredKeySource, DEVELOPMENT_KEY, loadSigningKey, type SigningKey } from "../pipeline/signing/signing-key.js";
import { keyHint, parsePublicKeyPem } from "../pipeline/signing/keys.js";
import { existsSync } from "node:fs";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { PROVENANCE_FILE, SIGNATURE_FILE, SUMS_FILE } from "../pipeline/signing/oms.js";
import { listModelFiles } from "../pipeline/signing/walk.js";
import type { ProvenanceInput, ResourceDescriptor } from "../pipeline/signing/provenance.js";
import { PACKAGE_ROOT } from "../pipeline/workspace.js";
import { downloadedRepos, type DownloadResult } from "./download.js";
import type { GeneratedCheckpoint } from "./generate.js";
import type { LocalCheckpointResult } from "./local-checkpoint.js";
import type { ConvertResult } from "./convert.js";
import type { UpstreamResult } from "./upstream.js";
import type { BuildResult } from "./build.js";

export interface SignTaskSettings {
  model: string;
  recipeFile: string;
  /** recipe.audit.model_version: the manifests/<model>/<version>/ folder. */
  modelVersion: string;
  /** The task that produced the checkpoint: "download", "checkpoint" (local folders) or "generate". */
  checkpointTask: string;
  /** Tasks whose outputs live in the model directory (convert, quantize, bench). */
  contentTasks: readonly string[];
  externalParameters: Record<string, unknown>;
  /** recipe.audit.checksum: the converted GGUF must have this sha256 (a reproducibility pin). */
  expectedChecksum?: string;
  keyFile?: string;
  allowInsecureKeyPermissions?: boolean;
}

export interface SignTaskResult {
  rootDigest: string;
  keyHint: string;
  keySource: string;
  developmentKey: boolean;
  builderId: string;
  files: { name: string; size: number }[];
  manifestDir: string;
}

/** Builder identity: explicit, else the CI workflow that runs us, else this machine. */
export function builderIdentity(env: NodeJS.ProcessEnv): { id: string; invocationId: string } {
  if (env.GITHUB_ACTIONS === "true" && env.GITHUB_WORKFLOW_REF) {
    const server = env.GITHUB_SERVER_URL ?? "https://github.com";
    return {
      id: env.AI_TOOLS_BUILDER_ID ?? `${server}/${env.GITHUB_WORKFLOW_REF}`,
      invocationId: `${server}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}/attempts/${env.GITHUB_RUN_ATTEMPT ?? "1"}`,
    };
  }
  return { id: env.AI_TOOLS_BUILDER_ID ?? `urn:ai-tools:builder:local:${hostname()}`, invocationId: `urn:uuid:${randomUUID()}` };
}

/** Files in the model directory that are not weights: these go to manifests/ with the signatures. */
const WEIGHTS = /(\.gguf|\.gpuidx|\.pt|\.safetensors|\.bin)$|^activation\//;

export function signTask(settings: SignTaskSettings): TaskDefinition<SignTaskResult> {
  const modelDir = join("models", "powerinfer", settings.model);
  // Development-key signatures are not publishable: their copy stays under build/, out of the repository.
  const manifestDirFor = (development: boolean) => join(development ? join("build", "manifests") : "manifests", settings.model, settings.modelVersion);
  let key: Promise<SigningKey> | undefined;
  let development = false;
  const signingKey = (ctx: { root: string; env: NodeJS.ProcessEnv }) =>
    (key ??= loadSigningKey({
      env: ctx.env,
      developmentKeyRoot: ctx.root,
      ...(settings.keyFile ? { keyFile: settings.keyFile } : {}),
      ...(settings.allowInsecureKeyPermissions ? { allowInsecurePermissions: true } : {}),
    }));

  return {
    id: "sign",
    instance: `sign--${settings.model}`,
    title: `Sign ${settings.model}`,
    version: 1,
    dependsOn: ["upstream", "build", settings.checkpointTask, ...settings.contentTasks],

    async inputs(ctx) {
      // The key's public hint, not the key: a new key re-signs, the secret is never recorded.
      // The development key is not created while planning: `verify` below notices when it changes.
      const configured = configuredKeySource({ env: ctx.env, ...(settings.keyFile ? { keyFile: settings.keyFile } : {}) });
      development = configured === null;
      return {
        values: {
          "signing key": configured === null ? "development key" : (await signingKey(ctx)).hint,
          "builder id": builderIdentity(ctx.env).id,
          [`${settings.recipeFile}#audit.model_version`]: settings.modelVersion,
        },
      };
    },

    outputs: () => {
      const manifestDir = manifestDirFor(development);
      return [
        ...[SUMS_FILE, SIGNATURE_FILE, PROVENANCE_FILE].map((f) => ({ path: join(modelDir, f), hash: true })),
        ...[SIGNATURE_FILE, PROVENANCE_FILE].map((f) => ({ path: join(manifestDir, f), hash: true })),
      ];
    },

    // A file added, removed or resized in the model directory since signing makes the signature stale.
    async verify(record, ctx) {
      const previous = record.result as SignTaskResult;
      if (previous.developmentKey) {
        const pub = join(ctx.root, DEVELOPMENT_KEY.replace(/\.key$/, ".pub"));
        const now = existsSync(pub) ? keyHint(parsePublicKeyPem(await readFile(pub, "utf8"))) : null;
        if (now !== previous.keyHint) return `the development key ${now === null ? "is gone" : "changed"} since signing`;
      }
      const signed = previous.files;
      const { files, irregular } = await listModelFiles(join(ctx.root, modelDir), []);
      if (irregular[0]) return `${escapeForTerminal(join(modelDir, irregular[0].name))} ${irregular[0].why}: it cannot be signed`;
      const now = new Map(files.map((f) => [f.name, f.size]));
      for (const f of signed) {
        if (!now.has(f.name)) return `${escapeForTerminal(join(modelDir, f.name))} was removed since signing`;
        if (now.get(f.name) !== f.size) return `${escapeForTerminal(join(modelDir, f.name))} changed since signing`;
      }
      const listed = new Set(signed.map((f) => f.name));
      const added = files.find((f) => !listed.has(f.name) && ![SIGNATURE_FILE, PROVENANCE_FILE].includes(f.name) && !f.name.endsWith(".generated.gpuidx"));
      return added ? `${escapeForTerminal(join(modelDir, added.name))} was added since signing` : null;
    },

    async run(ctx) {
      const signer = await signingKey(ctx);
      if (signer.development) {
        const note = `signing with the development key ${signer.source.replace(/^development key /, "")} (no key configured: set AI_TOOLS_SIGNING_KEY_FILE or pass --key for releases)`;
        ctx.log(`note: ${note}`);
        ctx.progress({ message: `note: ${note}` });
      } else ctx.log(`signing with ${signer.source} (key ${signer.hint.slice(0, 16)}…)`);
      const dir = join(ctx.root, modelDir);
      const converted = ctx.deps.get("convert")!;
      const gguf = (converted.result as ConvertResult).output;
      const digest = converted.outputs[gguf]?.sha256;
      if (settings.expectedChecksum && digest !== settings.expectedChecksum) {
        throw new PipelineError("E_DIGEST_MISMATCH", `${gguf} has sha256 ${digest}, but ${settings.recipeFile} (audit.checksum) pins ${settings.expectedChecksum}: this conversion does not reproduce the release`, {
          details: ["Nothing was signed. Check the upstream commit, converter and checkpoint revisions, or update audit.checksum if the change is intended."],
        });
      }
      await removeStaleTemporaries(dir, ctx);
      const provenance = await provenanceFor(ctx, settings, signer);
      ctx.progress({ message: "hashing and signing" });
      const signed = await signModelDirectory(dir, { privateKey: signer.privateKey, provenance, subjectName: settings.model, signal: ctx.signal });
      ctx.log(`signed ${signed.resources.length} files: root sha256 ${signed.rootDigest}`);

      // The published copy: signatures and the small signed files, not the weights.
      const manifestDir = manifestDirFor(signer.development);
      const target = join(ctx.root, manifestDir);
      await rm(target, { recursive: true, force: true });
      await mkdir(target, { recursive: true });
      const copied = [...signed.resources.map((r) => r.name).filter((n) => !WEIGHTS.test(n) && !n.includes("/")), SIGNATURE_FILE, PROVENANCE_FILE];
      for (const name of copied) await copyFile(join(dir, name), join(target, name));
      ctx.log(`copied ${copied.join(", ")} to ${manifestDir}/`);

      return {
        rootDigest: signed.rootDigest,
        keyHint: signed.keyHint,
        keySource: signer.source,
        developmentKey: signer.development,
        builderId: provenance.builder.id,
        files: signed.resources.map((r) => ({ name: r.name, size: r.size ?? 0 })),
        manifestDir,
      };
    },
  };
}

/** `.tmp-<pid>` files an interrupted writer left behind must not be signed as model files. */
async function removeStaleTemporaries(dir: string, ctx: TaskRunContext): Promise<void> {
  const { files } = await listModelFiles(dir, []);
  for (const f of files) {
    if (/\.tmp-\d+(-[0-9a-f]{8})?$/.test(f.name)) {
      await rm(f.path, { force: true });
      ctx.log(`removed ${escapeForTerminal(f.name)}, left by an interrupted run`);
    }
  }
}

async function provenanceFor(ctx: TaskRunContext, settings: SignTaskSettings, signer: SigningKey): Promise<ProvenanceInput> {
  const records = [...ctx.deps.values()];
  const dep = <T>(id: string) => ctx.deps.get(id)?.result as T | undefined;
  const upstream = dep<UpstreamResult>("upstream")!;
  const build = dep<BuildResult>("build")!;
  const convert = dep<ConvertResult>("convert")!;
  const pkg = JSON.parse(await readFile(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };
  const { id: builderId, invocationId } = builderIdentity(ctx.env);

  // The engine that benchmarked it (and, for a converted model, whose converter wrote it).
  const resolved: ResourceDescriptor[] = [{ name: "powerinfer", uri: `git+${redact(upstream.url)}@${upstream.commit}`, digest: { gitCommit: upstream.commit } }];
  // A ready-made GGUF had no converter: its source is the GGUF repo at its commit, listed with the download below.
  if (!convert.readyMade) {
    resolved.push({
      name: `converter ${convert.converter.script}`,
      uri: `git+${redact(upstream.url)}@${upstream.commit}#${convert.converter.script}`,
      digest: { sha256: await sha256File(join(ctx.root, upstream.path, convert.converter.script)) },
    });
  }
  const checkpoint = ctx.deps.get(settings.checkpointTask)!;
  if (checkpoint.task === "download") {
    const download = checkpoint.result as DownloadResult;
    // Every repository at its commit, then each file taken from it (sha256 for LFS files, else the git blob id).
    for (const repo of downloadedRepos(download)) {
      const role = download.gguf === repo ? "ready-made GGUF" : download.activation === repo ? "activation" : undefined;
      resolved.push({
        ...(role ? { name: role } : {}),
        uri: `git+${download.endpoint}/${repo.repo}@${repo.commit}`,
        digest: { gitCommit: repo.commit },
        annotations: { revision: repo.revision },
      });
      for (const file of repo.files) {
        resolved.push({ uri: `${download.endpoint}/${repo.repo}/resolve/${repo.commit}/${file.path}`, digest: file.sha256 ? { sha256: file.sha256 } : { gitBlob: file.gitOid } });
      }
    }
  } else if (checkpoint.task === "checkpoint") {
    // Folders on this machine: every file the converter could read, by its sha256.
    const local = checkpoint.result as LocalCheckpointResult;
    for (const file of local.files) {
      resolved.push({ name: `checkpoint ${file.role}/${file.path}`, uri: `file://${join(local[file.role].dir, file.path)}`, digest: { sha256: file.sha256 }, annotations: { size: file.size } });
    }
  } else {
    const generated = checkpoint.result as GeneratedCheckpoint;
    resolved.push({ name: "checkpoint generator", uri: `file:${generated.script}`, digest: { sha256: generated.scriptSha256 }, annotations: { seed: generated.seed } });
    for (const file of generated.files) resolved.push({ name: `generated ${file.path}`, digest: { sha256: file.sha256 } });
  }

  const bench = ctx.deps.get("bench");
  const byproducts: ResourceDescriptor[] = [];
  if (bench) {
    const benchFile = join("models", "powerinfer", settings.model, "bench.json");
    const result = bench.result as { evalTokensPerSecond: number | null; threads: number; hostClass: string };
    byproducts.push({
      name: "bench.json",
      digest: { sha256: bench.outputs[benchFile]?.sha256 ?? (await sha256File(join(ctx.root, benchFile))) },
      annotations: { evalTokensPerSecondMedian: result.evalTokensPerSecond, threads: result.threads, hostClass: result.hostClass },
    });
  }
  byproducts.push({ name: "convert log", uri: `file:build/logs/${ctx.deps.get("convert")!.instance}.log` });

  const started = records.map((r) => r.startedAt).sort()[0] ?? new Date().toISOString();
  return {
    modelId: settings.model,
    externalParameters: settings.externalParameters,
    internalParameters: {
      build: {
        backend: build.backend,
        buildDir: build.buildDir,
        configureArgs: build.configureArgs,
        tools: build.tools,
        buildNumber: build.buildInfo.number ?? null,
        // What `drift` compares the engine a model runs on against.
        mainSha256: ctx.deps.get("build")!.outputs[build.binaries.main!]?.sha256 ?? null,
      },
      python: convert.python,
      converter: convert.readyMade ? null : convert.converter,
      ...(convert.readyMade ? { readyMade: convert.readyMade } : {}),
      signingKey: { hint: signer.hint, curve: signer.curve, development: signer.development },
    },
    resolvedDependencies: resolved,
    builder: { id: builderId, version: { "ai-tools": pkg.version, powerinfer: upstream.commit } },
    invocationId,
    startedOn: started,
    finishedOn: new Date().toISOString(),
    byproducts,
  };
}
