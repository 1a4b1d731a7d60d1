/**
 * The trust store a workspace command uses: the given file, else the workspace's
 * configs/trusted-keys.yaml plus this machine's development key (said in a note).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PipelineError } from "../core/errors.js";
import { keyHint, parsePublicKeyPem } from "./keys.js";
import { loadTrustStore, parseTrustedKeys, type TrustedKey, type TrustedRoot } from "./trust.js";

export const TRUSTED_KEYS_FILE = join("configs", "trusted-keys.yaml");
export const DEVELOPMENT_PUBLIC_KEY = join("build", "keys", "development.pub");

/**
 * `keys` for key-method bundles; `certificateRoots` (with their pinned signer identities) for
 * certificate-method ones: the CLI passes both to verifyModel, the roots ahead of any given
 * with --certificate-root.
 */
export async function workspaceTrustStore(root: string, file?: string): Promise<{ keys: TrustedKey[]; certificateRoots: TrustedRoot[]; notes: string[] }> {
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
  if (keys.length === 0 && store.certificateRoots.length === 0) {
    throw new PipelineError("E_TRUST_CONFIG", `no trusted keys: ${existsSync(configured) ? `${configured} lists none` : `${configured} does not exist`} and there is no development key`, {
      details: ["Pass --trusted-keys <file> with the publisher's public key (format: configs/trusted-keys.yaml)."],
    });
  }
  return { keys, certificateRoots: store.certificateRoots, notes };
}
