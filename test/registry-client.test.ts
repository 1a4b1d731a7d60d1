/**
 * The registry client against the real Distribution 2.8.2 (Debian `docker-registry`), open
 * mode: blobs up and down (monolithic, chunked, HEAD-first, mounts, Range resume), damaged
 * blobs, manifests (exact bytes, read back by skopeo), and the referrers tag fallback.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, type RegistryEvent } from "../pipeline/registry/index.js";
import { OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, type Descriptor } from "../pipeline/registry/types.js";
import { fileBlob, randomBytesFrom } from "./helpers/blobs.js";
import { digestOf, startRegistry, type TestRegistry } from "./helpers/registry.js";

const MiB = 1024 * 1024;
let registry: TestRegistry;
let client: RegistryClient;
const events: RegistryEvent[] = [];

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ registry: registry.host, credentials: null, onEvent: (e) => events.push(e) });
});

afterAll(async () => {
  await client?.close();
  await registry?.close();
});

const tmp = () => mkdtempSync(join(tmpdir(), "ai-tools-pull-"));

/** Pushes an empty-config manifest with the given layers (blobs uploaded first) and returns its bytes and digest. */
async function pushManifest(repository: string, tag: string, layers: Descriptor[], extra: Record<string, unknown> = {}) {
  await client.uploadBlob(repository, fileBlob(Buffer.from("{}"), "config.json"));
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    ...extra,
    config: { mediaType: OCI_EMPTY, digest: digestOf("{}"), size: 2 },
    layers,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const pushed = await client.putManifest(repository, tag, bytes, OCI_MANIFEST);
  return { bytes, ...pushed };
}

describe("blobs", () => {
  it("round-trips a small blob in one PUT and a large one in PATCH chunks, byte for byte", async () => {
    const small = fileBlob(randomBytesFrom(1, 300 * 1024));
    const large = fileBlob(randomBytesFrom(2, 3 * MiB + 12345));
    events.length = 0;
    const progress: number[] = [];
    const a = await client.uploadBlob("models/round-trip", small, { monolithicLimit: MiB });
    const b = await client.uploadBlob("models/round-trip", large, { monolithicLimit: MiB, chunkSize: MiB, onProgress: (sent) => progress.push(sent) });
    expect(a).toMatchObject({ outcome: "uploaded", bytesSent: small.size, resumedFrom: 0 });
    expect(b).toMatchObject({ outcome: "uploaded", bytesSent: large.size, resumedFrom: 0 });
    const requests = events.filter((e): e is Extract<RegistryEvent, { type: "request" }> => e.type === "request").map((e) => `${e.method} ${e.status}`);
    // HEAD 404, POST 202, PUT 201 for the small one; HEAD, POST, 4 PATCHes, closing PUT for the large one.
    expect(requests.filter((r) => r.startsWith("PATCH"))).toEqual(["PATCH 202", "PATCH 202", "PATCH 202", "PATCH 202"]);
    expect(requests.filter((r) => r.startsWith("PUT"))).toEqual(["PUT 201", "PUT 201"]);
    expect(progress.at(-1)).toBe(large.size);

    for (const blob of [small, large]) {
      expect(await client.statBlob("models/round-trip", blob.digest)).toBe(blob.size);
      const file = join(tmp(), "blob.partial");
      const got = await client.getBlob("models/round-trip", blob.digest, { file });
      expect(got).toEqual({ digest: blob.digest, size: blob.size, resumedFrom: 0 });
      expect(readFileSync(file).equals(blob.bytes)).toBe(true);
      // What the registry stored on its disk is our bytes too.
      expect(readFileSync(registry.blobDataPath(blob.digest)).equals(blob.bytes)).toBe(true);
    }
  });

  it("uploads nothing for a blob the repository already has (HEAD first)", async () => {
    const blob = fileBlob(randomBytesFrom(3, 200 * 1024));
    await client.uploadBlob("models/again", blob);
    await registry.clearAccessLog();
    const again = await client.uploadBlob("models/again", blob);
    expect(again).toMatchObject({ outcome: "exists", bytesSent: 0 });
    expect((await registry.accessLog()).map((r) => `${r.method} ${r.status}`)).toEqual(["HEAD 200"]);
    expect(blob.opened).toEqual([0]);
  });

  it("mounts a blob from another repository (201), and falls back to the opened session when the source lacks it (202)", async () => {
    const blob = fileBlob(randomBytesFrom(4, 100 * 1024));
    await client.uploadBlob("models/source", blob);
    await registry.clearAccessLog();
    expect(await client.mountBlob("models/target", blob.digest, "models/source")).toEqual({ mounted: true });
    expect(await client.statBlob("models/target", blob.digest)).toBe(blob.size);
    expect((await registry.accessLog()).filter((r) => r.method === "PATCH" || r.method === "PUT")).toEqual([]);

    const other = fileBlob(randomBytesFrom(5, 100 * 1024));
    const mount = await client.mountBlob("models/target", other.digest, "models/source");
    expect(mount.mounted).toBe(false);
    if (mount.mounted) return;
    const uploaded = await client.uploadBlob("models/target", other, { session: mount.session });
    expect(uploaded).toMatchObject({ outcome: "uploaded", bytesSent: other.size });
    expect(await client.statBlob("models/target", other.digest)).toBe(other.size);
  });

  it("resumes a partial download with Range, hashing the bytes already on disk", async () => {
    const blob = fileBlob(randomBytesFrom(6, 2 * MiB));
    await client.uploadBlob("models/resume", blob);
    const file = join(tmp(), "blob.partial");
    const have = 1234567;
    writeFileSync(file, blob.bytes.subarray(0, have));
    await registry.clearAccessLog();
    const got = await client.getBlob("models/resume", blob.digest, { file, name: "model.gguf" });
    expect(got).toEqual({ digest: blob.digest, size: blob.size, resumedFrom: have });
    expect(readFileSync(file).equals(blob.bytes)).toBe(true);
    // One GET answered 206 with the rest.
    expect((await registry.accessLog()).map((r) => `${r.method} ${r.status}`)).toEqual(["GET 206"]);
  });

  it("a large blob with its size given is hashed off the main thread, also when resumed", async () => {
    const blob = fileBlob(randomBytesFrom(13, 20 * MiB + 7));
    await client.uploadBlob("models/large", blob);
    const file = join(tmp(), "blob.partial");
    expect(await client.getBlob("models/large", blob.digest, { file, size: blob.size })).toEqual({ digest: blob.digest, size: blob.size, resumedFrom: 0 });
    expect(readFileSync(file).equals(blob.bytes)).toBe(true);
    writeFileSync(file, blob.bytes.subarray(0, 17 * MiB + 3));
    expect(await client.getBlob("models/large", blob.digest, { file, size: blob.size })).toEqual({ digest: blob.digest, size: blob.size, resumedFrom: 17 * MiB + 3 });
    expect(readFileSync(file).equals(blob.bytes)).toBe(true);
    // A size that is not the blob's is refused before its bytes are taken.
    await expect(client.getBlob("models/large", blob.digest, { file: join(tmp(), "x"), size: blob.size - 1 })).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH" });
  });

  it("a partial file with wrong bytes is fetched again from zero; a complete one needs no body", async () => {
    const blob = fileBlob(randomBytesFrom(7, 512 * 1024));
    await client.uploadBlob("models/resume", blob);
    const file = join(tmp(), "blob.partial");
    const wrong = Buffer.from(blob.bytes.subarray(0, 4096));
    wrong[10] = wrong[10]! ^ 0xff;
    writeFileSync(file, wrong);
    expect(await client.getBlob("models/resume", blob.digest, { file })).toMatchObject({ digest: blob.digest, size: blob.size });
    expect(readFileSync(file).equals(blob.bytes)).toBe(true);

    await registry.clearAccessLog();
    expect(await client.getBlob("models/resume", blob.digest, { file })).toMatchObject({ resumedFrom: blob.size });
    expect((await registry.accessLog()).map((r) => r.status)).toEqual([416]);
  });

  it("a blob damaged on the registry's disk is E_DIGEST_MISMATCH naming the digest and the file, and nothing is kept", async () => {
    const blob = fileBlob(randomBytesFrom(8, 256 * 1024));
    await client.uploadBlob("models/damaged", blob);
    const stored = readFileSync(registry.blobDataPath(blob.digest));
    stored[1000] = stored[1000]! ^ 0x01;
    writeFileSync(registry.blobDataPath(blob.digest), stored);
    const file = join(tmp(), "blob.partial");
    const error = await client.getBlob("models/damaged", blob.digest, { file, name: "model.powerinfer.gguf" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_DIGEST_MISMATCH" });
    expect((error as Error).message).toContain(blob.digest);
    expect((error as Error).message).toContain("model.powerinfer.gguf");
    expect(existsSync(file)).toBe(false);
  });

  it("an unknown blob is null on HEAD and E_REGISTRY_NOT_FOUND on GET", async () => {
    const missing = digestOf("not there");
    expect(await client.statBlob("models/round-trip", missing)).toBeNull();
    await expect(client.getBlob("models/round-trip", missing, { file: join(tmp(), "x") })).rejects.toMatchObject({ code: "E_REGISTRY_NOT_FOUND", registryCode: "BLOB_UNKNOWN" });
  });
});

describe("manifests", () => {
  it("stores our exact bytes: GET by tag and by digest returns them, and skopeo reads the same bytes", async () => {
    const layer = fileBlob(randomBytesFrom(9, 64 * 1024), "model.gguf");
    await client.uploadBlob("models/manifest", layer);
    const pushed = await pushManifest("models/manifest", "v1", [
      { mediaType: "application/vnd.cncf.model.weight.v1.raw", digest: layer.digest, size: layer.size, annotations: { "org.cncf.model.filepath": "model.gguf" } },
    ], { artifactType: "application/vnd.cncf.model.manifest.v1+json" });
    expect(pushed.digest).toBe(digestOf(pushed.bytes));
    expect(pushed.subject).toBeUndefined();

    const byTag = await client.getManifest("models/manifest", "v1");
    expect(byTag.bytes.equals(pushed.bytes)).toBe(true);
    expect(byTag).toMatchObject({ digest: pushed.digest, mediaType: OCI_MANIFEST });
    const byDigest = await client.getManifest("models/manifest", pushed.digest);
    expect(byDigest.bytes.equals(pushed.bytes)).toBe(true);
    expect(await client.headManifest("models/manifest", "v1")).toEqual({ digest: pushed.digest, mediaType: OCI_MANIFEST, size: pushed.bytes.length });
    expect(await client.headManifest("models/manifest", "v2")).toBeNull();

    const raw = execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/models/manifest:v1`]);
    expect(raw.equals(pushed.bytes)).toBe(true);
  });

  it("reads a manifest skopeo copied in", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ai-tools-skopeo-"));
    const layer = randomBytesFrom(10, 10_000);
    const config = Buffer.from("{}");
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: "application/vnd.cncf.model.manifest.v1+json", config: { mediaType: OCI_EMPTY, digest: digestOf(config), size: 2 }, layers: [{ mediaType: "application/vnd.cncf.model.weight.v1.raw", digest: digestOf(layer), size: layer.length }] }));
    execFileSync("mkdir", ["-p", join(dir, "blobs", "sha256")]);
    for (const bytes of [layer, config, manifest]) writeFileSync(join(dir, "blobs", "sha256", digestOf(bytes).slice(7)), bytes);
    writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: digestOf(manifest), size: manifest.length, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }));
    execFileSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${dir}:v1`, `docker://${registry.host}/models/from-skopeo:v1`]);

    const got = await client.getManifest("models/from-skopeo", "v1");
    expect(got.digest).toBe(digestOf(manifest));
    const file = join(tmp(), "layer");
    await client.getBlob("models/from-skopeo", digestOf(layer), { file });
    expect(readFileSync(file).equals(layer)).toBe(true);
  });

  it("refuses a manifest over 4 MiB before sending it", async () => {
    const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { pad: "x".repeat(4 * MiB) } }));
    await registry.clearAccessLog();
    await expect(client.putManifest("models/manifest", "huge", huge, OCI_MANIFEST)).rejects.toMatchObject({ code: "E_REGISTRY_LIMIT" });
    expect((await registry.accessLog())).toEqual([]);
  });

  it("an unknown tag is E_REGISTRY_NOT_FOUND; a manifest naming missing blobs lists each one", async () => {
    await expect(client.getManifest("models/manifest", "nope")).rejects.toMatchObject({ code: "E_REGISTRY_NOT_FOUND", registryCode: "MANIFEST_UNKNOWN" });
    const missing = [digestOf("a"), digestOf("b")];
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_EMPTY, digest: missing[0], size: 1 }, layers: [{ mediaType: "application/octet-stream", digest: missing[1], size: 1 }] }));
    const error = await client.putManifest("models/manifest", "broken", bytes, OCI_MANIFEST).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_REGISTRY_HTTP", status: 400, registryCode: "MANIFEST_BLOB_UNKNOWN" });
  });
});

describe("referrers without the Referrers API (tag schema)", () => {
  it("adds our signature to the sha256-<hex> index, keeping cosign's and notation's entries, and lists them", async () => {
    const repository = "models/signed";
    const weights = fileBlob(randomBytesFrom(11, 1000), "model.gguf");
    await client.uploadBlob(repository, weights);
    const subject = await pushManifest(repository, "v1", [{ mediaType: "application/vnd.cncf.model.weight.v1.raw", digest: weights.digest, size: weights.size }], { artifactType: "application/vnd.cncf.model.manifest.v1+json" });
    const subjectDescriptor = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.length };

    // Other tools' referrers, as they write them: cosign via go-containerregistry (empty artifactType, no annotations), notation.
    const cosignBundle = fileBlob(Buffer.from('{"cosign":"bundle"}'));
    await client.uploadBlob(repository, cosignBundle);
    const cosign = await pushManifest(repository, "cosign-ref", [{ mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", digest: cosignBundle.digest, size: cosignBundle.size }], { artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", subject: subjectDescriptor, annotations: { "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1" } });
    const notationEnvelope = fileBlob(Buffer.from('{"notation":"jws"}'));
    await client.uploadBlob(repository, notationEnvelope);
    const notation = await pushManifest(repository, "notation-ref", [{ mediaType: "application/jose+json", digest: notationEnvelope.digest, size: notationEnvelope.size }], { artifactType: "application/vnd.cncf.notary.signature", subject: subjectDescriptor, annotations: { "io.cncf.notary.x509chain.thumbprint#S256": '["abc"]' } });
    const otherEntries = [
      { mediaType: OCI_MANIFEST, digest: cosign.digest, size: cosign.bytes.length, artifactType: OCI_EMPTY },
      { mediaType: OCI_MANIFEST, digest: notation.digest, size: notation.bytes.length, artifactType: "application/vnd.cncf.notary.signature", annotations: { "io.cncf.notary.x509chain.thumbprint#S256": '["abc"]' } },
    ];
    const tag = `sha256-${subject.digest.slice(7)}`;
    await client.putManifest(repository, tag, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: otherEntries })), OCI_INDEX);

    const signature = fileBlob(Buffer.from('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'), "model.sig");
    await client.uploadBlob(repository, signature);
    const annotations = { "dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": "https://model_signing/signature/v1.0" };
    const ours = await pushManifest(repository, "ours-ref", [{ mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", digest: signature.digest, size: signature.size }], { artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", subject: subjectDescriptor, annotations });
    expect(ours.subject).toBeUndefined(); // 2.8.2 sends no OCI-Subject: the fallback is due.
    const descriptor = { mediaType: OCI_MANIFEST, digest: ours.digest, size: ours.bytes.length, artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", annotations };

    const added = await client.addReferrerToFallbackIndex(repository, subject.digest, descriptor);
    expect(added.updated).toBe(true);
    const index = (await client.getManifest(repository, tag)).json as { manifests: Descriptor[] };
    expect(index.manifests).toEqual([...otherEntries, descriptor]);
    // Adding again changes nothing.
    expect(await client.addReferrerToFallbackIndex(repository, subject.digest, descriptor)).toEqual({ updated: false, indexDigest: added.indexDigest });

    const all = await client.listReferrers(repository, subject.digest);
    expect(all.source).toBe("tag-schema");
    expect(all.manifests.map((m) => m.digest)).toEqual([cosign.digest, notation.digest, ours.digest]);
    // Filtering looks inside cosign's entry (its index entry claims the empty type).
    const bundles = await client.listReferrers(repository, subject.digest, "application/vnd.dev.sigstore.bundle.v0.3+json");
    expect(bundles.manifests.map((m) => m.digest)).toEqual([cosign.digest, ours.digest]);
    expect((await client.listReferrers(repository, subject.digest, "application/vnd.cncf.notary.signature")).manifests.map((m) => m.digest)).toEqual([notation.digest]);
  });

  it("starts the index when there is none, and refuses to overwrite a tag that is not an index", async () => {
    const repository = "models/fresh-index";
    const subject = await pushManifest(repository, "v1", []);
    const referrer = await pushManifest(repository, "ref", [], { artifactType: "application/vnd.example+json", subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.length } });
    expect((await client.listReferrers(repository, subject.digest)).manifests).toEqual([]);
    const descriptor = { mediaType: OCI_MANIFEST, digest: referrer.digest, size: referrer.bytes.length, artifactType: "application/vnd.example+json" };
    await client.addReferrerToFallbackIndex(repository, subject.digest, descriptor);
    expect((await client.listReferrers(repository, subject.digest)).manifests).toEqual([descriptor]);

    const other = await pushManifest(repository, "other", []);
    await pushManifest(repository, `sha256-${other.digest.slice(7)}`, []); // a plain manifest squatting the tag
    await expect(client.addReferrerToFallbackIndex(repository, other.digest, descriptor)).rejects.toMatchObject({ code: "E_REGISTRY_BAD_RESPONSE" });
  });
});

it("the file a download wrote is only ever the blob (size check after a resume from a longer file)", async () => {
  const blob = fileBlob(randomBytesFrom(12, 10_000));
  await client.uploadBlob("models/longer", blob);
  const file = join(tmp(), "blob.partial");
  writeFileSync(file, Buffer.concat([blob.bytes, Buffer.from("trailing junk")]));
  await client.getBlob("models/longer", blob.digest, { file, offset: 0 });
  expect(statSync(file).size).toBe(blob.size);
});
