/**
 * Faults and protocol paths the real 2.8.2 registry does not produce, against a scripted
 * server: 429 with Retry-After, 5xx, connection resets, endless or oversized manifests,
 * lying Content-Type and digests, the Referrers API with pagination, OCI-Subject, redirects
 * to another host (Authorization must not follow), aborts, and uploads whose answers are lost
 * after the registry stored the chunk (the client must ask for the real offset).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClient, type RegistryClientOptions } from "../pipeline/registry/index.js";
import { OCI_INDEX, OCI_MANIFEST } from "../pipeline/registry/types.js";
import { fileBlob, randomBytesFrom } from "./helpers/blobs.js";
import { FakeUploads, reply, replyError, resetConnection, startFakeRegistry, type FakeHandler, type FakeRegistry } from "./helpers/fake-registry.js";
import { digestOf } from "./helpers/registry.js";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const thing of open.splice(0)) await thing.close();
});

async function fake(handler: FakeHandler, address?: string): Promise<FakeRegistry> {
  const server = await startFakeRegistry(handler, address);
  open.push(server);
  return server;
}

function client(server: FakeRegistry, options: Partial<RegistryClientOptions> = {}): RegistryClient {
  const c = new RegistryClient({ registry: server.host, credentials: null, retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 5_000 }, ...options });
  open.push(c);
  return c;
}

const json = (value: unknown) => JSON.stringify(value);

describe("retries", () => {
  it("waits as long as Retry-After says (seconds), then succeeds", async () => {
    let calls = 0;
    const server = await fake((req, res) => (++calls === 1 ? replyError(res, 429, "TOOMANYREQUESTS", "slow down", { "retry-after": "1" }) : reply(res, 200, {}, "{}")));
    const started = performance.now();
    await client(server).ping();
    // Backoff alone would have waited about 1 ms.
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(server.requests).toHaveLength(2);
  });

  it("caps any wait at maxDelayMs, and gives up after the attempts with E_REGISTRY_HTTP", async () => {
    const date = new Date(Date.now() + 3600_000).toUTCString();
    const server = await fake((req, res) => replyError(res, 503, "UNAVAILABLE", "down for maintenance", { "retry-after": date }));
    const started = performance.now();
    const error = await client(server, { retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 20 } }).ping().catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(error).toMatchObject({ code: "E_REGISTRY_HTTP", status: 503, registryCode: "UNAVAILABLE" });
    expect(server.requests).toHaveLength(3);
  });

  it("retries 500s and connection resets, then succeeds", async () => {
    let calls = 0;
    const server = await fake((req, res, raw) => {
      calls++;
      if (calls === 1) return resetConnection(raw);
      if (calls === 2) return replyError(res, 500, "UNKNOWN");
      if (calls === 3) return resetConnection(raw);
      reply(res, 200, { "content-length": "42" });
    });
    expect(await client(server).statBlob("a/b", digestOf("x"))).toBe(42);
    expect(server.requests).toHaveLength(4);
  });

  it("resets past the attempts are E_REGISTRY_UNREACHABLE; a refused port too", async () => {
    const server = await fake((req, res, raw) => resetConnection(raw));
    await expect(client(server, { retry: { attempts: 2, baseDelayMs: 1 } }).ping()).rejects.toMatchObject({ code: "E_REGISTRY_UNREACHABLE" });
    expect(server.requests).toHaveLength(2);
    const host = server.host;
    await server.close();
    await expect(new RegistryClient({ registry: host, credentials: null, retry: { attempts: 2, baseDelayMs: 1 } }).ping()).rejects.toMatchObject({ code: "E_REGISTRY_UNREACHABLE", message: expect.stringContaining("ECONNREFUSED") });
  });

  it("a connection broken in the middle of a manifest is retried; in the middle of a blob, resumed with Range", async () => {
    const manifest = Buffer.from(json({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [], annotations: { pad: "x".repeat(200_000) } }));
    const blob = randomBytesFrom(24, 3 * 1024 * 1024);
    let cut = 0;
    const server = await fake((req, res, raw) => {
      const body = req.path.includes("/manifests/") ? manifest : blob;
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? "")?.[1] ?? 0);
      res.writeHead(start ? 206 : 200, { "content-type": req.path.includes("/manifests/") ? OCI_MANIFEST : "application/octet-stream", "content-length": String(body.length - start), ...(start ? { "content-range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
      if (cut++ % 2 === 0) {
        // Half the bytes, then the connection drops.
        res.write(body.subarray(start, start + Math.floor((body.length - start) / 2)), () => setTimeout(() => resetConnection(raw), 20));
        return;
      }
      res.end(body.subarray(start));
    });
    const c = client(server);
    expect((await c.getManifest("a/b", "v1")).bytes.equals(manifest)).toBe(true);
    const file = join(mkdtempSync(join(tmpdir(), "ai-tools-pull-")), "blob");
    expect(await c.getBlob("a/b", digestOf(blob), { file })).toMatchObject({ size: blob.length, resumedFrom: 0 });
    expect(readFileSync(file).equals(blob)).toBe(true);
    const ranges = server.requests.filter((r) => r.path.includes("/blobs/")).map((r) => r.headers.range);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    expect(Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? "")?.[1])).toBeGreaterThan(0);
  });

  it("a blob body longer than the manifest says is refused as it arrives, and nothing is kept", async () => {
    const blob = randomBytesFrom(25, 1024 * 1024);
    const server = await fake((req, res) => {
      // No Content-Length: the client cannot refuse up front.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.write(blob);
      res.end(Buffer.alloc(4096));
    });
    const file = join(mkdtempSync(join(tmpdir(), "ai-tools-pull-")), "blob");
    await expect(client(server).getBlob("a/b", digestOf(blob), { file, size: blob.length, name: "model.gguf" })).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH", message: expect.stringContaining("model.gguf") });
    expect(existsSync(file)).toBe(false);
    expect(server.requests).toHaveLength(1);
  });

  it("a 4xx is not retried", async () => {
    const server = await fake((req, res) => replyError(res, 400, "NAME_INVALID"));
    await expect(client(server).getManifest("a/b", "v1")).rejects.toMatchObject({ code: "E_REGISTRY_HTTP", status: 400, registryCode: "NAME_INVALID" });
    expect(server.requests).toHaveLength(1);
  });

  it("an abort stops a request that hangs, promptly, as E_ABORTED", async () => {
    const server = await fake(() => undefined); // never answers
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = performance.now();
    await expect(client(server).getManifest("a/b", "v1", { signal: controller.signal })).rejects.toMatchObject({ code: "E_ABORTED" });
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("manifests that are not what they claim", () => {
  it("an endless manifest is refused at 4 MiB, long before the server finished sending", async () => {
    let written = 0;
    let finished = false;
    const server = await fake((req, res) => {
      res.writeHead(200, { "content-type": OCI_MANIFEST });
      const piece = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (written < 256 * 1024 * 1024) {
          written += piece.length;
          if (!res.write(piece)) return void res.once("drain", pump);
        }
        finished = true;
        res.end();
      };
      res.on("close", () => undefined);
      pump();
    });
    await expect(client(server).getManifest("a/b", "v1")).rejects.toMatchObject({ code: "E_REGISTRY_LIMIT" });
    await new Promise((r) => setTimeout(r, 100));
    expect(finished).toBe(false);
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it("an announced Content-Length over 4 MiB is refused without reading the body", async () => {
    const server = await fake((req, res) => {
      res.writeHead(200, { "content-type": OCI_MANIFEST, "content-length": String(5 * 1024 * 1024) });
      res.write("{");
    });
    await expect(client(server).getManifest("a/b", "v1")).rejects.toMatchObject({ code: "E_REGISTRY_LIMIT" });
  });

  it("a Content-Type that contradicts mediaType, and bytes that do not match the digest asked for, are refused", async () => {
    const manifest = json({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] });
    const server = await fake((req, res) => reply(res, 200, { "content-type": OCI_INDEX }, manifest));
    await expect(client(server).getManifest("a/b", "v1")).rejects.toMatchObject({ code: "E_REGISTRY_BAD_RESPONSE" });
    server.handler = (req, res) => reply(res, 200, { "content-type": OCI_MANIFEST }, manifest);
    const other = digestOf("something else");
    await expect(client(server).getManifest("a/b", other)).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH" });
    expect((await client(server).getManifest("a/b", digestOf(manifest))).digest).toBe(digestOf(manifest));
  });

  it("returns the OCI-Subject a referrers-aware registry answers with", async () => {
    const subject = digestOf("subject");
    const server = await fake((req, res) => reply(res, 201, { "docker-content-digest": digestOf(req.body), "oci-subject": subject }));
    const bytes = Buffer.from(json({ schemaVersion: 2, mediaType: OCI_MANIFEST, subject: { mediaType: OCI_MANIFEST, digest: subject, size: 7 } }));
    expect(await client(server).putManifest("a/b", digestOf(bytes), bytes, OCI_MANIFEST)).toEqual({ digest: digestOf(bytes), subject, status: 201 });
    expect(server.requests[0]?.headers["content-type"]).toBe(OCI_MANIFEST);
  });
});

describe("the Referrers API", () => {
  it("follows Link pages, tolerates entries without annotations, and filters by artifactType", async () => {
    const subject = digestOf("model manifest");
    const entry = (n: number, artifactType?: string) => ({ mediaType: OCI_MANIFEST, digest: digestOf(`ref ${n}`), size: 100 + n, ...(artifactType ? { artifactType } : {}) });
    const pages = [
      [entry(1, "application/vnd.dev.sigstore.bundle.v0.3+json"), entry(2, "application/vnd.cncf.notary.signature")],
      [{ ...entry(3, "application/vnd.dev.sigstore.bundle.v0.3+json"), annotations: { "dev.sigstore.bundle.content": "dsse-envelope" } }, { junk: true }],
    ];
    const server = await fake((req, res) => {
      if (req.path !== `/v2/models/x/referrers/${subject}`) return replyError(res, 404, "NAME_UNKNOWN");
      const page = Number(req.query.get("page") ?? "0");
      reply(res, 200, { "content-type": OCI_INDEX, ...(page === 0 ? { link: `</v2/models/x/referrers/${subject}?page=1>; rel="next"` } : {}) }, json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: pages[page] }));
    });
    const all = await client(server).listReferrers("models/x", subject);
    expect(all).toEqual({ source: "api", manifests: [pages[0]![0], pages[0]![1], pages[1]![0]] });
    const bundles = await client(server).listReferrers("models/x", subject, "application/vnd.dev.sigstore.bundle.v0.3+json");
    expect(bundles.manifests.map((m) => m.digest)).toEqual([digestOf("ref 1"), digestOf("ref 3")]);
    expect(server.requests.at(-2)?.query.get("artifactType")).toBe("application/vnd.dev.sigstore.bundle.v0.3+json");
  });

  it("the fallback index honours If-Match: a 412 makes it read again and keep the other writer's entry", async () => {
    const subject = digestOf("subject");
    const tag = `sha256-${subject.slice(7)}`;
    const theirs = { mediaType: OCI_MANIFEST, digest: digestOf("theirs"), size: 1, artifactType: "application/vnd.cncf.notary.signature" };
    const ours = { mediaType: OCI_MANIFEST, digest: digestOf("ours"), size: 2, artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json" };
    let stored: Buffer = Buffer.from(json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
    let racedOnce = false;
    const server = await fake((req, res) => {
      if (req.path !== `/v2/models/x/manifests/${tag}`) return replyError(res, 404, "MANIFEST_UNKNOWN");
      if (req.method === "GET") return reply(res, 200, { "content-type": OCI_INDEX, etag: `"${digestOf(stored)}"` }, stored);
      if (!racedOnce) {
        // Another tool wrote its entry between our GET and our PUT.
        racedOnce = true;
        stored = Buffer.from(json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [theirs] }));
      }
      if (req.headers["if-match"] !== `"${digestOf(stored)}"`) return replyError(res, 412, "PRECONDITION_FAILED");
      stored = req.body;
      reply(res, 201, { "docker-content-digest": digestOf(stored) });
    });
    const result = await client(server).addReferrerToFallbackIndex("models/x", subject, ours);
    expect(result.updated).toBe(true);
    expect((JSON.parse(stored.toString()) as { manifests: unknown[] }).manifests).toEqual([theirs, ours]);
    expect(server.requests.map((r) => r.method)).toEqual(["GET", "PUT", "GET", "PUT", "GET"]);
  });
});

describe("redirects", () => {
  it("a blob redirected to another host gets no Authorization; the registry's own requests do", async () => {
    const blob = randomBytesFrom(20, 100_000);
    const digest = digestOf(blob);
    const cdn = await fake((req, res) => (req.headers.authorization ? replyError(res, 400, "AUTHORIZATION_NOT_ALLOWED") : reply(res, 200, {}, blob)), "127.0.0.2");
    const server = await fake((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from("u:p").toString("base64")}`) return replyError(res, 401, "UNAUTHORIZED", "auth", { "www-authenticate": 'Basic realm="fake"' });
      reply(res, 307, { location: `${cdn.url}/signed/${digest}?X-Signature=abc` });
    });
    const file = join(mkdtempSync(join(tmpdir(), "ai-tools-pull-")), "blob");
    await client(server, { credentials: { username: "u", password: "p" } }).getBlob("a/b", digest, { file });
    expect(readFileSync(file).equals(blob)).toBe(true);
    expect(cdn.requests).toHaveLength(1);
    expect(cdn.requests[0]?.headers.authorization).toBeUndefined();
    expect(server.requests.at(-1)?.headers.authorization).toBeDefined();
  });

  it("a redirect to plain HTTP on a non-loopback host is E_REGISTRY_INSECURE", async () => {
    const server = await fake((req, res) => reply(res, 307, { location: "http://cdn.example.invalid/blob" }));
    await expect(client(server).getBlob("a/b", digestOf("x"), { file: join(mkdtempSync(join(tmpdir(), "ai-tools-pull-")), "blob") })).rejects.toMatchObject({ code: "E_REGISTRY_INSECURE" });
  });
});

describe("uploads when answers get lost", () => {
  it("a chunk the registry stored but failed to acknowledge is not sent twice: the client asks for the real offset", async () => {
    const uploads = new FakeUploads();
    uploads.failPatchNumbers = new Set([2]);
    const server = await fake((req, res) => {
      if (!uploads.handle(req, res)) replyError(res, 404, "BLOB_UNKNOWN");
    });
    const blob = fileBlob(randomBytesFrom(21, 5 * 1024 * 1024));
    const result = await client(server).uploadBlob("a/b", blob, { chunkSize: 1024 * 1024, monolithicLimit: 0 });
    expect(result.outcome).toBe("uploaded");
    expect(uploads.blobs.get(blob.digest)?.equals(blob.bytes)).toBe(true);
    expect(uploads.patches.map((p) => p.contentRange)).toEqual(["0-1048575", "1048576-2097151", "2097152-3145727", "3145728-4194303", "4194304-5242879"]);
    // After the failed answer: GET <location> (204, Range 0-2097151), then the third chunk.
    const methods = server.requests.map((r) => r.method).join(" ");
    expect(methods).toBe("HEAD POST PATCH PATCH GET PATCH PATCH PATCH PUT");
  });

  it("honours OCI-Chunk-Min-Length", async () => {
    const uploads = new FakeUploads();
    uploads.minChunkLength = 2 * 1024 * 1024;
    const server = await fake((req, res) => {
      if (!uploads.handle(req, res)) replyError(res, 404, "BLOB_UNKNOWN");
    });
    const blob = fileBlob(randomBytesFrom(22, 5 * 1024 * 1024));
    await client(server).uploadBlob("a/b", blob, { chunkSize: 1024 * 1024, monolithicLimit: 0 });
    expect(uploads.patches.map((p) => p.length)).toEqual([2 * 1024 * 1024, 2 * 1024 * 1024, 1024 * 1024]);
    expect(createHash("sha256").update(uploads.blobs.get(blob.digest)!).digest("hex")).toBe(blob.digest.slice(7));
  });

  it("a source that changed under the upload fails as E_DIGEST_MISMATCH, not a retry loop", async () => {
    const uploads = new FakeUploads();
    const server = await fake((req, res) => {
      if (!uploads.handle(req, res)) replyError(res, 404, "BLOB_UNKNOWN");
    });
    const blob = fileBlob(randomBytesFrom(23, 10_000));
    await expect(client(server).uploadBlob("a/b", { ...blob, digest: digestOf("other bytes") })).rejects.toMatchObject({ code: "E_DIGEST_MISMATCH" });
    expect(server.requests.filter((r) => r.method === "PUT")).toHaveLength(1);
  });
});
