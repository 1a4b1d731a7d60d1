/**
 * Certificate-method bundles (model_signing `certificate`): the leaf certificate's key
 * signed the statement, and the chain must lead to a root certificate the consumer gave.
 * As model_signing does, the leaf must be meant for signing: its Key Usage includes
 * digitalSignature and an Extended Key Usage, when present, includes codeSigning (a TLS
 * server certificate from the same CA is not a model signer). A root from the trust file can
 * pin the signer identities it vouches for (subject, subject alternative names).
 *
 * Node's X509Certificate exposes the EKU (`keyUsage`, an OID list) but not the Key Usage
 * bits: those come from @sigstore/core's ASN.1 reader. A leaf not meant for signing is
 * E_UNKNOWN_KEY (its key is no trusted signer's); a signer outside the pinned identities E_POLICY.
 */
import { X509Certificate, type KeyObject } from "node:crypto";
import { escapeForTerminal } from "../core/escape.js";
import { VerifyError } from "./errors.js";
import type { TrustedRoot } from "./trust.js";

/** A root: PEM text (any identity it issues), or a trust-file root with pinned identities. */
export type CertificateRoot = string | TrustedRoot;

const CODE_SIGNING = "1.3.6.1.5.5.7.3.3";
const EKU_NAMES: Readonly<Record<string, string>> = {
  "1.3.6.1.5.5.7.3.1": "serverAuth",
  "1.3.6.1.5.5.7.3.2": "clientAuth",
  [CODE_SIGNING]: "codeSigning",
  "1.3.6.1.5.5.7.3.4": "emailProtection",
  "1.3.6.1.5.5.7.3.8": "timeStamping",
  "1.3.6.1.5.5.7.3.9": "OCSPSigning",
};

export interface CertificateSigner {
  publicKey: KeyObject;
  /** The leaf's subject, one line ("CN=signer, O=Acme"). */
  subject: string;
  /** The leaf's subject alternative names ("email:…", "URI:…", "DNS:…"). */
  sans: string[];
  /** The id of the root that anchors the chain. */
  root: string;
}

/** Async: the ASN.1 reader (@sigstore/core, ~80 KB) loads only for certificate-signed bundles, not on every verify and run. */
export async function verifyCertificateChain(chainDer: readonly Buffer[], roots: readonly CertificateRoot[], now: Date, file: string): Promise<CertificateSigner> {
  if (roots.length === 0) {
    throw new VerifyError("E_UNKNOWN_KEY", `${file} is signed with a certificate; no root certificate is trusted`, {
      details: ["Pass the issuing root (--certificate-root ca.pem, certificateRoots in the trust file, or certificateRoots in the library)."],
    });
  }
  let chain: X509Certificate[];
  try {
    chain = chainDer.map((der) => new X509Certificate(der));
  } catch (error) {
    throw new VerifyError("E_MALFORMED", `${file}: a certificate in the bundle does not parse: ${(error as Error).message}`);
  }
  const anchors = roots.map(toRoot);
  for (const cert of chain) {
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
      throw new VerifyError("E_KEY_EXPIRED", `${file}: certificate "${subjectOf(cert)}" is valid from ${cert.validFrom} to ${cert.validTo}, not now`);
    }
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    // Only a CA may issue: otherwise any end-entity certificate under the root could mint signers.
    if (!chain[i + 1]!.ca) {
      throw new VerifyError("E_BAD_SIGNATURE", `${file}: certificate "${subjectOf(chain[i + 1]!)}" issues "${subjectOf(chain[i]!)}" but is not a CA certificate`);
    }
    if (!chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) {
      throw new VerifyError("E_BAD_SIGNATURE", `${file}: certificate "${subjectOf(chain[i]!)}" is not signed by the next one in the chain ("${subjectOf(chain[i + 1]!)}")`);
    }
  }
  const top = chain.at(-1)!;
  const anchor = anchors.find(
    ({ certificate: root }) => root.raw.equals(top.raw) || (root.ca && now >= new Date(root.validFrom) && now <= new Date(root.validTo) && top.checkIssued(root) && top.verify(root.publicKey)),
  );
  if (!anchor) {
    throw new VerifyError("E_UNKNOWN_KEY", `${file}: the certificate chain ("${subjectOf(top)}", issued by "${escapeForTerminal(top.issuer.replace(/\n/g, ", "))}") does not lead to a trusted root`);
  }
  const leaf = chain[0]!;
  checkSigningUsage(leaf, file, await asn1CertificateReader());
  const signer: CertificateSigner = { publicKey: leaf.publicKey, subject: leaf.subject.replace(/\n/g, ", "), sans: subjectAltNames(leaf), root: anchor.id };
  checkPinnedIdentity(signer, anchor, file);
  return signer;
}

function toRoot(root: CertificateRoot, index: number): TrustedRoot {
  if (typeof root !== "string") return root;
  try {
    return { id: `certificate root ${index + 1}`, certificate: new X509Certificate(root), origin: "certificateRoots" };
  } catch (error) {
    throw new VerifyError("E_TRUST_CONFIG", `a trusted root certificate does not parse: ${(error as Error).message}`);
  }
}

/** @sigstore/core is CommonJS: in the esbuild bundle its dynamic import holds only `default`; from the sources, the named exports too. */
async function asn1CertificateReader(): Promise<typeof import("@sigstore/core").X509Certificate> {
  const core = await import("@sigstore/core");
  return core.X509Certificate ?? (core as unknown as { default: typeof core }).default.X509Certificate;
}

/** Key Usage must allow digitalSignature; an Extended Key Usage, when present, must allow codeSigning. */
function checkSigningUsage(leaf: X509Certificate, file: string, Asn1Certificate: typeof import("@sigstore/core").X509Certificate): void {
  const subject = subjectOf(leaf);
  let digitalSignature: boolean | undefined;
  try {
    digitalSignature = Asn1Certificate.parse(leaf.raw).extKeyUsage?.digitalSignature;
  } catch (error) {
    throw new VerifyError("E_MALFORMED", `${file}: the signing certificate "${subject}" has extensions that do not parse: ${(error as Error).message}`);
  }
  if (digitalSignature === undefined) {
    throw new VerifyError("E_UNKNOWN_KEY", `${file}: the signing certificate "${subject}" has no Key Usage extension; a model signer's must include digitalSignature`, {
      details: ["Issue the signer a certificate with keyUsage=digitalSignature (and extendedKeyUsage=codeSigning)."],
    });
  }
  if (!digitalSignature) {
    throw new VerifyError("E_UNKNOWN_KEY", `${file}: the signing certificate "${subject}" is not for signatures: its Key Usage lacks digitalSignature`, {
      details: ["Issue the signer a certificate with keyUsage=digitalSignature (and extendedKeyUsage=codeSigning)."],
    });
  }
  const extended = leaf.keyUsage; // Node: the Extended Key Usage OIDs, undefined without the extension
  if (extended !== undefined && !extended.includes(CODE_SIGNING)) {
    throw new VerifyError("E_UNKNOWN_KEY", `${file}: the signing certificate "${subject}" is not for code signing: its Extended Key Usage is ${extended.map((oid) => EKU_NAMES[oid] ?? oid).join(", ") || "empty"}`, {
      details: ["A certificate for another purpose (a TLS server's, say) from the same CA is not a model signer: use one with extendedKeyUsage=codeSigning."],
    });
  }
}

/** A root from the trust file may pin the leaf's subject and/or its subject alternative names. */
function checkPinnedIdentity(signer: CertificateSigner, root: TrustedRoot, file: string): void {
  if (root.allowedSubjects && !root.allowedSubjects.includes(signer.subject)) {
    throw new VerifyError("E_POLICY", `${file}: the signer "${escapeForTerminal(signer.subject)}" is not among the subjects root "${root.id}" may vouch for (${root.allowedSubjects.join("; ")})`, {
      details: [`Allowed in ${root.origin} (certificateRoots[].allowedSubjects). Add the subject there if this signer is trusted.`],
    });
  }
  if (root.allowedSans && !signer.sans.some((san) => root.allowedSans!.includes(san))) {
    throw new VerifyError("E_POLICY", `${file}: the signer's alternative names (${signer.sans.map(escapeForTerminal).join(", ") || "none"}) include none of those root "${root.id}" may vouch for (${root.allowedSans.join(", ")})`, {
      details: [`Allowed in ${root.origin} (certificateRoots[].allowedSans). Add the name there if this signer is trusted.`],
    });
  }
}

/** Node's "DNS:a, email:b, URI:c" as a list (values with a comma come JSON-quoted: unquoted here). */
function subjectAltNames(cert: X509Certificate): string[] {
  const text = cert.subjectAltName;
  if (!text) return [];
  const names: string[] = [];
  for (const match of text.matchAll(/([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)) {
    const value = match[2]!.startsWith('"') ? (JSON.parse(match[2]!) as string) : match[2]!;
    names.push(`${match[1]}:${value}`);
  }
  return names;
}

function subjectOf(cert: X509Certificate): string {
  return escapeForTerminal(cert.subject.replace(/\n/g, ", "));
}
