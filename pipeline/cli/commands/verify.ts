/**
 * `verify <dir>`: a signed model directory against trusted keys, offline. Runs without a
 * workspace (other repositories call `npx ai-tools verify`). Exit 0 verified, 1 verification
 * failed, 2 usage or I/O error; with --json one verify-result event either way.
 */
import { existsSync, statSync } from "node:fs";
import { Option } from "commander";
import { errorReport, UsageError } from "../../core/errors.js";
import { terminalSafe } from "../../core/escape.js";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { collect, contradicting, integerIn } from "../flags.js";
import { formatBytes, printEvent, type CliIo } from "../output.js";

interface VerifyFlags {
  key?: string;
  trustedKeys?: string;
  signature?: string;
  /** --provenance <file>, or false with --no-provenance. */
  provenance?: string | false;
  requireProvenance?: boolean;
  ignoreUnsignedFiles?: boolean;
  ignorePath?: string[];
  allowedBuilder?: string[];
  allowedSource?: string[];
  maxAgeDays?: number;
  modelId?: string;
  certificateRoot?: string[];
  digestCache?: boolean;
  json?: boolean;
}

export const verify: CliCommand<VerifyFlags> = {
  name: "verify",
  group: "Sign and verify",
  define(command) {
    command
      .description("check a signed model directory against trusted keys, offline (exit 0 verified, 1 verification failed, 2 usage or I/O error)")
      .argument("<dir>", "the model directory, e.g. models/powerinfer/<model>")
      .addOption(new Option("--key <public.pem>", "trust only this public key (PEM), as cosign's --key").conflicts("trustedKeys"))
      .option("--trusted-keys <file>", "the trust store: YAML/JSON (format: configs/trusted-keys.yaml) or one PEM public key (default: configs/trusted-keys.yaml plus this machine's development key)")
      .option("--signature <file>", "model.sig from elsewhere, e.g. manifests/<model>/<version>/")
      .option("--provenance <file>", "provenance.sigstore.json from elsewhere")
      .option("--require-provenance", "fail when there is no provenance (default: checked when present)")
      .option("--no-provenance", "do not check provenance")
      .option("--ignore-unsigned-files", "accept files the signature does not list")
      .addOption(new Option("--ignore-path <path>", "leave a path out (repeatable)").argParser(collect))
      .addOption(new Option("--allowed-builder <id>", "accept provenance from this builder only (repeatable)").argParser(collect))
      .addOption(new Option("--allowed-source <repo>", "accept models built from this source only (repeatable)").argParser(collect))
      .addOption(new Option("--max-age-days <n>", "reject builds older than this").argParser(integerIn(1, 36500)))
      .option("--model-id <name>", "the model the provenance must be for")
      .addOption(new Option("--certificate-root <pem>", "a root certificate for certificate-signed bundles (repeatable)").argParser(collect))
      .option("--digest-cache", "reuse digests of unchanged files (device, inode, size, times)")
      .option("--json", "one verify-result event on stdout");
    return contradicting(command, "--require-provenance", "--no-provenance");
  },
  async run({ args: [dir], options }, io) {
    try {
      const stat = existsSync(dir!) ? statSync(dir!) : undefined;
      if (!stat?.isDirectory()) throw new UsageError(`verify: ${dir} ${stat ? "is not a directory" : "does not exist"}; give the model directory (the one holding model.sig, or pass --signature)`);
      return await verifyDirectory(dir!, options, io);
    } catch (error) {
      // The CLI's one error report (typed system errors, no stack without AI_TOOLS_DEBUG), printed escaped.
      const { code, message, details } = errorReport(error);
      // verify's own contract, which other repositories' CI switches on: 1 only when the model failed verification.
      const usage = code === "E_USAGE" || code === "E_TRUST_CONFIG" || code === "E_IO" || code === "E_INTERNAL";
      if (options.json) printEvent(io, { event: "verify-result", ok: false, dir: dir!, code, message, files: [...((error as { files?: readonly string[] }).files ?? [])], details });
      io.err(`${usage ? "error" : "verification failed"} [${code}]: ${terminalSafe(message)}`);
      for (const d of details) io.err(`  ${terminalSafe(d)}`);
      return usage ? EXIT.usage : EXIT.failed;
    }
  },
};

async function verifyDirectory(dir: string, options: VerifyFlags, io: CliIo): Promise<number> {
  const { verifyModel } = await import("../../signing/verify.js");
  const { trustFromFlags } = await import("../../signing/trust-store.js");
  // The trust file's roots (with their pinned identities) and the ones named on the command line.
  const { keys, certificateRoots: roots, notes } = await trustFromFlags(options, io.root);
  if (!options.json) for (const note of notes) io.err(`note: ${note}`);
  const provenance = options.provenance === false ? "skip" : options.requireProvenance ? "require" : "auto";
  const result = await verifyModel(dir, {
    trustedKeys: keys,
    provenance,
    allowExtraFiles: options.ignoreUnsignedFiles ?? false,
    ignorePaths: options.ignorePath ?? [],
    digestCache: options.digestCache ?? false,
    ...(roots.length > 0 ? { certificateRoots: roots } : {}),
    ...(options.signature ? { signaturePath: options.signature } : {}),
    ...(typeof options.provenance === "string" ? { provenancePath: options.provenance } : {}),
    ...(options.allowedBuilder ? { allowedBuilders: options.allowedBuilder } : {}),
    ...(options.allowedSource ? { allowedSources: options.allowedSource } : {}),
    ...(options.maxAgeDays !== undefined ? { maxAgeDays: options.maxAgeDays } : {}),
    ...(options.modelId !== undefined ? { modelId: options.modelId } : {}),
  });
  if (options.json) {
    printEvent(io, { event: "verify-result", ok: true, dir, ...result });
    return EXIT.ok;
  }
  const bytes = result.files.reduce((sum, f) => sum + f.size, 0);
  io.out(`verified ${dir}: ${result.files.length} files (${formatBytes(bytes)}), root sha256 ${result.rootDigest}\n`);
  io.out(`  signed by ${result.key.id} (key ${result.key.hint.slice(0, 16)}…)${result.cachedFiles > 0 ? `; ${result.cachedFiles} digests from the cache` : ""}\n`);
  const p = result.provenance;
  if (p) io.out(`  provenance: ${p.modelId ?? "?"} from ${p.source ?? "?"}, built by ${p.builderId}${p.finishedOn ? ` at ${p.finishedOn}` : ""}\n`);
  else io.out(`  provenance: ${provenance === "skip" ? "not checked (--no-provenance)" : "none"}\n`);
  const skipped = result.skipped.filter((s) => s.why === "unsigned");
  if (skipped.length > 0) io.out(`  not covered by the signature (accepted: --ignore-unsigned-files): ${skipped.map((s) => s.name).join(", ")}\n`);
  return EXIT.ok;
}

