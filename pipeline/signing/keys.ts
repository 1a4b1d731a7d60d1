/**
 * Keys as OpenSSF Model Signing uses them: ECDSA (P-256 by default, P-384/P-521 verified
 * too), ASN.1 DER signatures, the digest fixed by the curve, and the `hint` by which a
 * consumer finds its pinned key: hex sha256 of the PEM SubjectPublicKeyInfo text.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from "node:crypto";

export type SignatureDigest = "sha256" | "sha384" | "sha512";

const CURVE_DIGEST: Record<string, SignatureDigest> = { "prime256v1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512" };
const CURVE_NAME: Record<string, string> = { "prime256v1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521" };

/** The PEM text of the public key exactly as `model_signing` hashes it (64-char lines, trailing newline). */
export function publicKeyPem(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ type: "spki", format: "pem" }) as string;
}

export function keyHint(key: KeyObject): string {
  return createHash("sha256").update(publicKeyPem(key)).digest("hex");
}

export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ type: "spki", format: "der" });
}

/** "P-256", "P-384", "P-521", or why the key cannot sign or verify model signatures. */
export function describeKey(key: KeyObject): { curve: string; digest: SignatureDigest } | { unsupported: string } {
  if (key.asymmetricKeyType !== "ec") {
    return { unsupported: `a ${key.asymmetricKeyType?.toUpperCase() ?? "unknown"} key; OpenSSF Model Signing supports elliptic-curve keys only (P-256, P-384, P-521)` };
  }
  const named = key.asymmetricKeyDetails?.namedCurve ?? "";
  const digest = CURVE_DIGEST[named];
  if (!digest) return { unsupported: `an EC key on curve ${named || "unknown"}; supported curves are P-256, P-384 and P-521` };
  return { curve: CURVE_NAME[named]!, digest };
}

export function signBytes(privateKey: KeyObject, data: Uint8Array): Buffer {
  const info = describeKey(privateKey);
  if ("unsupported" in info) throw new Error(`cannot sign with ${info.unsupported}`);
  return sign(info.digest, data, privateKey);
}

/** False for a wrong signature; false too (not a throw) for bytes that are not a DER signature. */
export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  const info = describeKey(publicKey);
  if ("unsupported" in info) return false;
  try {
    return verify(info.digest, data, publicKey, signature);
  } catch {
    return false;
  }
}

/**
 * The OpenSSH fingerprint (`SHA256:<base64>`, as `ssh-keygen -l -E sha256` prints it) of an
 * ECDSA key: what cosign/sigstore-go compare a non-empty DSSE keyid with (signing.md §7).
 * By hand: Node has no SSH key export, and the wire format is three length-prefixed strings.
 */
export function sshFingerprint(key: KeyObject): string | null {
  const info = describeKey(key);
  if ("unsupported" in info) return null;
  const jwk = (key.type === "private" ? createPublicKey(key) : key).export({ format: "jwk" });
  const ident = `nistp${info.curve.slice(2)}`;
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url")]);
  const field = (b: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(b.length);
    return Buffer.concat([length, b]);
  };
  const blob = Buffer.concat([field(Buffer.from(`ecdsa-sha2-${ident}`)), field(Buffer.from(ident)), field(point)]);
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** A PEM public key from text that may carry a human-readable preamble (certtool output does). */
export function parsePublicKeyPem(text: string): KeyObject {
  const block = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(text);
  return createPublicKey(block ? block[0] : text);
}
