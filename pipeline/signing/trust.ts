/**
 * The consumer's trust store (configs/trusted-keys.yaml): the only place a verifying key
 * comes from. Key material inside a bundle is only ever used to look a key up here.
 *
 * Validated by hand rather than with zod: the verify entry point is meant to load in
 * other repositories with node built-ins only, and the schema is six fields.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { X509Certificate, type KeyObject } from "node:crypto";
import { describeKey, keyHint, parsePublicKeyPem, spkiDer } from "./keys.js";
import { VerifyError } from "./errors.js";

export interface TrustedKey {
  id: string;
  publicKey: KeyObject;
  /** hex sha256 of the PEM public key: what `verificationMaterial.publicKey.hint` carries. */
  hint: string;
  notBefore?: Date;
  notAfter?: Date;
  revoked: boolean;
  /** Provenance `runDetails.builder.id` values this key may sign for (any when absent). */
  allowedBuilders?: string[];
  /** Source repositories (`externalParameters.source.uri` or Hub repo ids) this key may sign for. */
  allowedSources?: string[];
  /** Where the entry came from, for messages. */
  origin: string;
}

/** One entry as written in YAML/JSON, or passed by a library caller. */
export interface TrustedKeyEntry {
  id: string;
  /** PEM text. */
  publicKey?: string;
  /** A PEM file, relative to the trust file. */
  publicKeyFile?: string;
  notBefore?: string | Date;
  notAfter?: string | Date;
  revoked?: boolean;
  allowedBuilders?: string[];
  allowedSources?: string[];
}

/**
 * A root certificate for certificate-method bundles, with the signer identities it may
 * vouch for: without `allowedSubjects`/`allowedSans`, any leaf it issues is accepted.
 */
export interface TrustedRoot {
  id: string;
  certificate: X509Certificate;
  /** Leaf subjects accepted, as verify reports them ("CN=release-signer, O=Acme"). */
  allowedSubjects?: string[];
  /** Leaf subject alternative names accepted, one of which must be present ("email:release@acme.example", "URI:https://…"). */
  allowedSans?: string[];
  origin: string;
}

/** One root as written in the trust file. */
export interface TrustedRootEntry {
  id: string;
  /** PEM text. */
  certificate?: string;
  /** A PEM file, relative to the trust file. */
  certificateFile?: string;
  allowedSubjects?: string[];
  allowedSans?: string[];
}

/** Everything a trust file says: keys for key-method bundles, roots for certificate-method ones. */
export interface TrustStore {
  keys: TrustedKey[];
  certificateRoots: TrustedRoot[];
}

/** The fields of a key and of a root entry (configs/trusted-keys.schema.json lists the same). */
export const TRUSTED_KEY_FIELDS: readonly string[] = ["id", "publicKey", "publicKeyFile", "notBefore", "notAfter", "revoked", "allowedBuilders", "allowedSources"];
export const TRUSTED_ROOT_FIELDS: readonly string[] = ["id", "certificate", "certificateFile", "allowedSubjects", "allowedSans"];
const ENTRY_KEYS = new Set(TRUSTED_KEY_FIELDS);
const ROOT_KEYS = new Set(TRUSTED_ROOT_FIELDS);

/** `{ keys: [...] }` or a bare list, from `origin` (a file name for messages; relative key files resolve against it). */
export async function parseTrustedKeys(data: unknown, origin = "trusted keys"): Promise<TrustedKey[]> {
  const list = Array.isArray(data) ? data : data && typeof data === "object" && Array.isArray((data as { keys?: unknown }).keys) ? (data as { keys: unknown[] }).keys : null;
  if (!list) throw trustError(origin, "keys", "must be a list of keys (`keys: [{ id, publicKey, ... }]`)");
  // A misspelt top-level key would otherwise be ignored without a word.
  if (!Array.isArray(data)) for (const key of Object.keys(data as object)) if (key !== "keys" && key !== "certificateRoots") throw trustError(origin, key, "is not a known field (known: keys, certificateRoots)");
  const seen = new Set<string>();
  const byHint = new Map<string, { id: string; at: string }>();
  const keys: TrustedKey[] = [];
  for (const [index, raw] of list.entries()) {
    const at = `keys[${index}]`;
    if (!raw || typeof raw !== "object") throw trustError(origin, at, "must be a mapping with id and publicKey");
    const entry = raw as Record<string, unknown>;
    for (const key of Object.keys(entry)) if (!ENTRY_KEYS.has(key)) throw trustError(origin, `${at}.${key}`, `is not a known field (known: ${[...ENTRY_KEYS].join(", ")})`);
    if (typeof entry.id !== "string" || entry.id === "") throw trustError(origin, `${at}.id`, "must be a non-empty string");
    if (seen.has(entry.id)) throw trustError(origin, `${at}.id`, `"${entry.id}" is listed twice`);
    seen.add(entry.id);
    let pem: string;
    if (typeof entry.publicKey === "string") pem = entry.publicKey;
    else if (typeof entry.publicKeyFile === "string") {
      const file = resolve(dirname(resolve(origin)), entry.publicKeyFile);
      pem = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
        throw trustError(origin, `${at}.publicKeyFile`, `cannot be read (${file}: ${error.code ?? error.message})`);
      });
    } else throw trustError(origin, `${at}.publicKey`, "is required: the PEM public key (or publicKeyFile: a path to it)");
    let publicKey: KeyObject;
    try {
      publicKey = parsePublicKeyPem(pem);
    } catch {
      throw trustError(origin, `${at}.publicKey`, "is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    }
    const info = describeKey(publicKey);
    if ("unsupported" in info) throw trustError(origin, `${at}.publicKey`, `is ${info.unsupported}`);
    const key: TrustedKey = { id: entry.id, publicKey, hint: keyHint(publicKey), revoked: false, origin };
    // The same key twice (say once revoked, once not) would make the outcome depend on the order.
    const twin = byHint.get(key.hint);
    if (twin) throw trustError(origin, `${at}.publicKey`, `(id "${entry.id}") is the same key as ${twin.at} (id "${twin.id}"): list each key once, with one validity and one revocation state`);
    byHint.set(key.hint, { id: entry.id, at });
    if (entry.revoked !== undefined) {
      if (typeof entry.revoked !== "boolean") throw trustError(origin, `${at}.revoked`, "must be true or false");
      key.revoked = entry.revoked;
    }
    for (const field of ["notBefore", "notAfter"] as const) {
      const value = entry[field];
      if (value === undefined || value === null) continue;
      const date = value instanceof Date ? value : typeof value === "string" ? new Date(value) : new Date(NaN);
      if (Number.isNaN(date.getTime())) throw trustError(origin, `${at}.${field}`, "must be an RFC 3339 date, e.g. 2027-01-01T00:00:00Z");
      key[field] = date;
    }
    for (const field of ["allowedBuilders", "allowedSources"] as const) {
      const value = entry[field];
      if (value === undefined) continue;
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) throw trustError(origin, `${at}.${field}`, "must be a list of strings");
      key[field] = value as string[];
    }
    keys.push(key);
  }
  return keys;
}

/** `certificateRoots: [...]` of a trust file (absent: none). */
export async function parseTrustedRoots(data: unknown, origin = "trusted keys"): Promise<TrustedRoot[]> {
  const value = data && typeof data === "object" && !Array.isArray(data) ? (data as { certificateRoots?: unknown }).certificateRoots : undefined;
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw trustError(origin, "certificateRoots", "must be a list of roots (`certificateRoots: [{ id, certificate, allowedSubjects, allowedSans }]`)");
  const roots: TrustedRoot[] = [];
  const seen = new Map<string, string>();
  for (const [index, raw] of value.entries()) {
    const at = `certificateRoots[${index}]`;
    if (!raw || typeof raw !== "object") throw trustError(origin, at, "must be a mapping with id and certificate");
    const entry = raw as Record<string, unknown>;
    for (const key of Object.keys(entry)) if (!ROOT_KEYS.has(key)) throw trustError(origin, `${at}.${key}`, `is not a known field (known: ${[...ROOT_KEYS].join(", ")})`);
    if (typeof entry.id !== "string" || entry.id === "") throw trustError(origin, `${at}.id`, "must be a non-empty string");
    if ([...seen.values()].includes(entry.id)) throw trustError(origin, `${at}.id`, `"${entry.id}" is listed twice`);
    let pem: string;
    if (typeof entry.certificate === "string") pem = entry.certificate;
    else if (typeof entry.certificateFile === "string") {
      const file = resolve(dirname(resolve(origin)), entry.certificateFile);
      pem = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
        throw trustError(origin, `${at}.certificateFile`, `cannot be read (${file}: ${error.code ?? error.message})`);
      });
    } else throw trustError(origin, `${at}.certificate`, "is required: the PEM root certificate (or certificateFile: a path to it)");
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem);
    } catch {
      throw trustError(origin, `${at}.certificate`, "is not a PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    if (!certificate.ca) throw trustError(origin, `${at}.certificate`, `("${certificate.subject.replace(/\n/g, ", ")}") is not a CA certificate: a root must be able to issue`);
    const fingerprint = certificate.fingerprint256;
    if (seen.has(fingerprint)) throw trustError(origin, `${at}.certificate`, `(id "${entry.id}") is the same certificate as root "${seen.get(fingerprint)}": list each root once`);
    seen.set(fingerprint, entry.id);
    const root: TrustedRoot = { id: entry.id, certificate, origin };
    for (const field of ["allowedSubjects", "allowedSans"] as const) {
      const list = entry[field];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.length === 0 || list.some((v) => typeof v !== "string" || v === "")) throw trustError(origin, `${at}.${field}`, "must be a non-empty list of strings");
      root[field] = list as string[];
    }
    roots.push(root);
  }
  return roots;
}

/** A trust file's keys and roots (YAML or JSON). A file that trusts nothing is a mistake: E_TRUST_CONFIG (unless `allowEmpty`). */
export async function loadTrustStore(file: string, options: { allowEmpty?: boolean } = {}): Promise<TrustStore> {
  const { data, text } = await readTrustFile(file);
  // A file of roots only has no keys: list; an empty file or mapping lists nothing.
  const keyData = data && typeof data === "object" && !Array.isArray(data) && !("keys" in data) ? { ...data, keys: [] } : (data ?? { keys: [] });
  const store = await withPositions(text, file, async () => ({ keys: await parseTrustedKeys(keyData, file), certificateRoots: await parseTrustedRoots(data, file) }));
  if (!options.allowEmpty && store.keys.length === 0 && store.certificateRoots.length === 0) {
    throw new VerifyError("E_TRUST_CONFIG", `${file} lists no keys and no certificate roots: it trusts nothing, so nothing could verify`, {
      details: ["Add the publisher's public key under keys: (format: configs/trusted-keys.yaml), or pass the right file."],
    });
  }
  return store;
}

/** configs/trusted-keys.yaml (YAML or JSON): its keys (see loadTrustStore for its certificate roots too). */
export async function loadTrustedKeys(file: string): Promise<TrustedKey[]> {
  return (await loadTrustStore(file)).keys;
}

/** A problem found in the parsed data, reported at its file:line:col (the position is looked up only after an error). */
async function withPositions<T>(text: string, file: string, parse: () => Promise<T>): Promise<T> {
  try {
    return await parse();
  } catch (error) {
    const problem = error instanceof VerifyError ? PROBLEMS.get(error) : undefined;
    const at = problem && (await position(text, problem.path));
    if (!problem || !at) throw error;
    throw new VerifyError("E_TRUST_CONFIG", `${file}:${at.line}:${at.col}: ${problem.path} ${problem.problem}`, { details: error instanceof VerifyError ? error.details : [] });
  }
}

async function readTrustFile(file: string): Promise<{ data: unknown; text: string }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new VerifyError("E_TRUST_CONFIG", `cannot read the trusted keys file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      details: ["Pass --trusted-keys <file> (see configs/trusted-keys.yaml for the format)."],
    });
  }
  // yaml loads only for YAML files: a JSON trust store needs nothing beyond node built-ins.
  let data: unknown;
  try {
    data = /\.json$/i.test(file) ? JSON.parse(text) : (await yamlModule()).parse(text);
  } catch (error) {
    throw new VerifyError("E_TRUST_CONFIG", `${file}: not valid ${/\.json$/i.test(file) ? "JSON" : "YAML"}: ${(error as Error).message.split("\n")[0]}`);
  }
  return { data, text };
}

/** yaml is CommonJS: bundled, its namespace is under `default`. */
async function yamlModule(): Promise<typeof import("yaml")> {
  const yaml = (await import("yaml")) as Partial<typeof import("yaml")> & { default?: typeof import("yaml") };
  return typeof yaml.parseDocument === "function" ? (yaml as typeof import("yaml")) : yaml.default!;
}

/**
 * Line and column of `path` ("keys[0].revoked") in the file's text (YAML, or JSON read as YAML): the key itself
 * where the path ends at one, else the nearest enclosing node. Undefined when yaml cannot be loaded.
 */
async function position(text: string, path: string): Promise<{ line: number; col: number } | undefined> {
  let yaml: typeof import("yaml");
  try {
    yaml = await yamlModule();
  } catch {
    return undefined;
  }
  const lineCounter = new yaml.LineCounter();
  const doc = yaml.parseDocument(text, { lineCounter });
  let segments: (string | number)[] = [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
  if (yaml.isSeq(doc.contents) && segments[0] === "keys") segments = segments.slice(1);
  const parent = segments.length === 1 ? doc.contents : doc.getIn(segments.slice(0, -1), true);
  let node: unknown = yaml.isMap(parent) ? parent.items.find((pair) => yaml.isScalar(pair.key) && pair.key.value === segments.at(-1))?.key : undefined;
  for (let depth = segments.length; !(node as { range?: unknown } | undefined)?.range && depth >= 0; depth--) {
    node = depth === 0 ? doc.contents : doc.getIn(segments.slice(0, depth), true);
  }
  const offset = (node as { range?: [number] } | undefined)?.range?.[0];
  return offset === undefined ? undefined : lineCounter.linePos(offset);
}

/** The bundle's key material, as the bundle states it (never trusted by itself). */
export type KeyMaterial = { hint: string } | { rawBytes: Buffer } | { certificates: Buffer[] };

export function findTrustedKey(trusted: readonly TrustedKey[], material: KeyMaterial): TrustedKey | undefined {
  if ("hint" in material) return trusted.find((k) => k.hint === material.hint.toLowerCase());
  if ("rawBytes" in material) {
    // model_signing before 1.1 wrote the PEM text as rawBytes; the bundle spec says DER.
    let der: Buffer;
    try {
      der = material.rawBytes.subarray(0, 11).toString("latin1").startsWith("-----BEGIN") ? spkiDer(parsePublicKeyPem(material.rawBytes.toString("utf8"))) : material.rawBytes;
    } catch {
      return undefined;
    }
    return trusted.find((k) => spkiDer(k.publicKey).equals(der));
  }
  return undefined;
}

/** Revoked, not yet valid or expired keys verify nothing. */
export function checkKeyValidity(key: TrustedKey, now: Date): void {
  if (key.revoked) {
    throw new VerifyError("E_KEY_REVOKED", `the signing key "${key.id}" is revoked in ${key.origin}`, {
      details: ["Signatures made with it are no longer accepted: get the model re-signed with a current key."],
    });
  }
  if (key.notBefore && now < key.notBefore) {
    throw new VerifyError("E_KEY_EXPIRED", `the signing key "${key.id}" is not valid before ${key.notBefore.toISOString()} (${key.origin})`);
  }
  if (key.notAfter && now > key.notAfter) {
    throw new VerifyError("E_KEY_EXPIRED", `the signing key "${key.id}" expired on ${key.notAfter.toISOString()} (${key.origin})`, {
      details: ["Get the model re-signed with a current key, or extend notAfter if the key is still trusted."],
    });
  }
}

/** Each trust-file error's path and problem, for loadTrustedKeys to put the line and column on. */
const PROBLEMS = new WeakMap<VerifyError, { path: string; problem: string }>();

function trustError(origin: string, path: string, problem: string): VerifyError {
  const error = new VerifyError("E_TRUST_CONFIG", `${origin}: ${path} ${problem}`);
  PROBLEMS.set(error, { path, problem });
  return error;
}
