/**
 * Signing a model directory (signing.md §1): every file is hashed, SHA256SUMS is written,
 * then model.sig (OMS v1.0) over all files including SHA256SUMS, then the SLSA provenance
 * bound to the same root. Each file is written to a temporary name and renamed, so an
 * interrupted run leaves the previous signature or none, never half of one.
 */
import type { KeyObject } from "node:crypto";
import { createHash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import { atomicWriteFile, sha256File } from "../core/files.js";
import { PipelineError } from "../core/errors.js";
import { createBundle } from "./bundle.js";
import { digestFiles, type DigestOptions } from "./hash.js";
import { keyHint } from "./keys.js";
import { DEFAULT_IGNORE_PATHS, PROVENANCE_FILE, serializeOmsStatement, SIGNATURE_FILE, SIGNATURE_FILES, SUMS_FILE, rootDigest, type Resource } from "./oms.js";
import { compareUtf8 } from "./paths.js";
import { serializeProvenance, type ProvenanceInput } from "./provenance.js";
import { listModelFiles } from "./walk.js";
import { rm } from "node:fs/promises";

/** What PowerInfer's GPU builds write next to a model at load time: never signed. */
export const GENERATED_GPUIDX_SUFFIX = ".generated.gpuidx";

export interface SignOptions extends DigestOptions {
  privateKey: KeyObject;
  /** Extra paths to leave out (relative to the directory), recorded in the signature. */
  ignorePaths?: readonly string[];
  /** Build facts for provenance.sigstore.json; without them no provenance is written (and a stale one is removed). */
  provenance?: ProvenanceInput;
  /** The statement's subject name (informational; default: the directory's name). */
  subjectName?: string;
}

export interface SignResult {
  rootDigest: string;
  resources: Resource[];
  ignorePaths: string[];
  keyHint: string;
  /** Files written, relative to the directory. */
  written: string[];
}

/** Everything excluded from a signature of `names`: defaults, signature files, runtime GPU indexes, the caller's. */
export function signingIgnorePaths(names: readonly string[], extra: readonly string[] = []): string[] {
  const generated = names.filter((n) => n.endsWith(".gguf")).map((n) => n + GENERATED_GPUIDX_SUFFIX);
  return [...new Set([...DEFAULT_IGNORE_PATHS, ...SIGNATURE_FILES, ...generated, ...extra])];
}

export function formatSha256Sums(entries: readonly { name: string; digest: string }[]): string {
  return [...entries]
    .sort((a, b) => compareUtf8(a.name, b.name))
    .map((e) => `${e.digest}  ${e.name}\n`)
    .join("");
}

export async function signModelDirectory(dir: string, options: SignOptions): Promise<SignResult> {
  const absolute = resolve(dir);
  // First pass names the GGUFs, whose runtime-written indexes are then ignored.
  const first = await listModelFiles(absolute, signingIgnorePaths([], options.ignorePaths));
  const ignorePaths = signingIgnorePaths(first.files.map((f) => f.name), options.ignorePaths);
  const { files, irregular } = await listModelFiles(absolute, ignorePaths);
  if (irregular.length > 0) {
    throw new PipelineError("E_SIGN_INPUT", `cannot sign ${dir}: ${irregular.map((i) => `${i.name} ${i.why}`).join("; ")}`, {
      details: ["A signature covers regular files only: replace links with the files, remove special files and empty folders."],
    });
  }
  const content = files.filter((f) => f.name !== SUMS_FILE);
  if (content.length === 0) throw new PipelineError("E_SIGN_INPUT", `cannot sign ${dir}: it has no files to sign`);
  // Files the pipeline just wrote and hashed (the model, bench.json) come from its in-process memo.
  const sizes = new Map(content.map((f) => [f.path, f.size]));
  const digests = await digestFiles(
    content.map((f) => f.path),
    { hash: async (path) => ({ digest: await sha256File(path), size: sizes.get(path)! }), ...options },
  );
  const hashed = content.map((f, i) => ({ name: f.name, algorithm: "sha256" as const, digest: digests[i]!.digest, size: digests[i]!.size }));

  const sums = formatSha256Sums(hashed);
  await atomicWriteFile(join(absolute, SUMS_FILE), sums);
  const resources = [...hashed, { name: SUMS_FILE, algorithm: "sha256" as const, digest: createHash("sha256").update(sums).digest("hex"), size: Buffer.byteLength(sums) }].sort((a, b) =>
    compareUtf8(a.name, b.name),
  );
  const statement = serializeOmsStatement(options.subjectName ?? basename(absolute), resources, ignorePaths);
  await atomicWriteFile(join(absolute, SIGNATURE_FILE), createBundle(statement, options.privateKey));
  const root = rootDigest(resources);
  const written = [SUMS_FILE, SIGNATURE_FILE];
  if (options.provenance) {
    const ggufs = resources.filter((r) => r.name.endsWith(".gguf"));
    await atomicWriteFile(join(absolute, PROVENANCE_FILE), createBundle(serializeProvenance(options.provenance, root, ggufs), options.privateKey));
    written.push(PROVENANCE_FILE);
  } else {
    await rm(join(absolute, PROVENANCE_FILE), { force: true });
  }
  return { rootDigest: root, resources, ignorePaths, keyHint: keyHint(options.privateKey), written };
}
