/**
 * The trust store a workspace command uses: the given file, else the workspace's
 * configs/trusted-keys.yaml plus this machine's development key (said in a note).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PipelineError } from "../core/errors.js";
import type { CertificateRoot } from "./certificates.js";
import { keyHint, parsePublicKeyPem } from "./keys.js";
import { loadTrustStore, parseTrustedKeys, type TrustedKey, type TrustedRoot } from "./trust.js";

export const TRUSTED_KEYS_FILE = join("configs", "trusted-keys.yaml");
export const DEVELOPMENT_PUBLIC_KEY = join("build", "keys", "development.pub");

/**
 * `keys` for key-method bundles; `certificateRoots` (with their pinned signer identities) for
 * certificate-method ones: the CLI passes both to verifyModel, the roots ahead of any given
 * with --certificate-root.
 */
export async function workspaceTrustStore(
  root: string,
  file?: string,
  /** Roots come from elsewhere (--certificate-root): a workspace with no keys is then no error. */
  options: { rootsGiven?: boolean } = {},
): Promise<{ keys: TrustedKey[]; certificateRoots: TrustedRoot[]; notes: string[] }> {
  if (file) return { ...(await loadTrustStore(file)), notes: [] };
  const notes: string[] = [];
  const configured = join(root, TRUSTED_KEYS_FILE);
  const store = existsSync(configured) ? await loadTrustStore(configured, { allowEmpty: true }) : { keys: [], certificateRoots: [] };
  const keys = [...store.keys];
  const devKey = join(root, DEVELOPMENT_PUBLIC_KEY);
  if (existsSync(devKey)) {
    const pem = readFileSync(devKey, "utf8");
    // Listed in the trust file already: that entry (its validity, its revocation) is the one that counts.
    const listed = keys.find((k) => k.hint === keyHint(parsePublicKeyPem(pem)));
    if (listed) notes.push(`this machine's development key ${DEVELOPMENT_PUBLIC_KEY} is ${configured}'s key "${listed.id}"${listed.revoked ? " (revoked there)" : ""}`);
    else {
      keys.push(...(await parseTrustedKeys([{ id: "development (this machine)", publicKey: pem }], devKey)));
      notes.push(`also trusting this machine's development key ${DEVELOPMENT_PUBLIC_KEY} (no --trusted-keys given)`);
    }
  }
  if (keys.length === 0 && store.certificateRoots.length === 0 && !options.rootsGiven) {
    throw new PipelineError("E_TRUST_CONFIG", `no trusted keys: ${existsSync(configured) ? `${configured} lists none` : `${configured} does not exist`} and there is no development key`, {
      details: ["Pass --trusted-keys <file> with the publisher's public key (format: configs/trusted-keys.yaml)."],
    });
  }
  return { keys, certificateRoots: store.certificateRoots, notes };
}

/**
 * The keys one call trusts, from its flags: --key's public key alone (cosign's model: a bare
 * key is the trust root), a --trusted-keys file (a PEM public key, or YAML/JSON with several
 * keys and their validity), else the workspace's trust file plus the development key.
 */
export async function trustFromFlags(
  flags: { key?: string; trustedKeys?: string; certificateRoot?: readonly string[] },
  root: string,
): Promise<{ keys: TrustedKey[]; certificateRoots: CertificateRoot[]; notes: string[] }> {
  const trust = await keysFromFlags(flags, root, (flags.certificateRoot ?? []).length > 0);
  // --certificate-root files (PEM) join the trust file's roots; a root named on the command line pins no identity.
  const { readFile } = await import("node:fs/promises");
  const named = await Promise.all(
    (flags.certificateRoot ?? []).map((file) =>
      readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
        throw new PipelineError("E_TRUST_CONFIG", `cannot read --certificate-root ${file}: ${error.code ?? error.message}; give a PEM root certificate`);
      }),
    ),
  );
  return { ...trust, certificateRoots: [...trust.certificateRoots, ...named] };
}

async function keysFromFlags(flags: { key?: string; trustedKeys?: string }, root: string, rootsGiven: boolean): Promise<{ keys: TrustedKey[]; certificateRoots: TrustedRoot[]; notes: string[] }> {
  const [{ readFile }, { basename }] = await Promise.all([import("node:fs/promises"), import("node:path")]);
  const file = flags.key ?? flags.trustedKeys;
  if (file === undefined) return workspaceTrustStore(root, undefined, { rootsGiven });
  const flag = flags.key !== undefined ? "--key" : "--trusted-keys";
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new PipelineError("E_TRUST_CONFIG", `cannot read ${flag} ${file}: ${error.code ?? error.message}`);
  });
  const pem = text.trimStart();
  if (!pem.startsWith("-----BEGIN") && flag === "--trusted-keys") return workspaceTrustStore(root, file);
  // Never echo the file: it could be a private key given by mistake.
  if (/^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new PipelineError("E_TRUST_CONFIG", `${flag} ${file} is a private key; give the public key (keygen wrote it as <prefix>.pub)`);
  if (!pem.startsWith("-----BEGIN PUBLIC KEY-----")) {
    const hint = flag === "--key" ? "; a trust file with several keys goes in --trusted-keys" : "";
    throw new PipelineError("E_TRUST_CONFIG", `${flag} ${file} is not a PEM public key (-----BEGIN PUBLIC KEY-----)${hint}`);
  }
  return { keys: await parseTrustedKeys([{ id: basename(file), publicKey: text }], file), certificateRoots: [], notes: [] };
}
