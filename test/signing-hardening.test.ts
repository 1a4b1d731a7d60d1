/**
 * Hardening of sign and verify against hostile or unlucky directories and trust files
 * (issue 16): terminal control characters in names, certificate usages and pinned signer
 * identities (openssl-made certificates), duplicate or empty trust files, temporaries of a
 * killed signer, and I/O errors that must be typed, without stack traces.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { errorReport } from "../pipeline/core/errors.js";
import { escapeForTerminal, hasUnsafeCharacters, terminalSafe } from "../pipeline/core/escape.js";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { loadTrustStore, parseTrustedKeys, TRUSTED_KEY_FIELDS, TRUSTED_ROOT_FIELDS } from "../pipeline/signing/trust.js";
import { workspaceTrustStore } from "../pipeline/signing/trust-store.js";
import { verifyModel } from "../pipeline/signing/verify.js";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";
import { TestCa, signWithCertificate as signCertificateModel, type TestLeaf } from "./helpers/certificates.js";

const ESC_NAME = "\x1b[2K\x1b[1Gverified: all OK";

let root: string;
let ws: TestWorkspace;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "signing-hardening-"));
  ws = makeWorkspace();
});
afterAll(() => {
  execFileSync("rm", ["-rf", root]); // rm(1) walks with openat: the 1,500-level tree below is too deep for path-based removal
  ws.cleanup();
});

let counter = 0;
function newModel(files: Record<string, string | Buffer> = { "model.gguf": Buffer.alloc(5000, 3), "config.json": "{}\n" }): string {
  const dir = join(root, `model-${++counter}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

function newKey(): { privateKey: KeyObject; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, pem: publicKey.export({ type: "spki", format: "pem" }) as string };
}

describe("escapeForTerminal", () => {
  it("shows control characters, DEL, C1, bidirectional overrides and non-UTF-8 bytes as escapes; the rest as it is", () => {
    expect(escapeForTerminal(ESC_NAME)).toBe("\\x1b[2K\\x1b[1Gverified: all OK");
    expect(escapeForTerminal("a\tb\nc\rd\x7f\x9b\u202eexe.txt")).toBe("a\\x09b\\x0ac\\x0dd\\x7f\\x9b\\u{202e}exe.txt");
    expect(escapeForTerminal("poids-équipe/模型-\u{1F600}.gguf")).toBe("poids-équipe/模型-\u{1F600}.gguf");
    expect(escapeForTerminal("back\\slash")).toBe("back\\\\slash");
    expect(escapeForTerminal(Buffer.from([0x61, 0xff, 0x62, 0xc3, 0xa9, 0xed, 0xa0, 0x80]))).toBe("a\\xffbé\\xed\\xa0\\x80");
    expect(escapeForTerminal("lone \ud800 surrogate")).toBe("lone \\u{d800} surrogate");
    expect(hasUnsafeCharacters("model.gguf")).toBe(false);
    expect(hasUnsafeCharacters(ESC_NAME)).toBe(true);
    expect(hasUnsafeCharacters(Buffer.from([0x61, 0xff]))).toBe(true);
    // Whole lines (already escaped names inside stay as they are): controls escaped, backslashes kept.
    expect(terminalSafe(`extra: ${escapeForTerminal(ESC_NAME)} and raw \x1b[31mred\x1b[0m`)).toBe("extra: \\x1b[2K\\x1b[1Gverified: all OK and raw \\x1b[31mred\\x1b[0m");
  });
});

describe("terminal control characters in file names", () => {
  it("a file added after signing named with ESC sequences: E_EXTRA_FILE, with the name escaped in every line shown", async () => {
    const { privateKey, pem } = newKey();
    const dir = newModel();
    await signModelDirectory(dir, { privateKey });
    writeFileSync(join(dir, ESC_NAME), "gotcha");
    const error = await verifyModel(dir, { trustedKeys: [{ id: "k", publicKey: pem }] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_EXTRA_FILE", files: [ESC_NAME] }); // the API keeps the real name
    const message = (error as Error).message;
    expect(message).toContain("\\x1b[2K\\x1b[1Gverified: all OK");
    expect(message).not.toContain("\x1b");

    // As a user sees it: no escape byte reaches the terminal, and the failure stands.
    mkdirSync(join(ws.root, "keys"), { recursive: true });
    const trust = join(ws.root, "keys", "escape-trust.yaml");
    writeFileSync(trust, `keys:\n  - id: k\n    publicKey: |\n${pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
    const result = await ws.cli(["verify", dir, "--trusted-keys", trust]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("[E_EXTRA_FILE]");
    expect(result.stdout + result.stderr).not.toContain("\x1b");
    expect(result.stderr).toContain("\\x1b[2K");
  });

  it("sign refuses names with control characters, C1 controls, bidirectional overrides or bytes that are not UTF-8: E_SIGN_UNSAFE_NAME", async () => {
    const { privateKey } = newKey();
    for (const name of [ESC_NAME, "csi\x9b31m", "report\u202etxt.exe", "tab\there"]) {
      const dir = newModel({ "model.gguf": "x", [name]: "y" });
      const error = await signModelDirectory(dir, { privateKey }).catch((e: unknown) => e);
      expect(error, name).toMatchObject({ code: "E_SIGN_UNSAFE_NAME" });
      expect((error as Error).message).toContain(escapeForTerminal(name));
      expect((error as Error).message).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202e]/);
      expect(existsSync(join(dir, "model.sig"))).toBe(false);
    }
    const dir = newModel({ "model.gguf": "x" });
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from(".bin")]), "z");
    await expect(signModelDirectory(dir, { privateKey })).rejects.toMatchObject({ code: "E_SIGN_UNSAFE_NAME", message: expect.stringContaining("bad-\\xff\\xfe.bin") });
  });
});

/** A model signed with the certificate method (test/helpers/certificates.ts). */
const signWithCertificate = (leaf: TestLeaf): Promise<string> => signCertificateModel(newModel(), leaf);

describe("certificate method: what the leaf is for, and who it is", () => {
  let ca: TestCa;
  beforeAll(() => {
    ca = new TestCa(root);
  });
  const SANS = "subjectAltName=email:release@acme.example,URI:https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main";

  it("a code-signing leaf (KU digitalSignature, EKU codeSigning) verifies, and one with KU only too", async () => {
    for (const extensions of [["keyUsage=critical,digitalSignature", "extendedKeyUsage=codeSigning", SANS], ["keyUsage=critical,digitalSignature"]]) {
      const dir = await signWithCertificate(ca.issue("/CN=release-signer/O=Acme", extensions));
      const result = await verifyModel(dir, { trustedKeys: [], certificateRoots: [ca.pem] });
      expect(result.key.certificateSubject).toBe("CN=release-signer, O=Acme");
    }
  });

  it("a leaf whose Key Usage lacks digitalSignature, or has no Key Usage: E_UNKNOWN_KEY", async () => {
    const noSigning = await signWithCertificate(ca.issue("/CN=encrypt-only", ["keyUsage=critical,keyEncipherment,keyAgreement", "extendedKeyUsage=codeSigning"]));
    await expect(verifyModel(noSigning, { trustedKeys: [], certificateRoots: [ca.pem] })).rejects.toMatchObject({ code: "E_UNKNOWN_KEY", message: expect.stringContaining("lacks digitalSignature") });
    const noUsage = await signWithCertificate(ca.issue("/CN=no-usage", ["extendedKeyUsage=codeSigning"]));
    await expect(verifyModel(noUsage, { trustedKeys: [], certificateRoots: [ca.pem] })).rejects.toMatchObject({ code: "E_UNKNOWN_KEY", message: expect.stringContaining("no Key Usage extension") });
  });

  it("a TLS server certificate from the same CA (EKU serverAuth only): E_UNKNOWN_KEY", async () => {
    const dir = await signWithCertificate(ca.issue("/CN=www.acme.example", ["keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth", "subjectAltName=DNS:www.acme.example"]));
    await expect(verifyModel(dir, { trustedKeys: [], certificateRoots: [ca.pem] })).rejects.toMatchObject({ code: "E_UNKNOWN_KEY", message: expect.stringContaining("Extended Key Usage is serverAuth") });
  });

  it("a root in the trust file pins the signer identities it vouches for (subject, SAN): others are E_POLICY", async () => {
    const signer = await signWithCertificate(ca.issue("/CN=release-signer/O=Acme", ["keyUsage=critical,digitalSignature", "extendedKeyUsage=codeSigning", SANS]));
    const intruder = await signWithCertificate(ca.issue("/CN=intern-laptop/O=Acme", ["keyUsage=critical,digitalSignature", "extendedKeyUsage=codeSigning", "subjectAltName=email:intern@acme.example"]));
    const file = join(root, "cert-trust.yaml");
    const indented = ca.pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n");
    writeFileSync(
      file,
      `keys: []\ncertificateRoots:\n  - id: acme-release-ca\n    certificate: |\n${indented}\n    allowedSubjects: ["CN=release-signer, O=Acme"]\n    allowedSans:\n      - URI:https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main\n`,
    );
    const store = await loadTrustStore(file);
    const ok = await verifyModel(signer, { trustedKeys: store.keys, certificateRoots: store.certificateRoots });
    expect(ok.key).toMatchObject({ certificateRoot: "acme-release-ca", certificateSans: expect.arrayContaining(["email:release@acme.example"]) });
    await expect(verifyModel(intruder, { trustedKeys: store.keys, certificateRoots: store.certificateRoots })).rejects.toMatchObject({
      code: "E_POLICY",
      message: expect.stringContaining('"CN=intern-laptop, O=Acme" is not among the subjects root "acme-release-ca" may vouch for'),
    });
    // SANs alone: the intruder's e-mail is not listed.
    writeFileSync(file, `certificateRoots:\n  - id: acme-release-ca\n    certificate: |\n${indented}\n    allowedSans: ["email:release@acme.example"]\n`);
    const sansOnly = await loadTrustStore(file);
    await verifyModel(signer, { trustedKeys: [], certificateRoots: sansOnly.certificateRoots });
    await expect(verifyModel(intruder, { trustedKeys: [], certificateRoots: sansOnly.certificateRoots })).rejects.toMatchObject({ code: "E_POLICY", message: expect.stringContaining("email:intern@acme.example") });
    // The same root twice, or a leaf as a root, is a configuration error.
    writeFileSync(file, `certificateRoots:\n  - id: a\n    certificate: |\n${indented}\n  - id: b\n    certificate: |\n${indented}\n`);
    await expect(loadTrustStore(file)).rejects.toMatchObject({ code: "E_TRUST_CONFIG", message: expect.stringContaining('the same certificate as root "a"') });
  });
});

describe("trust files", () => {
  const entry = (id: string, pem: string, revoked = false) => ({ id, publicKey: pem, revoked });

  it("the same key listed twice (once revoked, once not, in either order): E_TRUST_CONFIG", async () => {
    const { pem } = newKey();
    for (const list of [[entry("old", pem, true), entry("new", pem)], [entry("new", pem), entry("old", pem, true)], [entry("a", pem), entry("b", pem)]]) {
      await expect(parseTrustedKeys({ keys: list }, "trust.yaml")).rejects.toMatchObject({ code: "E_TRUST_CONFIG", message: expect.stringContaining("is the same key as keys[0]") });
    }
    // Parsed lists merged by a caller: the same rule.
    const a = await parseTrustedKeys([entry("a", pem)], "one.yaml");
    const b = await parseTrustedKeys([entry("b", pem, true)], "two.yaml");
    const dir = newModel();
    await expect(verifyModel(dir, { trustedKeys: [...a, ...b] })).rejects.toMatchObject({ code: "E_TRUST_CONFIG", message: expect.stringContaining("one key twice") });
  });

  it("the development key listed in the workspace trust file too: that entry counts (revoked there: verification fails)", async () => {
    const workspace = mkdtempSync(join(root, "ws-"));
    const { privateKey, pem } = newKey();
    mkdirSync(join(workspace, "build", "keys"), { recursive: true });
    mkdirSync(join(workspace, "configs"), { recursive: true });
    writeFileSync(join(workspace, "build", "keys", "development.pub"), pem);
    writeFileSync(join(workspace, "configs", "trusted-keys.yaml"), `keys:\n  - id: retired-dev\n    revoked: true\n    publicKey: |\n${pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
    const store = await workspaceTrustStore(workspace);
    expect(store.keys.map((k) => k.id)).toEqual(["retired-dev"]);
    const dir = newModel();
    await signModelDirectory(dir, { privateKey });
    await expect(verifyModel(dir, { trustedKeys: store.keys })).rejects.toMatchObject({ code: "E_KEY_REVOKED" });
  });

  it("configs/trusted-keys.schema.json lists exactly the fields the parser accepts", () => {
    const schema = JSON.parse(readFileSync(join(PROJECT_ROOT, "configs", "trusted-keys.schema.json"), "utf8")) as { properties: Record<string, { items: { properties: object } }> };
    expect(Object.keys(schema.properties).sort()).toEqual(["certificateRoots", "keys"]);
    expect(Object.keys(schema.properties.keys!.items.properties).sort()).toEqual([...TRUSTED_KEY_FIELDS].sort());
    expect(Object.keys(schema.properties.certificateRoots!.items.properties).sort()).toEqual([...TRUSTED_ROOT_FIELDS].sort());
  });

  it("an empty trust file given to verify: E_TRUST_CONFIG, exit 2", async () => {
    const { privateKey } = newKey();
    const dir = newModel();
    await signModelDirectory(dir, { privateKey });
    for (const [name, text] of [["empty.yaml", ""], ["no-keys.yaml", "keys: []\n"], ["empty.json", "{}"]] as const) {
      const file = join(ws.root, name);
      writeFileSync(file, text);
      const result = await ws.cli(["verify", dir, "--trusted-keys", file]);
      expect(result.code, name).toBe(2);
      expect(result.stderr).toContain("[E_TRUST_CONFIG]");
      expect(result.stderr).toContain("trusts nothing");
    }
  });
});

describe("temporaries of a killed signer", () => {
  it("are never signed as resources: a dead writer's are removed, a live writer's stop the signing", async () => {
    const { privateKey, pem } = newKey();
    const dir = newModel();
    await signModelDirectory(dir, { privateKey });
    // A signer killed between writing and renaming (pid 999999 does not run).
    for (const name of ["model.sig.tmp-999999-0123abcd", "SHA256SUMS.tmp-999999-89abcdef"]) writeFileSync(join(dir, name), "half");
    const verified = await verifyModel(dir, { trustedKeys: [{ id: "k", publicKey: pem }] }).catch((e: unknown) => e);
    expect(verified).toMatchObject({ code: "E_EXTRA_FILE", details: expect.arrayContaining([expect.stringContaining("is the directory being re-signed?")]) });

    const signed = await signModelDirectory(dir, { privateKey });
    expect(signed.resources.map((r) => r.name)).toEqual(["SHA256SUMS", "config.json", "model.gguf"]);
    expect(existsSync(join(dir, "model.sig.tmp-999999-0123abcd"))).toBe(false);
    await verifyModel(dir, { trustedKeys: [{ id: "k", publicKey: pem }] });

    const writer = spawn("sleep", ["30"]);
    try {
      writeFileSync(join(dir, `model.sig.tmp-${writer.pid}-0123abcd`), "in progress");
      await expect(signModelDirectory(dir, { privateKey })).rejects.toMatchObject({ code: "E_SIGN_INPUT", message: expect.stringContaining(`process ${writer.pid} is writing`) });
    } finally {
      writer.kill();
    }
  });
});

describe("I/O errors are typed, without stack traces", () => {
  let deep: string;
  beforeAll(() => {
    deep = join(root, "deep");
    mkdirSync(deep);
    writeFileSync(join(deep, "model.gguf"), "x");
    // 1,500 levels (9,000 characters of path): each mkdir is relative, so no single call's path is too long.
    execFileSync("bash", ["-c", 'cd "$1" && for i in $(seq 1500); do mkdir level && cd level || exit 1; done && echo hi > file.bin', "bash", deep]);
  });

  it("signing a 1,500-level directory (ENAMETOOLONG): E_IO naming the path, shortened", async () => {
    const { privateKey } = newKey();
    const error = await signModelDirectory(deep, { privateKey }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_IO", message: expect.stringContaining("ENAMETOOLONG") });
    expect((error as Error).message.length).toBeLessThan(600);
    expect((error as Error).message).toMatch(/…\(\d+ characters\)…/);
  });

  it("the CLI says what failed in one line, and prints a stack only with AI_TOOLS_DEBUG=1", async () => {
    const key = join(ws.root, "keys", "deep.key");
    mkdirSync(join(ws.root, "keys"), { recursive: true });
    writeFileSync(key, newKey().privateKey.export({ type: "pkcs8", format: "pem" }) as string, { mode: 0o600 });
    const result = await ws.cli(["sign", deep, "--key", key]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("[E_IO]");
    expect(result.stderr).toContain("ENAMETOOLONG");
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.stderr).not.toContain("E_INTERNAL");
  });

  it("with AI_TOOLS_DEBUG=1 the CLI prints the stack one frame per line, naming the TypeScript sources (the bundle is minified)", async () => {
    const result = await ws.cli(["verify", join(ws.root, "no-such-model")], { AI_TOOLS_DEBUG: "1" });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("[E_USAGE]");
    expect(result.stderr).toMatch(/^\s+at .*pipeline\/cli\/commands\/verify\.ts:\d+:\d+\)$/m);
    expect(result.stderr).not.toContain("\\x0a");
  });

  it("errorReport: a raw system error is E_IO without a stack; with debugging, with it", () => {
    const raw = Object.assign(new Error("ENOENT: no such file or directory, open '/x/y'"), { code: "ENOENT", syscall: "open", path: "/x/y", errno: -2 });
    expect(errorReport(raw, { debug: false })).toEqual({ code: "E_IO", message: "cannot open /x/y: ENOENT (no such file or directory)", details: [] });
    const debugged = errorReport(raw, { debug: true }).details;
    expect(debugged[0]).toMatch(/^Error: ENOENT/);
    expect(debugged[1]).toMatch(/^\s+at /);
    expect(errorReport(new TypeError("boom"), { debug: false })).toMatchObject({ code: "E_INTERNAL", details: [expect.stringContaining("AI_TOOLS_DEBUG=1")] });
  });
});

describe("digest of many small files", () => {
  beforeEach(() => undefined);
  it("signs and verifies 2,000 files of 0-4 bytes, with digests equal to sha256sum's", async () => {
    const { privateKey, pem } = newKey();
    const files: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) files[`f${String(i).padStart(4, "0")}.txt`] = "abcd".slice(0, i % 5);
    const dir = newModel(files);
    await signModelDirectory(dir, { privateKey });
    const result = await verifyModel(dir, { trustedKeys: [{ id: "k", publicKey: pem }] });
    expect(result.files).toHaveLength(2001);
    expect(execFileSync("sha256sum", ["--quiet", "-c", "SHA256SUMS"], { cwd: dir, encoding: "utf8" })).toBe("");
    expect(result.files.find((f) => f.name === "f0003.txt")!.digest).toBe(createHash("sha256").update("abc").digest("hex"));
  });
});
