/**
 * A scriptable HTTP server for the registry behaviours Distribution 2.8.2 does not have
 * (oci-models.md §8): the Referrers API with `Link` pagination, `OCI-Subject`, 429 with
 * Retry-After, 5xx, connection resets, endless bodies, redirects to another host, and an
 * upload endpoint whose faults are placed exactly. Each test gives the handler; every
 * request is recorded (with its body) before the handler runs.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { freePort } from "./registry.js";

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type FakeHandler = (req: FakeRequest, res: ServerResponse, raw: IncomingMessage) => void | Promise<void>;

export interface FakeRegistry {
  /** `127.0.0.x:<port>`. */
  host: string;
  url: string;
  requests: FakeRequest[];
  handler: FakeHandler;
  close(): Promise<void>;
}

export async function startFakeRegistry(handler: FakeHandler, address = "127.0.0.1"): Promise<FakeRegistry> {
  const port = await freePort();
  const fake: FakeRegistry = {
    host: `${address}:${port}`,
    url: `http://${address}:${port}`,
    requests: [],
    handler,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server: Server = createServer((raw, res) => {
    const chunks: Buffer[] = [];
    raw.on("data", (c: Buffer) => chunks.push(c));
    raw.on("end", () => {
      const url = new URL(raw.url ?? "/", fake.url);
      const req: FakeRequest = { method: raw.method ?? "", path: url.pathname, query: url.searchParams, headers: raw.headers, body: Buffer.concat(chunks) };
      fake.requests.push(req);
      Promise.resolve(fake.handler(req, res, raw)).catch((error: unknown) => {
        res.writeHead(599);
        res.end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(port, address, resolve));
  return fake;
}

export function reply(res: ServerResponse, status: number, headers: Record<string, string> = {}, body: string | Buffer = ""): void {
  res.writeHead(status, { "content-length": String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

export function replyError(res: ServerResponse, status: number, code: string, message = code.toLowerCase(), headers: Record<string, string> = {}): void {
  reply(res, status, { "content-type": "application/json", ...headers }, JSON.stringify({ errors: [{ code, message }] }));
}

/** Drops the connection without an answer (a reset, as a crashing proxy does). */
export function resetConnection(raw: IncomingMessage): void {
  raw.socket.destroy();
}

/**
 * An upload endpoint that behaves like Distribution (sessions, newest Location only, Range)
 * but whose faults a test places: `failPatch(n)` takes the n-th PATCH's bytes and then answers
 * 500, as a registry whose answer was lost after it stored the chunk.
 */
export class FakeUploads {
  readonly data = new Map<string, Buffer>();
  readonly blobs = new Map<string, Buffer>();
  patches: { contentRange: string | undefined; length: number }[] = [];
  private state = new Map<string, number>();
  private next = 1;
  failPatchNumbers = new Set<number>();
  minChunkLength: number | undefined;

  /** Handles upload routes; returns false for other requests. */
  handle(req: FakeRequest, res: ServerResponse): boolean {
    const session = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(req.path);
    if (!session) return false;
    const base = `/v2/${session[1]}/blobs/uploads`;
    const location = (id: string) => {
      const token = this.next++;
      this.state.set(id, token);
      return `${base}/${id}?_state=${token}`;
    };
    const range = (id: string) => `0-${Math.max(0, (this.data.get(id)?.length ?? 0) - 1)}`;
    if (req.method === "POST" && !session[2]) {
      const id = `u${this.next}`;
      this.data.set(id, Buffer.alloc(0));
      reply(res, 202, { location: location(id), range: "0-0", ...(this.minChunkLength ? { "oci-chunk-min-length": String(this.minChunkLength) } : {}) });
      return true;
    }
    const id = session[2] ?? "";
    const current = this.data.get(id);
    if (!current || this.state.get(id) !== Number(req.query.get("_state"))) {
      replyError(res, 404, "BLOB_UPLOAD_INVALID");
      return true;
    }
    if (req.method === "GET") {
      reply(res, 204, { location: location(id), range: range(id) });
    } else if (req.method === "PATCH") {
      this.patches.push({ contentRange: req.headers["content-range"], length: req.body.length });
      this.data.set(id, Buffer.concat([current, req.body]));
      if (this.failPatchNumbers.has(this.patches.length)) {
        replyError(res, 500, "UNKNOWN", "stored, then failed to answer");
        return true;
      }
      reply(res, 202, { location: location(id), range: range(id) });
    } else if (req.method === "PUT") {
      const whole = Buffer.concat([current, req.body]);
      const digest = `sha256:${createHash("sha256").update(whole).digest("hex")}`;
      if (req.query.get("digest") !== digest) {
        replyError(res, 400, "DIGEST_INVALID");
        return true;
      }
      this.blobs.set(digest, whole);
      this.data.delete(id);
      reply(res, 201, { location: `/v2/${session[1]}/blobs/${digest}`, "docker-content-digest": digest });
    } else {
      replyError(res, 405, "UNSUPPORTED");
    }
    return true;
  }
}
