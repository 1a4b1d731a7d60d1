/**
 * Certificate-method signing for tests: a CA made by openssl(1) that issues leaves with the
 * extensions a test asks for, and a model directory re-signed so that model.sig carries the
 * leaf's chain instead of a key hint (what a Fulcio- or PKI-signed bundle looks like).
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { signModelDirectory } from "../../pipeline/signing/sign.js";

export interface TestLeaf {
  certificate: Buffer;
  privateKey: KeyObject;
}

/** A CA, and leaves it issues with the given extensions, made by openssl(1). */
export class TestCa {
  readonly dir: string;
  readonly pem: string;
  private leaves = 0;

  constructor(parent: string, subject = "/CN=test-root/O=Acme") {
    this.dir = mkdtempSync(join(parent, "ca-"));
    this.openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    this.openssl(["req", "-x509", "-new", "-key", "ca.key", "-subj", subject, "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", "-out", "ca.pem"]);
    this.pem = readFileSync(join(this.dir, "ca.pem"), "utf8");
  }

  /** A leaf with `extensions` (openssl extfile lines), and its private key. */
  issue(subject: string, extensions: string[]): TestLeaf {
    const name = `leaf-${++this.leaves}`;
    this.openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
    this.openssl(["req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`]);
    writeFileSync(join(this.dir, `${name}.ext`), extensions.join("\n") + "\n");
    this.openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "7", "-extfile", `${name}.ext`, "-outform", "DER", "-out", `${name}.der`]);
    return { certificate: readFileSync(join(this.dir, `${name}.der`)), privateKey: createPrivateKey(readFileSync(join(this.dir, `${name}.key`))) };
  }

  /** A trust file (YAML) with this CA as its only root, pinning the given signer subjects. */
  trustFile(path: string, id: string, allowedSubjects?: string[]): string {
    const indented = this.pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n");
    const pins = allowedSubjects ? `    allowedSubjects: ${JSON.stringify(allowedSubjects)}\n` : "";
    writeFileSync(path, `keys: []\ncertificateRoots:\n  - id: ${id}\n    certificate: |\n${indented}\n${pins}`);
    return path;
  }

  private openssl(args: string[]): void {
    execFileSync("openssl", args, { cwd: this.dir, stdio: "ignore" });
  }
}

/** Sign `dir` with the certificate method: the leaf's key signs, model.sig carries the chain. */
export async function signWithCertificate(dir: string, leaf: TestLeaf): Promise<string> {
  await signModelDirectory(dir, { privateKey: leaf.privateKey });
  const bundle = JSON.parse(readFileSync(join(dir, "model.sig"), "utf8")) as { verificationMaterial: unknown };
  bundle.verificationMaterial = { x509CertificateChain: { certificates: [{ rawBytes: leaf.certificate.toString("base64") }] }, tlogEntries: [] };
  writeFileSync(join(dir, "model.sig"), JSON.stringify(bundle, null, 2));
  return dir;
}
