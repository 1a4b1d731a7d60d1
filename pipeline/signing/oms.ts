/**
 * OpenSSF Model Signing v1.0 statements: an in-toto Statement v1 whose single subject is
 * the ROOT digest and whose predicate lists every file with its sha256 (signing.md §2).
 * ROOT = sha256 over the raw digest bytes of the resources in name order, so a
 * per-subject verifier cannot accept a directory with files removed or renamed.
 */
import { escapeForTerminal } from "../core/escape.js";
import { createHash } from "node:crypto";
import { VerifyError } from "./errors.js";
import { compareUtf8, nameProblem } from "./paths.js";

export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0";
const LEGACY_PREDICATE_TYPE = "https://model_signing/Digests/v0.1";

/** Ignored in every model directory (OMS §6.2.1). */
export const DEFAULT_IGNORE_PATHS = [".git", ".gitattributes", ".github", ".gitignore"] as const;
/** The signature files this toolkit writes: never resources of what they sign. */
export const SIGNATURE_FILE = "model.sig";
export const PROVENANCE_FILE = "provenance.sigstore.json";
export const SSHSIG_FILE = "SHA256SUMS.sshsig";
export const SUMS_FILE = "SHA256SUMS";
export const SIGNATURE_FILES = [SIGNATURE_FILE, PROVENANCE_FILE, SSHSIG_FILE] as const;

export interface Resource {
  name: string;
  algorithm: "sha256";
  digest: string;
  /** Bytes; optional in OMS (verifiers ignore it), always written here so sizes are checked before hashes. */
  size?: number;
}

export interface OmsManifest {
  subjectName: string;
  rootDigest: string;
  resources: Resource[];
  /** As recorded in serialization.ignore_paths (v1.1.0+), else empty. */
  ignorePaths: string[];
}

export function rootDigest(resources: readonly { digest: string }[]): string {
  // One hex decode of all the digests: a Buffer and an update() per resource cost ~10 ms on 20,000 files.
  let hex = "";
  for (const r of resources) hex += r.digest;
  return createHash("sha256").update(Buffer.from(hex, "hex")).digest("hex");
}

/** The statement bytes that get signed (compact JSON: the signed bytes are what was serialized). */
export function serializeOmsStatement(subjectName: string, resources: readonly Resource[], ignorePaths: readonly string[]): Buffer {
  const sorted = [...resources].sort((a, b) => compareUtf8(a.name, b.name));
  const statement = {
    _type: STATEMENT_TYPE,
    subject: [{ name: subjectName, digest: { sha256: rootDigest(sorted) } }],
    predicateType: OMS_PREDICATE_TYPE,
    predicate: {
      resources: sorted.map((r) => ({ name: r.name, algorithm: r.algorithm, digest: r.digest, size: r.size })),
      serialization: { method: "files", hash_type: "sha256", allow_symlinks: false, ignore_paths: [...ignorePaths] },
    },
  };
  return Buffer.from(JSON.stringify(statement), "utf8");
}

const DIGEST = /^[0-9a-f]{64}$/;

/** The verified statement bytes -> the manifest, or the exact reason it cannot be trusted. */
export function parseOmsStatement(payload: Buffer, file: string): OmsManifest {
  const statement = parseJsonObject(payload, `${file}: the signed statement`);
  if (statement._type !== STATEMENT_TYPE) {
    throw new VerifyError("E_UNSUPPORTED", `${file}: the statement type is ${JSON.stringify(statement._type)}; this verifier reads in-toto ${STATEMENT_TYPE}`);
  }
  if (statement.predicateType === LEGACY_PREDICATE_TYPE) {
    throw new VerifyError("E_UNSUPPORTED", `${file}: a legacy model_signing v0.2 signature (${LEGACY_PREDICATE_TYPE}); re-sign the model with OMS v1.0`);
  }
  if (statement.predicateType !== OMS_PREDICATE_TYPE) {
    throw new VerifyError("E_UNSUPPORTED", `${file}: predicate type ${JSON.stringify(statement.predicateType)} is not supported; this verifier reads ${OMS_PREDICATE_TYPE}`);
  }
  const predicate = statement.predicate as Record<string, unknown> | undefined;
  const serialization = predicate?.serialization as Record<string, unknown> | undefined;
  if (!predicate || typeof predicate !== "object" || !serialization || typeof serialization !== "object") {
    throw new VerifyError("E_MALFORMED", `${file}: the predicate has no serialization`);
  }
  if (serialization.method === "shards") {
    throw new VerifyError("E_UNSUPPORTED", `${file}: signed with the "shards" method, which this verifier does not implement (it checks whole files: method "files")`);
  }
  if (serialization.method !== "files") throw new VerifyError("E_UNSUPPORTED", `${file}: serialization method ${JSON.stringify(serialization.method)} is not supported (only "files")`);
  if (serialization.hash_type !== "sha256") throw new VerifyError("E_UNSUPPORTED", `${file}: hash type ${JSON.stringify(serialization.hash_type)} is not supported (only sha256)`);
  if (serialization.allow_symlinks !== false) throw new VerifyError("E_UNSUPPORTED", `${file}: signed with allow_symlinks=${JSON.stringify(serialization.allow_symlinks)}; only signatures that forbid symlinks are accepted`);

  const ignorePaths = serialization.ignore_paths ?? [];
  if (!Array.isArray(ignorePaths) || ignorePaths.some((p) => typeof p !== "string")) throw new VerifyError("E_MANIFEST_INVALID", `${file}: serialization.ignore_paths is not a list of paths`);
  for (const p of ignorePaths as string[]) {
    const problem = nameProblem(p);
    if (problem) throw new VerifyError("E_MANIFEST_INVALID", `${file}: ignore path "${escapeForTerminal(p)}" ${problem}`);
  }

  const subjects = statement.subject;
  if (!Array.isArray(subjects) || subjects.length !== 1) {
    throw new VerifyError("E_MANIFEST_INVALID", `${file}: an OMS statement has exactly one subject (the root digest); this one has ${Array.isArray(subjects) ? subjects.length : "none"}`);
  }
  const subject = subjects[0] as { name?: unknown; digest?: { sha256?: unknown } };
  const root = subject?.digest?.sha256;
  if (typeof root !== "string" || !DIGEST.test(root)) throw new VerifyError("E_MANIFEST_INVALID", `${file}: the subject has no sha256 root digest`);

  const raw = predicate.resources;
  if (!Array.isArray(raw) || raw.length === 0) throw new VerifyError("E_MANIFEST_INVALID", `${file}: the manifest lists no files`);
  const resources: Resource[] = [];
  let previous: Resource | undefined;
  for (let i = 0; i < raw.length; i++) {
    const entry = raw[i] as Record<string, unknown>;
    const problem = nameProblem(entry?.name);
    if (problem) throw new VerifyError("E_MANIFEST_INVALID", `${file}: resource ${i} name ${typeof entry?.name === "string" ? `"${escapeForTerminal(entry.name)}"` : JSON.stringify(entry?.name)} ${problem}`);
    const name = entry.name as string;
    if (entry.algorithm !== "sha256") throw new VerifyError("E_MANIFEST_INVALID", `${file}: ${escapeForTerminal(name)}: algorithm ${JSON.stringify(entry.algorithm)} (only sha256)`);
    if (typeof entry.digest !== "string" || !DIGEST.test(entry.digest)) throw new VerifyError("E_MANIFEST_INVALID", `${file}: ${escapeForTerminal(name)}: the digest is not 64 lowercase hex digits`);
    const size = entry.size;
    if (size !== undefined && (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)) throw new VerifyError("E_MANIFEST_INVALID", `${file}: ${escapeForTerminal(name)}: size ${JSON.stringify(size)} is not a byte count`);
    if (previous) {
      const order = compareUtf8(previous.name, name);
      if (order === 0) throw new VerifyError("E_MANIFEST_INVALID", `${file}: ${escapeForTerminal(name)} is listed twice`, { files: [name] });
      if (order > 0) throw new VerifyError("E_MANIFEST_INVALID", `${file}: resources are not sorted by name (${escapeForTerminal(previous.name)} before ${escapeForTerminal(name)})`);
    }
    previous = typeof size === "number" ? { name, algorithm: "sha256", digest: entry.digest, size } : { name, algorithm: "sha256", digest: entry.digest };
    resources.push(previous);
  }
  const recomputed = rootDigest(resources);
  if (recomputed !== root) {
    throw new VerifyError("E_MANIFEST_INVALID", `${file}: the manifest is inconsistent: its files hash to root ${recomputed}, the subject says ${root}`);
  }
  return { subjectName: typeof subject.name === "string" ? subject.name : "", rootDigest: root, resources, ignorePaths: ignorePaths as string[] };
}

export function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new VerifyError("E_MALFORMED", `${what} is not valid JSON: ${(error as Error).message}`);
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new VerifyError("E_MALFORMED", `${what} is not a JSON object`);
  return value as Record<string, unknown>;
}
