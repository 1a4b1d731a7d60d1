// Benchmark: push and pull of a signed model through a real CNCF Distribution registry (Debian
// docker-registry, started here on 127.0.0.1), next to skopeo moving the same artifact in the same run.
//   push: ours (verify + plan + HEAD/upload + manifest + referrers) into an empty repository, vs
//         `skopeo copy oci:LAYOUT docker://…` of the same artifact into another empty repository;
//   pull: ours (manifest, signature check, blobs into an empty store, materialize, full verify), vs
//         `skopeo copy docker://… oci:DIR` into an empty layout;
//   re-push of the unchanged model; a pull with every blob in the store (blob requests counted);
//   16 concurrent pulls of one model into 16 workspaces sharing one store (blob GETs counted per digest),
//   straight from the registry and through a second Distribution in proxy mode (pull-through cache).
// Runs are interleaved (ours, skopeo, repeat); medians are printed with min–max. Every run uses a fresh
// repository and a fresh local store, so nothing is mounted or cached across runs.
//
// Usage: npx tsx bench/oci-transfer.ts [--size-mib N] [--runs N]     (defaults: 1024 MiB, 3 runs)
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomFillSync } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { parseTrustedKeys } from "../pipeline/signing/trust.js";
import { pullWorkspaceModel, pushWorkspaceModel } from "../pipeline/registry/transfer.js";
import { startRegistry } from "../test/helpers/registry.js";
import { testProvenance, writeModelFiles } from "../test/helpers/signed-model.js";

const { values } = parseArgs({ options: { "size-mib": { type: "string", default: "1024" }, runs: { type: "string", default: "3" } } });
const sizeMiB = Number(values["size-mib"]);
const RUNS = Number(values.runs);
if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || !Number.isInteger(RUNS) || RUNS < 1) {
  console.error("usage: npx tsx bench/oci-transfer.ts [--size-mib N] [--runs N]");
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "ai-tools-bench-oci-"));
const registry = await startRegistry();
const cleanup = async () => {
  await registry.close();
  rmSync(work, { recursive: true, force: true });
};
process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));

try {
  // The model: the demo-shaped signed directory plus one large weight file (random: incompressible, like weights).
  const model = join(work, "model");
  mkdirSync(model, { recursive: true });
  writeModelFiles(model);
  const fd = openSync(join(model, "weights-00001-of-00001.gguf.bin"), "w");
  const chunk = Buffer.alloc(8 << 20);
  for (let written = 0; written < sizeMiB << 20; written += chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(chunk.length, (sizeMiB << 20) - written));
  closeSync(fd);
  const key = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await signModelDirectory(model, { privateKey: key.privateKey, provenance: testProvenance(), subjectName: "bench" });
  const trustedKeys = await parseTrustedKeys([{ id: "bench", publicKey: key.publicKey.export({ type: "spki", format: "pem" }).toString() }], "bench");
  const env = (store: string) => ({ ...process.env, AI_TOOLS_OCI_STORE: store });
  const host = registry.host;
  const seconds = async (work: () => Promise<unknown> | unknown) => {
    const start = process.hrtime.bigint();
    await work();
    return Number(process.hrtime.bigint() - start) / 1e9;
  };

  // The same artifact as an OCI layout for skopeo's push (made once by skopeo from our push; not timed).
  await pushWorkspaceModel({ root: work, dir: model, reference: `oci://${host}/seed/model:v1`, trustedKeys, env: env(join(work, "seed-store")) });
  const layout = join(work, "layout");
  execFileSync("skopeo", ["copy", "--src-tls-verify=false", `docker://${host}/seed/model:v1`, `oci:${layout}:v1`], { stdio: "ignore" });

  const times: Record<string, number[]> = { "push ours": [], "push skopeo": [], "pull ours": [], "pull skopeo": [], "re-push ours": [] };
  for (let run = 0; run < RUNS; run++) {
    const store = join(work, `store-push-${run}`);
    // Pushes go to a fresh, empty registry each run: skopeo remembers where it saw each blob (its
    // blob info cache) and would mount them from the seed repository instead of uploading; we
    // would too (the store's locations), but a fresh store per run already forgets them.
    const dest = await startRegistry();
    try {
      times["push ours"]!.push(await seconds(() => pushWorkspaceModel({ root: work, dir: model, reference: `oci://${dest.host}/ours/model:v1`, trustedKeys, env: env(store) })));
      times["push skopeo"]!.push(await seconds(() => execFileSync("skopeo", ["copy", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${dest.host}/skopeo/model:v1`], { stdio: "ignore" })));
      times["re-push ours"]!.push(await seconds(() => pushWorkspaceModel({ root: work, dir: model, reference: `oci://${dest.host}/ours/model:v1`, trustedKeys, env: env(store) })));
    } finally {
      await dest.close();
    }
    const pullRoot = join(work, `pull-${run}`);
    times["pull ours"]!.push(await seconds(() => pullWorkspaceModel({ root: pullRoot, reference: `oci://${host}/seed/model:v1`, trustedKeys, env: env(join(pullRoot, "store")) })));
    times["pull skopeo"]!.push(await seconds(() => execFileSync("skopeo", ["copy", "--src-tls-verify=false", `docker://${host}/seed/model:v1`, `oci:${join(work, `skopeo-pull-${run}`)}:v1`], { stdio: "ignore" })));
    rmSync(pullRoot, { recursive: true, force: true });
    rmSync(join(work, `skopeo-pull-${run}`), { recursive: true, force: true });
  }

  // Every blob already in the store: how many blob requests does a pull make?
  const warm = join(work, "warm");
  const first = await pullWorkspaceModel({ root: warm, reference: `oci://${host}/seed/model:v1`, trustedKeys, env: env(join(warm, "store")) });
  await registry.clearAccessLog();
  const warmSeconds = await seconds(() => pullWorkspaceModel({ root: warm, reference: `oci://${host}/seed/model@${first.digest}`, to: join(warm, "again"), trustedKeys, env: env(join(warm, "store")) }));
  const warmRequests = (await registry.accessLog()).length;

  // 16 pulls at once into 16 workspaces sharing one store: each blob fetched once.
  const fleet = async (registryHost: string, label: string, accessLog: () => Promise<{ method: string; path: string }[]>) => {
    const shared = join(work, `shared-${label}`);
    const elapsed = await seconds(() =>
      Promise.all(Array.from({ length: 16 }, (_, i) => pullWorkspaceModel({ root: join(work, `${label}-${i}`), reference: `oci://${registryHost}/seed/model:v1`, trustedKeys, env: env(shared) }))),
    );
    const gets = (await accessLog()).filter((e) => e.method === "GET" && e.path.includes("/blobs/sha256:"));
    const perBlob = new Map<string, number>();
    for (const g of gets) perBlob.set(g.path, (perBlob.get(g.path) ?? 0) + 1);
    return { elapsed, gets: gets.length, maxPerBlob: Math.max(...perBlob.values()), blobs: perBlob.size };
  };
  await registry.clearAccessLog();
  const direct = await fleet(host, "direct", () => registry.accessLog());
  const proxy = await startRegistry({ proxyRemoteUrl: `http://${host}` });
  let proxied;
  try {
    await registry.clearAccessLog();
    proxied = await fleet(proxy.host, "proxied", () => registry.accessLog());
  } finally {
    await proxy.close();
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const cell = (xs: number[]) => `${median(xs).toFixed(2)} s (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  const ratio = (a: string, b: string) => (median(times[a]!) / median(times[b]!)).toFixed(2);
  console.log(`\n${sizeMiB} MiB weight file + the demo files, ${RUNS} interleaved runs, Debian docker-registry 2.8.2 on 127.0.0.1, skopeo ${execFileSync("skopeo", ["--version"], { encoding: "utf8" }).trim().split(" ").pop()}\n`);
  console.log("| what | ai-tools | skopeo | ratio |\n| --- | --- | --- | --- |");
  console.log(`| push into an empty repository | ${cell(times["push ours"]!)} | ${cell(times["push skopeo"]!)} | ${ratio("push ours", "push skopeo")} |`);
  console.log(`| pull into an empty store | ${cell(times["pull ours"]!)} | ${cell(times["pull skopeo"]!)} | ${ratio("pull ours", "pull skopeo")} |`);
  console.log(`| re-push, unchanged | ${cell(times["re-push ours"]!)} | | |`);
  console.log(`| pull by digest, every blob in the store | ${warmSeconds.toFixed(2)} s, ${warmRequests} registry requests | | |`);
  console.log(`| 16 concurrent pulls, one shared store | ${direct.elapsed.toFixed(2)} s; ${direct.gets} blob GETs for ${direct.blobs} blobs (at most ${direct.maxPerBlob} per blob) | | |`);
  console.log(`| the same through a pull-through cache (proxy.remoteurl) | ${proxied.elapsed.toFixed(2)} s; ${proxied.gets} blob GETs reached the origin for ${proxied.blobs} blobs | | |`);
} finally {
  await cleanup();
}
