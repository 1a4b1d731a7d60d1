/**
 * Snapshot downloads against the local Hub imitation (real HTTP on 127.0.0.1, the CDN
 * on 127.0.0.2), asserting on its request log: what was asked for, with which
 * headers, and how often.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hubSettings } from "../pipeline/hub/env.js";
import { downloadSnapshot, type SnapshotOptions } from "../pipeline/hub/snapshot.js";
import { seededBytes, startHubServer, type HubServer } from "./helpers/hub-server.js";

const KiB = 1024;
const MODEL = "SparseLLM/TinyReluLLaMA";
const WEIGHTS = seededBytes("weights", 2048 * KiB + 123); // 9 chunks of 256 KiB, the last one short
const TOKENIZER = seededBytes("tokenizer", 10 * KiB);
const CONFIG = JSON.stringify({ model_type: "llama", num_hidden_layers: 2 }, null, 2);
const TOKEN = "hf_test_token_abcdef";

let server: HubServer;
let commit: string;
let cacheDir: string;

beforeAll(async () => {
  server = await startHubServer();
  commit = server.addRepo({
    id: MODEL,
    files: [
      { path: "model.safetensors", content: WEIGHTS, lfs: true },
      { path: "config.json", content: CONFIG },
      { path: "tokenizer.model", content: TOKENIZER, lfs: true },
      { path: "README.md", content: "# tiny\n" },
      { path: "pytorch_model.bin", content: seededBytes("bin", 64 * KiB), lfs: true },
    ],
  }).commit;
  server.addRepo({ id: "org/gated", gated: "manual", token: TOKEN, files: [{ path: "model.safetensors", content: seededBytes("g", 1000), lfs: true }] });
});
afterAll(() => server.close());
beforeEach(() => {
  cacheDir = mkdtempSync(join(tmpdir(), "ai-tools-hfcache-"));
  server.resetLog();
  server.clearFaults();
});
afterEach(() => rmSync(cacheDir, { recursive: true, force: true }));

function options(extra: Partial<SnapshotOptions> = {}, env: NodeJS.ProcessEnv = {}): SnapshotOptions {
  return {
    settings: hubSettings({ HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: cacheDir, HF_TOKEN: TOKEN, ...env }),
    chunkSize: 256 * KiB,
    connectionsPerFile: 4,
    baseDelayMs: 20,
    stallMs: 2000,
    ...extra,
  };
}

const request = { repo: MODEL, revision: "main", allowPatterns: ["*.safetensors", "*.json", "tokenizer.model"] };
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
const fileRequests = () => server.requests.filter((r) => r.file !== undefined && r.method === "GET");
const cdnBytesOf = (path: string) => server.requests.filter((r) => r.host === "cdn" && r.file === path).reduce((s, r) => s + r.bytes, 0);

describe("downloadSnapshot", () => {
  it("resolves the branch once, downloads the selected files in the Hugging Face cache layout", async () => {
    server.settings.bytesPerSecondPerConnection = 4 << 20; // slow enough that ranges overlap
    const result = await downloadSnapshot(request, options()).finally(() => (server.settings.bytesPerSecondPerConnection = undefined));
    expect(result.commit).toBe(commit);
    expect(result.files.map((f) => f.path).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.model"]);
    const repoDir = join(cacheDir, "models--SparseLLM--TinyReluLLaMA");
    expect(result.dir).toBe(join(repoDir, "snapshots", commit));
    expect(readFileSync(join(result.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(readFileSync(join(result.dir, "config.json"), "utf8")).toBe(CONFIG);
    expect(lstatSync(join(result.dir, "model.safetensors")).isSymbolicLink()).toBe(true);
    expect(existsSync(join(repoDir, "blobs", sha256(WEIGHTS)))).toBe(true);
    expect(readFileSync(join(repoDir, "refs", "main"), "utf8")).toBe(commit);
    expect(readdirSync(join(repoDir, "blobs")).filter((n) => n.includes("incomplete"))).toEqual([]);
    expect(existsSync(join(result.dir, "pytorch_model.bin"))).toBe(false);

    // Every file request names the resolved commit, never the branch.
    const resolves = server.requests.filter((r) => r.path.includes("/resolve/"));
    expect(resolves.length).toBeGreaterThan(0);
    for (const r of resolves) expect(r.path).toContain(`/resolve/${commit}/`);
    // The token goes to the Hub and never to the CDN.
    expect(server.requests.filter((r) => r.host === "hub").every((r) => r.authorization)).toBe(true);
    expect(server.requests.filter((r) => r.host === "cdn").some((r) => r.authorization)).toBe(false);
    // The large file came in ranges, several at once.
    const ranges = server.requests.filter((r) => r.host === "cdn" && r.file === "model.safetensors" && r.range);
    expect(ranges.length).toBe(9);
    expect(server.maxInFlight.cdn).toBeGreaterThan(1);
    expect(server.maxInFlight.cdn).toBeLessThanOrEqual(8);
  });

  it("reuses an earlier run's cache: no file request at all, and no request of any kind for a pinned commit", async () => {
    await downloadSnapshot(request, options());
    server.resetLog();
    const again = await downloadSnapshot(request, options());
    expect(again.cachedFiles).toBe(3);
    expect(again.downloadedBytes).toBe(0);
    expect(fileRequests()).toEqual([]);
    server.resetLog();
    await downloadSnapshot({ ...request, revision: commit }, options());
    expect(server.requests).toEqual([]);
  });

  it("HF_HUB_OFFLINE=1 serves from the cache, and says what is missing otherwise", async () => {
    await expect(downloadSnapshot(request, options({}, { HF_HUB_OFFLINE: "1" }))).rejects.toMatchObject({ code: "E_HUB_OFFLINE_MISS" });
    await downloadSnapshot(request, options());
    server.resetLog();
    const offline = await downloadSnapshot(request, options({}, { HF_HUB_OFFLINE: "1" }));
    expect(offline.commit).toBe(commit);
    expect(server.requests).toEqual([]);
    const more = downloadSnapshot({ ...request, allowPatterns: ["*"] }, options({}, { HF_HUB_OFFLINE: "1" }));
    await expect(more).rejects.toMatchObject({ code: "E_HUB_OFFLINE_MISS", message: expect.stringContaining("README.md") });
  });

  it("after an interruption, requests only the missing ranges", async () => {
    const controller = new AbortController();
    const first = downloadSnapshot(
      { ...request, allowPatterns: ["model.safetensors"] },
      options({
        signal: controller.signal,
        connectionsPerFile: 1,
        onProgress: (p) => p.bytesDone >= WEIGHTS.length / 2 && controller.abort(),
      }),
    );
    await expect(first).rejects.toThrow();
    const partialDir = join(cacheDir, "models--SparseLLM--TinyReluLLaMA", "blobs");
    expect(readdirSync(partialDir).some((n) => n.endsWith(".incomplete"))).toBe(true);
    // A process killed outright while saving the sidecar leaves its temporary behind.
    const sidecarTemp = join(partialDir, `${sha256(WEIGHTS)}.ai-tools.incomplete.json.tmp-999999-0123abcd`);
    writeFileSync(sidecarTemp, "{");
    const servedBefore = cdnBytesOf("model.safetensors");
    server.resetLog();

    const second = await downloadSnapshot({ ...request, allowPatterns: ["model.safetensors"] }, options());
    expect(readFileSync(join(second.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(readdirSync(partialDir).filter((n) => n.includes(".incomplete"))).toEqual([]);
    const servedAfter = cdnBytesOf("model.safetensors");
    expect(servedBefore).toBeGreaterThanOrEqual(WEIGHTS.length / 2 - 256 * KiB);
    // Only what was missing, plus at most the one range that was cut off.
    expect(servedAfter).toBeLessThanOrEqual(WEIGHTS.length - servedBefore + 256 * KiB);
    expect(second.downloadedBytes).toBeLessThan(WEIGHTS.length);
    const firstRange = server.requests.find((r) => r.host === "cdn" && r.range)!.range!;
    expect(Number(/bytes=(\d+)-/.exec(firstRange)![1])).toBeGreaterThan(0);
  });

  it("catches a flipped byte, retries once, and fails with both digests when it happens again", async () => {
    server.injectFault("model.safetensors", { on: "cdn", flipByteAt: 1000, times: 1 });
    const healed = await downloadSnapshot(request, options());
    expect(readFileSync(join(healed.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);

    rmSync(cacheDir, { recursive: true, force: true });
    server.injectFault("model.safetensors", { on: "cdn", flipByteAt: 1000, times: 2 });
    const failed = downloadSnapshot(request, options());
    await expect(failed).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH", message: expect.stringContaining(`expected ${sha256(WEIGHTS)}, got `) });
    const blobs = join(cacheDir, "models--SparseLLM--TinyReluLLaMA", "blobs");
    expect(existsSync(join(blobs, sha256(WEIGHTS)))).toBe(false);
    expect(readdirSync(blobs).filter((n) => n.startsWith(sha256(WEIGHTS)))).toEqual([]);
  });

  it("survives a dropped connection, a stall, a 500 and an expired signed URL", async () => {
    server.injectFault("model.safetensors", { on: "cdn", truncateAfter: 1000, times: 1 });
    server.injectFault("tokenizer.model", { on: "cdn", stallAfterBytes: { bytes: 100, ms: 10_000 }, times: 1 });
    server.injectFault("config.json", { on: "resolve", request: "range", status: { code: 500 }, times: 1 });
    const result = await downloadSnapshot(request, options({ stallMs: 300 }));
    expect(readFileSync(join(result.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(readFileSync(join(result.dir, "tokenizer.model")).equals(TOKENIZER)).toBe(true);
    expect(readFileSync(join(result.dir, "config.json"), "utf8")).toBe(CONFIG);

    rmSync(cacheDir, { recursive: true, force: true });
    server.resetLog();
    server.injectFault("model.safetensors", { on: "cdn", expireUrl: true, times: 1 });
    const renewed = await downloadSnapshot({ ...request, allowPatterns: ["model.safetensors"] }, options());
    expect(readFileSync(join(renewed.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    const heads = server.requests.filter((r) => r.method === "HEAD" && r.file === "model.safetensors");
    expect(heads.length).toBe(2); // the expired URL was re-resolved
  });

  it("honours Retry-After on 429", async () => {
    server.injectFault(`/api/models/${MODEL}/revision`, { on: "api", status: { code: 429, headers: { "Retry-After": "1" } }, times: 1 });
    const started = Date.now();
    await downloadSnapshot(request, options());
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(server.requests.filter((r) => r.path.includes("/revision/")).map((r) => r.status)).toEqual([429, 200]);
  });

  it("falls back to one stream when the server ignores Range", async () => {
    server.injectFault("model.safetensors", { on: "cdn", ignoreRange: true, times: Infinity });
    const result = await downloadSnapshot(request, options());
    expect(readFileSync(join(result.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(server.requests.some((r) => r.host === "cdn" && r.file === "model.safetensors" && !r.range && r.status === 200)).toBe(true);
  });

  it("two downloads of the same files at once fetch each blob once", async () => {
    const [a, b] = await Promise.all([downloadSnapshot(request, options()), downloadSnapshot(request, options())]);
    expect(a.commit).toBe(b.commit);
    expect(readFileSync(join(a.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(cdnBytesOf("model.safetensors")).toBe(WEIGHTS.length);
  });
});

describe("filesystems and disks", () => {
  it("HF_HUB_DISABLE_SYMLINKS=1 puts copies in the snapshot", async () => {
    const result = await downloadSnapshot(request, options({}, { HF_HUB_DISABLE_SYMLINKS: "1" }));
    const entry = join(result.dir, "model.safetensors");
    expect(lstatSync(entry).isSymbolicLink()).toBe(false);
    expect(readFileSync(entry).equals(WEIGHTS)).toBe(true);
  });

  it("checks free disk space before transferring anything", async () => {
    const huge = JSON.stringify([{ type: "file", path: "model.safetensors", size: 135, oid: "a".repeat(40), lfs: { oid: sha256(WEIGHTS), size: 2 ** 52, pointerSize: 135 } }]);
    server.injectFault(`/api/models/${MODEL}/tree`, { on: "api", status: { code: 200, headers: { "content-type": "application/json" }, body: huge }, times: 1 });
    const failed = downloadSnapshot({ ...request, allowPatterns: ["*.safetensors"] }, options());
    await expect(failed).rejects.toMatchObject({ code: "E_DISK_FULL", message: expect.stringMatching(/needs 4194304\.00 GiB in .*, but only [\d.]+ GiB is free/) });
    expect(server.requests.filter((r) => r.host === "cdn")).toEqual([]);
  });
});

describe("a disk that fills up mid-download", () => {
  const mountPoint = join(tmpdir(), `ai-tools-smallfs-${process.pid}`);
  // A 3 MiB tmpfs: the up-front space check passes for the 2 MiB file, then a filler takes the room.
  const mounted = (() => {
    try {
      mkdirSync(mountPoint, { recursive: true });
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mountPoint], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();
  afterAll(() => {
    if (mounted) execFileSync("umount", [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it.skipIf(!mounted)("stops with E_DISK_FULL, keeps the finished ranges, and resumes once there is room (needs mount: root)", async () => {
    const small = { ...request, allowPatterns: ["model.safetensors"] };
    const settings = { HF_HUB_CACHE: join(mountPoint, "hub") };
    server.settings.bytesPerSecondPerConnection = 1 << 20;
    let filled = false;
    const filler = join(mountPoint, "filler");
    const failed = await downloadSnapshot(
      small,
      options(
        {
          connectionsPerFile: 1,
          onProgress: (p) => {
            if (!filled && p.bytesDone >= 512 * KiB) {
              filled = true;
              try {
                writeFileSync(filler, Buffer.alloc(3 << 20)); // fills the rest of the tmpfs
              } catch {
                // ENOSPC for the filler itself once the disk is full: the point
              }
            }
          },
        },
        settings,
      ),
    ).catch((e: unknown) => e);
    server.settings.bytesPerSecondPerConnection = undefined;
    expect(failed).toMatchObject({ code: "E_DISK_FULL", message: expect.stringContaining("Free some space and rerun: the download resumes") });
    const sidecar = JSON.parse(readFileSync(join(mountPoint, "hub", "models--SparseLLM--TinyReluLLaMA", "blobs", `${sha256(WEIGHTS)}.ai-tools.incomplete.json`), "utf8")) as { done: number[] };
    expect(sidecar.done.length).toBeGreaterThan(0);

    rmSync(filler, { force: true });
    server.resetLog();
    const resumed = await downloadSnapshot(small, options({}, settings));
    expect(readFileSync(join(resumed.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    const ranges = server.requests.filter((r) => r.host === "cdn" && r.range).map((r) => r.range);
    for (const index of sidecar.done) expect(ranges).not.toContain(`bytes=${index * 256 * KiB}-${(index + 1) * 256 * KiB - 1}`);
  });
});

describe("bad input gets a clear error and writes nothing outside the cache", () => {
  it("unknown repository, revision, or a file the patterns name", async () => {
    await expect(downloadSnapshot({ repo: "org/nope", revision: "main" }, options())).rejects.toMatchObject({ code: "E_HUB_REPO_NOT_FOUND" });
    await expect(downloadSnapshot({ ...request, revision: "v9" }, options())).rejects.toMatchObject({ code: "E_HUB_REVISION_NOT_FOUND" });
    await expect(downloadSnapshot({ ...request, allowPatterns: ["model.safetensors", "tokenizer.json"] }, options())).rejects.toMatchObject({
      code: "E_HUB_ENTRY_NOT_FOUND",
      message: expect.stringContaining('"tokenizer.json"'),
    });
    await expect(downloadSnapshot({ ...request, allowPatterns: ["*.gguf"] }, options())).rejects.toMatchObject({ code: "E_HUB_NO_MATCH" });
  });

  it("gated repositories say what to do, and the token never appears", async () => {
    const anonymous = downloadSnapshot({ repo: "org/gated", revision: "main" }, options({}, { HF_TOKEN: "" , HF_HOME: cacheDir }));
    await expect(anonymous).rejects.toMatchObject({ code: "E_HUB_GATED", message: expect.stringContaining("set HF_TOKEN") });
    server.addToken("hf_other_account_5678"); // a valid token of an account without access
    const notGranted = await downloadSnapshot({ repo: "org/gated", revision: "main" }, options({}, { HF_TOKEN: "hf_other_account_5678" })).catch((e: Error) => e);
    expect(notGranted).toMatchObject({ code: "E_HUB_GATED", message: expect.stringContaining(`ask for access at ${server.endpoint}/org/gated`) });
    const invalid = await downloadSnapshot({ repo: "org/gated", revision: "main" }, options({}, { HF_TOKEN: "hf_wrong_token_1234" })).catch((e: Error) => e);
    expect(invalid).toMatchObject({ code: "E_HUB_AUTH", message: expect.stringContaining("Check HF_TOKEN") });
    for (const error of [notGranted, invalid]) expect(JSON.stringify({ m: (error as Error).message, e: error })).not.toMatch(/hf_(other|wrong)/);
    const granted = await downloadSnapshot({ repo: "org/gated", revision: "main" }, options());
    expect(granted.files).toHaveLength(1);
  });

  it("a file name with ../ in the listing is refused before anything is written", async () => {
    const evil = JSON.stringify([{ type: "file", path: "../../escape.txt", size: 3, oid: "a".repeat(40) }]);
    server.injectFault(`/api/models/${MODEL}/tree`, { on: "api", status: { code: 200, headers: { "content-type": "application/json" }, body: evil }, times: 1 });
    await expect(downloadSnapshot(request, options())).rejects.toMatchObject({ code: "E_HUB_UNSAFE_PATH" });
    expect(existsSync(join(cacheDir, "..", "escape.txt"))).toBe(false);
  });

  it("malformed API JSON is a typed error", async () => {
    server.injectFault(`/api/models/${MODEL}/revision`, { on: "api", status: { code: 200, body: "{not json" }, times: 1 });
    await expect(downloadSnapshot(request, options())).rejects.toMatchObject({ code: "E_HUB_BAD_RESPONSE" });
  });
});
