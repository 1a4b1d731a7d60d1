/**
 * Attacks on a signed model directory (signing.md §8): every one must fail closed, with
 * the VerifyError code a consumer switches on and a message that names the file. Each
 * test signs a fresh small model with a fresh P-256 key, then breaks one thing.
 *
 * Manifest attacks are built as statements signed with the trusted key (createBundle over
 * a hand-made statement), so the signature passes and the check under test is the one
 * that fires.
 */
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  constants,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BUNDLE_MEDIA_TYPE, createBundle, parseBundle } from "../pipeline/signing/bundle.js";
import { fileIdentity } from "../pipeline/core/file-identity.js";
import { IN_TOTO_PAYLOAD_TYPE } from "../pipeline/signing/dsse.js";
import { VerifyError, type VerifyErrorCode } from "../pipeline/signing/errors.js";
import { keyHint, spkiDer } from "../pipeline/signing/keys.js";
import { OMS_PREDICATE_TYPE, rootDigest, STATEMENT_TYPE, type Resource } from "../pipeline/signing/oms.js";
import type { ProvenanceInput } from "../pipeline/signing/provenance.js";
import { signModelDirectory, type SignResult } from "../pipeline/signing/sign.js";
import type { TrustedKeyEntry } from "../pipeline/signing/trust.js";
import { compareToManifest, verifyModel, type VerifyOptions } from "../pipeline/signing/verify.js";

const BUILDER_ID = "https://github.com/ai-tools/ai-tools/builders/local@v1";
const REVISION = "0123456789abcdef0123456789abcdef01234567";
const FINISHED_ON = "2025-01-01T00:10:00Z";
const GGUF = "model.powerinfer.gguf";
const GGUF_SIZE = 4096;
const ACTIVATION_SIZE = 1024;
const MODEL_FILES = ["SHA256SUMS", "activation/activation_0.pt", "activation/activation_1.pt", "bench.json", GGUF, "policy.yaml"];
const POLICY_YAML = "mode: strict\nallowExtraFiles: false\n";

interface Fixture {
  root: string;
  dir: string;
  privateKey: KeyObject;
  pem: string;
  trusted: TrustedKeyEntry[];
  signed: SignResult;
}

let fx: Fixture;

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");
const byName = (a: { name: string }, b: { name: string }) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));

function newKey(): { privateKey: KeyObject; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, pem: publicKey.export({ type: "spki", format: "pem" }) as string };
}

function provenanceInput(): ProvenanceInput {
  return {
    modelId: "tiny",
    externalParameters: { source: { uri: "https://huggingface.co/org/repo", revision: REVISION }, modelId: "tiny" },
    resolvedDependencies: [],
    builder: { id: BUILDER_ID },
    invocationId: "run-0001",
    startedOn: "2025-01-01T00:00:00Z",
    finishedOn: FINISHED_ON,
  };
}

/** A small fake model directory: random weights, a policy, a bench result, two activation files of equal size. */
function writeModel(dir: string): void {
  mkdirSync(join(dir, "activation"), { recursive: true });
  writeFileSync(join(dir, GGUF), randomBytes(GGUF_SIZE));
  writeFileSync(join(dir, "policy.yaml"), POLICY_YAML);
  writeFileSync(join(dir, "bench.json"), JSON.stringify({ tokensPerSecond: 12.5, model: "tiny" }) + "\n");
  writeFileSync(join(dir, "activation", "activation_0.pt"), randomBytes(ACTIVATION_SIZE));
  writeFileSync(join(dir, "activation", "activation_1.pt"), randomBytes(ACTIVATION_SIZE));
}

beforeEach(async () => {
  const root = mkdtempSync(join(tmpdir(), "signing-attacks-"));
  const dir = join(root, "tiny-model");
  writeModel(dir);
  const { privateKey, pem } = newKey();
  const signed = await signModelDirectory(dir, { privateKey, provenance: provenanceInput() });
  fx = { root, dir, privateKey, pem, trusted: [{ id: "release", publicKey: pem }], signed };
});

afterEach(() => {
  rmSync(fx.root, { recursive: true, force: true });
});

function options(extra: Partial<VerifyOptions> = {}): VerifyOptions {
  return { trustedKeys: fx.trusted, ...extra };
}

/** The rejection of `promise`, asserted to be a VerifyError with `code`. */
async function rejection(promise: Promise<unknown>, code: VerifyErrorCode): Promise<VerifyError> {
  const outcome = await promise.then(
    () => new Error(`verification passed; expected ${code}`),
    (error: unknown) => error,
  );
  if (!(outcome instanceof VerifyError)) throw outcome;
  expect(outcome.code, outcome.message).toBe(code);
  return outcome;
}

const verifyFails = (code: VerifyErrorCode, extra: Partial<VerifyOptions> = {}) => rejection(verifyModel(fx.dir, options(extra)), code);

function flipByte(path: string, offset: number): void {
  const fd = openSync(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    readFileSync(path).copy(byte, 0, offset, offset + 1);
    byte[0] = byte[0]! ^ 0xff;
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

const sigPath = () => join(fx.dir, "model.sig");
const provenancePath = () => join(fx.dir, "provenance.sigstore.json");
const signedStatement = () => parseBundle(readFileSync(sigPath()), sigPath()).payload;
const resources = (): Resource[] => fx.signed.resources.map((r) => ({ ...r }));

function omsStatement(list: readonly Resource[], overrides: { root?: string; predicateType?: string; serialization?: Record<string, unknown> } = {}) {
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: "tiny-model", digest: { sha256: overrides.root ?? rootDigest(list) } }],
    predicateType: overrides.predicateType ?? OMS_PREDICATE_TYPE,
    predicate: {
      resources: list,
      serialization: overrides.serialization ?? { method: "files", hash_type: "sha256", allow_symlinks: false, ignore_paths: fx.signed.ignorePaths },
    },
  };
}

/** model.sig := a bundle over `statement`, validly signed (by the trusted key unless told otherwise). */
function writeSignedStatement(statement: unknown, key: KeyObject = fx.privateKey): void {
  writeFileSync(sigPath(), createBundle(Buffer.from(JSON.stringify(statement), "utf8"), key));
}

describe("an untouched signed model", () => {
  it("verifies, listing every signed file and the provenance", async () => {
    const result = await verifyModel(fx.dir, options());
    expect(result.files.map((f) => f.name)).toEqual(MODEL_FILES);
    expect(result.rootDigest).toBe(fx.signed.rootDigest);
    expect(result.subjectName).toBe("tiny-model");
    expect(result.key).toEqual({ id: "release", hint: keyHint(fx.privateKey) });
    expect(result.cachedFiles).toBe(0);
    const gguf = result.files.find((f) => f.name === GGUF)!;
    expect(gguf).toEqual({ name: GGUF, size: GGUF_SIZE, digest: sha256(readFileSync(join(fx.dir, GGUF))) });
    expect(result.provenance?.builderId).toBe(BUILDER_ID);
    expect(result.provenance?.modelId).toBe("tiny");
    expect(result.provenance?.source).toBe("https://huggingface.co/org/repo");
    expect(result.provenance?.finishedOn).toBe(FINISHED_ON);
    // SHA256SUMS is `sha256sum -c` compatible and lists everything but itself.
    const sums = readFileSync(join(fx.dir, "SHA256SUMS"), "utf8");
    expect(sums.trimEnd().split("\n").map((line) => line.split("  ")[1])).toEqual(MODEL_FILES.filter((n) => n !== "SHA256SUMS"));
  });

  it("passes every provenance policy it meets", async () => {
    const result = await verifyModel(
      fx.dir,
      options({ allowedBuilders: [BUILDER_ID], allowedSources: ["org/repo"], modelId: "tiny", maxAgeDays: 30, now: new Date("2025-01-15T00:00:00Z"), provenance: "require" }),
    );
    expect(result.provenance?.builderId).toBe(BUILDER_ID);
  });

  it("ignores the engine's runtime .generated.gpuidx written after signing (recorded in ignore_paths)", async () => {
    const gpuidx = `${GGUF}.generated.gpuidx`;
    expect(fx.signed.ignorePaths).toContain(gpuidx);
    expect(JSON.parse(signedStatement().toString("utf8")).predicate.serialization.ignore_paths).toContain(gpuidx);
    writeFileSync(join(fx.dir, gpuidx), randomBytes(256));
    const result = await verifyModel(fx.dir, options());
    expect(result.files.map((f) => f.name)).toEqual(MODEL_FILES);
    expect(result.skipped).toContainEqual({ name: gpuidx, why: "ignored" });
  });

  it("verifies a hand-made statement over the real files (the control for the manifest attacks below)", async () => {
    writeSignedStatement(omsStatement(resources()));
    const result = await verifyModel(fx.dir, options());
    expect(result.rootDigest).toBe(fx.signed.rootDigest);
  });
});

describe("attacks on the files", () => {
  it("a flipped weight byte: E_DIGEST_MISMATCH naming the file and both digests", async () => {
    const path = join(fx.dir, GGUF);
    const signedDigest = sha256(readFileSync(path));
    flipByte(path, 1000);
    const actualDigest = sha256(readFileSync(path));
    const error = await verifyFails("E_DIGEST_MISMATCH");
    expect(error.message).toContain(GGUF);
    expect(error.message).toContain(signedDigest);
    expect(error.message).toContain(actualDigest);
    expect(error.files).toEqual([GGUF]);
  });

  it("a truncated file: E_DIGEST_MISMATCH on the size, before any hashing", async () => {
    truncateSync(join(fx.dir, GGUF), GGUF_SIZE - 1);
    const error = await verifyFails("E_DIGEST_MISMATCH");
    expect(error.message).toContain(GGUF);
    expect(error.message).toContain(`${GGUF_SIZE - 1} bytes`);
    expect(error.message).toContain(`${GGUF_SIZE} bytes`);
    expect(error.files).toEqual([GGUF]);
  });

  it("an extra file: E_EXTRA_FILE, accepted only with allowExtraFiles", async () => {
    writeFileSync(join(fx.dir, "notes.txt"), "unsigned\n");
    writeFileSync(join(fx.dir, "activation", "activation_2.pt"), randomBytes(16));
    const error = await verifyFails("E_EXTRA_FILE");
    expect(error.files).toEqual(["activation/activation_2.pt", "notes.txt"]);
    expect(error.message).toContain("notes.txt");
    const result = await verifyModel(fx.dir, options({ allowExtraFiles: true }));
    expect(result.files.map((f) => f.name)).toEqual(MODEL_FILES);
    expect(result.skipped).toContainEqual({ name: "notes.txt", why: "unsigned" });
  });

  it("missing files: E_MISSING_FILE listing all of them", async () => {
    rmSync(join(fx.dir, "activation", "activation_1.pt"));
    rmSync(join(fx.dir, "bench.json"));
    const error = await verifyFails("E_MISSING_FILE");
    expect(error.files).toEqual(["activation/activation_1.pt", "bench.json"]);
    expect(error.message).toContain("activation/activation_1.pt");
    expect(error.message).toContain("bench.json");
  });

  it("a renamed file: E_MISSING_FILE for the signed name", async () => {
    renameSync(join(fx.dir, "bench.json"), join(fx.dir, "bench.json.bak"));
    const error = await verifyFails("E_MISSING_FILE");
    expect(error.files).toEqual(["bench.json"]);
    expect(error.details.join("\n")).toContain("bench.json.bak");
  });

  it("two equal-size files with their contents swapped: E_DIGEST_MISMATCH for both", async () => {
    const a = join(fx.dir, "activation", "activation_0.pt");
    const b = join(fx.dir, "activation", "activation_1.pt");
    const [bytesA, bytesB] = [readFileSync(a), readFileSync(b)];
    writeFileSync(a, bytesB);
    writeFileSync(b, bytesA);
    const error = await verifyFails("E_DIGEST_MISMATCH");
    expect(error.files).toEqual(["activation/activation_0.pt", "activation/activation_1.pt"]);
    expect(error.message).toContain("activation/activation_0.pt");
  });

  it("a symlink pointing inside the model: E_NOT_REGULAR_FILE naming it", async () => {
    symlinkSync(GGUF, join(fx.dir, "alias.gguf"));
    const error = await verifyFails("E_NOT_REGULAR_FILE");
    expect(error.message).toContain("alias.gguf");
    expect(error.files).toEqual(["alias.gguf"]);
  });

  it("a signed file replaced by a symlink to an identical file outside: E_NOT_REGULAR_FILE, even with allowExtraFiles", async () => {
    const outside = join(fx.root, "outside-policy.yaml");
    copyFileSync(join(fx.dir, "policy.yaml"), outside);
    rmSync(join(fx.dir, "policy.yaml"));
    symlinkSync(outside, join(fx.dir, "policy.yaml"));
    const error = await verifyFails("E_NOT_REGULAR_FILE", { allowExtraFiles: true });
    expect(error.message).toContain("policy.yaml");
    expect(error.files).toEqual(["policy.yaml"]);
  });

  it("a signed folder replaced by a symlink to an identical folder outside: E_NOT_REGULAR_FILE", async () => {
    const outside = join(fx.root, "outside-activation");
    cpSync(join(fx.dir, "activation"), outside, { recursive: true });
    rmSync(join(fx.dir, "activation"), { recursive: true });
    symlinkSync(outside, join(fx.dir, "activation"));
    const error = await verifyFails("E_NOT_REGULAR_FILE");
    expect(error.files).toEqual(["activation"]);
  });

  it("a directory where a signed file was: E_MISSING_FILE for that name (empty or not)", async () => {
    rmSync(join(fx.dir, "bench.json"));
    mkdirSync(join(fx.dir, "bench.json"));
    let error = await verifyFails("E_MISSING_FILE");
    expect(error.files).toEqual(["bench.json"]);
    writeFileSync(join(fx.dir, "bench.json", "bench.json"), "{}\n");
    error = await verifyFails("E_MISSING_FILE");
    expect(error.files).toEqual(["bench.json"]);
    expect(error.details.join("\n")).toContain("bench.json/bench.json");
  });
});

describe("attacks on the signature", () => {
  it("an edited payload (weights and manifest changed consistently) with the old signature: E_BAD_SIGNATURE", async () => {
    flipByte(join(fx.dir, GGUF), 0);
    const bundle = JSON.parse(readFileSync(sigPath(), "utf8"));
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
    const list = statement.predicate.resources as Resource[];
    list.find((r) => r.name === GGUF)!.digest = sha256(readFileSync(join(fx.dir, GGUF)));
    statement.subject[0].digest.sha256 = rootDigest(list);
    bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString("base64");
    writeFileSync(sigPath(), JSON.stringify(bundle));
    const error = await verifyFails("E_BAD_SIGNATURE");
    expect(error.message).toContain("model.sig");
  });

  it("altered signature bytes: E_BAD_SIGNATURE", async () => {
    const bundle = JSON.parse(readFileSync(sigPath(), "utf8"));
    const sig = Buffer.from(bundle.dsseEnvelope.signatures[0].sig, "base64");
    sig[sig.length - 5]! ^= 0x01;
    bundle.dsseEnvelope.signatures[0].sig = sig.toString("base64");
    writeFileSync(sigPath(), JSON.stringify(bundle));
    await verifyFails("E_BAD_SIGNATURE");
  });

  it("the same statement re-signed by another key, naming that key: E_UNKNOWN_KEY", async () => {
    const other = newKey();
    writeFileSync(sigPath(), createBundle(signedStatement(), other.privateKey));
    const error = await verifyFails("E_UNKNOWN_KEY");
    expect(error.message).toContain(keyHint(other.privateKey));
    expect(error.message).toContain("model.sig");
  });

  it("another key's signature with the trusted key's hint: E_BAD_SIGNATURE", async () => {
    const other = newKey();
    const bundle = JSON.parse(createBundle(signedStatement(), other.privateKey));
    bundle.verificationMaterial.publicKey.hint = keyHint(fx.privateKey);
    writeFileSync(sigPath(), JSON.stringify(bundle));
    await verifyFails("E_BAD_SIGNATURE");
  });

  it("another key embedded in the bundle (publicKey.rawBytes) is never trusted: E_UNKNOWN_KEY", async () => {
    const other = newKey();
    const bundle = JSON.parse(createBundle(signedStatement(), other.privateKey));
    bundle.verificationMaterial.publicKey = { rawBytes: spkiDer(other.privateKey).toString("base64") };
    writeFileSync(sigPath(), JSON.stringify(bundle));
    await verifyFails("E_UNKNOWN_KEY");
  });

  it("an expired key: E_KEY_EXPIRED", async () => {
    fx.trusted = [{ id: "release", publicKey: fx.pem, notAfter: "2020-01-01T00:00:00Z" }];
    const error = await verifyFails("E_KEY_EXPIRED");
    expect(error.message).toContain("release");
    // The same key inside its window (the `now` option) still verifies.
    await verifyModel(fx.dir, options({ now: new Date("2019-06-01T00:00:00Z") }));
  });

  it("a key not yet valid: E_KEY_EXPIRED", async () => {
    fx.trusted = [{ id: "release", publicKey: fx.pem, notBefore: new Date(Date.now() + 86_400_000).toISOString() }];
    const error = await verifyFails("E_KEY_EXPIRED");
    expect(error.message).toContain("release");
  });

  it("a revoked key: E_KEY_REVOKED", async () => {
    fx.trusted = [{ id: "release", publicKey: fx.pem, revoked: true }];
    const error = await verifyFails("E_KEY_REVOKED");
    expect(error.message).toContain("release");
  });
});

describe("validly signed but invalid manifests: E_MANIFEST_INVALID", () => {
  /** A real file at `name` (where one can be made) whose digest the forged entry carries: a naive verifier would pass. */
  function withEntry(name: string, content: Buffer): Resource[] {
    return [...resources(), { name, algorithm: "sha256" as const, digest: sha256(content), size: content.length }].sort(byName);
  }

  it.each([
    {
      name: "../secret",
      setup: () => {
        const content = Buffer.from("top secret\n");
        writeFileSync(join(fx.root, "secret"), content);
        return content;
      },
      problem: '".." segment',
    },
    { name: "/etc/passwd", setup: () => Buffer.from("root:x:0:0::/root:/bin/sh\n"), problem: "absolute" },
    {
      name: "a//b",
      setup: () => {
        const content = Buffer.from("b\n");
        mkdirSync(join(fx.dir, "a"));
        writeFileSync(join(fx.dir, "a", "b"), content);
        return content;
      },
      problem: "empty segment",
    },
    {
      name: "./a",
      setup: () => {
        const content = Buffer.from("a\n");
        writeFileSync(join(fx.dir, "a"), content);
        return content;
      },
      problem: '"." segment',
    },
  ])("a resource named $name", async ({ name, setup, problem }) => {
    writeSignedStatement(omsStatement(withEntry(name, setup())));
    const error = await verifyFails("E_MANIFEST_INVALID", { allowExtraFiles: true });
    expect(error.message).toContain(JSON.stringify(name));
    expect(error.message).toContain(problem);
  });

  it("a name listed twice", async () => {
    const list = resources();
    const index = list.findIndex((r) => r.name === "bench.json");
    list.splice(index + 1, 0, { ...list[index]! });
    writeSignedStatement(omsStatement(list));
    const error = await verifyFails("E_MANIFEST_INVALID");
    expect(error.message).toContain("listed twice");
    expect(error.files).toEqual(["bench.json"]);
  });

  it("names out of order (the root computed over that order)", async () => {
    const list = resources();
    [list[0], list[1]] = [list[1]!, list[0]!];
    writeSignedStatement(omsStatement(list));
    const error = await verifyFails("E_MANIFEST_INVALID");
    expect(error.message).toContain("not sorted");
  });

  it("a root digest that is not the files' root", async () => {
    const list = resources();
    writeSignedStatement(omsStatement(list, { root: rootDigest(list.slice(1)) }));
    const error = await verifyFails("E_MANIFEST_INVALID");
    expect(error.message).toContain("inconsistent");
    expect(error.message).toContain(rootDigest(list));
  });
});

describe("signed statements this verifier does not read: E_UNSUPPORTED", () => {
  it("predicate type model_signing v2.0", async () => {
    writeSignedStatement(omsStatement(resources(), { predicateType: "https://model_signing/signature/v2.0" }));
    const error = await verifyFails("E_UNSUPPORTED");
    expect(error.message).toContain("signature/v2.0");
  });

  it("the shards method", async () => {
    const shards = resources().map((r) => ({ ...r, name: `${r.name}:0:${r.size}` }));
    writeSignedStatement(
      omsStatement(shards, { serialization: { method: "shards", hash_type: "sha256", allow_symlinks: false, shard_size: 1_000_000_000, ignore_paths: fx.signed.ignorePaths } }),
    );
    const error = await verifyFails("E_UNSUPPORTED");
    expect(error.message).toContain("shards");
  });

  it("a legacy v0.2 signature (predicate Digests/v0.1, one subject per file)", async () => {
    writeSignedStatement({
      _type: STATEMENT_TYPE,
      subject: resources().map((r) => ({ name: r.name, digest: { sha256: r.digest } })),
      predicateType: "https://model_signing/Digests/v0.1",
      predicate: {},
    });
    const error = await verifyFails("E_UNSUPPORTED");
    expect(error.message).toContain("legacy");
  });
});

describe("signature files that are not signatures", () => {
  it("a 100 MB model.sig: E_MALFORMED at once, without reading it", async () => {
    rmSync(sigPath());
    writeFileSync(sigPath(), "");
    truncateSync(sigPath(), 100 * 1024 * 1024); // sparse: costs no disk and no time
    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();
    const error = await verifyFails("E_MALFORMED");
    expect(performance.now() - started).toBeLessThan(2000);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(50 * 1024 * 1024);
    expect(error.message).toContain("model.sig");
  });

  it("a 100 MB provenance file: E_MALFORMED likewise", async () => {
    truncateSync(provenancePath(), 100 * 1024 * 1024);
    const rssBefore = process.memoryUsage().rss;
    const error = await verifyFails("E_MALFORMED");
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(50 * 1024 * 1024);
    expect(error.message).toContain("provenance.sigstore.json");
  });

  it("deeply nested JSON (100000 arrays): E_MALFORMED, no crash", async () => {
    const depth = 100_000;
    writeFileSync(sigPath(), "[".repeat(depth) + "]".repeat(depth));
    await verifyFails("E_MALFORMED");
    // The same depth where a bundle field should be.
    const nested = "[".repeat(depth) + "]".repeat(depth);
    writeFileSync(
      sigPath(),
      `{"mediaType":${JSON.stringify(BUNDLE_MEDIA_TYPE)},"verificationMaterial":{"publicKey":{"hint":"${keyHint(fx.privateKey)}"}},"dsseEnvelope":{"payloadType":${JSON.stringify(IN_TOTO_PAYLOAD_TYPE)},"payload":"e30=","signatures":[${nested}]}}`,
    );
    await verifyFails("E_MALFORMED");
  });

  it("non-JSON or non-base64 content: E_MALFORMED", async () => {
    const statement = signedStatement();
    writeFileSync(sigPath(), "this is not a signature\n");
    await verifyFails("E_MALFORMED");
    writeFileSync(sigPath(), randomBytes(512));
    await verifyFails("E_MALFORMED");
    const bundle = JSON.parse(createBundle(statement, fx.privateKey));
    bundle.dsseEnvelope.payload = "not base64!";
    writeFileSync(sigPath(), JSON.stringify(bundle));
    await verifyFails("E_MALFORMED");
  });

  it("no model.sig: E_NO_SIGNATURE", async () => {
    rmSync(sigPath());
    const error = await verifyFails("E_NO_SIGNATURE");
    expect(error.message).toContain("model.sig");
  });

  it("a FIFO as model.sig fails fast instead of blocking in open(2)", async () => {
    rmSync(sigPath());
    execFileSync("mkfifo", [sigPath()]);
    let outcome: unknown = "still pending after 1 s";
    const run = verifyModel(fx.dir, options()).then(
      () => (outcome = "verified"),
      (error: unknown) => (outcome = error),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const early = outcome;
    // Release a reader stuck in open(2) either way, so no worker thread stays blocked.
    try {
      closeSync(openSync(sigPath(), constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // ENXIO: nobody is reading it, i.e. the verifier did not block.
    }
    await run;
    expect(early).toBeInstanceOf(VerifyError);
    expect((early as VerifyError).code).toBe("E_MALFORMED");
  });
});

describe("attacks on the provenance", () => {
  it("provenance of another model (another root, same key): E_PROVENANCE_MISMATCH", async () => {
    const otherDir = join(fx.root, "other-model");
    writeModel(otherDir);
    await signModelDirectory(otherDir, { privateKey: fx.privateKey, provenance: provenanceInput() });
    copyFileSync(join(otherDir, "provenance.sigstore.json"), provenancePath());
    const error = await verifyFails("E_PROVENANCE_MISMATCH");
    expect(error.message).toContain("provenance.sigstore.json");
    expect(error.message).toContain(fx.signed.rootDigest);
  });

  it("a builder that is not allowed: E_POLICY", async () => {
    const error = await verifyFails("E_POLICY", { allowedBuilders: ["https://builders.example/trusted-ci"] });
    expect(error.message).toContain(BUILDER_ID);
  });

  it("a key restricted to other builders cannot vouch for this builder, even when the caller allows it: E_POLICY", async () => {
    // The trust store says this key signs only for trusted-ci builds; the caller's own allowlist must not widen that.
    fx.trusted = [{ id: "release", publicKey: fx.pem, allowedBuilders: ["https://builders.example/trusted-ci"] }];
    await verifyFails("E_POLICY");
    await verifyFails("E_POLICY", { allowedBuilders: [BUILDER_ID] });
  });

  it("a key restricted to other sources cannot vouch for this source, even when the caller allows it: E_POLICY", async () => {
    fx.trusted = [{ id: "release", publicKey: fx.pem, allowedSources: ["org/other-repo"] }];
    await verifyFails("E_POLICY");
    await verifyFails("E_POLICY", { allowedSources: ["org/repo"] });
  });

  it("older than maxAgeDays at `now`: E_POLICY", async () => {
    const error = await verifyFails("E_POLICY", { maxAgeDays: 30, now: new Date("2025-03-01T00:00:00Z") });
    expect(error.message).toContain(FINISHED_ON);
  });

  it("another model id than requested: E_POLICY", async () => {
    const error = await verifyFails("E_POLICY", { modelId: "other-model" });
    expect(error.message).toContain("other-model");
  });

  it("provenance deleted while a policy needs it: E_PROVENANCE_MISMATCH", async () => {
    rmSync(provenancePath());
    await verifyModel(fx.dir, options()); // without a policy it is optional
    const error = await verifyFails("E_PROVENANCE_MISMATCH", { allowedBuilders: [BUILDER_ID] });
    expect(error.message).toContain("provenance.sigstore.json");
  });

  it("provenance signed by another trusted key: E_PROVENANCE_MISMATCH", async () => {
    const ci = newKey();
    fx.trusted = [...fx.trusted, { id: "ci", publicKey: ci.pem }];
    const statement = parseBundle(readFileSync(provenancePath()), provenancePath()).payload;
    writeFileSync(provenancePath(), createBundle(statement, ci.privateKey));
    const error = await verifyFails("E_PROVENANCE_MISMATCH");
    expect(error.message).toContain("key ci");
    expect(error.message).toContain("release");
  });
});

describe("the digest cache", () => {
  const cacheFile = () => join(fx.root, "cache", "digests.json");
  // The fixture's files were written milliseconds ago: inside the default racy window.
  const cached = () => options({ digestCache: { dir: join(fx.root, "cache"), racyWindowMs: 0 } });

  it("does not cache a file changed within the racy window (default 2 s): it could change again within one timestamp tick", async () => {
    const fresh = () => options({ digestCache: { dir: join(fx.root, "cache") } });
    await verifyModel(fx.dir, fresh());
    expect((await verifyModel(fx.dir, fresh())).cachedFiles).toBe(0);
  });

  it("skips unchanged files the second time, and never hides a change", async () => {
    expect((await verifyModel(fx.dir, cached())).cachedFiles).toBe(0);
    const second = await verifyModel(fx.dir, cached());
    expect(second.cachedFiles).toBeGreaterThan(0);
    expect(second.cachedFiles).toBe(MODEL_FILES.length);
    flipByte(join(fx.dir, GGUF), 2000); // same size, same inode, new content
    const error = await rejection(verifyModel(fx.dir, cached()), "E_DIGEST_MISMATCH");
    expect(error.files).toEqual([GGUF]);
  });

  it("a deleted cache file costs one full hash", async () => {
    await verifyModel(fx.dir, cached());
    rmSync(cacheFile());
    expect((await verifyModel(fx.dir, cached())).cachedFiles).toBe(0);
  });

  it("an edited cache file is ignored (still verifies, nothing cached)", async () => {
    await verifyModel(fx.dir, cached());
    const file = JSON.parse(readFileSync(cacheFile(), "utf8")) as { body: string; mac: string };
    const body = JSON.parse(file.body) as { entries: [string, { sha256: string }][] };
    body.entries[0]![1].sha256 = "0".repeat(64);
    writeFileSync(cacheFile(), JSON.stringify({ body: JSON.stringify(body), mac: file.mac }));
    const result = await verifyModel(fx.dir, cached());
    expect(result.cachedFiles).toBe(0);
  });

  it("a forged entry (tampered weights, cache rewritten to the new identity and the signed digest) does not pass", async () => {
    await verifyModel(fx.dir, cached());
    const path = join(fx.dir, GGUF);
    const signedDigest = fx.signed.resources.find((r) => r.name === GGUF)!.digest;
    flipByte(path, 3000);
    const file = JSON.parse(readFileSync(cacheFile(), "utf8")) as { body: string; mac: string };
    const body = JSON.parse(file.body) as { entries: [string, Record<string, string>][] };
    const entry = body.entries.find(([key]) => key.endsWith(`/${GGUF}`))!;
    entry[1] = { ...(await fileIdentity(path)), sha256: signedDigest };
    writeFileSync(cacheFile(), JSON.stringify({ body: JSON.stringify(body), mac: file.mac }));
    const error = await rejection(verifyModel(fx.dir, cached()), "E_DIGEST_MISMATCH");
    expect(error.files).toEqual([GGUF]);
  });
});

describe("compareToManifest", () => {
  it("reports nothing for an unchanged model, and the edited policy and added file after", async () => {
    const signedPolicyHash = sha256(POLICY_YAML);
    const unchanged = await compareToManifest(fx.dir, signedPolicyHash);
    expect(unchanged.matches).toBe(true);
    expect(unchanged.rootDigest).toBe(fx.signed.rootDigest);
    expect(unchanged.files).toEqual({ added: [], removed: [], modified: [] });
    expect(unchanged.policy).toEqual({ file: "policy.yaml", expected: signedPolicyHash, actual: signedPolicyHash, changed: false });

    const editedPolicy = POLICY_YAML.replace("strict", "permissive");
    writeFileSync(join(fx.dir, "policy.yaml"), editedPolicy);
    writeFileSync(join(fx.dir, "notes.txt"), "added later\n");
    const drift = await compareToManifest(fx.dir, sha256(editedPolicy), { trustedKeys: fx.trusted });
    expect(drift.matches).toBe(false);
    expect(drift.signatureVerified).toBe(true);
    expect(drift.files.added).toEqual(["notes.txt"]);
    expect(drift.files.removed).toEqual([]);
    expect(drift.files.modified).toEqual([{ name: "policy.yaml", expected: signedPolicyHash, actual: sha256(editedPolicy) }]);
    expect(drift.policy).toEqual({ file: "policy.yaml", expected: signedPolicyHash, actual: sha256(editedPolicy), changed: true });
  });
});
