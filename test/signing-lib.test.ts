/**
 * The signing library's small parts: curves, key hints and fingerprints, the trust file's
 * errors, canonical names and their byte order.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { verifyModel } from "../pipeline/signing/verify.js";
import { keyHint, publicKeyPem, sshFingerprint } from "../pipeline/signing/keys.js";
import { loadTrustedKeys, loadTrustStore } from "../pipeline/signing/trust.js";
import { compareUtf8, ignoreMatcher, isIgnored, nameProblem } from "../pipeline/signing/paths.js";
import { loadSigningKey } from "../pipeline/signing/signing-key.js";

/** The error a promise rejects with (a resolved promise fails the test). */
async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  return promise.then(
    () => expect.fail("expected a rejection"),
    (error: Error & { code?: string }) => error,
  );
}

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "ai-tools-signing-lib-"));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("curves", () => {
  for (const namedCurve of ["P-256", "P-384", "P-521"]) {
    it(`signs and verifies with ${namedCurve} (the digest follows the curve)`, async () => {
      const dir = tempDir();
      writeFileSync(join(dir, "weights.gguf"), "w");
      const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve });
      await signModelDirectory(dir, { privateKey });
      const result = await verifyModel(dir, { trustedKeys: [{ id: namedCurve, publicKey: publicKeyPem(publicKey) }] });
      expect(result.key).toEqual({ id: namedCurve, hint: keyHint(publicKey) });
    });
  }

  it("refuses RSA and Ed25519 signing keys with what to use instead (OMS supports EC keys only)", async () => {
    for (const type of ["rsa", "ed25519"] as const) {
      const { privateKey } = type === "rsa" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ed25519");
      const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
      const error = await rejectionOf(loadSigningKey({ env: { AI_TOOLS_SIGNING_KEY: pem } }));
      expect(error).toMatchObject({ code: "E_SIGNING_KEY" });
      expect((error as Error).message).toContain("elliptic-curve keys only");
      expect((error as Error).message).not.toContain(pem.split("\n")[1]!);
    }
  });
});

describe.skipIf(spawnSync("ssh-keygen", ["-?"]).error !== undefined)("the SSH fingerprint, what cosign compares a non-empty keyid with (needs ssh-keygen: apt-get install openssh-client)", () => {
  it("equals ssh-keygen's", () => {
    const dir = tempDir();
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync(join(dir, "key.pub"), publicKeyPem(publicKey));
    const ssh = execFileSync("ssh-keygen", ["-i", "-m", "PKCS8", "-f", join(dir, "key.pub")], { encoding: "utf8" });
    writeFileSync(join(dir, "key.ssh.pub"), ssh);
    const printed = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", join(dir, "key.ssh.pub")], { encoding: "utf8" });
    expect(printed.split(" ")[1]).toBe(sshFingerprint(publicKey));
  });
});

describe("trusted keys file", () => {
  const pem = publicKeyPem(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey);
  const indented = pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n");
  const cases: [string, string, RegExp][] = [
    ["an unknown field", `keys:\n  - id: a\n    pubkey: x\n`, /keys\[0\]\.pubkey is not a known field/],
    ["no key", `keys:\n  - id: a\n`, /keys\[0\]\.publicKey is required/],
    ["a broken PEM", `keys:\n  - id: a\n    publicKey: nonsense\n`, /keys\[0\]\.publicKey is not a PEM public key/],
    ["a duplicate id", `keys:\n  - id: a\n    publicKey: |\n${indented}\n  - id: a\n    publicKey: |\n${indented}\n`, /keys\[1\]\.id "a" is listed twice/],
    ["a bad date", `keys:\n  - id: a\n    notAfter: someday\n    publicKey: |\n${indented}\n`, /keys\[0\]\.notAfter must be an RFC 3339 date/],
    ["not a list", `keys: yes\n`, /keys must be a list/],
    ["bad YAML", `keys: [\n`, /not valid YAML/],
  ];
  for (const [what, text, message] of cases) {
    it(`rejects ${what}, naming the file and the key`, async () => {
      const file = join(tempDir(), "trusted-keys.yaml");
      writeFileSync(file, text);
      const error = await rejectionOf(loadTrustedKeys(file));
      expect(error.code).toBe("E_TRUST_CONFIG");
      expect(error.message).toContain(file);
      expect(error.message).toMatch(message);
    });
  }

  it("reads the shipped configs/trusted-keys.yaml (documented, empty), and refuses it as a trust file on its own: it trusts nothing", async () => {
    const shipped = join(__dirname, "..", "configs", "trusted-keys.yaml");
    expect(await loadTrustStore(shipped, { allowEmpty: true })).toEqual({ keys: [], certificateRoots: [] });
    await expect(loadTrustedKeys(shipped)).rejects.toMatchObject({ code: "E_TRUST_CONFIG", message: expect.stringContaining("lists no keys and no certificate roots") });
  });
});

describe("canonical names", () => {
  it("sorts by UTF-8 bytes, not UTF-16 units (astral characters sort after U+FFFF)", () => {
    const names = ["\uFF5E", "\u{1F600}", "a", "B"];
    expect([...names].sort(compareUtf8)).toEqual(["B", "a", "\uFF5E", "\u{1F600}"]);
    expect([...names].sort()).not.toEqual([...names].sort(compareUtf8));
  });

  it("accepts relative POSIX names and rejects the rest", () => {
    for (const ok of ["a", "a/b.gguf", "activation/activation_0.pt", "ünï/cödé"]) expect(nameProblem(ok), ok).toBeNull();
    for (const bad of ["", "/abs", "../x", "a/../b", "./a", "a//b", "a/", "a\\b", "a\nb", "a\0b", "a\uD800b"]) expect(nameProblem(bad), JSON.stringify(bad)).not.toBeNull();
  });

  it("ignores the same names in a walk (one matcher for many names) as one name at a time: the path itself, and what is under it", () => {
    const ignorePaths = [".git", "logs/", "a/b", "model.sig", "x//"];
    const names = [".git", ".git/config", ".gitignore", "logs", "logs/run.txt", "logs/deep/run.txt", "a", "a/b", "a/b/c", "a/bc", "b/a/b", "model.sig", "model.sig.tmp-1-0a0b0c0d", "x/y", "x//y"];
    const ignored = ignoreMatcher(ignorePaths);
    expect(names.filter((n) => ignored(n))).toEqual([".git", ".git/config", "logs/run.txt", "logs/deep/run.txt", "a/b", "a/b/c", "model.sig", "x//y"]);
    for (const name of names) expect(ignored(name), name).toBe(isIgnored(name, ignorePaths));
  });
});
