/**
 * Push and pull of signed model directories through the real CNCF Distribution registry
 * (Debian docker-registry 2.8.2), read back by skopeo: layer digests are the signed file
 * digests, re-pushes move no bytes, shared files are mounted, pulls verify before a
 * directory gets its name, and every fault ends in its code with nothing unverified kept.
 */
import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import { Readable } from "node:stream";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTrustedKeys, type TrustedKey } from "../pipeline/signing/trust.js";
import { pushWorkspaceModel, pullWorkspaceModel, readPullRecord, registryClient, tagDrift } from "../pipeline/registry/transfer.js";
import { parseReference } from "../pipeline/registry/reference.js";
import { SIGSTORE_BUNDLE_ARTIFACT_TYPE } from "../pipeline/registry/referrer-manifests.js";
import { makeSignedModel, seededBytes, testProvenance, MODEL_ID } from "./helpers/signed-model.js";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";

const skopeoMissing = (() => {
  try {
    execFileSync("skopeo", ["--version"], { stdio: "ignore" });
    return false;
  } catch {
    return true;
  }
})();

let registry: TestRegistry;
let work: string;
let key: { privateKey: import("node:crypto").KeyObject; publicKey: import("node:crypto").KeyObject };
let trusted: TrustedKey[];
let modelDir: string;

function envWithStore(store: string): NodeJS.ProcessEnv {
  return { ...process.env, AI_TOOLS_OCI_STORE: store };
}

function sha256sums(dir: string): Map<string, string> {
  const lines = readFileSync(join(dir, "SHA256SUMS"), "utf8").trim().split("\n");
  return new Map(lines.map((l) => [l.slice(66).replace(/^\*/, ""), l.slice(0, 64)]));
}

beforeAll(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), "ai-tools-oci-"));
  key = generateKeyPairSync("ec", { namedCurve: "P-256" });
  trusted = await parseTrustedKeys([{ id: "publisher", publicKey: key.publicKey.export({ type: "spki", format: "pem" }).toString() }], "test");
  modelDir = join(work, "publisher", "models", "powerinfer", MODEL_ID);
  mkdirSync(modelDir, { recursive: true });
  await makeSignedModel(modelDir, { key });
}, 120_000);

afterAll(async () => {
  await registry?.close();
  rmSync(work, { recursive: true, force: true });
});

const push = (dir: string, ref: string, extra: Partial<Parameters<typeof pushWorkspaceModel>[0]> = {}) =>
  pushWorkspaceModel({ root: join(work, "publisher"), dir, reference: ref, trustedKeys: trusted, env: envWithStore(join(work, "publisher-store")), ...extra });

const pull = (root: string, ref: string, extra: Partial<Parameters<typeof pullWorkspaceModel>[0]> = {}) =>
  pullWorkspaceModel({ root, reference: ref, trustedKeys: trusted, env: envWithStore(join(root, "store")), ...extra });

describe("push", () => {
  it("pushes one raw layer per signed file, whose digests skopeo sees as SHA256SUMS says", async () => {
    const ref = `oci://${registry.host}/models/tiny:v1`;
    const result = await push(modelDir, ref);
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.reference).toBe(`${ref}@${result.digest}`);
    expect(result.blobs.every((b) => b.outcome === "uploaded")).toBe(true);

    if (skopeoMissing) return;
    const raw = execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/models/tiny:v1`]);
    const manifest = JSON.parse(raw.toString("utf8")) as { artifactType: string; layers: { digest: string; annotations: Record<string, string> }[] };
    expect(manifest.artifactType).toBe("application/vnd.cncf.model.manifest.v1+json");
    const layout = join(work, "skopeo-layout");
    execFileSync("skopeo", ["copy", "--src-tls-verify=false", `docker://${registry.host}/models/tiny:v1`, `oci:${layout}:v1`], { stdio: "ignore" });
    const blobs = new Set(readdirSync(join(layout, "blobs", "sha256")));
    const sums = sha256sums(modelDir);
    for (const [name, digest] of sums) {
      if (name.startsWith("activation/")) continue; // one tar layer; its members are checked after extraction
      expect(blobs.has(digest), `${name} as a blob named by its sha256`).toBe(true);
      expect(manifest.layers.find((l) => l.annotations["org.cncf.model.filepath"] === name)?.digest).toBe(`sha256:${digest}`);
    }
    expect(manifest.layers.some((l) => l.annotations["org.cncf.model.filepath"] === "activation")).toBe(true);
  });

  it("re-pushes an unchanged model with no blob bytes, and attaches model.sig and the provenance as referrers", async () => {
    const ref = `oci://${registry.host}/models/tiny:v1`;
    const again = await push(modelDir, ref);
    expect(again.bytesSent).toBe(0);
    expect(again.blobs.every((b) => b.outcome === "exists")).toBe(true);

    const client = await registryClient(parseReference(ref), { env: process.env });
    try {
      const referrers = await client.listReferrers("models/tiny", again.digest, SIGSTORE_BUNDLE_ARTIFACT_TYPE);
      // Distribution 2.8.2 has no Referrers API: the tag-schema index, with both entries once each.
      expect(referrers.source).toBe("tag-schema");
      expect(referrers.manifests.map((m) => m.annotations?.["dev.sigstore.bundle.predicateType"]).sort()).toEqual(["https://model_signing/signature/v1.0", "https://slsa.dev/provenance/v1"]);
    } finally {
      await client.close();
    }
  });

  it("mounts the files another repository already holds and uploads only the difference", async () => {
    const second = join(work, "publisher", "models", "powerinfer", "tiny-b");
    mkdirSync(second, { recursive: true });
    await makeSignedModel(second, { key });
    // Another bench result: one file differs, everything else is shared.
    writeFileSync(join(second, "bench.json"), JSON.stringify({ evalTokensPerSecond: 13.5 }) + "\n");
    await signModelDirectory(second, { privateKey: key.privateKey, provenance: testProvenance(), subjectName: MODEL_ID });
    const result = await push(second, `oci://${registry.host}/other/tiny-b:v1`);
    const byName = new Map(result.blobs.map((b) => [b.name, b.outcome]));
    expect(byName.get("model.powerinfer.gguf")).toBe("mounted");
    expect(byName.get("activation")).toBe("mounted");
    expect(byName.get("bench.json")).toBe("uploaded");
    expect(byName.get("model.sig")).toBe("uploaded");
    const sentFor = (name: string) => result.blobs.find((b) => b.name === name)!.bytesSent;
    expect(sentFor("model.powerinfer.gguf")).toBe(0);
  });
});

describe("pull", () => {
  it("pulls by tag into a verified model directory and records the digest the tag resolved to", async () => {
    const root = join(work, "consumer");
    const ref = `oci://${registry.host}/models/tiny:v1`;
    const result = await pull(root, ref);
    const dir = join(root, "models", "powerinfer", "tiny");
    expect(result.dir).toBe(dir);
    expect(result.verified.files.length).toBeGreaterThan(5);
    expect(readFileSync(join(dir, "model.powerinfer.gguf"))).toEqual(readFileSync(join(modelDir, "model.powerinfer.gguf")));
    expect(readdirSync(join(dir, "activation")).length).toBe(6);
    const record = await readPullRecord(root, ref);
    expect(record?.digest).toBe(result.digest);
    expect((await tagDrift(record!, { env: process.env })).moved).toBe(false);
  });

  it("pulls again by digest with every blob in the store without a single request to the registry", async () => {
    const root = join(work, "consumer");
    const first = await readPullRecord(root, `oci://${registry.host}/models/tiny:v1`);
    await registry.clearAccessLog();
    const result = await pull(root, `oci://${registry.host}/models/tiny@${first!.digest}`, { to: join(root, "models", "powerinfer", "tiny-again") });
    expect(result.bytesFetched).toBe(0);
    expect(await registry.accessLog()).toEqual([]);
  });

  it("refuses a tag with --require-digest", async () => {
    await expect(pull(join(work, "strict"), `oci://${registry.host}/models/tiny:v1`, { requireDigest: true })).rejects.toMatchObject({ code: "E_REGISTRY_REFERENCE" });
    expect(existsSync(join(work, "strict", "models"))).toBe(false);
  });

  it("refuses a model signed by a key it does not trust, before fetching any weight", async () => {
    const stranger = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const dir = join(work, "stranger", "m");
    mkdirSync(dir, { recursive: true });
    await makeSignedModel(dir, { key: stranger });
    const strangerTrust = await parseTrustedKeys([{ id: "stranger", publicKey: stranger.publicKey.export({ type: "spki", format: "pem" }).toString() }], "test");
    await pushWorkspaceModel({ root: join(work, "stranger"), dir, reference: `oci://${registry.host}/stranger/m:v1`, trustedKeys: strangerTrust, env: envWithStore(join(work, "stranger-store")) });
    const root = join(work, "victim");
    await expect(pull(root, `oci://${registry.host}/stranger/m:v1`)).rejects.toMatchObject({ code: "E_UNKNOWN_KEY" });
    expect(existsSync(join(root, "models", "powerinfer", "m"))).toBe(false);
    // Only model.sig came down.
    const blobs = readdirSync(join(root, "store", "blobs", "sha256"));
    expect(blobs.length).toBeLessThanOrEqual(2);
  });

  it("refuses a manifest whose weight layer was swapped for another model's file, against the signature", async () => {
    const client = await registryClient(parseReference(`oci://${registry.host}/models/tiny:v1`), { env: process.env });
    try {
      const good = await client.getManifest("models/tiny", "v1");
      const manifest = JSON.parse(good.bytes.toString("utf8")) as { layers: { digest: string; size: number; annotations: Record<string, string> }[] };
      // Another model's GGUF (pushed above to the same repository's blob store via a mount source).
      const other = join(work, "other-gguf");
      mkdirSync(other, { recursive: true });
      writeFileSync(join(other, "x.gguf"), seededBytes(99, 4096));
      const swapped = manifest.layers.find((l) => l.annotations["org.cncf.model.filepath"] === "model.powerinfer.gguf")!;
      const bytes = readFileSync(join(other, "x.gguf"));
      const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
      await client.uploadBlob("models/tiny", { digest, size: bytes.length, open: () => Readable.from([bytes]) });
      swapped.digest = digest;
      swapped.size = bytes.length;
      await client.putManifest("models/tiny", "swapped", Buffer.from(JSON.stringify(manifest)), "application/vnd.oci.image.manifest.v1+json");
    } finally {
      await client.close();
    }
    const root = join(work, "swap");
    await expect(pull(root, `oci://${registry.host}/models/tiny:swapped`)).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH", message: expect.stringContaining("model.powerinfer.gguf") });
    expect(existsSync(join(root, "models", "powerinfer", "tiny"))).toBe(false);
  });

  it("names the file when a blob is corrupted on the registry's disk, and keeps nothing", async () => {
    const dir = join(work, "publisher", "models", "powerinfer", "tiny-c");
    mkdirSync(dir, { recursive: true });
    await makeSignedModel(dir, { key });
    // A file no other test model has: the registry stores blobs once, by digest, for every repository.
    writeFileSync(join(dir, "bench.json"), JSON.stringify({ evalTokensPerSecond: 99.5, only: "corrupt-test" }) + "\n");
    await signModelDirectory(dir, { privateKey: key.privateKey, provenance: testProvenance(), subjectName: MODEL_ID });
    const pushed = await push(dir, `oci://${registry.host}/corrupt/tiny-c:v1`);
    const bench = pushed.blobs.find((b) => b.name === "bench.json")!;
    const path = registry.blobDataPath(bench.digest);
    const bytes = readFileSync(path);
    bytes[0] = bytes[0]! ^ 0xff;
    writeFileSync(path, bytes);
    const root = join(work, "corrupt");
    await expect(pull(root, `oci://${registry.host}/corrupt/tiny-c:v1`)).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH", message: expect.stringContaining("bench.json") });
    expect(existsSync(join(root, "models", "powerinfer", "tiny-c"))).toBe(false);
  });
});

describe("faults and interop", () => {
  it("after the registry stops mid-push, the rerun uploads only what is missing", async () => {
    const dir = join(work, "publisher", "models", "powerinfer", "tiny-big");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "extra-weights.gguf"), seededBytes(5, 6 << 20));
    await makeSignedModel(dir, { key });
    const ref = `oci://${registry.host}/faults/tiny-big:v1`;
    let killed: Promise<void> | undefined;
    const first = push(dir, ref, {
      chunkSize: 1 << 20,
      concurrency: 1,
      onProgress: (event) => {
        if (!killed && event.kind === "blob" && event.name === "extra-weights.gguf" && event.sent >= 2 << 20) killed = registry.kill();
      },
    });
    await expect(first).rejects.toMatchObject({ code: expect.stringMatching(/^E_REGISTRY_(UNREACHABLE|HTTP)$/) });
    await killed;
    await registry.restart();
    const rerun = await push(dir, ref, { chunkSize: 1 << 20 });
    const total = rerun.blobs.reduce((n, b) => n + b.size, 0);
    expect(rerun.blobs.filter((b) => b.outcome === "exists").length).toBeGreaterThan(0);
    expect(rerun.bytesSent).toBeLessThan(total);
    const pulled = await pull(join(work, "after-kill"), ref);
    expect(readFileSync(join(pulled.dir, "extra-weights.gguf")).equals(readFileSync(join(dir, "extra-weights.gguf")))).toBe(true);
  });

  it.skipIf(skopeoMissing)("pulls an artifact that skopeo copied into another repository", async () => {
    await push(modelDir, `oci://${registry.host}/skopeo-src/tiny:v1`);
    // Out of the registry into an OCI layout and back into another repository, by skopeo alone.
    const layout = join(work, "skopeo-roundtrip");
    execFileSync("skopeo", ["copy", "--src-tls-verify=false", `docker://${registry.host}/skopeo-src/tiny:v1`, `oci:${layout}:v1`], { stdio: "ignore" });
    execFileSync("skopeo", ["copy", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${registry.host}/mirror/tiny:v1`], { stdio: "ignore" });
    const result = await pull(join(work, "mirror"), `oci://${registry.host}/mirror/tiny:v1`);
    expect(result.verified.files.length).toBeGreaterThan(5);
  });
});
