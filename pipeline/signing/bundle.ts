/**
 * Sigstore bundle v0.3 (JSON) around a DSSE envelope: the container of both model.sig and
 * provenance.sigstore.json. Key method only: `publicKey.hint`, no transparency log, one
 * signature, DSSE keyid "" (a non-empty keyid makes cosign skip the signature: §7).
 */
import type { KeyObject } from "node:crypto";
import { constants, open } from "node:fs/promises";
import { IN_TOTO_PAYLOAD_TYPE, preAuthEncoding } from "./dsse.js";
import { VerifyError } from "./errors.js";
import { keyHint, signBytes, verifyBytes } from "./keys.js";
import { parseJsonObject } from "./oms.js";
import { checkKeyValidity, findTrustedKey, type KeyMaterial, type TrustedKey } from "./trust.js";
import { verifyCertificateChain, type CertificateRoot } from "./certificates.js";

export const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
const ACCEPTED_MEDIA_TYPES = new Set([BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"]);
/** A signature file larger than this is not a signature: refuse before reading it. */
export const MAX_BUNDLE_BYTES = 16 << 20;

export function createBundle(statement: Buffer, privateKey: KeyObject): string {
  const signature = signBytes(privateKey, preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, statement));
  const bundle = {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint: keyHint(privateKey) }, tlogEntries: [] },
    dsseEnvelope: {
      payload: statement.toString("base64"),
      payloadType: IN_TOTO_PAYLOAD_TYPE,
      signatures: [{ sig: signature.toString("base64"), keyid: "" }],
    },
  };
  return JSON.stringify(bundle, null, 2) + "\n";
}

export interface ParsedBundle {
  file: string;
  payloadType: string;
  payload: Buffer;
  signature: Buffer;
  keyMaterial: KeyMaterial;
}

/** The file's bytes, refusing what is too large to be a signature (a JSON bomb costs nothing). */
export async function readBundleFile(file: string, what = "signature"): Promise<Buffer> {
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO planted as model.sig must not hang (reads of regular files are unaffected).
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new VerifyError("E_NO_SIGNATURE", `no ${what} at ${file}`, { details: [`Sign the model first: pnpm pipeline sign <dir> (or pass the ${what} file's path).`] });
    }
    throw new VerifyError("E_IO", `cannot read ${file}: ${code ?? (error as Error).message}`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new VerifyError("E_MALFORMED", `${file} is not a regular file`);
    if (info.size > MAX_BUNDLE_BYTES) {
      throw new VerifyError("E_MALFORMED", `${file} is ${info.size} bytes; a ${what} is a few KB (the limit is ${MAX_BUNDLE_BYTES} bytes): not a signature bundle`);
    }
    const buffer = Buffer.alloc(info.size);
    const { bytesRead } = await handle.read(buffer, 0, info.size, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeBase64(value: unknown, what: string, file: string): Buffer {
  if (typeof value !== "string" || !BASE64.test(value)) throw new VerifyError("E_MALFORMED", `${file}: ${what} is not base64`);
  return Buffer.from(value, "base64");
}

export function parseBundle(bytes: Buffer, file: string): ParsedBundle {
  const bundle = parseJsonObject(bytes, file);
  if (typeof bundle.mediaType !== "string" || !ACCEPTED_MEDIA_TYPES.has(bundle.mediaType)) {
    throw new VerifyError("E_UNSUPPORTED", `${file}: bundle media type ${JSON.stringify(bundle.mediaType)} is not supported; expected ${BUNDLE_MEDIA_TYPE}`);
  }
  const envelope = bundle.dsseEnvelope as Record<string, unknown> | undefined;
  if (!envelope || typeof envelope !== "object") throw new VerifyError("E_MALFORMED", `${file}: the bundle has no dsseEnvelope (message signatures are not model signatures)`);
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new VerifyError("E_UNSUPPORTED", `${file}: DSSE payload type ${JSON.stringify(envelope.payloadType)}; expected ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  const signatures = envelope.signatures;
  if (!Array.isArray(signatures) || signatures.length !== 1) {
    throw new VerifyError("E_MALFORMED", `${file}: expected exactly one DSSE signature, found ${Array.isArray(signatures) ? signatures.length : "none"}`);
  }
  const payload = decodeBase64(envelope.payload, "the DSSE payload", file);
  const signature = decodeBase64((signatures[0] as { sig?: unknown })?.sig, "the DSSE signature", file);

  const material = (bundle.verificationMaterial ?? {}) as Record<string, unknown>;
  const publicKey = material.publicKey as { hint?: unknown; rawBytes?: unknown } | undefined;
  const chain = material.x509CertificateChain as { certificates?: { rawBytes?: unknown }[] } | undefined;
  let keyMaterial: KeyMaterial;
  if (publicKey && typeof publicKey.hint === "string") keyMaterial = { hint: publicKey.hint };
  else if (publicKey && publicKey.rawBytes !== undefined) keyMaterial = { rawBytes: decodeBase64(publicKey.rawBytes, "publicKey.rawBytes", file) };
  else if (chain && Array.isArray(chain.certificates) && chain.certificates.length > 0) {
    keyMaterial = { certificates: chain.certificates.map((c, i) => decodeBase64(c?.rawBytes, `certificate ${i}`, file)) };
  } else {
    throw new VerifyError("E_UNSUPPORTED", `${file}: the bundle names no key (publicKey.hint, publicKey.rawBytes or x509CertificateChain); keyless Sigstore bundles are not verified offline`);
  }
  return { file, payloadType: envelope.payloadType, payload, signature, keyMaterial };
}

export interface SignatureCheck {
  /** The statement bytes the signature covers: parse these, never the file again. */
  statement: Buffer;
  key: { id: string; hint: string; certificateSubject?: string; certificateSans?: string[]; certificateRoot?: string };
}

export interface TrustOptions {
  trustedKeys: readonly TrustedKey[];
  /** Root certificates for certificate-method bundles: PEM text, or trust-file roots with pinned identities. */
  certificateRoots?: readonly CertificateRoot[];
  now: Date;
}

/** Steps 3-4 of signing.md §8: find the trusted key, check it is valid now, check the signature over the PAE. */
export async function verifyBundleSignature(bundle: ParsedBundle, trust: TrustOptions): Promise<SignatureCheck> {
  let publicKey: KeyObject;
  let identity: SignatureCheck["key"];
  if ("certificates" in bundle.keyMaterial) {
    const leaf = await verifyCertificateChain(bundle.keyMaterial.certificates, trust.certificateRoots ?? [], trust.now, bundle.file);
    publicKey = leaf.publicKey;
    identity = { id: leaf.subject, hint: keyHint(leaf.publicKey), certificateSubject: leaf.subject, certificateSans: leaf.sans, certificateRoot: leaf.root };
  } else {
    const key = findTrustedKey(trust.trustedKeys, bundle.keyMaterial);
    if (!key) {
      const named = "hint" in bundle.keyMaterial ? `key hint ${bundle.keyMaterial.hint}` : "the public key embedded in it";
      throw new VerifyError("E_UNKNOWN_KEY", `${bundle.file} was signed by a key that is not trusted (${named})`, {
        details: [`Trusted: ${trust.trustedKeys.map((k) => `${k.id} (${k.hint.slice(0, 16)}…)`).join(", ") || "no keys"}. Add the signer's public key to the trusted keys file if you trust it.`],
      });
    }
    checkKeyValidity(key, trust.now);
    publicKey = key.publicKey;
    identity = { id: key.id, hint: key.hint };
  }
  if (!verifyBytes(publicKey, preAuthEncoding(bundle.payloadType, bundle.payload), bundle.signature)) {
    throw new VerifyError("E_BAD_SIGNATURE", `${bundle.file}: the signature does not match its statement under key ${identity.id}`, {
      details: ["The signature file was altered, or it was not made by this key."],
    });
  }
  return { statement: bundle.payload, key: identity };
}
