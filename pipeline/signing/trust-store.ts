/**
 * The trust store a workspace command uses: the given file, else the workspace's
 * configs/trusted-keys.yaml plus this machine's development key (said in a note).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PipelineError } from "../core/errors.js";
import { loadTrustedKeys, parseTrustedKeys, type TrustedKey } from "./trust.js";

export const TRUSTED_KEYS_FILE = join("configs", "trusted-keys.yaml");
export const DEVELOPMENT_PUBLIC_KEY = join("build", "keys", "development.pub");

export async function workspaceTrustStore(root: string, file?: string): Promise<{ keys: TrustedKey[]; notes: string[] }> {
  if (file) return { keys: await loadTrustedKeys(file), notes: [] };
  const notes: string[] = [];
  const configured = join(root, TRUSTED_KEYS_FILE);
  const keys = existsSync(configured) ? await loadTrustedKeys(configured) : [];
  const devKey = join(root, DEVELOPMENT_PUBLIC_KEY);
  if (existsSync(devKey)) {
    keys.push(...(await parseTrustedKeys([{ id: "development (this machine)", publicKey: readFileSync(devKey, "utf8") }], devKey)));
    notes.push(`also trusting this machine's development key ${DEVELOPMENT_PUBLIC_KEY} (no --trusted-keys given)`);
  }
  if (keys.length === 0) {
    throw new PipelineError("E_TRUST_CONFIG", `no trusted keys: ${existsSync(configured) ? `${configured} lists none` : `${configured} does not exist`} and there is no development key`, {
      details: ["Pass --trusted-keys <file> with the publisher's public key (format: configs/trusted-keys.yaml)."],
    });
  }
  return { keys, notes };
}
