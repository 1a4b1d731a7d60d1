/**
 * The Hub client's pure parts: fnmatch semantics, environment, cache layout, paths.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { assertSafeRepoPath, RepoCache } from "../pipeline/hub/cache.js";
import { hubSettings } from "../pipeline/hub/env.js";
import { nextLink } from "../pipeline/hub/api.js";
import { BackgroundHash } from "../pipeline/core/background-hash.js";
import { retryAfterMs } from "../pipeline/hub/http.js";
import { fnmatchToRegExp, pathFilter } from "../pipeline/hub/patterns.js";

describe("patterns (Python fnmatch semantics)", () => {
  const matches = (pattern: string, path: string) => fnmatchToRegExp(pattern).test(path);
  it("lets * cross folders, as huggingface_hub does", () => {
    expect(matches("*.safetensors", "model-00001-of-00002.safetensors")).toBe(true);
    expect(matches("*.safetensors", "sub/x.safetensors")).toBe(true);
    expect(matches("*.json", "config.json.bak")).toBe(false);
    expect(matches("model_?.pt", "model_7.pt")).toBe(true);
    expect(matches("model_?.pt", "model_17.pt")).toBe(false);
    expect(matches("model_[0-9].pt", "model_3.pt")).toBe(true);
    expect(matches("model_[!0-9].pt", "model_3.pt")).toBe(false);
    expect(matches("onnx/", "onnx/model.onnx")).toBe(true);
    expect(matches("Tokenizer.model", "tokenizer.model")).toBe(false); // case-sensitive
    expect(matches("a.b", "aXb")).toBe(false); // dots are literal
  });

  it("keeps files that match an allow pattern and no ignore pattern", () => {
    const keep = pathFilter(["*.safetensors", "*.json", "tokenizer.model"], ["*consolidated*"]);
    const files = ["model.safetensors", "config.json", "tokenizer.model", "consolidated.safetensors", "pytorch_model.bin", "README.md"];
    expect(files.filter(keep)).toEqual(["model.safetensors", "config.json", "tokenizer.model"]);
    expect(files.filter(pathFilter(undefined, ["*.bin"]))).toHaveLength(5);
  });
});

describe("hubSettings", () => {
  it("follows huggingface_hub's precedence for endpoint, cache and token", () => {
    const home = mkdtempSync(join(tmpdir(), "ai-tools-hfhome-"));
    try {
      writeFileSync(join(home, "token"), "hf_from_file\n");
      expect(hubSettings({ HOME: "/home/u" })).toMatchObject({ endpoint: "https://huggingface.co", cacheDir: "/home/u/.cache/huggingface/hub", offline: false });
      expect(hubSettings({ HOME: "/home/u", HF_HOME: home })).toMatchObject({ cacheDir: join(home, "hub"), token: "hf_from_file" });
      expect(hubSettings({ HF_HOME: home, HF_HUB_CACHE: "~/c", HOME: "/h", HF_ENDPOINT: "http://127.0.0.1:9/", HF_TOKEN: "hf_env" })).toMatchObject({
        cacheDir: "/h/c",
        endpoint: "http://127.0.0.1:9",
        token: "hf_env",
      });
      expect(hubSettings({ HF_HOME: home, HF_HUB_DISABLE_IMPLICIT_TOKEN: "1" }).token).toBeUndefined();
      expect(hubSettings({ HF_HUB_OFFLINE: "1" }).offline).toBe(true);
      expect(hubSettings({ XDG_CACHE_HOME: "/x" }).cacheDir).toBe("/x/huggingface/hub");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe("cache layout", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("writes refs without a newline, relative snapshot links and a Python-format tree", async () => {
    dir = mkdtempSync(join(tmpdir(), "ai-tools-cache-"));
    const cache = new RepoCache(dir, "SparseLLM/ReluLLaMA-7B");
    expect(cache.dir).toBe(join(dir, "models--SparseLLM--ReluLLaMA-7B"));
    const commit = "a".repeat(40);
    const file = { path: "sub/dir/model.safetensors", size: 3, oid: "b".repeat(40), lfsSha256: "c".repeat(64) };
    mkdirSync(join(cache.dir, "blobs"), { recursive: true });
    writeFileSync(cache.blobPath("c".repeat(64)), "abc");
    await cache.linkSnapshot(commit, file);
    const link = join(cache.snapshotDir(commit), "sub/dir/model.safetensors");
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(`../../../../blobs/${"c".repeat(64)}`);
    expect(cache.hasSnapshotFile(commit, file)).toBe(true);
    await cache.linkSnapshot(commit, file); // idempotent

    await cache.writeRef("main", commit);
    expect(readFileSync(join(cache.dir, "refs", "main"), "utf8")).toBe(commit);
    expect(cache.readRef("main")).toBe(commit);
    expect(cache.readRef(commit)).toBe(commit);
    expect(cache.readRef("v1")).toBeNull();

    await cache.writeTree(commit, [file]);
    expect(JSON.parse(readFileSync(join(cache.dir, "trees", `${commit}.json`), "utf8"))).toEqual({
      format_version: 1,
      files: { "sub/dir/model.safetensors": { size: 3, blob_id: "b".repeat(40), lfs_sha256: "c".repeat(64), lfs_size: 3 } },
    });
    expect(cache.readTree(commit)).toEqual([file]);
    expect(existsSync(cache.partialPath("c".repeat(64)))).toBe(false);
  });

  it("refuses file names that would leave the snapshot folder", () => {
    for (const bad of ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\b", "C:/x", "", "a/\0b"]) {
      expect(() => assertSafeRepoPath(bad), bad).toThrowError(expect.objectContaining({ code: "E_HUB_UNSAFE_PATH" }));
    }
    expect(() => assertSafeRepoPath("sub/model-00001-of-00002.safetensors")).not.toThrow();
    expect(() => new RepoCache("/tmp", "../evil")).toThrowError(expect.objectContaining({ code: "E_HUB_REPO_NOT_FOUND" }));
  });
});

describe("HTTP helpers", () => {
  it("reads Retry-After and RateLimit", () => {
    expect(retryAfterMs({ "retry-after": "2" })).toBe(2000);
    expect(retryAfterMs({ "retry-after": new Date(10_000).toUTCString() }, 4_000)).toBe(6000);
    expect(retryAfterMs({ ratelimit: '"resolvers";r=0;t=7' })).toBe(8000);
    expect(retryAfterMs({ ratelimit: '"resolvers";r=12;t=7' })).toBeUndefined();
  });

  it("follows absolute and relative rel=next links", () => {
    expect(nextLink('<http://h/api/x?cursor=2>; rel="next"', "http://h/api/x")).toBe("http://h/api/x?cursor=2");
    expect(nextLink("</api/x?cursor=3>; rel=next", "http://h/api/x")).toBe("http://h/api/x?cursor=3");
    expect(nextLink(undefined, "http://h")).toBeUndefined();
  });
});

describe("the hash on a worker thread (large downloads)", () => {
  it("equals node:crypto's over the same pieces: buffers it may take over, slices it must copy, a git blob prefix, a reset", async () => {
    const data = randomBytes(3 << 20);
    const hash = new BackgroundHash("sha256");
    try {
      hash.update(Buffer.from(data.subarray(0, 1 << 20))); // owns its memory: taken over
      hash.update(data.subarray(1 << 20, 2 << 20)); // a view into a larger buffer: copied
      hash.update(data.subarray(2 << 20));
      expect(data.length).toBe(3 << 20); // the caller's buffer is intact
      expect(await hash.digest()).toBe(createHash("sha256").update(data).digest("hex"));
      hash.reset();
      hash.update(data.subarray(0, 10));
      expect(await hash.digest()).toBe(createHash("sha256").update(data.subarray(0, 10)).digest("hex"));
    } finally {
      await hash.close();
    }
    const blob = new BackgroundHash("sha1", `blob ${data.length}\0`);
    try {
      blob.update(data.subarray(0, 5));
      blob.update(data.subarray(5));
      expect(await blob.digest()).toBe(createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex"));
    } finally {
      await blob.close();
    }
  });

  it("makes the writer wait once 16 MiB are queued, and catches up", async () => {
    const piece = randomBytes(8 << 20);
    const expected = createHash("sha256");
    const hash = new BackgroundHash("sha256");
    let waits = 0;
    try {
      for (let i = 0; i < 6; i++) {
        expected.update(piece);
        const pending = hash.update(Buffer.from(piece)); // a copy: update() takes it over
        if (pending) {
          waits++;
          await pending;
        }
      }
      expect(waits).toBeGreaterThan(0);
      expect(await hash.digest()).toBe(expected.digest("hex"));
    } finally {
      await hash.close();
    }
  });
});
