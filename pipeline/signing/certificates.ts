/**
 * Certificate-method bundles (model_signing `certificate`): the leaf certificate's key
 * signed the statement, and the chain must lead to a root certificate the consumer gave.
 */
import { X509Certificate, type KeyObject } from "node:crypto";
import { VerifyError } from "./errors.js";

export function verifyCertificateChain(chainDer: readonly Buffer[], rootsPem: readonly string[], now: Date, file: string): { publicKey: KeyObject; subject: string } {
  if (rootsPem.length === 0) {
    throw new VerifyError("E_UNKNOWN_KEY", `${file} is signed with a certificate; no root certificate is trusted`, {
      details: ["Pass the issuing root (--certificate-root ca.pem, or certificateRoots in the library)."],
    });
  }
  let chain: X509Certificate[];
  let roots: X509Certificate[];
  try {
    chain = chainDer.map((der) => new X509Certificate(der));
  } catch (error) {
    throw new VerifyError("E_MALFORMED", `${file}: a certificate in the bundle does not parse: ${(error as Error).message}`);
  }
  try {
    roots = rootsPem.map((pem) => new X509Certificate(pem));
  } catch (error) {
    throw new VerifyError("E_TRUST_CONFIG", `a trusted root certificate does not parse: ${(error as Error).message}`);
  }
  for (const cert of chain) {
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
      throw new VerifyError("E_KEY_EXPIRED", `${file}: certificate "${cert.subject}" is valid from ${cert.validFrom} to ${cert.validTo}, not now`);
    }
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    // Only a CA may issue: otherwise any end-entity certificate under the root could mint signers.
    if (!chain[i + 1]!.ca) {
      throw new VerifyError("E_BAD_SIGNATURE", `${file}: certificate "${chain[i + 1]!.subject}" issues "${chain[i]!.subject}" but is not a CA certificate`);
    }
    if (!chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) {
      throw new VerifyError("E_BAD_SIGNATURE", `${file}: certificate "${chain[i]!.subject}" is not signed by the next one in the chain ("${chain[i + 1]!.subject}")`);
    }
  }
  const top = chain.at(-1)!;
  const anchored = roots.some(
    (root) => root.raw.equals(top.raw) || (root.ca && now >= new Date(root.validFrom) && now <= new Date(root.validTo) && top.checkIssued(root) && top.verify(root.publicKey)),
  );
  if (!anchored) {
    throw new VerifyError("E_UNKNOWN_KEY", `${file}: the certificate chain ("${top.subject}", issued by "${top.issuer}") does not lead to a trusted root`);
  }
  return { publicKey: chain[0]!.publicKey, subject: chain[0]!.subject.replace(/\n/g, ", ") };
}
