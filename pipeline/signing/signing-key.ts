/**
 * Where the signing key comes from: --key FILE, else AI_TOOLS_SIGNING_KEY (PEM text),
 * else AI_TOOLS_SIGNING_KEY_FILE, else (for the pipeline on a machine where nothing is
 * configured) a development key generated under build/keys/ and recorded as such.
 * The key never reaches logs or errors: messages name its source, never its text.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { link, mkdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { atomicWriteFile } from "../core/files.js";
import { PipelineError } from "../core/errors.js";
import { describeKey, keyHint, publicKeyPem, sshFingerprint } from "./keys.js";

export const PASSPHRASE_ENV = "AI_TOOLS_SIGNING_KEY_PASSPHRASE";
export const DEVELOPMENT_KEY = join("build", "keys", "development.key");

export interface SigningKey {
  privateKey: KeyObject;
  hint: string;
  curve: string;
  /** "--key keys/release.key", "env AI_TOOLS_SIGNING_KEY", ...: never the key itself. */
  source: string;
  /** The local development key: fine for trying things, not for releases. */
  development: boolean;
}

export interface SigningKeyOptions {
  keyFile?: string;
  env: NodeJS.ProcessEnv;
  allowInsecurePermissions?: boolean;
  /** Where to create/read the development key when nothing is configured; without it, no key is an error. */
  developmentKeyRoot?: string;
}

export function configuredKeySource(options: Pick<SigningKeyOptions, "keyFile" | "env">): string | null {
  if (options.keyFile) return `--key ${options.keyFile}`;
  if (options.env.AI_TOOLS_SIGNING_KEY) return "env AI_TOOLS_SIGNING_KEY";
  if (options.env.AI_TOOLS_SIGNING_KEY_FILE) return `env AI_TOOLS_SIGNING_KEY_FILE (${options.env.AI_TOOLS_SIGNING_KEY_FILE})`;
  return null;
}

export async function loadSigningKey(options: SigningKeyOptions): Promise<SigningKey> {
  const { env } = options;
  if (options.keyFile) return fromFile(options.keyFile, `--key ${options.keyFile}`, options);
  if (env.AI_TOOLS_SIGNING_KEY) return fromPem(env.AI_TOOLS_SIGNING_KEY, "env AI_TOOLS_SIGNING_KEY", env, false);
  if (env.AI_TOOLS_SIGNING_KEY_FILE) return fromFile(env.AI_TOOLS_SIGNING_KEY_FILE, "env AI_TOOLS_SIGNING_KEY_FILE", options);
  if (options.developmentKeyRoot === undefined) {
    throw new PipelineError("E_SIGNING_KEY", "no signing key: pass --key FILE, or set AI_TOOLS_SIGNING_KEY (PEM) or AI_TOOLS_SIGNING_KEY_FILE", {
      details: ["Create one with: pnpm pipeline keygen --out keys/release"],
    });
  }
  const file = join(options.developmentKeyRoot, DEVELOPMENT_KEY);
  if (!existsSync(file)) await createDevelopmentKey(file);
  const key = await fromFile(file, `development key ${DEVELOPMENT_KEY}`, { ...options, allowInsecurePermissions: false });
  return { ...key, development: true };
}

async function fromFile(file: string, source: string, options: SigningKeyOptions): Promise<SigningKey> {
  let info;
  try {
    info = await stat(file);
  } catch (error) {
    throw new PipelineError("E_SIGNING_KEY", `cannot read the signing key (${source}): ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
  }
  if ((info.mode & 0o077) !== 0 && !options.allowInsecurePermissions) {
    throw new PipelineError("E_SIGNING_KEY", `the signing key ${file} is readable by group or others (mode ${(info.mode & 0o777).toString(8).padStart(4, "0")})`, {
      details: [`Restrict it: chmod 600 ${file} (or pass --allow-insecure-key-permissions if this is intended).`],
    });
  }
  return fromPem(await readFile(file, "utf8"), source, options.env, false);
}

function fromPem(pem: string, source: string, env: NodeJS.ProcessEnv, development: boolean): SigningKey {
  const passphrase = env[PASSPHRASE_ENV];
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(passphrase ? { key: pem, format: "pem", passphrase } : { key: pem, format: "pem" });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem);
    const why =
      encrypted && !passphrase
        ? `it is encrypted: set ${PASSPHRASE_ENV}`
        : code === "ERR_OSSL_BAD_DECRYPT" || /bad decrypt/i.test((error as Error).message)
          ? `the passphrase in ${PASSPHRASE_ENV} does not decrypt it`
          : "it is not a PEM private key";
    // Node's message may quote the input: only the reason goes out.
    throw new PipelineError("E_SIGNING_KEY", `cannot use the signing key (${source}): ${why}`);
  }
  const info = describeKey(privateKey);
  if ("unsupported" in info) throw new PipelineError("E_SIGNING_KEY", `cannot sign with the key from ${source}: it is ${info.unsupported}`, { details: ["Create a P-256 key: pnpm pipeline keygen --out keys/release"] });
  return { privateKey, hint: keyHint(privateKey), curve: info.curve, source, development };
}

export interface GeneratedKey {
  keyFile: string;
  publicKeyFile: string;
  hint: string;
  sshFingerprint: string | null;
  publicKeyPem: string;
}

/**
 * The development key, created once even when two runs (two `convert`s at once) both find
 * none: the private key is linked into place exclusively, so the loser drops its own and
 * signs with the winner's, and the public half on disk always matches the private one.
 */
async function createDevelopmentKey(file: string): Promise<void> {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.tmp-${process.pid}-${Date.now()}`;
  await atomicWriteFile(temp, privateKey.export({ type: "pkcs8", format: "pem" }) as string, 0o600);
  try {
    await link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return;
    throw error;
  } finally {
    await rm(temp, { force: true });
  }
  await atomicWriteFile(file.replace(/\.key$/, ".pub"), publicKeyPem(publicKey), 0o644);
}

/** An ECDSA P-256 pair: `<out>.key` (PKCS#8, mode 0600, encrypted when a passphrase is given) and `<out>.pub`. */
export async function generateKeyFiles(out: string, options: { passphrase?: string; force?: boolean }): Promise<GeneratedKey> {
  const keyFile = `${out}.key`;
  const publicKeyFile = `${out}.pub`;
  if (!options.force) {
    for (const file of [keyFile, publicKeyFile]) {
      if (existsSync(file)) throw new PipelineError("E_USAGE", `${file} exists; refusing to overwrite a key (pass --force to replace it)`);
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pem = privateKey.export(
    options.passphrase ? { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: options.passphrase } : { type: "pkcs8", format: "pem" },
  ) as string;
  await mkdir(dirname(keyFile), { recursive: true });
  await atomicWriteFile(keyFile, pem, 0o600);
  const pub = publicKeyPem(publicKey);
  await atomicWriteFile(publicKeyFile, pub, 0o644);
  return { keyFile, publicKeyFile, hint: keyHint(publicKey), sshFingerprint: sshFingerprint(publicKey), publicKeyPem: pub };
}
