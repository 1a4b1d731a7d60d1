/**
 * keygen, sign and verify: thin wrappers over pipeline/signing. verify runs without a
 * workspace (other repositories call `npx ai-tools verify`) and maps outcomes to exit
 * codes: 0 verified, 1 verification failed, 2 usage or I/O error.
 */
import { existsSync, readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import type { CliOptions } from "./options.js";
import { EVENT_SCHEMA_VERSION } from "../core/events.js";
import { isPipelineError, UsageError } from "../core/errors.js";
import { TRUSTED_KEYS_FILE, workspaceTrustStore } from "../signing/trust-store.js";

export interface CommandIo {
  out(text: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  root: string;
}


export async function runKeygen(options: CliOptions, io: CommandIo): Promise<number> {
  const { generateKeyFiles, PASSPHRASE_ENV } = await import("../signing/signing-key.js");
  const passphrase = io.env[PASSPHRASE_ENV];
  const key = await generateKeyFiles(resolve(options.out!), { ...(passphrase ? { passphrase } : {}), force: options.force === true });
  const show = (p: string) => relative(process.cwd(), p) || p;
  if (options.json) {
    io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "keygen", keyFile: key.keyFile, publicKeyFile: key.publicKeyFile, hint: key.hint, sshFingerprint: key.sshFingerprint, encrypted: Boolean(passphrase) }) + "\n");
    return 0;
  }
  io.out(`wrote ${show(key.keyFile)} (ECDSA P-256, PKCS#8, mode 0600${passphrase ? `, encrypted with ${PASSPHRASE_ENV}` : ""}) and ${show(key.publicKeyFile)}\n`);
  io.out(`key hint ${key.hint}\nssh fingerprint ${key.sshFingerprint}\n\n`);
  io.out(`Trust it where models are verified (${TRUSTED_KEYS_FILE}):\n`);
  io.out(`keys:\n  - id: ${options.out!.split("/").pop()}\n    notBefore: ${new Date().toISOString().slice(0, 10)}T00:00:00Z\n    publicKey: |\n${key.publicKeyPem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
  return 0;
}

export async function runVerify(options: CliOptions, io: CommandIo): Promise<number> {
  const [{ verifyModel }, { formatBytes }] = await Promise.all([import("../signing/verify.js"), import("../clean.js")]);
  try {
    const { keys, notes } = await workspaceTrustStore(io.root, options.trustedKeys);
    if (!options.json) for (const note of notes) io.err(`note: ${note}`);
    const roots = options.certificateRoots.map((file) => readFileSync(file, "utf8"));
    const result = await verifyModel(options.dir!, {
      trustedKeys: keys,
      provenance: options.provenance,
      allowExtraFiles: options.ignoreUnsignedFiles,
      ignorePaths: options.ignorePaths,
      digestCache: options.digestCache,
      ...(roots.length > 0 ? { certificateRoots: roots } : {}),
      ...(options.signature ? { signaturePath: options.signature } : {}),
      ...(options.provenanceFile ? { provenancePath: options.provenanceFile } : {}),
      ...(options.allowedBuilders.length > 0 ? { allowedBuilders: options.allowedBuilders } : {}),
      ...(options.allowedSources.length > 0 ? { allowedSources: options.allowedSources } : {}),
      ...(options.maxAgeDays !== undefined ? { maxAgeDays: options.maxAgeDays } : {}),
      ...(options.modelId !== undefined ? { modelId: options.modelId } : {}),
    });
    if (options.json) {
      io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "verify-result", ok: true, dir: options.dir, ...result }) + "\n");
      return 0;
    }
    const bytes = result.files.reduce((sum, f) => sum + f.size, 0);
    io.out(`verified ${options.dir}: ${result.files.length} files (${formatBytes(bytes)}), root sha256 ${result.rootDigest}\n`);
    io.out(`  signed by ${result.key.id} (key ${result.key.hint.slice(0, 16)}…)${result.cachedFiles > 0 ? `; ${result.cachedFiles} digests from the cache` : ""}\n`);
    const p = result.provenance;
    if (p) io.out(`  provenance: ${p.modelId ?? "?"} from ${p.source ?? "?"}, built by ${p.builderId}${p.finishedOn ? ` at ${p.finishedOn}` : ""}\n`);
    else io.out(`  provenance: ${options.provenance === "skip" ? "not checked (--no-provenance)" : "none"}\n`);
    const skipped = result.skipped.filter((s) => s.why === "unsigned");
    if (skipped.length > 0) io.out(`  not covered by the signature (accepted: --ignore-unsigned-files): ${skipped.map((s) => s.name).join(", ")}\n`);
    return 0;
  } catch (error) {
    const code = isPipelineError(error) ? error.code : "E_INTERNAL";
    const usage = !isPipelineError(error) || code === "E_TRUST_CONFIG" || code === "E_IO" || code === "E_USAGE" || (error as NodeJS.ErrnoException).code === "ENOENT";
    const message = error instanceof Error ? error.message : String(error);
    const details = isPipelineError(error) ? error.details : [];
    if (options.json) {
      const files = (error as { files?: readonly string[] }).files ?? [];
      io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "verify-result", ok: false, dir: options.dir, code, message, files, details }) + "\n");
    }
    io.err(`${usage ? "error" : "verification failed"} [${code}]: ${message}`);
    for (const d of details) io.err(`  ${d}`);
    return usage ? 2 : 1;
  }
}

/** Plain directory signing (no provenance: that needs the pipeline's records, see `convert`). */
export async function runSignDirectory(options: CliOptions, io: CommandIo): Promise<number> {
  const [{ loadSigningKey }, { signModelDirectory }] = await Promise.all([import("../signing/signing-key.js"), import("../signing/sign.js")]);
  if (!existsSync(options.dir!)) throw new UsageError(`sign: ${options.dir} does not exist`);
  const key = await loadSigningKey({ env: io.env, ...(options.key ? { keyFile: options.key } : {}), allowInsecurePermissions: options.allowInsecureKeyPermissions });
  const result = await signModelDirectory(options.dir!, { privateKey: key.privateKey, ignorePaths: options.ignorePaths });
  if (options.json) {
    io.out(JSON.stringify({ v: EVENT_SCHEMA_VERSION, event: "sign-result", dir: options.dir, rootDigest: result.rootDigest, keyHint: result.keyHint, files: result.resources.length, written: result.written }) + "\n");
  } else {
    io.out(`signed ${options.dir}: ${result.resources.length} files, root sha256 ${result.rootDigest}, key ${key.source} (${result.keyHint.slice(0, 16)}…)\n`);
    io.out(`  wrote ${result.written.join(", ")}; no provenance (only \`pnpm pipeline sign\` on a converted model, or convert, records one)\n`);
  }
  return 0;
}

