/**
 * Verifying a model directory offline (signing.md §8), failing closed at the first step
 * that does not hold: the signature file, the trusted key, the signature over the exact
 * statement bytes, the manifest's own consistency, the directory's files (names, then
 * sizes, then digests), and the provenance bound to the same root.
 */
import { join, resolve } from "node:path";
import { readBundleFile, parseBundle, verifyBundleSignature, type SignatureCheck } from "./bundle.js";
import type { CertificateRoot } from "./certificates.js";
import { displayPath } from "../core/errors.js";
import { escapeForTerminal } from "../core/escape.js";
import { VerifyError } from "./errors.js";
import { digestFiles, SMALL_FILE_BYTES } from "./digests.js";
import { lstat } from "node:fs/promises";
import { DEFAULT_IGNORE_PATHS, parseOmsStatement, PROVENANCE_FILE, SIGNATURE_FILE, SIGNATURE_FILES, SUMS_FILE, type OmsManifest } from "./oms.js";
import { checkProvenance, type ProvenancePolicy, type ProvenanceSummary } from "./provenance.js";
import { parseTrustedKeys, type TrustedKey, type TrustedKeyEntry } from "./trust.js";
import { listModelFiles, type ListedFile } from "./walk.js";
import type { DigestCache } from "../core/digest-cache.js";
import { compareUtf8 } from "./paths.js";

export interface VerifyOptions {
  /** The consumer's pinned keys: parsed (loadTrustedKeys) or as plain entries. */
  trustedKeys: readonly TrustedKey[] | readonly TrustedKeyEntry[];
  /** Root certificates for bundles signed with the certificate method: PEM text, or trust-file roots (loadTrustStore) with pinned signer identities. */
  certificateRoots?: readonly CertificateRoot[];
  /** Default: <dir>/model.sig. A published manifest's copy works too. */
  signaturePath?: string;
  /** Default: <dir>/provenance.sigstore.json (or beside signaturePath). */
  provenancePath?: string;
  /**
   * "auto" (default): checked when present, required when a policy needs it (allowed
   * builders/sources, model id, max age); "require"; "skip".
   */
  provenance?: "auto" | "require" | "skip";
  /** More paths to ignore, on top of the defaults and those recorded in the signature. */
  ignorePaths?: readonly string[];
  /** Accept files the signature does not list (model_signing's --ignore-unsigned-files). */
  allowExtraFiles?: boolean;
  allowedBuilders?: readonly string[];
  allowedSources?: readonly string[];
  modelId?: string;
  maxAgeDays?: number;
  /** The clock for key validity and age checks (default: now). */
  now?: Date;
  /** Reuse digests of unchanged files (keyed by device, inode, size, mtime, ctime). Off by default. */
  digestCache?: boolean | { dir?: string; racyWindowMs?: number } | DigestCache;
  signal?: AbortSignal;
}

export interface VerifiedFile {
  name: string;
  size: number;
  digest: string;
}

export interface VerifyResult {
  rootDigest: string;
  subjectName: string;
  key: SignatureCheck["key"];
  files: VerifiedFile[];
  /** Files in the directory that were not checked, and why (ignored or allowed extra). */
  skipped: { name: string; why: "ignored" | "unsigned" }[];
  provenance?: ProvenanceSummary;
  /** Files whose digest came from the cache (not re-read). */
  cachedFiles: number;
}

export async function verifyModel(dir: string, options: VerifyOptions): Promise<VerifyResult> {
  const absolute = resolve(dir);
  const shownDir = displayPath(dir);
  const now = options.now ?? new Date();
  const trustedKeys = await normalizeTrust(options.trustedKeys);
  if (trustedKeys.length === 0 && (options.certificateRoots ?? []).length === 0) {
    throw new VerifyError("E_TRUST_CONFIG", "no trusted keys and no certificate roots: nothing could verify", {
      details: ["Pass the publisher's public key (a trust file such as configs/trusted-keys.yaml, or trustedKeys in the library)."],
    });
  }
  const signaturePath = options.signaturePath ? resolve(options.signaturePath) : join(absolute, SIGNATURE_FILE);
  const shownSignature = displayPath(signaturePath);

  // 1-4: the bundle, the key, the signature; 5-6: the statement those bytes are.
  const bundle = parseBundle(await readBundleFile(signaturePath), shownSignature);
  const trust = { trustedKeys, now, ...(options.certificateRoots ? { certificateRoots: options.certificateRoots } : {}) };
  const checked = await verifyBundleSignature(bundle, trust);
  const manifest = parseOmsStatement(checked.statement, shownSignature);

  // 7: the directory holds exactly the signed files.
  const ignorePaths = [...DEFAULT_IGNORE_PATHS, ...manifest.ignorePaths, ...SIGNATURE_FILES, ...(options.ignorePaths ?? [])];
  const { files, irregular, ignored } = await listModelFiles(absolute, ignorePaths, { sizes: false, ...(options.signal ? { signal: options.signal } : {}) });
  const badEntry = irregular.find((i) => i.kind !== "empty-directory");
  if (badEntry) {
    throw new VerifyError("E_NOT_REGULAR_FILE", `${displayPath(join(dir, badEntry.name))} ${badEntry.why}; a signed model directory holds regular files only`, {
      files: irregular.map((i) => i.name),
      details: ["Links are never followed: copy the real file in, or verify the directory the link points into."],
    });
  }
  const { paths, missing, extra } = pairWithFiles(manifest.resources, files);
  if (missing.length > 0) {
    throw new VerifyError("E_MISSING_FILE", `${shownDir}: ${missing.length} signed file${missing.length > 1 ? "s are" : " is"} missing: ${showNames(missing)}`, {
      files: missing,
      details: extra.length > 0 ? [`Unsigned files present instead: ${showNames(extra)} (renamed?)`, ...signingInProgress(extra)] : [],
    });
  }
  if (extra.length > 0 && !options.allowExtraFiles) {
    throw new VerifyError("E_EXTRA_FILE", `${shownDir}: ${extra.length} file${extra.length > 1 ? "s are" : " is"} not covered by the signature: ${showNames(extra)}`, {
      files: extra,
      details: [...signingInProgress(extra), "Remove them, or accept unsigned files explicitly (--ignore-unsigned-files / allowExtraFiles)."],
    });
  }

  // 8: sizes first, then digests. A large file's size comes from stat, before reading a byte of
  // it; a small one's from its single read (a stat would cost as much as the read).
  const large = manifest.resources.flatMap((r, i) => (r.size === undefined || r.size > SMALL_FILE_BYTES ? [{ resource: r, path: paths[i]! }] : []));
  const sizes = await Promise.all(large.map(({ path }) => sizeOf(path).catch((error: unknown) => Promise.reject(inResourceTerms(error, dir, files)))));
  checkSizes(large.map((l) => l.resource), (_, i) => sizes[i]!, dir);
  const cache = await openCache(options.digestCache);
  const targets = manifest.resources.map((r, i) => (r.size !== undefined ? { path: paths[i]!, size: r.size } : { path: paths[i]! }));
  const digests = await digestFiles(targets, { noFollow: true, ...(cache ? { cache } : {}), ...(options.signal ? { signal: options.signal } : {}) }).catch((error: unknown) => {
    throw inResourceTerms(error, dir, files);
  });
  await cache?.save();
  checkSizes(manifest.resources, (_, i) => digests[i]!.size, dir);
  const mismatched: { name: string; expected: string; actual: string }[] = [];
  for (const [i, r] of manifest.resources.entries()) if (digests[i]!.digest !== r.digest) mismatched.push({ name: r.name, expected: r.digest, actual: digests[i]!.digest });
  if (mismatched.length > 0) {
    const first = mismatched[0]!;
    throw new VerifyError("E_DIGEST_MISMATCH", `${displayPath(join(dir, first.name))} does not match its signature: sha256 ${first.actual}, signed ${first.expected}${mismatched.length > 1 ? ` (and ${mismatched.length - 1} more)` : ""}`, {
      files: mismatched.map((m) => m.name),
      details: mismatched.slice(1).map((m) => `${escapeForTerminal(m.name)}: sha256 ${m.actual}, signed ${m.expected}`),
    });
  }

  // 9: provenance, bound to the same root and key.
  const provenance = await verifyProvenance(absolute, signaturePath, manifest, checked.key.id, trustedKeys, now, options);
  const skipped = [
    ...ignored.filter((name) => !isListed(manifest.resources, name)).map((name) => ({ name, why: "ignored" as const })),
    ...extra.map((name) => ({ name, why: "unsigned" as const })),
  ];
  return {
    rootDigest: manifest.rootDigest,
    subjectName: manifest.subjectName,
    key: checked.key,
    files: manifest.resources.map((r, i) => ({ name: r.name, size: digests[i]!.size, digest: r.digest })),
    skipped,
    ...(provenance ? { provenance } : {}),
    cachedFiles: digests.reduce((n, d) => (d.cached ? n + 1 : n), 0),
  };
}

/**
 * The signed resources against the walked files, both sorted by UTF-8 name (the manifest's
 * order is checked when it is parsed, the walk sorts): one merge pass, where maps of 20,000
 * names cost more than the pairing. `paths[i]` is resource i's file, when present.
 */
function pairWithFiles(resources: readonly OmsManifest["resources"][number][], files: readonly ListedFile[]): { paths: (string | undefined)[]; missing: string[]; extra: string[] } {
  const paths = new Array<string | undefined>(resources.length);
  const missing: string[] = [];
  const extra: string[] = [];
  let f = 0;
  for (let r = 0; r < resources.length; r++) {
    const name = resources[r]!.name;
    let order = 1;
    while (f < files.length && (order = compareUtf8(files[f]!.name, name)) < 0) extra.push(files[f++]!.name);
    if (f < files.length && order === 0) paths[r] = files[f++]!.path;
    else missing.push(name);
  }
  while (f < files.length) extra.push(files[f++]!.name);
  return { paths, missing, extra };
}

/** Whether the sorted resources list `name` (binary search). */
function isListed(resources: readonly OmsManifest["resources"][number][], name: string): boolean {
  let low = 0;
  let high = resources.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const order = compareUtf8(resources[middle]!.name, name);
    if (order === 0) return true;
    if (order < 0) low = middle + 1;
    else high = middle - 1;
  }
  return false;
}

/** E_DIGEST_MISMATCH for the first file whose size is not the signed size. */
function checkSizes(resources: readonly OmsManifest["resources"][number][], actual: (resource: OmsManifest["resources"][number], index: number) => number, dir: string): void {
  const differ = resources.filter((r, i) => r.size !== undefined && actual(r, i) !== r.size);
  if (differ.length === 0) return;
  const first = differ[0]!;
  throw new VerifyError("E_DIGEST_MISMATCH", `${displayPath(join(dir, first.name))} is ${actual(first, resources.indexOf(first))} bytes; the signed file is ${first.size} bytes${differ.length > 1 ? ` (and ${differ.length - 1} more files differ)` : ""}`, {
    files: differ.map((r) => r.name),
  });
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await lstat(path)).size;
  } catch (error) {
    throw new VerifyError((error as NodeJS.ErrnoException).code === "ENOENT" ? "E_MISSING_FILE" : "E_IO", `cannot inspect ${displayPath(path)}: ${(error as NodeJS.ErrnoException).code}`, { cause: error, files: [path] });
  }
}

/** Names for a message: escaped (a name is attacker-controlled text), at most 20 of them. */
function showNames(names: readonly string[]): string {
  const shown = names.slice(0, 20).map(escapeForTerminal).join(", ");
  return names.length > 20 ? `${shown} and ${names.length - 20} more` : shown;
}

/** atomicWriteFile's temporaries of the signature files: a signer is at work, or was killed mid-write. */
const SIGNING_TEMPORARY = new RegExp(`^(${[SUMS_FILE, ...SIGNATURE_FILES].map((n) => n.replace(/\./g, "\\.")).join("|")})\\.tmp-\\d+-[0-9a-f]{8}$`);

function signingInProgress(extra: readonly string[]): string[] {
  return extra.some((name) => SIGNING_TEMPORARY.test(name))
    ? ["A file named like a signing run's temporary is present: is the directory being re-signed? Verify again once signing has finished (a killed signer's temporaries can be deleted)."]
    : [];
}

/** A hashing failure names the file by its path: say it by its signed name, and what it means for a verification. */
function inResourceTerms(error: unknown, dir: string, files: readonly ListedFile[]): unknown {
  if (!(error instanceof VerifyError) || error.files.length === 0) return error;
  const file = files.find((f) => f.path === error.files[0]);
  if (!file) return error;
  const shown = displayPath(join(dir, file.name));
  if (error.code === "E_MISSING_FILE") {
    return new VerifyError("E_MISSING_FILE", `${shown} vanished while the directory was being verified: is it being re-signed or written to? Verify again once that has finished.`, { cause: error, files: [file.name] });
  }
  return new VerifyError(error.code, `${shown}: ${error.message}`, { cause: error, files: [file.name], details: error.details });
}

async function verifyProvenance(
  dir: string,
  signaturePath: string,
  manifest: OmsManifest,
  keyId: string,
  trustedKeys: readonly TrustedKey[],
  now: Date,
  options: VerifyOptions,
): Promise<ProvenanceSummary | undefined> {
  const key = trustedKeys.find((k) => k.id === keyId);
  // The caller's lists and the key's lists are separate gates: both must pass (a caller cannot widen a key's restriction).
  const policy: ProvenancePolicy = {
    ...(options.allowedBuilders ? { allowedBuilders: options.allowedBuilders } : {}),
    ...(options.allowedSources ? { allowedSources: options.allowedSources } : {}),
    ...(options.modelId !== undefined ? { modelId: options.modelId } : {}),
    ...(options.maxAgeDays !== undefined ? { maxAgeMs: options.maxAgeDays * 86_400_000 } : {}),
  };
  const keyPolicy: ProvenancePolicy = {
    ...(key?.allowedBuilders ? { allowedBuilders: key.allowedBuilders } : {}),
    ...(key?.allowedSources ? { allowedSources: key.allowedSources } : {}),
  };
  const mode = options.provenance ?? "auto";
  if (mode === "skip") return undefined;
  const needed = mode === "require" || Object.keys(policy).length + Object.keys(keyPolicy).length > 0;
  const file = options.provenancePath ? resolve(options.provenancePath) : options.signaturePath ? join(resolve(signaturePath, ".."), PROVENANCE_FILE) : join(dir, PROVENANCE_FILE);
  let bytes: Buffer;
  try {
    bytes = await readBundleFile(file, "provenance");
  } catch (error) {
    if (error instanceof VerifyError && error.code === "E_NO_SIGNATURE") {
      if (!needed) return undefined;
      throw new VerifyError("E_PROVENANCE_MISMATCH", `no provenance at ${file}, and the verification policy needs one (${mode === "require" ? "provenance required" : [...Object.keys(policy), ...Object.keys(keyPolicy).map((k) => `key ${keyId} ${k}`)].join(", ")})`);
    }
    throw error;
  }
  const bundle = parseBundle(bytes, file);
  const checked = await verifyBundleSignature(bundle, { trustedKeys, now, ...(options.certificateRoots ? { certificateRoots: options.certificateRoots } : {}) });
  if (checked.key.id !== keyId) {
    throw new VerifyError("E_PROVENANCE_MISMATCH", `${file} is signed by key ${checked.key.id}, the model by ${keyId}: they are not one release`);
  }
  const summary = checkProvenance(checked.statement, manifest.rootDigest, policy, now, file);
  if (Object.keys(keyPolicy).length > 0) checkProvenance(checked.statement, manifest.rootDigest, keyPolicy, now, `${file} (restrictions of key ${keyId})`);
  return summary;
}

async function normalizeTrust(keys: VerifyOptions["trustedKeys"]): Promise<TrustedKey[]> {
  if (!Array.isArray(keys)) throw new VerifyError("E_TRUST_CONFIG", "trustedKeys must be a list of keys");
  if (!keys.every((k) => typeof (k as TrustedKey).hint === "string" && typeof (k as TrustedKey).publicKey === "object")) return parseTrustedKeys(keys as TrustedKeyEntry[], "trustedKeys option");
  // Parsed keys merged from several places: the same key twice would make the outcome depend on the order.
  const seen = new Map<string, TrustedKey>();
  for (const key of keys as TrustedKey[]) {
    const twin = seen.get(key.hint);
    if (twin) throw new VerifyError("E_TRUST_CONFIG", `the trusted keys list one key twice: "${twin.id}" (${twin.origin}) and "${key.id}" (${key.origin}); list each key once, with one validity and one revocation state`);
    seen.set(key.hint, key);
  }
  return keys as TrustedKey[];
}

async function openCache(option: VerifyOptions["digestCache"]): Promise<DigestCache | undefined> {
  if (!option) return undefined;
  const { DigestCache } = await import("../core/digest-cache.js");
  if (option instanceof DigestCache) return option;
  return option === true ? DigestCache.open() : DigestCache.open(option.dir, option.racyWindowMs === undefined ? {} : { racyWindowMs: option.racyWindowMs });
}

export interface ManifestComparison {
  /** True when nothing differs. */
  matches: boolean;
  rootDigest: string;
  /** Whether the manifest's signature was checked (trusted keys given). */
  signatureVerified: boolean;
  files: { added: string[]; removed: string[]; modified: { name: string; expected: string; actual: string }[] };
  /** The policy in use against the signed policy file, when a policy digest is given. */
  policy?: { file: string; expected: string | null; actual: string; changed: boolean };
}

/**
 * What changed since signing, for drift reports: files added, removed or modified, and the
 * policy in use (its sha256, `policyHash`) against the signed `policyFile`. Does not throw
 * on differences; it throws only when the manifest cannot be read (or, with trusted keys,
 * does not verify).
 */
export async function compareToManifest(
  dir: string,
  policyHash?: string,
  options: Pick<VerifyOptions, "signaturePath" | "certificateRoots" | "ignorePaths" | "digestCache" | "now"> & { trustedKeys?: VerifyOptions["trustedKeys"]; policyFile?: string } = {},
): Promise<ManifestComparison> {
  const absolute = resolve(dir);
  const signaturePath = options.signaturePath ? resolve(options.signaturePath) : join(absolute, SIGNATURE_FILE);
  const bundle = parseBundle(await readBundleFile(signaturePath), signaturePath);
  const trust = options.trustedKeys && {
    trustedKeys: await normalizeTrust(options.trustedKeys),
    now: options.now ?? new Date(),
    ...(options.certificateRoots ? { certificateRoots: options.certificateRoots } : {}),
  };
  const statement = trust ? (await verifyBundleSignature(bundle, trust)).statement : bundle.payload;
  const manifest = parseOmsStatement(statement, signaturePath);
  const ignorePaths = [...DEFAULT_IGNORE_PATHS, ...manifest.ignorePaths, ...SIGNATURE_FILES, ...(options.ignorePaths ?? [])];
  const { files } = await listModelFiles(absolute, ignorePaths);
  const present = new Map(files.map((f) => [f.name, f]));
  const listed = new Map(manifest.resources.map((r) => [r.name, r]));
  const removed = manifest.resources.filter((r) => !present.has(r.name)).map((r) => r.name);
  const added = files.filter((f) => !listed.has(f.name)).map((f) => f.name);
  const common = manifest.resources.filter((r) => present.has(r.name));
  const cache = await openCache(options.digestCache);
  const digests = await digestFiles(common.map((r) => present.get(r.name)!), { noFollow: true, ...(cache ? { cache } : {}) });
  await cache?.save();
  const modified = common.flatMap((r, i) => (digests[i]!.digest === r.digest ? [] : [{ name: r.name, expected: r.digest, actual: digests[i]!.digest }]));
  modified.sort((a, b) => compareUtf8(a.name, b.name));
  const result: ManifestComparison = {
    matches: added.length + removed.length + modified.length === 0,
    rootDigest: manifest.rootDigest,
    signatureVerified: Boolean(options.trustedKeys),
    files: { added, removed, modified },
  };
  if (policyHash !== undefined) {
    const file = options.policyFile ?? "policy.yaml";
    const expected = listed.get(file)?.digest ?? null;
    result.policy = { file, expected, actual: policyHash, changed: expected !== policyHash };
    if (result.policy.changed) result.matches = false;
  }
  return result;
}
