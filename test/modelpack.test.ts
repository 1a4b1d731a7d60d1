/**
 * The ModelPack layout of a signed model directory: the layers are the signed files (each
 * raw layer's digest is its SHA256SUMS line), activation/ is one tar layer whose digest
 * does not depend on readdir order, modes or owners, the config follows the ModelPack
 * schema, the same folder gives the same manifest digest, and a pulled manifest that could
 * hurt is refused with its code.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planModelPack, parseModelPackManifest, MAX_LAYERS, MAX_MANIFEST_BYTES, type ModelPackPlan } from "../pipeline/registry/modelpack.js";
import { formatParamSize, modelPackConfigSchema } from "../pipeline/registry/modelpack-config.js";
import { createDeterministicTar } from "../pipeline/registry/tar-layer.js";
import { findCollision } from "../pipeline/registry/layer-paths.js";
import { create as tarCreate } from "tar";
import { ENGINE_COMMIT, FINISHED_ON, makeSignedModel, MODEL_ID, seededBytes, type SignedModel } from "./helpers/signed-model.js";

let root: string;
let model: SignedModel;
let plan: ModelPackPlan;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "ai-tools-modelpack-"));
  model = await makeSignedModel(join(root, "model"));
  plan = await planModelPack(model.dir, { scratchDir: join(root, "scratch") });
});
afterAll(async () => {
  await plan?.dispose();
  rmSync(root, { recursive: true, force: true });
});

const manifestOf = (p: ModelPackPlan) => JSON.parse(p.manifest.toString("utf8")) as { layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[]; annotations: Record<string, string>; config: { digest: string }; artifactType: string; mediaType: string };

describe("planModelPack", () => {
  it("makes one raw layer per signed file whose digest is its SHA256SUMS line, activation/ one tar layer, plus the signature files", () => {
    const sums = new Map(
      readFileSync(join(model.dir, "SHA256SUMS"), "utf8")
        .trim()
        .split("\n")
        .map((line) => [line.slice(66), line.slice(0, 64)] as const),
    );
    const raw = plan.layers.filter((l) => l.packing === "raw");
    for (const layer of raw) {
      if (sums.has(layer.filepath)) expect(layer.descriptor.digest, layer.filepath).toBe(`sha256:${sums.get(layer.filepath)}`);
      else expect(layer.descriptor.digest, layer.filepath).toBe(`sha256:${sha256(readFileSync(join(model.dir, layer.filepath)))}`);
    }
    // The layer set = the signed set (activation/ inside the tar) + model.sig and the provenance; SHA256SUMS is itself signed.
    const signedTopLevel = [...sums.keys(), "SHA256SUMS"].filter((n) => !n.startsWith("activation/"));
    expect(raw.map((l) => l.filepath).sort()).toEqual([...signedTopLevel, "model.sig", "provenance.sigstore.json"].sort());
    expect(plan.layers.map((l) => l.filepath)).not.toContain("model.powerinfer.gguf.generated.gpuidx");
    const tar = plan.layers.filter((l) => l.packing === "tar");
    expect(tar.map((l) => l.filepath)).toEqual(["activation"]);
    expect(tar[0]!.members!.map((m) => [m.name, m.digest])).toEqual([...sums].filter(([n]) => n.startsWith("activation/")));
  });

  it("lists the tar's members sorted, mode 0644, owner 0, mtime 0 and no directories (read by GNU tar)", () => {
    const tarLayer = plan.layers.find((l) => l.packing === "tar")!;
    const listing = execFileSync("tar", ["--numeric-owner", "--full-time", "-tvf", tarLayer.source], { encoding: "utf8" }).trim().split("\n");
    expect(listing).toHaveLength(6);
    for (const [i, line] of listing.entries()) expect(line).toMatch(new RegExp(`^-rw-r--r-- 0/0 +\\d+ 1970-01-01 00:00:00 activation/activation_${i}\\.pt$`));
  });

  it("uses the ModelPack media types and file annotations", () => {
    const manifest = manifestOf(plan);
    expect(manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(manifest.artifactType).toBe("application/vnd.cncf.model.manifest.v1+json");
    const type = (path: string) => manifest.layers.find((l) => l.annotations["org.cncf.model.filepath"] === path)!.mediaType;
    expect(type("model.powerinfer.gguf")).toBe("application/vnd.cncf.model.weight.v1.raw");
    expect(type("model.host-a.gpuidx")).toBe("application/vnd.cncf.model.weight.v1.raw");
    expect(type("activation")).toBe("application/vnd.cncf.model.weight.v1.tar");
    expect(type("config.json")).toBe("application/vnd.cncf.model.weight.config.v1.raw");
    expect(type("policy.yaml")).toBe("application/vnd.cncf.model.weight.config.v1.raw");
    for (const doc of ["SHA256SUMS", "model.sig", "provenance.sigstore.json", "bench.json"]) expect(type(doc)).toBe("application/vnd.cncf.model.doc.v1.raw");
    const gguf = manifest.layers.find((l) => l.annotations["org.cncf.model.filepath"] === "model.powerinfer.gguf")!;
    expect(JSON.parse(gguf.annotations["org.cncf.model.file.metadata+json"]!)).toEqual({ name: "model.powerinfer.gguf", mode: 0o644, uid: 0, gid: 0, size: gguf.size, mtime: "1970-01-01T00:00:00Z", typeflag: 0 });
  });

  it("writes a config that the ModelPack schema accepts (additionalProperties false), from the GGUF and the provenance", () => {
    const config = JSON.parse(plan.config.toString("utf8"));
    expect(() => modelPackConfigSchema.parse(config)).not.toThrow();
    expect(Object.keys(config)).toEqual(["descriptor", "config", "modelfs"]);
    expect(config.descriptor).toEqual({
      createdAt: FINISHED_ON,
      family: "llama",
      name: MODEL_ID,
      version: "1.2.0",
      sourceURL: "https://huggingface.co/example/tiny-sparse",
      revision: "fedcba9876543210fedcba9876543210fedcba98",
    });
    // The helper's GGUF: 2 llama blocks of 64 hidden / 256 ffn, vocabulary 512, F16; the predictor is not counted.
    expect(config.config).toEqual({ architecture: "llama", format: "gguf", paramSize: "197K", precision: "float16" });
    expect(config.modelfs).toEqual({ type: "layers", diffIds: plan.layers.map((l) => l.descriptor.digest) });
    expect(manifestOf(plan).config.digest).toBe(`sha256:${sha256(plan.config)}`);
    // The schema is strict: what does not fit must go elsewhere.
    expect(() => modelPackConfigSchema.parse({ ...config, config: { ...config.config, engineCommit: "x" } })).toThrow();
  });

  it("puts what the config cannot hold into dev.ai-tools.* manifest annotations, with no wall-clock time", () => {
    const annotations = manifestOf(plan).annotations;
    expect(annotations).toMatchObject({
      "dev.ai-tools.model.format": "PowerInfer GGUF",
      "dev.ai-tools.engine.commit": ENGINE_COMMIT,
      "dev.ai-tools.provenance.digest": `sha256:${sha256(readFileSync(join(model.dir, "provenance.sigstore.json")))}`,
      "dev.ai-tools.signature.root": `sha256:${model.signed.rootDigest}`,
      "dev.ai-tools.signature.key-hint": model.signed.keyHint,
      "org.opencontainers.image.created": FINISHED_ON,
      "org.opencontainers.image.title": MODEL_ID,
      "org.opencontainers.image.version": "1.2.0",
    });
  });

  it("gives the same manifest digest on every run", async () => {
    const again = await planModelPack(model.dir, { scratchDir: join(root, "scratch") });
    try {
      expect(again.manifestDescriptor.digest).toBe(plan.manifestDescriptor.digest);
      expect(again.manifest.equals(plan.manifest)).toBe(true);
      expect(plan.manifestDescriptor.digest).toBe(`sha256:${sha256(plan.manifest)}`);
    } finally {
      await again.dispose();
    }
    // Temporary tar files go to the scratch folder, never into the model directory, and dispose() removes them.
    expect(readdirSync(join(root, "scratch"))).toHaveLength(1);
    expect(readdirSync(model.dir).filter((n) => n.endsWith(".tar"))).toEqual([]);
  });

  it("refuses a directory that no longer matches its signature, naming the file", async () => {
    const copy = join(root, "changed");
    cpSync(model.dir, copy, { recursive: true });
    writeFileSync(join(copy, "activation", "activation_2.pt"), seededBytes(999, 726));
    await expect(planModelPack(copy, { scratchDir: join(root, "scratch") })).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH", files: ["activation/activation_2.pt"] });
    writeFileSync(join(copy, "notes.txt"), "unsigned");
    await expect(planModelPack(copy)).rejects.toMatchObject({ code: "E_EXTRA_FILE", files: ["notes.txt"] });
    rmSync(join(copy, "model.sig"));
    await expect(planModelPack(copy)).rejects.toMatchObject({ code: "E_NO_SIGNATURE" });
  });

  it("with verifyDigests: false reads no weights (the registry checks uploads), but still hashes the tar folder's files", async () => {
    const copy = join(root, "trusting");
    cpSync(model.dir, copy, { recursive: true });
    const signedGpuidx = plan.layers.find((l) => l.filepath === "model.host-a.gpuidx")!.descriptor.digest;
    writeFileSync(join(copy, "model.host-a.gpuidx"), seededBytes(31337, 512));
    const trusting = await planModelPack(copy, { verifyDigests: false, scratchDir: join(root, "scratch-3") });
    await trusting.dispose();
    expect(trusting.layers.find((l) => l.filepath === "model.host-a.gpuidx")!.descriptor.digest).toBe(signedGpuidx);
    await expect(planModelPack(copy)).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH", files: ["model.host-a.gpuidx"] });
    writeFileSync(join(copy, "activation", "activation_1.pt"), seededBytes(4, 713));
    await expect(planModelPack(copy, { verifyDigests: false })).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH", files: ["activation/activation_1.pt"] });
  });
});

describe("the deterministic tar layer", () => {
  it("has the same digest for two copies with different readdir order, modes and owners", async () => {
    const a = join(root, "tar-a");
    const b = join(root, "tar-b");
    const names = Array.from({ length: 12 }, (_, i) => `activation/activation_${i}.pt`);
    mkdirSync(join(a, "activation"), { recursive: true });
    mkdirSync(join(b, "activation"), { recursive: true });
    names.forEach((n, i) => writeFileSync(join(a, n), seededBytes(i, 300 + i)));
    [...names.entries()].reverse().forEach(([i, n]) => writeFileSync(join(b, n), seededBytes(i, 300 + i)));
    names.forEach((n, i) => chmodSync(join(a, n), i % 2 ? 0o600 : 0o644));
    names.forEach((n) => chmodSync(join(b, n), 0o664));
    const root0 = process.getuid?.() === 0;
    if (root0) names.forEach((n) => chownSync(join(b, n), 1000, 1000));
    // Unsorted, tar keeps the order it is given (readdir's, for a folder): the premise of the test.
    await tarCreate({ file: join(root, "plain-a.tar"), cwd: a, portable: true, mtime: new Date(0) }, names);
    await tarCreate({ file: join(root, "plain-b.tar"), cwd: b, portable: true, mtime: new Date(0) }, [...names].reverse());
    expect(sha256(readFileSync(join(root, "plain-a.tar")))).not.toBe(sha256(readFileSync(join(root, "plain-b.tar"))));

    await createDeterministicTar(a, names, join(root, "a.tar"));
    await createDeterministicTar(b, [...names].reverse(), join(root, "b.tar"));
    const digestA = sha256(readFileSync(join(root, "a.tar")));
    expect(sha256(readFileSync(join(root, "b.tar")))).toBe(digestA);
    // And a changed byte changes it.
    writeFileSync(join(b, names[3]!), seededBytes(77, 303));
    await createDeterministicTar(b, names, join(root, "c.tar"));
    expect(sha256(readFileSync(join(root, "c.tar")))).not.toBe(digestA);
  });

  it("is the same layer in two signed copies of a model written in another order with other modes", async () => {
    const other = await makeSignedModel(join(root, "model-reversed"), { reverse: true });
    for (const name of readdirSync(join(other.dir, "activation"))) chmodSync(join(other.dir, "activation", name), 0o600);
    const otherPlan = await planModelPack(other.dir, { scratchDir: join(root, "scratch-2") });
    try {
      const tarOf = (p: ModelPackPlan) => p.layers.find((l) => l.packing === "tar")!.descriptor.digest;
      expect(tarOf(otherPlan)).toBe(tarOf(plan));
      // model.sig differs (a new key and signature), so the manifests differ; the weights do not.
      expect(otherPlan.manifestDescriptor.digest).not.toBe(plan.manifestDescriptor.digest);
    } finally {
      await otherPlan.dispose();
    }
  });
});

describe("parseModelPackManifest", () => {
  const base = () => JSON.parse(plan.manifest.toString("utf8"));
  const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));
  const withLayer = (change: (layer: Record<string, unknown>, manifest: Record<string, unknown>) => void, index = 5) => {
    const manifest = base();
    change(manifest.layers[index], manifest);
    return bytes(manifest);
  };
  const withPath = (path: string, index = 5) => withLayer((l) => ((l.annotations as Record<string, string>)["org.cncf.model.filepath"] = path), index);

  it("reads what planModelPack wrote", () => {
    const parsed = parseModelPackManifest(plan.manifest);
    expect(parsed.digest).toBe(plan.manifestDescriptor.digest);
    expect(parsed.layers.map((l) => [l.filepath, l.packing])).toEqual(plan.layers.map((l) => [l.filepath, l.packing]));
    expect(parsed.legacy).toBe(false);
  });

  it("refuses bytes that are not the manifest asked for (E_DIGEST_MISMATCH)", () => {
    expect(() => parseModelPackManifest(plan.manifest, { expectedDigest: plan.configDescriptor.digest })).toThrow(expect.objectContaining({ code: "E_DIGEST_MISMATCH" }));
    expect(parseModelPackManifest(plan.manifest, { expectedDigest: plan.manifestDescriptor.digest }).digest).toBe(plan.manifestDescriptor.digest);
  });

  it("accepts the pre-v0.0.7 vnd.cnai / org.cnai spellings", () => {
    const text = plan.manifest.toString("utf8").replaceAll("vnd.cncf.model", "vnd.cnai.model").replaceAll("org.cncf.model.filepath", "org.cnai.model.filepath");
    const parsed = parseModelPackManifest(Buffer.from(text));
    expect(parsed.legacy).toBe(true);
    expect(parsed.layers.map((l) => l.filepath)).toEqual(plan.layers.map((l) => l.filepath));
  });

  const hostile: [string, () => Uint8Array, string][] = [
    ["a manifest over 4 MiB", () => Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20), "E_REGISTRY_LIMIT"],
    ["more than 10,000 layers", () => withLayer((_, m) => (m.layers = Array.from({ length: MAX_LAYERS + 1 }, () => (m.layers as unknown[])[0]))), "E_REGISTRY_LIMIT"],
    ["a config blob over 4 MiB", () => withLayer((_, m) => ((m.config as { size: number }).size = (4 << 20) + 1)), "E_REGISTRY_LIMIT"],
    ["no artifactType", () => withLayer((_, m) => delete m.artifactType), "E_REGISTRY_MANIFEST_INVALID"],
    ["another artifactType", () => withLayer((_, m) => (m.artifactType = "application/vnd.dev.sigstore.bundle.v0.3+json")), "E_REGISTRY_MANIFEST_INVALID"],
    ["a KitOps config", () => withLayer((_, m) => ((m.config as { mediaType: string }).mediaType = "application/vnd.kitops.modelkit.config.v1+json")), "E_REGISTRY_MANIFEST_INVALID"],
    ["a Docker manifest type", () => withLayer((_, m) => (m.mediaType = "application/vnd.docker.distribution.manifest.v2+json")), "E_REGISTRY_MANIFEST_INVALID"],
    ["not JSON", () => Buffer.from("{"), "E_REGISTRY_MANIFEST_INVALID"],
    ["a sha512 layer digest", () => withLayer((l) => (l.digest = `sha512:${"a".repeat(128)}`)), "E_REGISTRY_MANIFEST_INVALID"],
    ["a negative size", () => withLayer((l) => (l.size = -1)), "E_REGISTRY_MANIFEST_INVALID"],
    ["an unknown layer type", () => withLayer((l) => (l.mediaType = "application/octet-stream")), "E_REGISTRY_MANIFEST_INVALID"],
    ["a gzip tar layer", () => withLayer((l) => (l.mediaType = "application/vnd.cncf.model.weight.v1.tar+gzip")), "E_REGISTRY_MANIFEST_INVALID"],
    ["a layer without a file path", () => withLayer((l) => delete (l.annotations as Record<string, string>)["org.cncf.model.filepath"]), "E_REGISTRY_MANIFEST_INVALID"],
    ["no layers", () => withLayer((_, m) => (m.layers = [])), "E_REGISTRY_MANIFEST_INVALID"],
    ["a ../ path", () => withPath("../../.bashrc"), "E_REGISTRY_UNSAFE_PATH"],
    ["a ../ segment inside", () => withPath("activation/../../x"), "E_REGISTRY_UNSAFE_PATH"],
    ["an absolute path", () => withPath("/etc/passwd"), "E_REGISTRY_UNSAFE_PATH"],
    ["a backslash", () => withPath("..\\..\\x"), "E_REGISTRY_UNSAFE_PATH"],
    ["a NUL", () => withPath("model\u0000.gguf"), "E_REGISTRY_UNSAFE_PATH"],
    ["an escape character", () => withPath("model\u001b[2J.gguf"), "E_REGISTRY_UNSAFE_PATH"],
    ["a ./ segment", () => withPath("./model.gguf"), "E_REGISTRY_UNSAFE_PATH"],
    ["a duplicate path", () => withPath("config.json"), "E_REGISTRY_UNSAFE_PATH"],
    ["a path differing only in case", () => withPath("CONFIG.json"), "E_REGISTRY_UNSAFE_PATH"],
    ["a file inside another layer's folder", () => withPath("activation/activation_0.pt"), "E_REGISTRY_UNSAFE_PATH"],
    ["a file below another layer's file", () => withPath("config.json/x"), "E_REGISTRY_UNSAFE_PATH"],
  ];
  for (const [what, make, code] of hostile) {
    it(`refuses ${what} with ${code}`, () => {
      let error: unknown;
      try {
        parseModelPackManifest(make());
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code });
    });
  }
});

describe("small parts", () => {
  it("formats parameter counts as ModelPack's <count><scale>", () => {
    expect(formatParamSize(6_738_415_616)).toBe("6.7B");
    expect(formatParamSize(13_015_864_320)).toBe("13B");
    expect(formatParamSize(124_000_000)).toBe("124M");
    expect(formatParamSize(1_000)).toBe("1K");
    expect(formatParamSize(999)).toBeUndefined();
  });

  it("finds paths that would collide on some filesystem", () => {
    expect(findCollision(["a", "a.b", "a/c"])).toEqual(["a", "a/c"]);
    expect(findCollision(["caf\u00e9", "cafe\u0301"])).not.toBeNull();
    expect(findCollision(["a", "b/a", "a.b"])).toBeNull();
  });
});

describe.skipIf(spawnSync("tar", ["--version"]).error !== undefined)("GNU tar reads our tar layer", () => {
  it("extracts exactly the signed activation files", () => {
    const out = join(root, "gnu-extract");
    mkdirSync(out);
    execFileSync("tar", ["-xf", plan.layers.find((l) => l.packing === "tar")!.source, "-C", out]);
    for (const name of readdirSync(join(model.dir, "activation"))) {
      expect(readFileSync(join(out, "activation", name)).equals(readFileSync(join(model.dir, "activation", name)))).toBe(true);
    }
  });
});
