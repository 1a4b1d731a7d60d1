/**
 * Download hardening (issue 16), against the local Hub imitation: no warnings on stderr,
 * hashing while bytes stream in, expiring URLs and persistent errors that say which file,
 * huggingface_hub's lock files (with a second process holding them), corrupt cached blobs,
 * a changed chunk size, and an offline cache that Python left half-filled.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hubSettings } from "../pipeline/hub/env.js";
import { translateDoneChunks } from "../pipeline/hub/download-blob.js";
import { downloadSnapshot, type SnapshotOptions } from "../pipeline/hub/snapshot.js";
import { DigestCache } from "../pipeline/core/digest-cache.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";
import { gitBlobOid, seededBytes, startHubServer, type HubServer } from "./helpers/hub-server.js";

const KiB = 1024;
const REPO = "org/hardened";
const WEIGHTS = seededBytes("hardened-weights", 2048 * KiB + 77);
const SHARDS = [seededBytes("shard-1", 300 * KiB), seededBytes("shard-2", 300 * KiB)];
const CONFIG = '{"model_type": "llama"}\n';
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

let server: HubServer;
let cacheDir: string;
beforeAll(async () => {
  server = await startHubServer();
  server.addRepo({
    id: REPO,
    files: [
      { path: "model.safetensors", content: WEIGHTS, lfs: true },
      { path: "config.json", content: CONFIG },
      ...SHARDS.map((content, i) => ({ path: `model-0000${i + 1}-of-00002.safetensors`, content, lfs: true })),
      ...Array.from({ length: 12 }, (_, i) => ({ path: `extra/part-${i}.bin`, content: seededBytes(`part${i}`, 100 * KiB + i), lfs: true })),
    ],
  });
});
afterAll(() => server.close());
beforeEach(() => {
  cacheDir = mkdtempSync(join(tmpdir(), "ai-tools-hub-hardening-"));
  server.resetLog();
  server.clearFaults();
});
afterEach(() => rmSync(cacheDir, { recursive: true, force: true }));

function options(extra: Partial<SnapshotOptions> = {}, env: NodeJS.ProcessEnv = {}): SnapshotOptions {
  return { settings: hubSettings({ HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: cacheDir, ...env }), chunkSize: 256 * KiB, connectionsPerFile: 4, baseDelayMs: 20, stallMs: 2000, ...extra };
}
const blobDir = () => join(cacheDir, "models--org--hardened", "blobs");

/** Runs a script with tsx in a child process (the server keeps serving in this one); its exit code and output. */
function runChild(script: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("a multi-file download", () => {
  it("prints nothing on stderr: no MaxListenersExceededWarning from a shared abort signal", async () => {
    const script = `
      import { hubSettings } from "./pipeline/hub/env.ts";
      import { downloadSnapshot } from "./pipeline/hub/snapshot.ts";
      const controller = new AbortController();
      const result = await downloadSnapshot({ repo: ${JSON.stringify(REPO)}, revision: "main" }, {
        settings: hubSettings({ HF_ENDPOINT: process.env.ENDPOINT, HF_HUB_CACHE: process.env.CACHE }),
        signal: AbortSignal.any([controller.signal]), chunkSize: 64 * 1024, connectionsPerFile: 4, fileConcurrency: 4, maxConnections: 16,
      });
      console.log(result.files.length);
    `;
    const result = await runChild(script, { ENDPOINT: server.endpoint, CACHE: cacheDir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe("16");
    expect(result.stderr).toBe("");
  });
});

describe("a hostile listing", () => {
  it("a file name with terminal control characters is refused before anything is written, and shown escaped", async () => {
    const evil = JSON.stringify([{ type: "file", path: "\u001b[2K\u001b[1Gdone.bin", size: 3, oid: "a".repeat(40) }]);
    server.injectFault(`/api/models/${REPO}/tree`, { on: "api", status: { code: 200, headers: { "content-type": "application/json" }, body: evil }, times: 1 });
    const error = await downloadSnapshot({ repo: REPO, revision: "main" }, options()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_HUB_UNSAFE_PATH", message: expect.stringContaining("\\x1b[2K\\x1b[1Gdone.bin") });
    expect((error as Error).message).not.toContain("\u001b");
    expect(server.requests.filter((r) => r.file !== undefined)).toEqual([]);
  });
});

describe("hashing while the bytes arrive", () => {
  it("on one connection the digest needs no second pass over the file; with several, only what arrived out of order is read back", async () => {
    const single = await downloadSnapshot({ repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] }, options({ connectionsPerFile: 1 }));
    expect(readFileSync(join(single.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(single.rehashedBytes).toBe(0);

    rmSync(cacheDir, { recursive: true, force: true });
    server.settings.bytesPerSecondPerConnection = 4 << 20;
    const parallel = await downloadSnapshot({ repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] }, options()).finally(() => (server.settings.bytesPerSecondPerConnection = undefined));
    expect(readFileSync(join(parallel.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    // Ranges that finish ahead of the hashed part are read back (how many depends on their order): never the whole file.
    expect(parallel.rehashedBytes).toBeLessThan(WEIGHTS.length);
  });

  it("a range cut off mid-way resumes where it stopped (nothing is written, or hashed, twice); a flipped byte is still caught", async () => {
    server.injectFault("model.safetensors", { on: "cdn", request: "range", truncateAfter: 1000, times: 1 });
    const result = await downloadSnapshot({ repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] }, options({ connectionsPerFile: 1 }));
    expect(readFileSync(join(result.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    const ranges = server.requests.filter((r) => r.host === "cdn" && r.range).map((r) => r.range);
    expect(ranges.slice(0, 2)).toEqual([`bytes=0-${256 * KiB - 1}`, `bytes=1000-${256 * KiB - 1}`]);
    expect(result.rehashedBytes).toBe(0);

    rmSync(cacheDir, { recursive: true, force: true });
    server.injectFault("model.safetensors", { on: "cdn", flipByteAt: 300 * KiB, times: 2 });
    await expect(downloadSnapshot({ repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] }, options({ connectionsPerFile: 1 }))).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH" });
  });
});

describe("hashing a large file on a worker thread", () => {
  // From 32 MiB on the digest is computed off the main thread: the same checks must hold there.
  const LARGE = "org/large";
  const LARGE_WEIGHTS = randomBytes(33 << 20);
  beforeAll(() => server.addRepo({ id: LARGE, files: [{ path: "model.safetensors", content: LARGE_WEIGHTS, lfs: true }] }));
  const large = (extra: Partial<SnapshotOptions> = {}) => downloadSnapshot({ repo: LARGE, revision: "main" }, options({ chunkSize: 4 << 20, ...extra }));

  it("gives the same digest in one stream, with ranges read back out of order, and refuses a flipped byte", async () => {
    const single = await large({ connectionsPerFile: 1 });
    expect(readFileSync(join(single.dir, "model.safetensors")).equals(LARGE_WEIGHTS)).toBe(true);
    expect(single.rehashedBytes).toBe(0);

    rmSync(cacheDir, { recursive: true, force: true });
    const parallel = await large({ connectionsPerFile: 4 });
    expect(readFileSync(join(parallel.dir, "model.safetensors")).equals(LARGE_WEIGHTS)).toBe(true);

    rmSync(cacheDir, { recursive: true, force: true });
    server.injectFault("model.safetensors", { on: "cdn", flipByteAt: 20 << 20, times: 2 });
    await expect(large({ connectionsPerFile: 1 })).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH" });
    expect(readdirSync(join(cacheDir, "models--org--large", "blobs"))).toEqual([]);
  });
});

describe("failures that persist say which file, after backing off", () => {
  it("a CDN that keeps refusing fresh signed URLs: the repo, the file and the attempts, with growing waits", async () => {
    server.injectFault("model.safetensors", { on: "cdn", expireUrl: true, times: Infinity });
    const started = Date.now();
    const error = await downloadSnapshot({ repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] }, options({ connectionsPerFile: 1, retries: 4, baseDelayMs: 40 })).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(error).toMatchObject({ code: "E_HUB_HTTP" });
    const message = (error as Error).message;
    expect(message).toContain(`${REPO}/model.safetensors`);
    expect(message).toMatch(/refused its signed URL \(403, \d+ times, each with a fresh URL from the Hub\)/);
    expect(message).toMatch(/gave up after 5 attempts over [\d.]+ s/);
    // The first renewal is immediate; then 40, 80, 160 ms (x0.75 at least) of backoff.
    expect(elapsed).toBeGreaterThanOrEqual(0.75 * (40 + 80 + 160));
    expect(server.requests.filter((r) => r.host === "cdn").length).toBe(5);
  });

  it("a persistent 500: the repo, the file and the number of attempts", async () => {
    server.injectFault("config.json", { on: "resolve", status: { code: 500 }, times: Infinity });
    const error = await downloadSnapshot({ repo: REPO, revision: "main", allowPatterns: ["config.json"] }, options({ retries: 2 })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_HUB_HTTP", message: expect.stringContaining(`${REPO}/config.json`) });
    expect((error as Error).message).toMatch(/HTTP 500.*gave up after 3 attempts over [\d.]+ s/);
  });
});

describe("the lock huggingface_hub takes on a blob", () => {
  const lockFile = () => join(cacheDir, ".locks", "models--org--hardened", `${sha256(WEIGHTS)}.lock`);
  const request = { repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] };

  it("is .locks/models--org--name/<etag>.lock, and a download waits while another process holds it with flock(2)", async () => {
    mkdirSync(join(cacheDir, ".locks", "models--org--hardened"), { recursive: true });
    // flock(1) takes the lock exactly as Python's filelock does (flock(2) on the file), here for 800 ms.
    const holder = spawn("flock", ["--exclusive", lockFile(), "sleep", "0.8"], { stdio: "ignore" });
    const holderDone = new Promise((resolve) => holder.once("close", resolve));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    const result = await downloadSnapshot(request, options());
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(readFileSync(join(result.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    await holderDone;
    expect(existsSync(lockFile())).toBe(true); // like filelock, the file stays; only the lock goes
    expect(readdirSync(join(cacheDir, ".locks", "models--org--hardened"))).toEqual([`${sha256(WEIGHTS)}.lock`]);
  });

  it("is held while we download: another process cannot take it until we are done", async () => {
    server.settings.bytesPerSecondPerConnection = 2 << 20; // ~0.3 s for the file on 4 connections
    const download = downloadSnapshot(request, options()).finally(() => (server.settings.bytesPerSecondPerConnection = undefined));
    for (let i = 0; i < 100 && !existsSync(lockFile()); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(spawnSync("flock", ["--exclusive", "--nonblock", lockFile(), "true"]).status).toBe(1);
    await download;
    expect(spawnSync("flock", ["--exclusive", "--nonblock", lockFile(), "true"]).status).toBe(0);
  });

  const python = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import filelock"]).status === 0);
  it.skipIf(!python)("Python's filelock, as huggingface_hub takes it, makes the download wait (needs python3-filelock)", async () => {
    mkdirSync(join(cacheDir, ".locks", "models--org--hardened"), { recursive: true });
    const holder = spawn(python!, ["-c", "import filelock, sys, time\nwith filelock.FileLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(0.8)\n", lockFile()], { stdio: ["ignore", "pipe", "inherit"] });
    const holderDone = new Promise((resolve) => holder.once("close", resolve));
    await new Promise((resolve) => holder.stdout.once("data", resolve));
    const started = Date.now();
    await downloadSnapshot(request, options());
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    await holderDone;
  });
});

describe("a bit flipped in a cached blob", () => {
  const request = { repo: REPO, revision: "main", allowPatterns: ["model.safetensors", "config.json"] };
  const flip = (path: string) => {
    const bytes = readFileSync(path);
    bytes[1234] = bytes[1234]! ^ 0x01;
    writeFileSync(path, bytes);
  };

  it("is found through the digest cache and downloaded again; the intact files are not", async () => {
    const first = await downloadSnapshot(request, options());
    flip(join(blobDir(), sha256(WEIGHTS)));
    writeFileSync(join(blobDir(), first.files.find((f) => f.path === "config.json")!.oid), CONFIG.replace("llama", "LLAMA")); // same size, other bytes
    server.resetLog();
    const digestCache = await DigestCache.open(join(cacheDir, "digest-cache"), { racyWindowMs: 0 });
    const notes: string[] = [];
    const repaired = await downloadSnapshot(request, options({ verifyCached: digestCache, onNote: (n) => notes.push(n) }));
    expect(repaired.repairedFiles.sort()).toEqual(["config.json", "model.safetensors"]);
    expect(notes.join("\n")).toContain(`${REPO}/model.safetensors: the cached blob is corrupt`);
    expect(readFileSync(join(repaired.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(readFileSync(join(repaired.dir, "config.json"), "utf8")).toBe(CONFIG);
    // Checked once, the intact files come from the digest cache next time: nothing is fetched.
    server.resetLog();
    const again = await downloadSnapshot(request, options({ verifyCached: digestCache }));
    expect(again.repairedFiles).toEqual([]);
    expect(server.requests.filter((r) => r.file !== undefined)).toEqual([]);
  });
});

describe("changing --chunk-size between an interrupted run and its rerun", () => {
  it("translates finished chunks to the new size", () => {
    const state = { etag: "e", size: 1000, chunkSize: 100, done: [0, 1, 2, 5, 9] };
    expect(translateDoneChunks(state, 200, 1000)).toEqual([0]); // [0,300) covers chunk 0 only; 9 -> [900,1000) is half of chunk 4
    expect(translateDoneChunks(state, 50, 1000)).toEqual([0, 1, 2, 3, 4, 5, 10, 11, 18, 19]);
    expect(translateDoneChunks(state, 100, 1000)).toEqual(state.done);
  });

  for (const [label, next] of [["smaller", 128 * KiB], ["larger", 512 * KiB]] as const) {
    it(`keeps the finished bytes (${label} chunks on the rerun)`, async () => {
      const controller = new AbortController();
      const first = downloadSnapshot(
        { repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] },
        options({ signal: controller.signal, connectionsPerFile: 1, onProgress: (p) => p.bytesDone >= WEIGHTS.length / 2 && controller.abort() }),
      );
      await expect(first).rejects.toThrow();
      const servedBefore = server.requests.filter((r) => r.host === "cdn").reduce((s, r) => s + r.bytes, 0);
      server.resetLog();
      const second = await downloadSnapshot({ repo: REPO, revision: "main", allowPatterns: ["model.safetensors"] }, options({ chunkSize: next }));
      expect(readFileSync(join(second.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
      const servedAfter = server.requests.filter((r) => r.host === "cdn").reduce((s, r) => s + r.bytes, 0);
      // What the first run finished is not asked again: at most the missing part plus one new chunk on each side.
      expect(servedBefore).toBeGreaterThanOrEqual(WEIGHTS.length / 2 - 256 * KiB);
      expect(servedAfter).toBeLessThanOrEqual(WEIGHTS.length - servedBefore + 256 * KiB + 2 * next);
      expect(second.downloadedBytes).toBeLessThan(WEIGHTS.length * 0.8);
    });
  }
});

describe("offline, a partial cache another client left without trees/", () => {
  /** What huggingface_hub leaves after an interrupted download: refs/main, some snapshot links, no trees/<commit>.json. */
  function pythonPartialCache(files: Record<string, Buffer | string>): string {
    const repoDir = join(cacheDir, "models--org--hardened");
    const commit = server.resolveRevision(REPO, "main");
    mkdirSync(join(repoDir, "refs"), { recursive: true });
    writeFileSync(join(repoDir, "refs", "main"), commit);
    for (const [path, content] of Object.entries(files)) {
      const etag = path.endsWith(".safetensors") ? sha256(content) : gitBlobOid(content); // LFS blobs by sha256, git files by blob id
      mkdirSync(join(repoDir, "blobs"), { recursive: true });
      writeFileSync(join(repoDir, "blobs", etag), content);
      const link = join(repoDir, "snapshots", commit, path);
      mkdirSync(join(link, ".."), { recursive: true });
      symlinkSync(join("..", "..", "blobs", etag), link);
    }
    return commit;
  }
  const offline = (allowPatterns: string[]) => downloadSnapshot({ repo: REPO, revision: "main", allowPatterns }, options({}, { HF_HUB_OFFLINE: "1" }));

  it("says what the recipe's patterns need and is not there", async () => {
    pythonPartialCache({ "config.json": CONFIG, "model-00001-of-00002.safetensors": SHARDS[0]! });
    await expect(offline(["*.safetensors", "config.json", "tokenizer.model"])).rejects.toMatchObject({
      code: "E_HUB_OFFLINE_MISS",
      message: expect.stringMatching(/no listing of the commit .*nothing cached matches the recipe's pattern "tokenizer.model".*missing model-00002-of-00002.safetensors/),
    });
    await expect(offline(["*.bin", "config.json"])).rejects.toMatchObject({ code: "E_HUB_OFFLINE_MISS", message: expect.stringContaining('pattern "*.bin"') });
  });

  it("a complete one is used as it is", async () => {
    pythonPartialCache({ "config.json": CONFIG, "model-00001-of-00002.safetensors": SHARDS[0]!, "model-00002-of-00002.safetensors": SHARDS[1]! });
    const result = await offline(["*.safetensors", "config.json"]);
    expect(result.files.map((f) => f.path).sort()).toEqual(["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    expect(server.requests).toEqual([]);
  });
});
