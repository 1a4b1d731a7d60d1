/**
 * The local Hugging Face Hub imitation itself (test/helpers/hub-server.ts): that it answers
 * the way hf-hub.md §2–5 and §14 describe, and that every injected fault really happens and
 * is used up, so download-client tests built on it can trust what they see.
 */
import { createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { gitBlobOid, seededBytes, startHubServer, type HubCommitInfo, type HubFile, type HubServer } from "./helpers/hub-server.js";

const sha256 = (b: Buffer | ArrayBuffer) => createHash("sha256").update(Buffer.from(b as ArrayBuffer)).digest("hex");
const GOOD = "hf_granted_token";
const OTHER = "hf_valid_but_not_granted";

/** fetch with identity encoding (fetch asks for gzip by default) and no redirect following. */
function hubFetch(url: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(url, { redirect: "manual", ...init, headers: { "Accept-Encoding": "identity", ...init.headers } });
}

async function bytes(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

function file(info: HubCommitInfo, path: string): HubFile {
  const f = info.files.find((x) => x.path === path);
  if (!f) throw new Error(`no ${path}`);
  return f;
}

let hub: HubServer;
let repo: HubCommitInfo;
const weights = seededBytes("weights", 300_000);
const vocab = seededBytes("vocab", 70_000);

beforeAll(async () => {
  hub = await startHubServer({ tokens: [OTHER] });
  repo = hub.addRepo({
    id: "org/model",
    files: [
      { path: "config.json", content: '{"hidden_size": 8}\n' },
      { path: "model.safetensors", content: weights },
      { path: "vocab.bin", content: vocab, lfs: false },
      { path: "onnx/model.onnx", content: seededBytes("onnx", 5000) },
      { path: "onnx/deep/notes.md", content: "# notes\n" },
      { path: "predictor/model_0.pt", content: seededBytes("p0", 4000) },
      { path: "predictor/config.json", content: "{}\n" },
      { path: ".gitattributes", content: "*.safetensors filter=lfs diff=lfs merge=lfs -text\n" },
    ],
    branches: { "refs/pr/1": [{ path: "config.json", content: '{"hidden_size": 16}\n' }] },
    tags: { v1: "main" },
  });
  hub.addRepo({ id: "org/gated", gated: "manual", token: GOOD, files: [{ path: "config.json", content: "{}\n" }] });
  hub.addRepo({ id: "org/private", private: true, token: GOOD, files: [{ path: "config.json", content: "{}\n" }] });
});
afterAll(() => hub.close());
afterEach(() => {
  hub.clearFaults();
  hub.resetLog();
  hub.settings.signedUrlTtlSeconds = 3600;
});

describe("metadata API", () => {
  it("pages the recursive tree with absolute next links, covering every file and nested directory", async () => {
    let url: string | undefined = `${hub.endpoint}/api/models/org/model/tree/${repo.commit}?recursive=true&expand=false`;
    const entries: Array<{ type: string; path: string; oid: string; size: number; lfs?: { oid: string; size: number; pointerSize: number } }> = [];
    let pages = 0;
    while (url) {
      const res = await hubFetch(url);
      expect(res.status).toBe(200);
      const page = (await res.json()) as typeof entries;
      expect(page.length).toBeLessThanOrEqual(3);
      entries.push(...page);
      pages++;
      const link = res.headers.get("link");
      url = link ? /^<([^>]+)>;\s*rel="next"$/.exec(link)?.[1] : undefined;
      if (link) expect(url?.startsWith(`${hub.endpoint}/api/models/org/model/tree/`)).toBe(true);
    }
    expect(pages).toBe(Math.ceil(entries.length / 3));
    const files = entries.filter((e) => e.type === "file");
    expect(files.map((e) => e.path).sort()).toEqual(repo.files.map((f) => f.path).sort());
    expect(entries.filter((e) => e.type === "directory").map((e) => e.path).sort()).toEqual(["onnx", "onnx/deep", "predictor"]);
    for (const e of files) {
      const f = file(repo, e.path);
      expect(e.oid).toBe(f.oid);
      expect(e.size).toBe(f.size);
      expect(e.lfs).toEqual(f.lfs);
    }
    const st = files.find((e) => e.path === "model.safetensors")!;
    expect(st.lfs).toEqual({ oid: sha256(weights), size: weights.length, pointerSize: expect.any(Number) });
    expect(file(repo, "vocab.bin").oid).toBe(gitBlobOid(vocab));
    expect(file(repo, "vocab.bin").lfs).toBeUndefined();
    // a sub-path, non-recursive: direct children only
    const sub = (await (await hubFetch(`${hub.endpoint}/api/models/org/model/tree/main/onnx`)).json()) as typeof entries;
    expect(sub.map((e) => `${e.type}:${e.path}`)).toEqual(["directory:onnx/deep", "file:onnx/model.onnx"]);
    const missing = await hubFetch(`${hub.endpoint}/api/models/org/model/tree/main/nope`);
    expect([missing.status, missing.headers.get("x-error-code")]).toEqual([404, "EntryNotFound"]);
  });

  it("answers repo info for branches, tags, commits and URL-encoded refs, with blobs=true metadata", async () => {
    const info = (await (await hubFetch(`${hub.endpoint}/api/models/org/model`)).json()) as Record<string, unknown>;
    expect(info).toMatchObject({ id: "org/model", sha: repo.commit, private: false, gated: false, disabled: false });
    expect(info.siblings).toContainEqual({ rfilename: "onnx/deep/notes.md" });
    const pr = repo.branches["refs/pr/1"]!;
    expect(pr).toMatch(/^[0-9a-f]{40}$/);
    const byPr = (await (await hubFetch(`${hub.endpoint}/api/models/org/model/revision/refs%2Fpr%2F1`)).json()) as { sha: string; siblings: unknown[] };
    expect(byPr.sha).toBe(pr);
    expect(byPr.siblings).toEqual([{ rfilename: "config.json" }]);
    for (const rev of ["v1", repo.commit]) {
      expect(((await (await hubFetch(`${hub.endpoint}/api/models/org/model/revision/${rev}`)).json()) as { sha: string }).sha).toBe(repo.commit);
    }
    const blobs = (await (await hubFetch(`${hub.endpoint}/api/models/org/model/revision/main?blobs=true`)).json()) as { siblings: unknown[] };
    const f = file(repo, "model.safetensors");
    expect(blobs.siblings).toContainEqual({ rfilename: "model.safetensors", size: f.size, blobId: f.oid, lfs: { sha256: f.sha256, size: f.size, pointerSize: f.lfs!.pointerSize } });
    expect(blobs.siblings).toContainEqual({ rfilename: "config.json", size: file(repo, "config.json").size, blobId: file(repo, "config.json").oid });
    const bad = await hubFetch(`${hub.endpoint}/api/models/org/model/revision/nope`);
    expect([bad.status, bad.headers.get("x-error-code")]).toEqual([404, "RevisionNotFound"]);
    expect(await bad.json()).toEqual({ error: "Invalid rev id: nope" });
  });

  it("answers paths-info, 404s unknown routes and the Xet token, and sends RateLimit headers everywhere", async () => {
    const res = await hubFetch(`${hub.endpoint}/api/models/org/model/paths-info/main`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ paths: ["model.safetensors", "onnx", "missing"], expand: true }),
    });
    const info = (await res.json()) as Array<{ path: string; type: string; lastCommit?: { id: string } }>;
    expect(info.map((e) => `${e.type}:${e.path}`)).toEqual(["file:model.safetensors", "directory:onnx"]);
    expect(info[0]!.lastCommit!.id).toBe(repo.commit);
    for (const path of ["/api/whatever", "/api/models/org/model/xet-read-token/main", "/nothing/here"]) {
      const r = await hubFetch(`${hub.endpoint}${path}`);
      expect(r.status, path).toBe(404);
      expect(r.headers.get("ratelimit"), path).toMatch(/^"(api|pages)";r=\d+;t=\d+$/);
    }
    const head = await hubFetch(hub.resolveUrl("org/model", "config.json"), { method: "HEAD" });
    expect(head.headers.get("ratelimit")).toMatch(/^"resolvers";r=\d+;t=\d+$/);
    expect(head.headers.get("ratelimit-policy")).toBe('"fixed window";"resolvers";q=5000;w=300');
  });

  it("enforces the rate-limit quota with 429 and Retry-After", async () => {
    const small = await startHubServer({ rateLimit: { api: 2 } });
    try {
      small.addRepo({ id: "org/x", files: [] });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push(await hubFetch(`${small.endpoint}/api/models/org/x`));
      expect(statuses.map((r) => r.status)).toEqual([200, 200, 429]);
      expect(statuses[1]!.headers.get("ratelimit")).toMatch(/^"api";r=0;t=\d+$/);
      expect(Number(statuses[2]!.headers.get("retry-after"))).toBeGreaterThan(0);
    } finally {
      await small.close();
    }
  });
});

describe("resolve and CDN", () => {
  it("redirects an LFS file to the CDN on another host with the linked headers; the CDN serves the exact bytes", async () => {
    const f = file(repo, "model.safetensors");
    const head = await hubFetch(hub.resolveUrl("org/model", f.path), { method: "HEAD" });
    expect(head.status).toBe(302);
    expect(head.headers.get("x-linked-etag")).toBe(`"${sha256(weights)}"`);
    expect(head.headers.get("x-linked-size")).toBe(String(weights.length));
    expect(head.headers.get("x-repo-commit")).toBe(repo.commit);
    expect(head.headers.get("etag")).toBe(`"${f.oid}"`);
    // the redirect's own Content-Length is not the file size (huggingface_hub#4699)
    expect(head.headers.get("content-length")).not.toBe(String(weights.length));
    const location = head.headers.get("location")!;
    expect(location).toMatch(new RegExp(`^${hub.cdnOrigin}/cdn/${f.sha256}\\?Expires=\\d+&Signature=[0-9a-f]{64}$`));
    expect(new URL(location).hostname).not.toBe(new URL(hub.endpoint).hostname); // 127.0.0.2 on Linux
    const body = await hubFetch(location);
    expect(body.status).toBe(200);
    expect(body.headers.get("accept-ranges")).toBe("bytes");
    expect(sha256(await body.arrayBuffer())).toBe(f.sha256);
    expect(hub.bytesSent["model.safetensors"]).toBe(weights.length);
  });

  it("serves a git file with ETag = git blob sha1, X-Repo-Commit and Content-Length; /raw/ gives the LFS pointer", async () => {
    const res = await hubFetch(hub.resolveUrl("org/model", "vocab.bin"));
    expect(res.status).toBe(200);
    const body = await bytes(res);
    expect(res.headers.get("etag")).toBe(`"${createHash("sha1").update(`blob ${body.length}\0`).update(body).digest("hex")}"`);
    expect(res.headers.get("x-repo-commit")).toBe(repo.commit);
    expect(res.headers.get("content-length")).toBe(String(vocab.length));
    expect(body.equals(vocab)).toBe(true);
    const raw = await hubFetch(`${hub.endpoint}/org/model/raw/main/model.safetensors`);
    expect(await raw.text()).toBe(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(weights)}\nsize ${weights.length}\n`);
    const missing = await hubFetch(hub.resolveUrl("org/model", "nope.json"), { method: "HEAD" });
    expect([missing.status, missing.headers.get("x-error-code"), missing.headers.get("x-repo-commit")]).toEqual([404, "EntryNotFound", repo.commit]);
    const none = await hubFetch(hub.resolveUrl("org/nothing", "config.json"));
    expect([none.status, none.headers.get("x-error-code")]).toEqual([404, "RepoNotFound"]);
  });

  it("answers ranges with 206 + Content-Range and unsatisfiable ones with 416 bytes */size, on the Hub and the CDN", async () => {
    const cdn = hub.signCdnUrl(file(repo, "model.safetensors").sha256!);
    for (const [url, content] of [
      [hub.resolveUrl("org/model", "vocab.bin"), vocab],
      [cdn, weights],
    ] as const) {
      const part = await hubFetch(url, { headers: { Range: "bytes=10-19" } });
      expect(part.status).toBe(206);
      expect(part.headers.get("content-range")).toBe(`bytes 10-19/${content.length}`);
      expect(part.headers.get("content-length")).toBe("10");
      expect((await bytes(part)).equals(content.subarray(10, 20))).toBe(true);
      const open = await hubFetch(url, { headers: { Range: `bytes=${content.length - 5}-` } });
      expect(open.headers.get("content-range")).toBe(`bytes ${content.length - 5}-${content.length - 1}/${content.length}`);
      expect((await bytes(open)).equals(content.subarray(-5))).toBe(true);
      const suffix = await hubFetch(url, { headers: { Range: "bytes=-3" } });
      expect((await bytes(suffix)).equals(content.subarray(-3))).toBe(true);
      const past = await hubFetch(url, { headers: { Range: `bytes=${content.length}-` } });
      expect(past.status).toBe(416);
      expect(past.headers.get("content-range")).toBe(`bytes */${content.length}`);
      await past.arrayBuffer();
    }
  });

  it("gzips text files for clients that accept gzip, chunked and ignoring Range; identity gets 206", async () => {
    const url = hub.resolveUrl("org/model", "config.json");
    const gz = await hubFetch(url, { headers: { "Accept-Encoding": "gzip", Range: "bytes=0-3" } });
    expect(gz.status).toBe(200);
    expect(gz.headers.get("content-encoding")).toBe("gzip");
    expect(gz.headers.get("content-length")).toBeNull();
    expect(gz.headers.get("transfer-encoding")).toBe("chunked");
    expect(await gz.text()).toBe('{"hidden_size": 8}\n'); // fetch decompresses: the full file, not 4 bytes
    const id = await hubFetch(url, { headers: { Range: "bytes=0-3" } });
    expect([id.status, await id.text()]).toEqual([206, '{"hi']);
  });

  it("rejects any Authorization at the CDN with 400 and logs it; fetch drops it on the cross-host redirect", async () => {
    const f = file(repo, "model.safetensors");
    const res = await hubFetch(hub.signCdnUrl(f.sha256!), { headers: { Authorization: `Bearer ${GOOD}` } });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("Only one auth mechanism allowed");
    expect(hub.requests.at(-1)).toMatchObject({ host: "cdn", authorization: true, status: 400 });
    hub.resetLog();
    const followed = await fetch(hub.resolveUrl("org/model", f.path), { headers: { Authorization: `Bearer ${OTHER}` } });
    expect(followed.status).toBe(200);
    expect(sha256(await followed.arrayBuffer())).toBe(f.sha256);
    expect(hub.requests.map((r) => [r.host, r.authorization])).toEqual([
      ["hub", true],
      ["cdn", false],
    ]);
  });

  it("answers 403 AccessDenied for expired or tampered signed URLs", async () => {
    const sha = file(repo, "model.safetensors").sha256!;
    const expired = await hubFetch(hub.signCdnUrl(sha, 0));
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(/<Code>AccessDenied<\/Code><Message>Request has expired/);
    const tampered = await hubFetch(hub.signCdnUrl(sha).replace(/Signature=./, "Signature=x"));
    expect([tampered.status, await tampered.text()]).toEqual([403, expect.stringContaining("AccessDenied")]);
    hub.settings.signedUrlTtlSeconds = 0;
    const head = await hubFetch(hub.resolveUrl("org/model", "model.safetensors"), { method: "HEAD" });
    expect((await hubFetch(head.headers.get("location")!)).status).toBe(403);
  });

  it("gates content with the exact GatedRepo messages, hides private repos, rejects unknown tokens", async () => {
    const url = hub.resolveUrl("org/gated", "config.json");
    const anon = await hubFetch(url, { method: "HEAD" });
    expect([anon.status, anon.headers.get("x-error-code"), anon.headers.get("x-error-message")]).toEqual([
      401,
      "GatedRepo",
      "Access to model org/gated is restricted. You must have access to it and be authenticated to access it. Please log in.",
    ]);
    const other = await hubFetch(url, { headers: { Authorization: `Bearer ${OTHER}` } });
    expect([other.status, other.headers.get("x-error-code")]).toEqual([403, "GatedRepo"]);
    expect(await other.json()).toEqual({
      error: "Access to model org/gated is restricted and you are not in the authorized list. Visit https://huggingface.co/org/gated to ask for access.",
    });
    expect((await hubFetch(url, { headers: { Authorization: `Bearer ${GOOD}` } })).status).toBe(200);
    // metadata of a gated repo is public
    expect(((await (await hubFetch(`${hub.endpoint}/api/models/org/gated`)).json()) as { gated: string }).gated).toBe("manual");

    const bogus = await hubFetch(url, { headers: { Authorization: "Bearer hf_unknown" } });
    expect([bogus.status, bogus.headers.get("x-error-message")]).toEqual([401, "Invalid credentials in Authorization header"]);

    const priv = `${hub.endpoint}/api/models/org/private`;
    const privAnon = await hubFetch(priv);
    expect([privAnon.status, privAnon.headers.get("x-error-code")]).toEqual([401, "RepoNotFound"]);
    expect((await hubFetch(priv, { headers: { Authorization: `Bearer ${OTHER}` } })).status).toBe(404);
    expect((await hubFetch(priv, { headers: { Authorization: `Bearer ${GOOD}` } })).status).toBe(200);
  });

  it("redirects a renamed repo with a relative 307, API routes included", async () => {
    const info = hub.addRepo({ id: "org/old-name", renamedTo: "org/new-name", files: [{ path: "config.json", content: "{}\n" }] });
    expect(info.id).toBe("org/new-name");
    const head = await hubFetch(`${hub.endpoint}/org/old-name/resolve/main/config.json`, { method: "HEAD" });
    expect([head.status, head.headers.get("location")]).toEqual([307, "/org/new-name/resolve/main/config.json"]);
    const api = await hubFetch(`${hub.endpoint}/api/models/org/old-name/revision/main?blobs=true`);
    expect([api.status, api.headers.get("location")]).toEqual([307, "/api/models/org/new-name/revision/main?blobs=true"]);
    const followed = await fetch(`${hub.endpoint}/api/models/org/old-name`);
    expect(((await followed.json()) as { id: string }).id).toBe("org/new-name");
    hub.renameRepo("org/new-name", "org/newest");
    const twice = await fetch(`${hub.endpoint}/org/old-name/resolve/main/config.json`, { headers: { "Accept-Encoding": "identity" } });
    expect([twice.status, twice.url, await twice.text()]).toEqual([200, `${hub.endpoint}/org/newest/resolve/main/config.json`, "{}\n"]);
  });

  it("moves main on pushCommit while the old commit stays resolvable (pinning)", async () => {
    hub.addRepo({ id: "org/moving", files: [{ path: "a.txt", content: "one" }, { path: "keep.txt", content: "same" }] });
    const first = hub.resolveRevision("org/moving");
    const second = hub.pushCommit("org/moving", [{ path: "a.txt", content: "two" }]);
    expect(second.commit).not.toBe(first);
    expect(second.files.map((f) => f.path)).toEqual(["a.txt", "keep.txt"]);
    const atMain = await hubFetch(hub.resolveUrl("org/moving", "a.txt"));
    expect([atMain.headers.get("x-repo-commit"), await atMain.text()]).toEqual([second.commit, "two"]);
    const pinned = await hubFetch(hub.resolveUrl("org/moving", "a.txt", first));
    expect([pinned.headers.get("x-repo-commit"), await pinned.text()]).toEqual([first, "one"]);
    // deterministic: the same files give the same commit in a fresh server
    const again = await startHubServer();
    try {
      expect(again.addRepo({ id: "org/moving", files: [{ path: "a.txt", content: "one" }, { path: "keep.txt", content: "same" }] }).commit).toBe(first);
    } finally {
      await again.close();
    }
  });
});

describe("fault injection", () => {
  const lfs = () => file(repo, "model.safetensors");

  it("truncateAfter cuts the body after N bytes, `times` times, then serves it whole", async () => {
    const handle = hub.injectFault("model.safetensors", { truncateAfter: 1000, on: "cdn", times: 2 });
    const url = hub.signCdnUrl(lfs().sha256!);
    for (let i = 0; i < 2; i++) {
      const res = await hubFetch(url);
      expect(res.headers.get("content-length")).toBe(String(weights.length));
      await expect(res.arrayBuffer()).rejects.toThrow();
    }
    expect([handle.hits, handle.remaining]).toEqual([2, 0]);
    expect(sha256(await (await hubFetch(url)).arrayBuffer())).toBe(lfs().sha256);
    expect(hub.requests.map((r) => [r.bytes, r.fault])).toEqual([
      [1000, "truncateAfter"],
      [1000, "truncateAfter"],
      [weights.length, undefined],
    ]);
    expect(hub.bytesSent["model.safetensors"]).toBe(2000 + weights.length);
  });

  it("flipByteAt keeps the length but corrupts exactly that byte, only when the response covers it", async () => {
    const handle = hub.injectFault("vocab.bin", { flipByteAt: 50_000, request: "range" });
    const url = hub.resolveUrl("org/model", "vocab.bin");
    const before = await bytes(await hubFetch(url, { headers: { Range: "bytes=0-999" } }));
    expect(before.equals(vocab.subarray(0, 1000))).toBe(true);
    expect(handle.remaining).toBe(1);
    expect((await bytes(await hubFetch(url))).equals(vocab)).toBe(true); // full request: not matched
    const bad = await bytes(await hubFetch(url, { headers: { Range: "bytes=49000-50999" } }));
    expect(bad.length).toBe(2000);
    const diff = [...bad.keys()].filter((i) => bad[i] !== vocab[49_000 + i]);
    expect(diff).toEqual([1000]);
    expect(handle.remaining).toBe(0);
    expect((await bytes(await hubFetch(url, { headers: { Range: "bytes=49000-50999" } }))).equals(vocab.subarray(49_000, 51_000))).toBe(true);
  });

  it("ignoreRange answers a Range request with 200 and the full body", async () => {
    hub.injectFault("model.safetensors", { ignoreRange: true });
    const url = hub.signCdnUrl(lfs().sha256!);
    const res = await hubFetch(url, { headers: { Range: "bytes=100-" } });
    expect([res.status, res.headers.get("content-range"), (await bytes(res)).length]).toEqual([200, null, weights.length]);
    expect((await hubFetch(url, { headers: { Range: "bytes=100-" } })).status).toBe(206);
  });

  it("status replaces the answer (429 with Retry-After, 503 at the CDN, 500 on an API path), then things recover", async () => {
    hub.injectFault("model.safetensors", { on: "resolve", status: { code: 429, headers: { "Retry-After": "1" } } });
    hub.injectFault("model.safetensors", { on: "cdn", status: { code: 503 } });
    hub.injectFault("/api/models/org/model/tree", { status: { code: 500 } });
    const url = hub.resolveUrl("org/model", "model.safetensors");
    const limited = await hubFetch(url, { method: "HEAD" });
    expect([limited.status, limited.headers.get("retry-after")]).toEqual([429, "1"]);
    const ok = await hubFetch(url, { method: "HEAD" });
    expect(ok.status).toBe(302);
    const cdn = ok.headers.get("location")!;
    expect((await hubFetch(cdn)).status).toBe(503);
    expect((await hubFetch(cdn)).status).toBe(200);
    const tree = `${hub.endpoint}/api/models/org/model/tree/main?recursive=true`;
    expect((await hubFetch(tree)).status).toBe(500);
    expect((await hubFetch(tree)).status).toBe(200);
    expect(hub.requests.filter((r) => r.fault === "status")).toHaveLength(3);
  });

  it("expireUrl makes the CDN answer 403 expired to a valid URL", async () => {
    hub.injectFault("model.safetensors", { expireUrl: true });
    const url = hub.signCdnUrl(lfs().sha256!);
    const res = await hubFetch(url);
    expect([res.status, await res.text()]).toEqual([403, expect.stringContaining("Request has expired")]);
    expect((await hubFetch(url)).status).toBe(200);
  });

  it("stallAfterHeaders and stallAfterBytes hold the body back for the given time", async () => {
    const url = hub.signCdnUrl(lfs().sha256!);
    hub.injectFault("model.safetensors", { stallAfterHeaders: 400 });
    const t0 = Date.now();
    const res = await hubFetch(url);
    const headersAt = Date.now();
    expect(sha256(await res.arrayBuffer())).toBe(lfs().sha256);
    expect(Date.now() - headersAt).toBeGreaterThanOrEqual(350);
    expect(headersAt - t0).toBeLessThan(350);

    hub.injectFault("model.safetensors", { stallAfterBytes: { bytes: 1000, ms: 400 } });
    const stalled = await hubFetch(url);
    const reader = stalled.body!.getReader();
    let got = 0;
    let reachedAt = 0;
    let gap = 0;
    for (;;) {
      const { done, value } = await reader.read();
      const now = Date.now();
      if (done) break;
      if (got === 1000) gap = now - reachedAt;
      got += value.length;
      if (got === 1000) reachedAt = now; // exactly 1000 bytes arrive before the pause
    }
    expect(got).toBe(weights.length);
    expect(reachedAt).toBeGreaterThan(0);
    expect(gap).toBeGreaterThanOrEqual(350);
  });

  it("counts concurrent responses per host", async () => {
    hub.injectFault("model.safetensors", { on: "cdn", stallAfterHeaders: 300, times: 3 });
    const url = hub.signCdnUrl(lfs().sha256!);
    const bodies = await Promise.all([1, 2, 3].map(async () => sha256(await (await hubFetch(url)).arrayBuffer())));
    expect(bodies).toEqual([lfs().sha256, lfs().sha256, lfs().sha256]);
    expect(hub.maxInFlight).toEqual({ hub: 0, cdn: 3, total: 3 });
    expect(hub.inFlight).toEqual({ hub: 0, cdn: 0, total: 0 });
  });

  it("close() ends stalled responses at once", async () => {
    const s = await startHubServer();
    const info = s.addRepo({ id: "org/x", files: [{ path: "w.safetensors", content: seededBytes("w", 10_000) }] });
    s.injectFault("w.safetensors", { stallAfterHeaders: 30_000 });
    const res = await hubFetch(s.signCdnUrl(file(info, "w.safetensors").sha256!));
    const t0 = Date.now();
    await s.close();
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

describe("throughput cap", () => {
  it("throttles a 256 KiB body at 128 KiB/s to about 2 s", async () => {
    const s = await startHubServer({ bytesPerSecondPerConnection: 128 * 1024 });
    try {
      const content = seededBytes("throttle", 256 * 1024);
      const info = s.addRepo({ id: "org/t", files: [{ path: "t.safetensors", content }] });
      const t0 = Date.now();
      const body = await new Promise<Buffer>((resolve, reject) => {
        httpRequest(s.signCdnUrl(file(info, "t.safetensors").sha256!), (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve(Buffer.concat(chunks)));
          res.on("error", reject);
        })
          .on("error", reject)
          .end();
      });
      const elapsed = Date.now() - t0;
      expect(body.equals(content)).toBe(true);
      expect(elapsed).toBeGreaterThan(1500);
      expect(elapsed).toBeLessThan(4000);
    } finally {
      await s.close();
    }
  });
});
