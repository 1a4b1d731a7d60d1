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
import { digestFiles, type DigestOptions } from "./digests.js";
import { keyHint } from "./keys.js";
import { DEFAULT_IGNORE_PATHS, PROVENANCE_FILE, serializeOmsStatement, SIGNATURE_FILE, SIGNATURE_FILES, SUMS_FILE, rootDigest, type Resource } from "./oms.js";
import { compareUtf8, isIgnored } from "./paths.js";
import { serializeProvenance, type ProvenanceInput } from "./provenance.js";
import { listModelFiles, type ListedFile } from "./walk.js";
import { displayPath } from "../core/errors.js";
import { escapeForTerminal, hasUnsafeCharacters } from "../core/escape.js";
import { isProcessAlive } from "../core/process.js";
import { rm, stat } from "node:fs/promises";

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
  const shownDir = displayPath(dir);
  const baseIgnores = signingIgnorePaths([], options.ignorePaths);
  // No sizes from the walk: hashing reads them (one lstat less per file).
  const listing = await listModelFiles(absolute, baseIgnores, { sizes: false, ...(options.signal ? { signal: options.signal } : {}) });
  // The GGUFs name their runtime-written indexes, which are then ignored too.
  const ignorePaths = signingIgnorePaths(listing.files.map((f) => f.name), options.ignorePaths);
  const irregular = listing.irregular.filter((i) => !isIgnored(i.name, ignorePaths));
  const unsafe = [...listing.files.map((f) => f.name).filter((name) => hasUnsafeCharacters(name)), ...irregular.filter((i) => i.rawName || hasUnsafeCharacters(i.name)).map((i) => i.rawName ?? i.name)];
  if (unsafe.length > 0) {
    throw new PipelineError("E_SIGN_UNSAFE_NAME", `cannot sign ${shownDir}: ${unsafe.length} file name${unsafe.length > 1 ? "s hold" : " holds"} control characters or bytes that are not UTF-8: ${unsafe.slice(0, 10).map((n) => escapeForTerminal(n)).join(", ")}`, {
      details: ["Such a name can rewrite the terminal that shows it (escape sequences) or hide which file is meant. Rename the files (shown escaped above) and sign again."],
    });
  }
  if (irregular.length > 0) {
    throw new PipelineError("E_SIGN_INPUT", `cannot sign ${shownDir}: ${irregular.map((i) => `${escapeForTerminal(i.name)} ${i.why}`).join("; ")}`, {
      details: ["A signature covers regular files only: replace links with the files, remove special files and empty folders."],
    });
  }
  const candidates = listing.files.filter((f) => !isIgnored(f.name, ignorePaths));
  const files = await dropTemporaries(candidates, shownDir);
  const content = files.filter((f) => f.name !== SUMS_FILE);
  if (content.length === 0) throw new PipelineError("E_SIGN_INPUT", `cannot sign ${shownDir}: it has no files to sign`);
  // Large files the pipeline just wrote and hashed (the model) come from its in-process memo.
  const digests = await digestFiles(content, { hash: async (path) => ({ digest: await sha256File(path), size: (await stat(path)).size }), ...options, noFollow: true }).catch((error: unknown) => {
    throw signingHashError(error, shownDir);
  });
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

/** atomicWriteFile's temporaries: `<name>.tmp-<pid>-<8 hex>`. */
const TEMPORARY = /\.tmp-(\d+)-[0-9a-f]{8}$/;

/**
 * Temporaries are never signed: a killed writer's (its process is gone) are removed, and one
 * whose writer still runs means another process is writing (re-signing?) this directory now.
 */
async function dropTemporaries(files: readonly ListedFile[], shownDir: string): Promise<ListedFile[]> {
  const kept: ListedFile[] = [];
  for (const file of files) {
    const writer = TEMPORARY.exec(file.name);
    if (!writer) {
      kept.push(file);
      continue;
    }
    const pid = Number(writer[1]);
    if (pid !== process.pid && isProcessAlive(pid)) {
      throw new PipelineError("E_SIGN_INPUT", `cannot sign ${shownDir}: process ${pid} is writing ${escapeForTerminal(file.name)} in it right now (another signing run?)`, {
        details: ["Wait for that process to finish, then sign again."],
      });
    }
    await rm(file.path, { force: true });
  }
  return kept;
}

/** A file that vanished while it was hashed: the directory is being changed under us. */
function signingHashError(error: unknown, shownDir: string): unknown {
  if (error instanceof PipelineError && error.code === "E_MISSING_FILE") {
    return new PipelineError("E_SIGN_INPUT", `cannot sign ${shownDir}: ${error.message}`, { cause: error });
  }
  return error;
}
