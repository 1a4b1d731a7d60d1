/**
 * Independent implementations agree with ours (signing.md §2, §3, §6, §8, §9):
 * - the OpenSSF Model Signing test vectors (sigstore/model-transparency, read at test time
 *   from ../shared/vectors/oms; never copied here) verify with our verifier, and tampered
 *   copies fail with the right code;
 * - what we sign verifies with `openssl dgst`, with @sigstore/verify (offline, key method)
 *   and with `sha256sum -c SHA256SUMS`;
 * - our DSSE PAE is byte-for-byte @sigstore/core's and the spec's.
 */
import { spawnSync } from "node:child_process";
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleFromJSON } from "@sigstore/bundle";
import { dsse } from "@sigstore/core";
import { toSignedEntity, toTrustMaterial, VerificationError, Verifier } from "@sigstore/verify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { preAuthEncoding } from "../pipeline/signing/dsse.js";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import type { ProvenanceInput } from "../pipeline/signing/provenance.js";
import { verifyModel, VerifyError, type VerifyErrorCode, type VerifyOptions } from "../pipeline/verify.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const vectorsDir = join(repoRoot, "..", "shared", "vectors", "oms");
const VECTOR_ROOT = "92745110b1ab4368471cbe31664e10174e954b113a3df333db860317b2c6dec4";
const IN_TOTO = "application/vnd.in-toto+json";

const scratch: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `ai-tools-signing-interop-${prefix}-`));
  scratch.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

async function expectVerifyError(promise: Promise<unknown>, code: VerifyErrorCode): Promise<VerifyError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}, but verification passed`).toBeInstanceOf(VerifyError);
  expect((error as VerifyError).code, (error as Error).message).toBe(code);
  return error as VerifyError;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return null;
}

function pemOf(key: KeyObject): string {
  return (key.type === "private" ? createPublicKey(key) : key).export({ type: "spki", format: "pem" }) as string;
}

interface SerializedBundle {
  mediaType: string;
  verificationMaterial: { publicKey?: { hint?: string }; tlogEntries: unknown[] };
  dsseEnvelope: { payload: string; payloadType: string; signatures: { sig: string; keyid?: string }[] };
}

/** The bundle with one resource digest in its signed payload changed (signature left as is). */
function withEditedPayload(bundleText: string): string {
  const bundle = JSON.parse(bundleText) as SerializedBundle;
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8")) as { predicate: { resources: { digest: string }[] } };
  const first = statement.predicate.resources[0]!;
  first.digest = (first.digest[0] === "0" ? "1" : "0") + first.digest.slice(1);
  bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement), "utf8").toString("base64");
  return JSON.stringify(bundle);
}

function flipByte(file: string, offset = 0): void {
  const bytes = readFileSync(file);
  bytes[offset] = bytes[offset]! ^ 0x01;
  writeFileSync(file, bytes);
}

// ---------------------------------------------------------------------------------------
// 1. The OpenSSF Model Signing vectors.

describe.skipIf(!existsSync(vectorsDir))(`OpenSSF Model Signing test vectors (${existsSync(vectorsDir) ? vectorsDir : "skipped: ../shared/vectors/oms absent"})`, () => {
  const keysDir = join(vectorsDir, "keys", "certificate");
  const upstreamKey = () => [{ id: "model-transparency-tests", publicKey: readFileSync(join(keysDir, "signing-key-pub.pem"), "utf8") }];
  const caRoot = () => readFileSync(join(keysDir, "ca-cert.pem"), "utf8");

  /** A writable copy of a vector folder (the sources are read-only). */
  function writableCopy(name: string): string {
    const target = join(tempDir(name), name);
    cpSync(join(vectorsDir, name), target, { recursive: true });
    const open = (dir: string) => {
      chmodSync(dir, 0o755);
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) open(path);
        else chmodSync(path, 0o644);
      }
    };
    open(target);
    return target;
  }

  const keyVectors = [
    { name: "v1.1.0-elliptic-key", material: "hint", options: {} },
    { name: "v1.0.1-elliptic-key", material: "rawBytes", options: { ignorePaths: ["ignore-me"] } },
  ] as const;

  for (const vector of keyVectors) {
    it(`${vector.name} (publicKey.${vector.material}) verifies with signing-key-pub.pem, root ${VECTOR_ROOT.slice(0, 12)}…`, async () => {
      const bundle = JSON.parse(readFileSync(join(vectorsDir, vector.name, "model.sig"), "utf8")) as { verificationMaterial: { publicKey: Record<string, unknown> } };
      expect(Object.keys(bundle.verificationMaterial.publicKey)).toContain(vector.material);

      const result = await verifyModel(join(vectorsDir, vector.name), { trustedKeys: upstreamKey(), ...vector.options });
      expect(result.rootDigest).toBe(VECTOR_ROOT);
      expect(result.key.id).toBe("model-transparency-tests");
      // signing-key-pub.pem carries a certtool preamble: the hint is over the bare PEM block.
      const block = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/.exec(readFileSync(join(keysDir, "signing-key-pub.pem"), "utf8"))![0];
      expect(result.key.hint).toBe(createHash("sha256").update(pemOf(createPublicKey(block))).digest("hex"));
      if (vector.material === "hint") expect(result.key.hint).toBe(bundle.verificationMaterial.publicKey.hint);
      expect(result.files.map((f) => f.name)).toEqual(["signme-1", "signme-2"]);
      // Each digest is the file's own sha256, and ROOT is sha256 over the raw digests.
      for (const f of result.files) expect(f.digest).toBe(createHash("sha256").update(readFileSync(join(vectorsDir, vector.name, f.name))).digest("hex"));
      expect(createHash("sha256").update(Buffer.concat(result.files.map((f) => Buffer.from(f.digest, "hex")))).digest("hex")).toBe(VECTOR_ROOT);
      expect(result.skipped.map((s) => s.name).sort()).toEqual(["ignore-me", "model.sig"]);
    });
  }

  it("v1.0.1-elliptic-key without the ignore path: ignore-me is an extra file", async () => {
    const error = await expectVerifyError(verifyModel(join(vectorsDir, "v1.0.1-elliptic-key"), { trustedKeys: upstreamKey() }), "E_EXTRA_FILE");
    expect(error.files).toEqual(["ignore-me"]);
  });

  const certificateVectors = [
    { name: "v1.0.1-certificate", options: { ignorePaths: ["ignore-me"] } },
    { name: "v1.1.0-certificate", options: {} },
  ] as const;

  for (const vector of certificateVectors) {
    it(`${vector.name} verifies with root ca-cert.pem, and not without a root`, async () => {
      const dir = join(vectorsDir, vector.name);
      const result = await verifyModel(dir, { trustedKeys: [], certificateRoots: [caRoot()], ...vector.options });
      expect(result.files.map((f) => f.name)).toEqual(["signme-1", "signme-2"]);
      for (const f of result.files) expect(f.digest).toBe(createHash("sha256").update(readFileSync(join(dir, f.name))).digest("hex"));
      expect(result.rootDigest).toBe(createHash("sha256").update(Buffer.concat(result.files.map((f) => Buffer.from(f.digest, "hex")))).digest("hex"));
      expect(result.key.certificateSubject).toBeDefined();

      // Nothing trusted at all is a configuration error, not a verdict on the signature.
      await expectVerifyError(verifyModel(dir, { trustedKeys: [], ...vector.options }), "E_TRUST_CONFIG");
      // Trusting the leaf's bare key is not a substitute for a root.
      await expectVerifyError(verifyModel(dir, { trustedKeys: upstreamKey(), ...vector.options }), "E_UNKNOWN_KEY");
      // A "root" with the intermediate's issuer name but another key does not anchor the chain.
      await expectVerifyError(verifyModel(dir, { trustedKeys: [], certificateRoots: [readFileSync(join(keysDir, "signing-key-cert.pem"), "utf8")], ...vector.options }), "E_UNKNOWN_KEY");
    });
  }

  describe("tampered copies of v1.1.0-elliptic-key", () => {
    const name = "v1.1.0-elliptic-key";
    const verify = (dir: string, options: Partial<VerifyOptions> = {}) => verifyModel(dir, { trustedKeys: upstreamKey(), ...options });

    it("the untampered copy verifies (the copy itself is sound)", async () => {
      expect((await verify(writableCopy(name))).rootDigest).toBe(VECTOR_ROOT);
    });

    it("one flipped byte in signme-1 -> E_DIGEST_MISMATCH", async () => {
      const dir = writableCopy(name);
      flipByte(join(dir, "signme-1"), 3);
      const error = await expectVerifyError(verify(dir), "E_DIGEST_MISMATCH");
      expect(error.files).toEqual(["signme-1"]);
    });

    it("an extra file -> E_EXTRA_FILE", async () => {
      const dir = writableCopy(name);
      writeFileSync(join(dir, "payload.bin"), "not signed\n");
      const error = await expectVerifyError(verify(dir), "E_EXTRA_FILE");
      expect(error.files).toEqual(["payload.bin"]);
    });

    it("signme-2 deleted -> E_MISSING_FILE", async () => {
      const dir = writableCopy(name);
      unlinkSync(join(dir, "signme-2"));
      const error = await expectVerifyError(verify(dir), "E_MISSING_FILE");
      expect(error.files).toEqual(["signme-2"]);
    });

    it("a digest edited inside model.sig's payload -> E_BAD_SIGNATURE", async () => {
      const dir = writableCopy(name);
      writeFileSync(join(dir, "model.sig"), withEditedPayload(readFileSync(join(dir, "model.sig"), "utf8")));
      await expectVerifyError(verify(dir), "E_BAD_SIGNATURE");
    });

    it("a fresh P-384 key as the only trusted key -> E_UNKNOWN_KEY", async () => {
      const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
      await expectVerifyError(verifyModel(writableCopy(name), { trustedKeys: [{ id: "someone-else", publicKey: pemOf(publicKey) }] }), "E_UNKNOWN_KEY");
    });
  });
});

// ---------------------------------------------------------------------------------------
// 2-4. What we sign, checked by openssl, @sigstore/verify and sha256sum.

const provenance: ProvenanceInput = {
  modelId: "SparseLLM/ReluLLaMA-7B",
  externalParameters: {
    source: { uri: "https://huggingface.co/SparseLLM/ReluLLaMA-7B", revision: "0123456789abcdef0123456789abcdef01234567" },
    modelId: "SparseLLM/ReluLLaMA-7B",
    outtype: "q4_0",
    model: { architecture: "llama", format: "gguf", paramSize: "7B", quantization: "q4_0" },
  },
  resolvedDependencies: [
    { uri: "git+https://huggingface.co/SparseLLM/ReluLLaMA-7B@0123456789abcdef0123456789abcdef01234567", digest: { gitCommit: "0123456789abcdef0123456789abcdef01234567" } },
    { uri: "git+https://github.com/SJTU-IPADS/PowerInfer@89abcdef0123456789abcdef0123456789abcdef", digest: { gitCommit: "89abcdef0123456789abcdef0123456789abcdef" } },
  ],
  builder: { id: "https://github.com/ai-tools/ai-tools/builders/local", version: { toolkit: "0.1.0", powerinfer: "89abcdef" } },
  invocationId: "test-run-1",
  startedOn: "2026-01-01T00:00:00Z",
  finishedOn: "2026-01-01T00:05:00Z",
};

describe("our signatures, checked by independent verifiers", () => {
  let key: { privateKey: KeyObject; publicKey: KeyObject };
  let pem: string;
  let hint: string;
  let modelDir: string;
  const contents: Record<string, Buffer> = {
    "relu-llama-7b.q4_0.powerinfer.gguf": Buffer.concat([Buffer.from("GGUF"), createHash("sha512").update("weights").digest(), Buffer.alloc(4096, 7)]),
    "bench.json": Buffer.from('{"tokens_per_second":12.5}\n'),
    "tokenizer/tokenizer.json": Buffer.from('{"model":{"type":"BPE"}}\n'),
  };

  beforeAll(async () => {
    key = generateKeyPairSync("ec", { namedCurve: "P-256" });
    pem = pemOf(key.publicKey);
    hint = createHash("sha256").update(pem).digest("hex");
    modelDir = join(tempDir("signed"), "relu-llama-7b");
    for (const [name, data] of Object.entries(contents)) {
      mkdirSync(dirname(join(modelDir, name)), { recursive: true });
      writeFileSync(join(modelDir, name), data);
    }
    const result = await signModelDirectory(modelDir, { privateKey: key.privateKey, provenance });
    expect(result.written).toEqual(["SHA256SUMS", "model.sig", "provenance.sigstore.json"]);
    expect(result.keyHint).toBe(hint);
  });

  const bundleText = (file: string) => readFileSync(join(modelDir, file), "utf8");
  const bundleOf = (file: string) => JSON.parse(bundleText(file)) as SerializedBundle;

  /** A fresh signed copy, for tests that change files. */
  function signedCopy(): string {
    const target = join(tempDir("copy"), "relu-llama-7b");
    cpSync(modelDir, target, { recursive: true });
    return target;
  }

  it("our own verifier accepts it, provenance included", async () => {
    const result = await verifyModel(modelDir, { trustedKeys: [{ id: "toolkit", publicKey: pem }], provenance: "require" });
    expect(result.files.map((f) => f.name)).toEqual(["SHA256SUMS", "bench.json", "relu-llama-7b.q4_0.powerinfer.gguf", "tokenizer/tokenizer.json"]);
    expect(result.provenance?.builderId).toBe(provenance.builder.id);
  });

  describe("bundle and statement shape (signing.md §2)", () => {
    it("is an OMS v1.0 statement with one subject: sha256 over the concatenated raw resource digests", () => {
      const bundle = bundleOf("model.sig");
      expect(bundle.mediaType).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
      expect(bundle.dsseEnvelope.payloadType).toBe(IN_TOTO);
      expect(bundle.dsseEnvelope.signatures).toHaveLength(1);
      expect(bundle.dsseEnvelope.signatures[0]!.keyid).toBe("");
      expect(bundle.verificationMaterial.publicKey?.hint).toBe(hint);
      expect(bundle.verificationMaterial.tlogEntries).toEqual([]);

      const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8")) as {
        _type: string;
        predicateType: string;
        subject: { name: string; digest: { sha256: string } }[];
        predicate: { resources: { name: string; algorithm: string; digest: string }[]; serialization: Record<string, unknown> };
      };
      expect(statement._type).toBe("https://in-toto.io/Statement/v1");
      expect(statement.predicateType).toBe("https://model_signing/signature/v1.0");
      expect(statement.subject).toHaveLength(1);
      const { resources } = statement.predicate;
      expect(resources.map((r) => r.name)).toEqual(["SHA256SUMS", "bench.json", "relu-llama-7b.q4_0.powerinfer.gguf", "tokenizer/tokenizer.json"]);
      for (const r of resources) {
        expect(r.algorithm).toBe("sha256");
        expect(r.digest).toBe(createHash("sha256").update(readFileSync(join(modelDir, r.name))).digest("hex"));
      }
      const root = createHash("sha256").update(Buffer.concat(resources.map((r) => Buffer.from(r.digest, "hex")))).digest("hex");
      expect(statement.subject[0]!.digest.sha256).toBe(root);
      expect(statement.predicate.serialization).toMatchObject({ method: "files", hash_type: "sha256", allow_symlinks: false });
      expect(statement.predicate.serialization.ignore_paths).toEqual(expect.arrayContaining(["model.sig", "provenance.sigstore.json", ".git"]));
    });

    it("the provenance is SLSA v1 bound to the same root, same key, keyid \"\"", () => {
      const oms = JSON.parse(Buffer.from(bundleOf("model.sig").dsseEnvelope.payload, "base64").toString("utf8")) as { subject: { digest: { sha256: string } }[] };
      const bundle = bundleOf("provenance.sigstore.json");
      expect(bundle.verificationMaterial.publicKey?.hint).toBe(hint);
      expect(bundle.dsseEnvelope.signatures[0]!.keyid).toBe("");
      const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8")) as { predicateType: string; subject: { name: string; digest: { sha256: string } }[] };
      expect(statement.predicateType).toBe("https://slsa.dev/provenance/v1");
      expect(statement.subject[0]!.digest.sha256).toBe(oms.subject[0]!.digest.sha256);
      const gguf = "relu-llama-7b.q4_0.powerinfer.gguf";
      expect(statement.subject).toContainEqual({ name: gguf, digest: { sha256: createHash("sha256").update(contents[gguf]!).digest("hex") } });
    });
  });

  describe("openssl dgst -sha256 -verify (signing.md §6)", () => {
    for (const file of ["model.sig", "provenance.sigstore.json"]) {
      it(`verifies ${file}'s DSSE signature over the PAE; a flipped PAE byte fails`, () => {
        const bundle = bundleOf(file);
        const payload = Buffer.from(bundle.dsseEnvelope.payload, "base64");
        const type = Buffer.from(bundle.dsseEnvelope.payloadType, "utf8");
        // PAE written out by hand from the spec, not with the library's function.
        const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
        const work = tempDir("openssl");
        writeFileSync(join(work, "pae.bin"), pae);
        writeFileSync(join(work, "sig.der"), Buffer.from(bundle.dsseEnvelope.signatures[0]!.sig, "base64"));
        writeFileSync(join(work, "pub.pem"), pem);
        const run = () => spawnSync("openssl", ["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "pae.bin"], { cwd: work, encoding: "utf8" });

        const good = run();
        expect(good.error).toBeUndefined();
        expect(good.stdout.trim(), good.stderr).toBe("Verified OK");
        expect(good.status).toBe(0);

        flipByte(join(work, "pae.bin"), pae.length - 2);
        const bad = run();
        expect(bad.stdout).toContain("Verification failure");
        expect(bad.status).not.toBe(0);
      });
    }
  });

  describe("@sigstore/verify 3.1.1, offline, key method (signing.md §9)", () => {
    type TrustedRoot = Parameters<typeof toTrustMaterial>[0];
    type PublicKeys = Exclude<NonNullable<Parameters<typeof toTrustMaterial>[1]>, (...args: never[]) => unknown>;
    const emptyRoot: TrustedRoot = { mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1", tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };
    // protobuf-specs PublicKeyDetails.PKIX_ECDSA_P256_SHA_256 (informational: the key finder reads rawBytes only).
    const PKIX_ECDSA_P256_SHA_256 = 5 as PublicKeys[string]["keyDetails"];
    const verifierFor = (keys: PublicKeys) => new Verifier(toTrustMaterial(emptyRoot, keys), { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
    const ourKeys = (): PublicKeys => ({ [hint]: { rawBytes: key.publicKey.export({ type: "spki", format: "der" }), keyDetails: PKIX_ECDSA_P256_SHA_256 } });
    const entity = (text: string) => toSignedEntity(bundleFromJSON(JSON.parse(text)));

    for (const file of ["model.sig", "provenance.sigstore.json"]) {
      it(`verifies ${file}; rejects its edited payload`, () => {
        const signer = verifierFor(ourKeys()).verify(entity(bundleText(file)));
        expect(signer.key.export({ type: "spki", format: "pem" })).toBe(pem);

        const error = thrown(() => verifierFor(ourKeys()).verify(entity(withEditedPayloadAnyStatement(bundleText(file)))));
        expect(error).toBeInstanceOf(VerificationError);
        expect((error as VerificationError).code).toBe("SIGNATURE_ERROR");
      });
    }

    it("rejects our bundle under another key filed under our hint, and finds no key for an unknown hint", () => {
      const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
      const wrongKey = verifierFor({ [hint]: { rawBytes: other.export({ type: "spki", format: "der" }), keyDetails: PKIX_ECDSA_P256_SHA_256 } });
      expect(() => wrongKey.verify(entity(bundleText("model.sig")))).toThrow(/signature verification failed/);
      const noKey = verifierFor({ ["0".repeat(64)]: ourKeys()[hint]! });
      expect(() => noKey.verify(entity(bundleText("model.sig")))).toThrow(/key not found/);
    });
  });

  describe("DSSE PAE (signing.md §3)", () => {
    it("equals @sigstore/core dsse.preAuthEncoding", () => {
      const cases: [string, Buffer][] = [
        [IN_TOTO, Buffer.from("{}")],
        [IN_TOTO, Buffer.alloc(0)],
        ["http://example.com/HelloWorld", Buffer.from("hello world")],
        ["application/vnd.ünïcødé+json", Buffer.from("naïve → ✓ 🚀", "utf8")],
        [IN_TOTO, Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256))],
        [IN_TOTO, Buffer.from(bundleOf("model.sig").dsseEnvelope.payload, "base64")],
      ];
      for (const [type, body] of cases) expect(preAuthEncoding(type, body).toString("hex")).toBe(dsse.preAuthEncoding(type, body).toString("hex"));
    });

    it("matches the spec vectors", () => {
      expect(preAuthEncoding(IN_TOTO, Buffer.from("{}")).toString("hex")).toBe(
        "445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e2032207b7d",
      );
      expect(preAuthEncoding(IN_TOTO, Buffer.from("{}")).toString("latin1")).toBe("DSSEv1 28 application/vnd.in-toto+json 2 {}");
      expect(preAuthEncoding("http://example.com/HelloWorld", Buffer.from("hello world")).toString("latin1")).toBe("DSSEv1 29 http://example.com/HelloWorld 11 hello world");
      // Lengths are bytes, not UTF-16 units.
      expect(preAuthEncoding("t", Buffer.from("é", "utf8")).toString("utf8")).toBe("DSSEv1 1 t 2 é");
    });
  });

  describe("sha256sum -c SHA256SUMS (signing.md §1)", () => {
    const check = (dir: string) => spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: dir, encoding: "utf8" });

    it("passes on the signed output, covering every content file and nothing else", () => {
      const result = check(modelDir);
      expect(result.error).toBeUndefined();
      expect(result.status, result.stderr).toBe(0);
      const checked = result.stdout.trim().split("\n").sort();
      expect(checked).toEqual(Object.keys(contents).sort().map((name) => `${name}: OK`));
    });

    it("fails after one byte of a signed file changes", () => {
      const dir = signedCopy();
      const target = join(dir, "tokenizer", "tokenizer.json");
      flipByte(target, statSync(target).size - 2);
      const result = check(dir);
      expect(result.status).not.toBe(0);
      expect(result.stdout).toContain("tokenizer/tokenizer.json: FAILED");
    });
  });
});

/** As withEditedPayload, for any in-toto statement: the first subject digest changes. */
function withEditedPayloadAnyStatement(bundleText: string): string {
  const bundle = JSON.parse(bundleText) as SerializedBundle;
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8")) as { subject: { digest: { sha256: string } }[] };
  const digest = statement.subject[0]!.digest;
  digest.sha256 = (digest.sha256[0] === "0" ? "1" : "0") + digest.sha256.slice(1);
  bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement), "utf8").toString("base64");
  return JSON.stringify(bundle);
}
