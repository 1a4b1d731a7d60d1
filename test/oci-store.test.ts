/**
 * The local OCI store: a blob is fetched once (across processes), resumed from its
 * partial, never named before its digest matched; tags live in index.json; a model
 * directory materialised from it verifies with the project's verifier, and a manifest or
 * tar layer that would write anything unsigned or outside the model is refused with
 * nothing left behind. skopeo reads the layout we write, and we read the one it writes.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Header } from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planModelPack, parseModelPackManifest, type ModelPackPlan, type ParsedModelPack } from "../pipeline/registry/modelpack.js";
import { OciStore, defaultStoreDir, type BlobWriter } from "../pipeline/registry/store.js";
import { bindLayersToSignature, signedManifestOf } from "../pipeline/registry/materialize.js";
import { verifyModel } from "../pipeline/signing/verify.js";
import { publicKeyPem } from "../pipeline/signing/keys.js";
import { makeSignedModel, seededBytes, type SignedModel } from "./helpers/signed-model.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

let root: string;
let model: SignedModel;
let plan: ModelPackPlan;
let store: OciStore;
let parsed: ParsedModelPack;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const digestOf = (bytes: Uint8Array) => `sha256:${sha256(bytes)}`;
const trusted = () => [{ id: "test", publicKey: publicKeyPem(model.publicKey) }];

/** The error a promise rejects with (a resolved promise fails the test). */
async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string; files?: string[] }> {
  return promise.then(
    () => expect.fail("expected a rejection"),
    (error: Error & { code?: string }) => error,
  );
}

/** A fill that serves `bytes` from the offset it is given, in chunks, counting what it sent. */
function serve(bytes: Buffer, sent: { bytes: number; offsets: number[] } = { bytes: 0, offsets: [] }, chunk = 1000) {
  return async (writer: BlobWriter) => {
    sent.offsets.push(writer.offset);
    for (let at = writer.offset; at < bytes.length; at += chunk) {
      const part = bytes.subarray(at, Math.min(bytes.length, at + chunk));
      await writer.write(part);
      sent.bytes += part.length;
    }
  };
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "ai-tools-oci-store-"));
  model = await makeSignedModel(join(root, "source", "tiny-sparse"));
  store = await OciStore.open(join(root, "store"));
  plan = await planModelPack(model.dir, { store });
  // What a pull would have done: every blob in the store, the manifest tagged.
  for (const layer of plan.layers) await store.ingestFile(layer.source, layer.descriptor.digest);
  await store.writeBlob(plan.config);
  await store.writeBlob(plan.manifest);
  await store.tag("example.com/models/tiny-sparse:1.2.0", plan.manifestDescriptor);
  parsed = parseModelPackManifest(plan.manifest);
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("ingest", () => {
  it("writes a verified, read-only blob, and never fetches a blob that is present", async () => {
    const bytes = seededBytes(1, 5000);
    const sent = { bytes: 0, offsets: [] as number[] };
    const first = await store.ingest(digestOf(bytes), bytes.length, serve(bytes, sent));
    expect(first).toMatchObject({ fetched: true, resumedFrom: 0, bytesWritten: 5000 });
    expect(readFileSync(store.blobPath(digestOf(bytes))).equals(bytes)).toBe(true);
    expect(statSync(first.path).mode & 0o777).toBe(0o444);
    const second = await store.ingest(digestOf(bytes), bytes.length, async () => expect.fail("fetched a blob the store has"));
    expect(second.fetched).toBe(false);
    expect(sent.bytes).toBe(5000);
  });

  it("continues a partial download from where it stopped (the caller gets the offset for its Range)", async () => {
    const bytes = seededBytes(2, 10_000);
    const digest = digestOf(bytes);
    mkdirSync(join(root, "store", ".ai-tools", "partial"), { recursive: true });
    writeFileSync(store.partialPath(digest), bytes.subarray(0, 6000));
    const sent = { bytes: 0, offsets: [] as number[] };
    const result = await store.ingest(digest, bytes.length, serve(bytes, sent));
    expect(result).toMatchObject({ fetched: true, resumedFrom: 6000, bytesWritten: 4000 });
    expect(sent).toEqual({ bytes: 4000, offsets: [6000] });
    expect(readFileSync(result.path).equals(bytes)).toBe(true);
    expect(existsSync(store.partialPath(digest))).toBe(false);
  });

  it("keeps the bytes of an interrupted transfer, and the rerun asks only for the rest", async () => {
    const bytes = seededBytes(3, 8000);
    const digest = digestOf(bytes);
    const error = await rejectionOf(
      store.ingest(digest, bytes.length, async (writer) => {
        await writer.write(bytes.subarray(0, 3000));
        throw Object.assign(new Error("connection reset"), { code: "ECONNRESET" });
      }),
    );
    expect(error.message).toBe("connection reset");
    expect(statSync(store.partialPath(digest)).size).toBe(3000);
    expect(await store.has(digest)).toBe(false);
    const sent = { bytes: 0, offsets: [] as number[] };
    await store.ingest(digest, bytes.length, serve(bytes, sent));
    expect(sent.offsets).toEqual([3000]);
  });

  it("starts over when the server ignores the Range (restart)", async () => {
    const bytes = seededBytes(4, 4000);
    const digest = digestOf(bytes);
    writeFileSync(store.partialPath(digest), bytes.subarray(0, 1500));
    const result = await store.ingest(digest, bytes.length, async (writer) => {
      expect(writer.offset).toBe(1500);
      await writer.restart();
      await writer.write(bytes);
    });
    expect(result.resumedFrom).toBe(1500);
    expect(readFileSync(result.path).equals(bytes)).toBe(true);
  });

  it("refuses bytes that do not match the digest: nothing gets the blob's name, the partial is gone", async () => {
    const good = seededBytes(5, 3000);
    const digest = digestOf(good);
    const error = await rejectionOf(store.ingest(digest, good.length, serve(seededBytes(6, 3000))));
    expect(error.code).toBe("E_DIGEST_MISMATCH");
    expect(error.message).toContain(digest);
    expect(await store.has(digest)).toBe(false);
    expect(existsSync(store.partialPath(digest))).toBe(false);
    expect(readdirSync(join(root, "store", "blobs", "sha256"))).not.toContain(digest.slice(7));
    // More bytes than the descriptor says: refused as they arrive.
    const long = await rejectionOf(store.ingest(digest, good.length, serve(Buffer.concat([good, good]))));
    expect(long.code).toBe("E_DIGEST_MISMATCH");
    expect(await store.has(digest)).toBe(false);
  });

  it("retries once from zero when a resumed partial held the wrong bytes", async () => {
    const bytes = seededBytes(7, 6000);
    const digest = digestOf(bytes);
    writeFileSync(store.partialPath(digest), seededBytes(8, 2000));
    const sent = { bytes: 0, offsets: [] as number[] };
    const result = await store.ingest(digest, bytes.length, serve(bytes, sent));
    expect(sent.offsets).toEqual([2000, 0]);
    expect(readFileSync(result.path).equals(bytes)).toBe(true);
  });

  it("takes over the lock of a process that died mid-download, and continues its partial", async () => {
    const bytes = seededBytes(9, 200_000);
    const digest = digestOf(bytes);
    // A child that writes half the blob, then is killed outright (no cleanup runs).
    const script = `
      import { OciStore } from ${JSON.stringify(join(PROJECT_ROOT, "pipeline/registry/store.ts"))};
      import { readFileSync } from "node:fs";
      const [dir, digest, file] = process.argv.slice(1);
      const bytes = readFileSync(file);
      const store = await OciStore.open(dir);
      await store.ingest(digest, bytes.length, async (writer) => {
        await writer.write(bytes.subarray(0, 100000));
        process.kill(process.pid, "SIGKILL");
        await new Promise(() => {});
      });
    `;
    writeFileSync(join(root, "killed.bin"), bytes);
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, join(root, "store"), digest, join(root, "killed.bin")], { cwd: PROJECT_ROOT, stdio: "inherit" });
    const signal = await new Promise((resolve) => child.once("exit", (_code, s) => resolve(s)));
    expect(signal).toBe("SIGKILL");
    expect(existsSync(join(root, "store", ".ai-tools", "locks", `${digest.slice(7)}.lock`))).toBe(true);

    const started = Date.now();
    const sent = { bytes: 0, offsets: [] as number[] };
    const result = await store.ingest(digest, bytes.length, serve(bytes, sent, 50_000));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(sent.offsets).toEqual([100_000]);
    expect(readFileSync(result.path).equals(bytes)).toBe(true);
  });

  it("fetches a blob once when 16 processes sharing the store race for it", async () => {
    const bytes = seededBytes(10, 64_000);
    const digest = digestOf(bytes);
    const counter = join(root, "fetches.log");
    writeFileSync(join(root, "race.bin"), bytes);
    const script = `
      import { OciStore } from ${JSON.stringify(join(PROJECT_ROOT, "pipeline/registry/store.ts"))};
      import { appendFileSync, readFileSync } from "node:fs";
      const [dir, digest, file, counter] = process.argv.slice(1);
      const bytes = readFileSync(file);
      const store = await OciStore.open(dir);
      process.stdout.write("ready\\n");
      await new Promise((resolve) => process.stdin.once("data", resolve));
      const result = await store.ingest(digest, bytes.length, async (writer) => {
        appendFileSync(counter, process.pid + "\\n");
        // A slow transfer: the others arrive while it runs and must wait for it.
        for (let at = writer.offset; at < bytes.length; at += 4000) {
          await writer.write(bytes.subarray(at, at + 4000));
          await new Promise((r) => setTimeout(r, 25));
        }
      });
      process.stdout.write(JSON.stringify({ fetched: result.fetched, same: readFileSync(result.path).equals(bytes) }) + "\\n");
      process.stdin.destroy();
    `;
    const children = Array.from({ length: 16 }, () =>
      spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, join(root, "store"), digest, join(root, "race.bin"), counter], { cwd: PROJECT_ROOT, stdio: ["pipe", "pipe", "inherit"] }),
    );
    const outputs = children.map((child) => {
      let text = "";
      child.stdout!.on("data", (d: Buffer) => (text += d));
      return new Promise<string>((resolve) => child.once("exit", () => resolve(text)));
    });
    await Promise.all(children.map((child) => new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()))));
    for (const child of children) child.stdin!.write("go\n");
    const results = (await Promise.all(outputs)).map((text) => {
      const last = text.trim().split("\n").at(-1)!;
      return last.startsWith("{") ? (JSON.parse(last) as { fetched: boolean; same: boolean }) : { fetched: false, same: false };
    });
    expect(readFileSync(counter, "utf8").trim().split("\n")).toHaveLength(1);
    expect(results.filter((r) => r.fetched)).toHaveLength(1);
    expect(results.every((r) => r.same)).toBe(true);
  }, 120_000);
});

describe("tags", () => {
  it("records the digest a reference resolves to, replaces it on retag, and keeps the others", async () => {
    const tagged = await store.resolve("example.com/models/tiny-sparse:1.2.0");
    expect(tagged).toMatchObject({ digest: plan.manifestDescriptor.digest, size: plan.manifest.length, mediaType: "application/vnd.oci.image.manifest.v1+json" });
    const other = await store.writeBlob(Buffer.from("{}"));
    // Concurrent taggers do not lose each other's tags (index.json is rewritten under a lock).
    await Promise.all(Array.from({ length: 8 }, (_, i) => store.tag(`example.com/models/other:${i}`, { mediaType: "application/vnd.oci.image.manifest.v1+json", ...other })));
    await store.tag("example.com/models/tiny-sparse:latest", plan.manifestDescriptor);
    await store.tag("example.com/models/tiny-sparse:latest", { mediaType: "application/vnd.oci.image.manifest.v1+json", ...other });
    expect((await store.resolve("example.com/models/tiny-sparse:latest"))?.digest).toBe(other.digest);
    const refs = (await store.tags()).map((t) => t.ref);
    expect(refs.filter((r) => r === "example.com/models/tiny-sparse:latest")).toHaveLength(1);
    expect(refs.filter((r) => r.startsWith("example.com/models/other:"))).toHaveLength(8);
    expect(refs).toContain("example.com/models/tiny-sparse:1.2.0");
    expect(await store.resolve("example.com/models/absent:1")).toBeUndefined();
    await expect(store.tag("bad ref", plan.manifestDescriptor)).rejects.toMatchObject({ code: "E_USAGE" });
  });

  it("lives under the user cache unless AI_TOOLS_OCI_STORE says where", () => {
    expect(defaultStoreDir({ HOME: "/home/u", XDG_CACHE_HOME: "/c" } as NodeJS.ProcessEnv)).toBe("/c/ai-tools/oci");
    expect(defaultStoreDir({ AI_TOOLS_OCI_STORE: "/shared/oci", XDG_CACHE_HOME: "/c" } as NodeJS.ProcessEnv)).toBe("/shared/oci");
  });
});

describe("materialize", () => {
  it("links the blobs into a model directory that verifies with the project's verifier", async () => {
    const target = join(root, "models", "powerinfer", "tiny-sparse");
    const verified: string[] = [];
    const result = await store.materialize(parsed, target, {
      verify: async (dir) => verified.push((await verifyModel(dir, { trustedKeys: trusted(), provenance: "require" })).rootDigest),
    });
    expect(verified).toEqual([model.signed.rootDigest]);
    const check = await verifyModel(target, { trustedKeys: trusted(), provenance: "require" });
    expect(check.rootDigest).toBe(model.signed.rootDigest);
    // Raw layers are hard links to the verified blobs (no copy); activation/ came out of the tar.
    const gguf = result.files.find((f) => f.name === "model.powerinfer.gguf")!;
    expect(gguf.via).toBe("link");
    expect(statSync(join(target, "model.powerinfer.gguf")).ino).toBe(statSync(store.blobPath(`sha256:${gguf.digest}`)).ino);
    expect(result.files.filter((f) => f.via === "tar").map((f) => f.name)).toEqual(readdirSync(join(model.dir, "activation")).sort().map((n) => `activation/${n}`));
    expect(readdirSync(join(root, "models", "powerinfer"))).toEqual(["tiny-sparse"]);

    await expect(store.materialize(parsed, target)).rejects.toMatchObject({ code: "E_USAGE" });
    await store.materialize(parsed, target, { replace: true });
    expect(readdirSync(join(root, "models", "powerinfer"))).toEqual(["tiny-sparse"]);
  });

  it("leaves nothing when the verify hook refuses (an untrusted key)", async () => {
    const target = join(root, "models-untrusted", "tiny-sparse");
    const other = [{ id: "other", publicKey: publicKeyPem((await import("node:crypto")).generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey) }];
    const error = await rejectionOf(store.materialize(parsed, target, { verify: (dir) => verifyModel(dir, { trustedKeys: other }) }));
    expect(error.code).toBe("E_UNKNOWN_KEY");
    expect(readdirSync(join(root, "models-untrusted"))).toEqual([]);
  });

  it("refuses a raw layer swapped for another file against the signature, before writing anything", async () => {
    const manifest = JSON.parse(plan.manifest.toString("utf8"));
    const config = manifest.layers.find((l: { annotations: Record<string, string> }) => l.annotations["org.cncf.model.filepath"] === "config.json");
    const gpuidx = manifest.layers.find((l: { annotations: Record<string, string> }) => l.annotations["org.cncf.model.filepath"] === "model.host-a.gpuidx");
    Object.assign(gpuidx, { digest: config.digest, size: config.size });
    const swapped = parseModelPackManifest(Buffer.from(JSON.stringify(manifest)));
    // The binding can be checked as soon as model.sig is in the store, before any weight is fetched.
    const signed = await signedManifestOf(store, swapped);
    expect(() => bindLayersToSignature(swapped, signed)).toThrow(expect.objectContaining({ code: "E_DIGEST_MISMATCH", files: ["model.host-a.gpuidx"] }));
    mkdirSync(join(root, "models-swapped"));
    const error = await rejectionOf(store.materialize(swapped, join(root, "models-swapped", "tiny-sparse")));
    expect(error).toMatchObject({ code: "E_DIGEST_MISMATCH", files: ["model.host-a.gpuidx"] });
    expect(readdirSync(join(root, "models-swapped"))).toEqual([]);
  });

  describe("a hostile tar layer", () => {
    const activation = () => readdirSync(join(model.dir, "activation")).sort().map((n) => ({ path: `activation/${n}`, body: readFileSync(join(model.dir, "activation", n)) }));
    type Member = { path: string; type?: string; body?: Buffer; linkpath?: string };
    function tarOf(members: Member[]): Buffer {
      const parts: Buffer[] = [];
      for (const m of members) {
        const block = Buffer.alloc(512);
        new Header({ path: m.path, type: (m.type ?? "File") as "File", size: m.body?.length ?? 0, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), ...(m.linkpath ? { linkpath: m.linkpath } : {}) }).encode(block, 0);
        parts.push(block);
        if (m.body) parts.push(m.body, Buffer.alloc((512 - (m.body.length % 512)) % 512));
      }
      parts.push(Buffer.alloc(1024));
      return Buffer.concat(parts);
    }
    const good = () => activation() as Member[];
    const first = () => good()[0]!;
    const cases: [string, () => Buffer, string][] = [
      ["a symbolic link", () => tarOf([{ ...first(), type: "SymbolicLink", body: undefined, linkpath: "/etc/passwd" }, ...good().slice(1)]), "E_REGISTRY_UNSAFE_PATH"],
      ["a hard link", () => tarOf([...good(), { path: "activation/link.pt", type: "Link", linkpath: "activation/activation_0.pt" }]), "E_REGISTRY_UNSAFE_PATH"],
      ["a character device", () => tarOf([{ path: "activation/tty", type: "CharacterDevice" }, ...good()]), "E_REGISTRY_UNSAFE_PATH"],
      ["a FIFO", () => tarOf([{ path: "activation/fifo", type: "FIFO" }, ...good()]), "E_REGISTRY_UNSAFE_PATH"],
      ["a ../ member", () => tarOf([{ path: "activation/../../../escaped.txt", body: Buffer.from("x") }, ...good()]), "E_REGISTRY_UNSAFE_PATH"],
      ["an absolute member", () => tarOf([{ path: join(root, "absolute-escape.txt"), body: Buffer.from("x") }, ...good()]), "E_REGISTRY_UNSAFE_PATH"],
      ["a member outside the layer's folder", () => tarOf([...good(), { path: "model.powerinfer.gguf", body: Buffer.from("x") }]), "E_REGISTRY_UNSAFE_PATH"],
      ["a member listed twice", () => tarOf([...good(), first()]), "E_REGISTRY_UNSAFE_PATH"],
      ["an unsigned member", () => tarOf([...good(), { path: "activation/extra.pt", body: Buffer.from("x") }]), "E_EXTRA_FILE"],
      ["a member with other bytes", () => tarOf([{ ...first(), body: seededBytes(4242, first().body!.length) }, ...good().slice(1)]), "E_DIGEST_MISMATCH"],
      ["a member missing", () => tarOf(good().slice(1)), "E_MISSING_FILE"],
      ["a gzip-compressed tar", () => gzipSync(tarOf(good())), "E_REGISTRY_MANIFEST_INVALID"],
      ["not a tar", () => seededBytes(5, 3000), "E_REGISTRY_MANIFEST_INVALID"],
    ];
    for (const [what, make, code] of cases) {
      it(`is refused (${what}: ${code}) with nothing left in models/`, async () => {
        const blob = make();
        const written = await store.writeBlob(blob);
        const manifest = JSON.parse(plan.manifest.toString("utf8"));
        Object.assign(manifest.layers.find((l: { mediaType: string }) => l.mediaType.endsWith(".tar")), written);
        const hostile = parseModelPackManifest(Buffer.from(JSON.stringify(manifest)));
        const parent = join(root, `models-${what.replace(/\W+/g, "-")}`);
        mkdirSync(parent);
        const error = await rejectionOf(store.materialize(hostile, join(parent, "tiny-sparse")));
        expect(error.code).toBe(code);
        expect(readdirSync(parent)).toEqual([]);
        expect(existsSync(join(root, "escaped.txt"))).toBe(false);
        expect(existsSync(join(root, "absolute-escape.txt"))).toBe(false);
      });
    }

    it.skipIf(spawnSync("tar", ["--version"]).error !== undefined)("is accepted from GNU tar, directory entries and all (another packer's honest layer)", async () => {
      const file = join(root, "gnu-activation.tar");
      spawnSync("tar", ["-C", model.dir, "-cf", file, "activation"]);
      const written = await store.writeBlob(readFileSync(file));
      const manifest = JSON.parse(plan.manifest.toString("utf8"));
      Object.assign(manifest.layers.find((l: { mediaType: string }) => l.mediaType.endsWith(".tar")), written);
      const target = join(root, "models-gnu-tar", "tiny-sparse");
      await store.materialize(parseModelPackManifest(Buffer.from(JSON.stringify(manifest))), target);
      await expect(verifyModel(target, { trustedKeys: trusted() })).resolves.toMatchObject({ rootDigest: model.signed.rootDigest });
    });

    it("is accepted when it holds the signed files (the same check passes for an honest layer)", async () => {
      const written = await store.writeBlob(tarOf(good()));
      const manifest = JSON.parse(plan.manifest.toString("utf8"));
      Object.assign(manifest.layers.find((l: { mediaType: string }) => l.mediaType.endsWith(".tar")), written);
      const target = join(root, "models-handmade", "tiny-sparse");
      await store.materialize(parseModelPackManifest(Buffer.from(JSON.stringify(manifest))), target);
      await expect(verifyModel(target, { trustedKeys: trusted() })).resolves.toMatchObject({ rootDigest: model.signed.rootDigest });
    });
  });

  it("notices a blob edited through a hard link made writable, and fetches it again once evicted", async () => {
    const side = await OciStore.open(join(root, "store-edited"));
    const bytes = Buffer.from(plan.config);
    const { digest } = await side.writeBlob(bytes);
    const path = side.blobPath(digest);
    chmodSync(path, 0o644);
    writeFileSync(path, Buffer.from(bytes.toString("utf8").replace("tiny-sparse", "tiny-sparsf")));
    await expect(side.readBlob(digest, 1 << 20)).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH" });
    await side.evict(digest);
    expect(await side.has(digest)).toBe(false);
    await side.ingest(digest, bytes.length, serve(bytes));
    expect((await side.readBlob(digest, 1 << 20)).equals(bytes)).toBe(true);
  });

  it("cleans up the temporary folder a killed materialize left", async () => {
    const parent = join(root, "models-stale");
    const dead = spawnSync(process.execPath, ["-e", "process.pid"]).pid!;
    mkdirSync(join(parent, `.tiny-sparse.pull-${dead}-0123abcd`, "activation"), { recursive: true });
    await store.materialize(parsed, join(parent, "tiny-sparse"));
    expect(readdirSync(parent)).toEqual(["tiny-sparse"]);
  });
});

describe.skipIf(spawnSync("skopeo", ["--version"]).error !== undefined)("skopeo interoperability", () => {
  it("copies our layout to another oci: layout unchanged, and we materialise from the layout skopeo wrote", async () => {
    const copied = join(root, "skopeo-layout");
    const run = spawnSync("skopeo", ["copy", `oci:${join(root, "store")}:example.com/models/tiny-sparse:1.2.0`, `oci:${copied}:tiny-sparse`], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    // skopeo read our index.json and blobs and kept the manifest byte for byte.
    const theirs = await OciStore.open(copied);
    const descriptor = await theirs.resolve("tiny-sparse");
    expect(descriptor?.digest).toBe(plan.manifestDescriptor.digest);
    const blobs = readdirSync(join(copied, "blobs", "sha256"));
    expect(blobs.sort()).toEqual([...new Set([plan.manifestDescriptor.digest, plan.configDescriptor.digest, ...plan.layers.map((l) => l.descriptor.digest)])].map((d) => d.slice(7)).sort());
    for (const layer of parsed.layers) expect(sha256(readFileSync(theirs.blobPath(layer.descriptor.digest)))).toBe(layer.descriptor.digest.slice(7));

    // And we read what skopeo wrote: resolve, parse, materialise, verify.
    const manifest = parseModelPackManifest(await theirs.readBlob(descriptor!.digest, 4 << 20), { expectedDigest: descriptor!.digest });
    const target = join(root, "models-from-skopeo", "tiny-sparse");
    await theirs.materialize(manifest, target);
    await expect(verifyModel(target, { trustedKeys: trusted(), provenance: "require" })).resolves.toMatchObject({ rootDigest: model.signed.rootDigest });
  });
});
