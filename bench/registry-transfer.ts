// Benchmark: the registry transport moving one large blob (a one-layer OCI artifact) to and
// from a local CNCF Distribution 2.8.2, next to skopeo 1.9.3 moving the same artifact in the
// same run. Each push goes to a fresh registry (no blob is already there); pulls share one.
// Prints a Markdown table of medians.
//
// Usage: npx tsx bench/registry-transfer.ts [--size-mib 1024] [--runs 3]
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { RegistryClient } from "../pipeline/registry/index.js";
import { OCI_EMPTY, OCI_MANIFEST } from "../pipeline/registry/types.js";
import { startRegistry } from "../test/helpers/registry.js";

const run = promisify(execFile);
const MiB = 2 ** 20;
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const sizeMiB = arg("--size-mib", 512);
const runs = arg("--runs", 3);

// The artifact: a random (incompressible) layer written 1 MiB at a time, and an empty config.
const work = mkdtempSync(join(tmpdir(), "ai-tools-bench-registry-"));
const layerPath = join(work, "layer.bin");
const hash = createHash("sha256");
{
  const out = createWriteStream(layerPath);
  for (let i = 0; i < sizeMiB; i++) {
    const piece = randomBytes(MiB);
    hash.update(piece);
    if (!out.write(piece)) await once(out, "drain");
  }
  await new Promise((resolve) => out.end(resolve));
}
const layerDigest = `sha256:${hash.digest("hex")}`;
const size = sizeMiB * MiB;
const config = Buffer.from("{}");
const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/vnd.cncf.model.manifest.v1+json",
    config: { mediaType: OCI_EMPTY, digest: configDigest, size: 2 },
    layers: [{ mediaType: "application/vnd.cncf.model.weight.v1.raw", digest: layerDigest, size, annotations: { "org.cncf.model.filepath": "model.gguf" } }],
  }),
);
const manifestDigest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;

// The same artifact as an OCI layout for skopeo (the layer linked, not copied).
const layout = join(work, "layout");
mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
await run("ln", [layerPath, join(layout, "blobs", "sha256", layerDigest.slice(7))]);
writeFileSync(join(layout, "blobs", "sha256", configDigest.slice(7)), config);
writeFileSync(join(layout, "blobs", "sha256", manifestDigest.slice(7)), manifest);
writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
writeFileSync(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length, annotations: { "org.opencontainers.image.ref.name": "v1" } }] }));

async function ourPush(host: string, options: { chunkSize?: number; monolithicLimit?: number }): Promise<void> {
  const client = new RegistryClient({ registry: host, credentials: null });
  const source = (path: string, digest: string, bytes: number) => ({ digest, size: bytes, open: (start: number, end: number) => createReadStream(path, { start, end: end - 1, highWaterMark: MiB }) });
  await client.uploadBlob("bench/model", source(layerPath, layerDigest, size), options);
  await client.uploadBlob("bench/model", { digest: configDigest, size: 2, open: () => createReadStream(join(layout, "blobs", "sha256", configDigest.slice(7))) });
  await client.putManifest("bench/model", "v1", manifest, OCI_MANIFEST);
  await client.close();
}

async function ourPull(host: string, dir: string): Promise<void> {
  const client = new RegistryClient({ registry: host, credentials: null });
  await client.getManifest("bench/model", "v1");
  await client.getBlob("bench/model", configDigest, { file: join(dir, "config") });
  await client.getBlob("bench/model", layerDigest, { file: join(dir, "layer"), size });
  await client.close();
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const timings = new Map<string, number[]>();
async function measure(name: string, body: (host: string) => Promise<void>, prepare?: (host: string) => Promise<void>): Promise<void> {
  const registry = await startRegistry();
  try {
    if (prepare) await prepare(registry.host);
    const started = performance.now();
    await body(registry.host);
    timings.set(name, [...(timings.get(name) ?? []), performance.now() - started]);
  } finally {
    await registry.close();
  }
}

const skopeoPush = (host: string) => run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${host}/bench/model:v1`]).then(() => undefined);
// Pushes: a fresh (empty) registry each time, the contenders interleaved.
for (let i = 0; i < runs; i++) {
  await measure("push: skopeo copy oci: -> docker://", skopeoPush);
  await measure("push: ai-tools, one PUT", (host) => ourPush(host, { monolithicLimit: Infinity }));
  await measure("push: ai-tools, 64 MiB PATCH chunks (default)", (host) => ourPush(host, {}));
  await measure("push: ai-tools, 16 MiB PATCH chunks", (host) => ourPush(host, { chunkSize: 16 * MiB, monolithicLimit: 0 }));
}
// Pulls: one registry holding the artifact (pushed by skopeo), each pull into a fresh folder.
{
  const registry = await startRegistry();
  await skopeoPush(registry.host);
  const pulls: [string, (dir: string) => Promise<void>][] = [
    ["pull: skopeo copy docker:// -> oci:", (dir) => run("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${registry.host}/bench/model:v1`, `oci:${dir}:v1`]).then(() => undefined)],
    ["pull: ai-tools getBlob (sha256 checked)", (dir) => ourPull(registry.host, dir)],
  ];
  for (let i = 0; i < runs; i++) {
    for (const [name, pull] of pulls) {
      const dir = mkdtempSync(join(work, "pull-"));
      const started = performance.now();
      await pull(dir);
      timings.set(name, [...(timings.get(name) ?? []), performance.now() - started]);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  await registry.close();
}

console.log(`${sizeMiB} MiB layer, ${runs} runs each (median), a fresh registry per push, ${cpus().length} cores, Node ${process.versions.node}\n`);
console.log("| transfer | median | MiB/s | vs skopeo |");
console.log("| --- | ---: | ---: | ---: |");
for (const [name, values] of timings) {
  const peer = median(timings.get(name.startsWith("push") ? "push: skopeo copy oci: -> docker://" : "pull: skopeo copy docker:// -> oci:")!);
  const ms = median(values);
  console.log(`| ${name} | ${(ms / 1000).toFixed(2)} s | ${(sizeMiB / (ms / 1000)).toFixed(0)} | ${(ms / peer).toFixed(2)}x |`);
}
rmSync(work, { recursive: true, force: true });
