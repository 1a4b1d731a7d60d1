/**
 * A local imitation of the Hugging Face Hub and its CDN, over real HTTP on loopback, so
 * download-client tests never touch the network (shared/reference/hf-hub.md §14).
 *
 * Two servers:
 * - the Hub on 127.0.0.1 (`endpoint`, what HF_ENDPOINT points at): repo info, tree listing
 *   with cursor pagination, paths-info, `/resolve/` and `/raw/`, errors with
 *   `X-Error-Code`/`X-Error-Message`, `RateLimit` headers, relative 307 for renamed repos;
 * - the CDN on 127.0.0.2 (`cdnOrigin`), a different host name so a redirect to it is a
 *   cross-host redirect (clients must drop `Authorization`, and a same-host CDN would hide the
 *   loss of `X-Repo-Commit`): signed, expiring URLs `/cdn/<sha256>?Expires=…&Signature=…`,
 *   400 on any `Authorization`, 403 `AccessDenied` when expired.
 *
 * Both serve bytes with `Range` (206/416), optional gzip for text files (which then ignores
 * `Range`, the CloudFront trap of §3), an optional per-response throughput cap, and
 * per-path fault injection (truncation, a flipped byte, stalls, ignored `Range`, arbitrary
 * status codes, expired URLs), each fault consumed after `times` uses so retries succeed.
 * Every request is logged (host, method, path, Range, whether `Authorization` was sent,
 * status, body bytes) together with the maximum number of concurrently open responses.
 *
 * Repository contents are deterministic: file ids are git blob ids, directory ids are git
 * tree ids, and a commit id is the git commit id of the tree with a fixed author and a
 * per-repository clock, so the same `addRepo` call always yields the same commit.
 *
 * Only node:http, node:crypto and node:zlib are used.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { gzipSync } from "node:zlib";

// ---------------------------------------------------------------- public types

/** `gated` as the Hub reports it. */
export type HubGatedMode = false | "auto" | "manual";

/** One file to put into a commit. */
export interface HubFileSpec {
  /** Repository-relative path with `/` separators, e.g. `"onnx/model.onnx"`. */
  path: string;
  /** Strings are stored as UTF-8. */
  content: Buffer | string;
  /**
   * Store the file in LFS: the Hub then answers `/resolve/` with a 302 to the CDN and reports
   * `lfs: {oid: sha256, size, pointerSize}`. Default: true for the usual weight/archive
   * extensions (`.safetensors`, `.bin`, `.pt`, `.gguf`, `.onnx`, `tokenizer.model`, …) or
   * files over 10 MiB, false otherwise.
   */
  lfs?: boolean;
  /**
   * Serve gzip-encoded to clients that send `Accept-Encoding: gzip` (then `Range` is ignored).
   * Default: true for text extensions (`.json`, `.txt`, `.md`, `.py`, `.jinja`, `.yaml`, …)
   * and dot-files such as `.gitattributes`.
   */
  compressible?: boolean;
}

/** A repository to create with `addRepo`. */
export interface HubRepoSpec {
  /** `"org/name"`. */
  id: string;
  /** Files of the first commit on `main`. */
  files?: HubFileSpec[];
  /**
   * Further branches, each a single commit (child of `main`'s first commit) holding exactly
   * these files. A `main` key here replaces `files`. Branch names may contain `/`
   * (`"refs/pr/1"`), which the client must URL-encode.
   */
  branches?: Record<string, HubFileSpec[]>;
  /** Tag name → branch name or 40-hex commit of this repository. */
  tags?: Record<string, string>;
  /** Default false. Gating applies to file contents (`/resolve/`, `/raw/`, auth-check), not to metadata. */
  gated?: HubGatedMode;
  /** Default false. Private repositories answer like missing ones unless the token grants access. */
  private?: boolean;
  /** The token(s) that grant access to a gated or private repository (sent as `Bearer <token>`). */
  token?: string | string[];
  /**
   * The repository was renamed: it lives at `renamedTo` and requests for `id` get a relative
   * 307 to the new name. `files` etc. describe the repository under its new name; when a
   * repository `renamedTo` already exists, leave them out and only the redirect is added.
   */
  renamedTo?: string;
  /** Default false. Content routes answer 403 "Access to this resource is disabled.". */
  disabled?: boolean;
}

/** A file as stored by the imitation, with every id a client may need to check. */
export interface HubFile {
  path: string;
  /** Real content size (for LFS files too). */
  size: number;
  /**
   * The git blob id the Hub reports: tree `oid`, info `blobId` and the `/resolve/` `ETag`.
   * For a regular file this is `sha1("blob " + size + "\0" + content)`. For an LFS file it
   * is the blob id of the LFS *pointer* file (as on the real Hub); verify LFS content by
   * `sha256` instead.
   */
  oid: string;
  /** LFS only: sha256 of the content (`lfs.oid`, `X-Linked-Etag`, the CDN path). */
  sha256?: string;
  /** LFS only: exactly what the tree listing reports under `lfs`. */
  lfs?: { oid: string; size: number; pointerSize: number };
  /** The name a Hub cache gives the blob: `sha256` for LFS files, `oid` otherwise. */
  etag: string;
  /** Whether it is served gzip-encoded to clients that accept gzip. */
  compressible: boolean;
  content: Buffer;
}

/** What `addRepo` and `pushCommit` return. */
export interface HubCommitInfo {
  /** The repository's (current) id. */
  id: string;
  /** The commit just created (for `addRepo`: the head of `main`). */
  commit: string;
  /** The branch that commit is on. */
  branch: string;
  /** The complete file list of `commit`, sorted by path. */
  files: HubFile[];
  /** Every branch of the repository → its head commit. */
  branches: Record<string, string>;
  /** Every tag → its commit. */
  tags: Record<string, string>;
}

export interface HubPushOptions {
  /** Default `"main"`. A branch that does not exist yet is created from `main`. */
  branch?: string;
  /** Paths to delete from the tree. */
  deletes?: string[];
  /** Replace the whole tree with `files` instead of adding/overwriting on top of the head. */
  replace?: boolean;
  /** Also point this tag at the new commit. */
  tag?: string;
  message?: string;
}

/**
 * A fault, injected for one file path (`injectFault(path, fault)`).
 *
 * Which requests it matches:
 * - the path: a repository file path (`"model.safetensors"`, matched on the Hub file routes and,
 *   via the blob's sha256, on the CDN), `"*"` for every file, or a URL path starting with `/`
 *   (`"/api/models/org/name/tree"`), matched as a prefix at segment boundaries on any route,
 *   the API included;
 * - `on`, `request`, `method` and `repo` narrow it down.
 *
 * What it does (at least one): `status` or `expireUrl` (the response is replaced; may be
 * combined with `stallBeforeHeaders`), or the body faults `truncateAfter`, `flipByteAt`,
 * `stallAfterHeaders`, `stallAfterBytes`, `ignoreRange` (combinable with each other and with
 * `stallBeforeHeaders`). A body fault only matches a GET that serves file bytes (not a HEAD,
 * a 302, a 304 or a 416), and only where it would have an effect: `truncateAfter` and
 * `stallAfterBytes.bytes` below the body length, `flipByteAt` inside the served range,
 * `ignoreRange` on a request with `Range`. Matching requests consume the first fault that
 * applies, in injection order; after `times` uses the fault is gone.
 */
export interface HubFault {
  /** Only the Hub's file routes (`/resolve/`, `/raw/`), only the CDN, or only the Hub API. Default: any. */
  on?: "resolve" | "cdn" | "api";
  /** `"full"`: requests without `Range`; `"range"`: with `Range`. Default: both. */
  request?: "full" | "range";
  /** Only this method. Default: any (body faults need GET anyway). */
  method?: "GET" | "HEAD" | "POST";
  /** Only files of this repository (file-path faults). */
  repo?: string;
  /** How many matching requests it affects. Default 1; `Infinity` for all. */
  times?: number;

  /** Answer with this status instead (headers override the defaults; body defaults to `{error}` JSON on the Hub, XML on the CDN). */
  status?: { code: number; headers?: Record<string, string>; body?: string | Buffer };
  /** CDN only: answer 403 `AccessDenied` "Request has expired" although the URL is valid. */
  expireUrl?: boolean;
  /** Wait this many ms before sending anything. */
  stallBeforeHeaders?: number;

  /** Send the headers (with the full `Content-Length`) and only this many body bytes, then destroy the socket. */
  truncateAfter?: number;
  /**
   * Invert the byte at this offset of the file (keeping the length). For gzip responses the
   * offset is into the encoded body; pick one past the 10-byte gzip header (bytes 4-9 are not checked).
   */
  flipByteAt?: number;
  /** Send the headers, then nothing for this many ms, then the body. */
  stallAfterHeaders?: number;
  /** Send `bytes` body bytes, then nothing for `ms`, then the rest. */
  stallAfterBytes?: { bytes: number; ms: number };
  /** Answer a `Range` request with 200 and the full body. */
  ignoreRange?: boolean;
}

/** Returned by `injectFault`: how often it fired, and a way to withdraw it. */
export interface HubFaultHandle {
  readonly hits: number;
  /** Uses left (`Infinity` for unlimited, 0 once consumed or removed). */
  readonly remaining: number;
  remove(): void;
}

/** One logged request. The entry is added when the request arrives and completed as it is answered. */
export interface HubRequestLogEntry {
  host: "hub" | "cdn";
  method: string;
  /** URL path as sent (still percent-encoded), without the query. */
  path: string;
  query: Record<string, string>;
  /** The `Range` header, if any. */
  range: string | undefined;
  /** Whether an `Authorization` header was sent (its value is not kept). */
  authorization: boolean;
  /** Response status; 0 until the response has started. */
  status: number;
  /** `Date.now()` when the request arrived. */
  time: number;
  /** Request headers minus `authorization`. */
  headers: Record<string, string | string[] | undefined>;
  /** Body bytes written for this response. */
  bytes: number;
  /** Repository and file the request was about (Hub file routes; the CDN names the first file holding the blob). */
  repo?: string;
  file?: string;
  /** The injected fault that fired, by its action names, e.g. `"truncateAfter"`. */
  fault?: string;
}

export interface HubConnectionCounts {
  hub: number;
  cdn: number;
  total: number;
}

/** Settings that may also be changed while the server runs (`server.settings.x = …`). */
export interface HubServerSettings {
  /** Lifetime of signed CDN URLs. Default 3600; 0 makes every URL expired on arrival. */
  signedUrlTtlSeconds: number;
  /** Throughput cap of every response body (Hub and CDN), in bytes per second; undefined = unthrottled. */
  bytesPerSecondPerConnection: number | undefined;
  /** Entries per tree page. Default 3. */
  treePageSize: number;
}

export interface HubServerOptions extends Partial<HubServerSettings> {
  /** Extra tokens that authenticate but grant nothing special (to provoke 403 on gated repos). Repository tokens are always valid. */
  tokens?: string[];
  /** Rate-limit quotas per window (defaults: api 1000, resolvers 5000, pages 1000, window 300 s). Past the quota: 429. */
  rateLimit?: { api?: number; resolvers?: number; pages?: number; windowSeconds?: number };
  /** Loopback addresses. Defaults 127.0.0.1 and 127.0.0.2. */
  hubHost?: string;
  cdnHost?: string;
}

export interface HubServer {
  /** `http://127.0.0.1:PORT`, for HF_ENDPOINT. */
  readonly endpoint: string;
  /** `http://127.0.0.2:PORT`. */
  readonly cdnOrigin: string;
  readonly settings: HubServerSettings;
  /** Live request log (cleared in place by `resetLog`). */
  readonly requests: readonly HubRequestLogEntry[];
  /** Currently open responses. */
  readonly inFlight: Readonly<HubConnectionCounts>;
  /** The most responses open at once since start or `resetLog`. */
  readonly maxInFlight: Readonly<HubConnectionCounts>;
  /** Body bytes sent per repository file path (Hub file routes and CDN together), since start or `resetLog`. */
  readonly bytesSent: Readonly<Record<string, number>>;

  addRepo(spec: HubRepoSpec): HubCommitInfo;
  /** Commit `files` on top of a branch head (default `main`), moving the branch. */
  pushCommit(id: string, files: HubFileSpec[], options?: HubPushOptions): HubCommitInfo;
  /** Rename a repository; the old id answers with a relative 307 from then on. */
  renameRepo(oldId: string, newId: string): void;
  /** Add a token that authenticates but grants no access to gated/private repositories. */
  addToken(token: string): void;
  /** The files of a revision (branch, tag or commit), sorted by path. */
  listFiles(id: string, rev?: string): HubFile[];
  /** The 40-hex commit a branch, tag or commit names. */
  resolveRevision(id: string, rev?: string): string;
  /** `${endpoint}/${id}/resolve/${encodeURIComponent(rev)}/${path}` with the path percent-encoded per segment. */
  resolveUrl(id: string, path: string, rev?: string): string;
  /** A signed CDN URL for a blob, as the Hub's 302 would give (ttl defaults to `settings.signedUrlTtlSeconds`). */
  signCdnUrl(sha256: string, ttlSeconds?: number): string;

  injectFault(path: string, fault: HubFault): HubFaultHandle;
  clearFaults(): void;
  /** Clear `requests`, `bytesSent` and `maxInFlight` (to the current in-flight counts). */
  resetLog(): void;
  /** Stop both servers, destroying open connections and ending stalls at once. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------- small exported helpers

/** Git blob id: `sha1("blob " + size + "\0" + bytes)`. */
export function gitBlobOid(content: Buffer | string): string {
  return gitObjectId("blob", toBuffer(content));
}

/** Deterministic pseudo-random bytes (sha256 in counter mode) for fixture content. */
export function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let offset = 0;
  for (let counter = 0; offset < size; counter++) {
    const block = createHash("sha256").update(`${seed}\0${counter}`).digest();
    offset += block.copy(out, offset);
  }
  return out;
}

export async function startHubServer(options: HubServerOptions = {}): Promise<HubServer> {
  const server = new HubServerImpl(options);
  await server.listen(options.hubHost ?? "127.0.0.1", options.cdnHost ?? "127.0.0.2");
  return server;
}

// ---------------------------------------------------------------- internals

const LFS_EXTENSIONS = new Set([
  "safetensors", "bin", "pt", "pth", "ckpt", "gguf", "ggml", "onnx", "h5", "msgpack", "tflite", "npy", "npz",
  "pkl", "pickle", "joblib", "model", "zip", "tar", "gz", "tgz", "xz", "7z", "zst", "arrow", "parquet", "ot", "mlmodel", "wasm",
]);
const TEXT_EXTENSIONS = new Set([
  "json", "jsonl", "txt", "md", "py", "jinja", "yaml", "yml", "csv", "tsv", "xml", "html", "js", "ts", "toml", "cfg", "ini", "sh",
]);
const LFS_SIZE_THRESHOLD = 10 * 1024 * 1024;
const BASE_TIME_MS = Date.UTC(2025, 0, 1);
const AUTHOR = "Hub Fixture <hub-fixture@example.invalid>";
const GATED_401 = (id: string) => `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`;
const GATED_403 = (id: string) => `Access to model ${id} is restricted and you are not in the authorized list. Visit https://huggingface.co/${id} to ask for access.`;
const S3_ONE_AUTH =
  "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified";

interface StoredFile {
  path: string;
  content: Buffer;
  oid: string;
  sha256?: string;
  pointer?: Buffer;
  compressible: boolean;
}

interface TreeEntry {
  type: "file" | "directory";
  path: string;
  oid: string;
  size: number;
  file?: StoredFile;
}

interface Commit {
  sha: string;
  parent: string | undefined;
  message: string;
  date: Date;
  files: Map<string, StoredFile>;
  /** Directory path ("" = root) → tree id. */
  dirs: Map<string, string>;
  /** Directory path → its direct children (git order). */
  children: Map<string, TreeEntry[]>;
}

interface Repo {
  id: string;
  private: boolean;
  gated: HubGatedMode;
  disabled: boolean;
  tokens: Set<string>;
  commits: Map<string, Commit>;
  branches: Map<string, string>;
  tags: Map<string, string>;
  createdAt: Date;
  objectId: string;
  clock: number;
}

interface Blob {
  content: Buffer;
  compressible: boolean;
  md5: string;
  refs: { repo: Repo; path: string }[];
}

interface FaultState {
  path: string;
  fault: HubFault;
  remaining: number;
  hits: number;
}

interface FileRef {
  repo: string;
  path: string;
}

type Area = "api" | "resolve" | "cdn" | "other";
type Bucket = "api" | "resolvers" | "pages";

interface Ctx {
  host: "hub" | "cdn";
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  method: string;
  entry: HubRequestLogEntry;
  abort: AbortController;
  /** Headers every response of this request carries (rate limits on the Hub). */
  base: Record<string, string>;
  area: Area;
}

type RangeResult = { kind: "none" } | { kind: "ok"; start: number; end: number } | { kind: "unsatisfiable" };

type Access = { kind: "invalid" } | { kind: "none" } | { kind: "token"; token: string };

type HubRoute =
  | { kind: "info"; id: string; rev: string | undefined }
  | { kind: "tree"; id: string; rev: string; path: string }
  | { kind: "paths-info"; id: string; rev: string }
  | { kind: "auth-check"; id: string }
  | { kind: "xet-read-token"; id: string }
  | { kind: "file"; id: string; mode: "resolve" | "raw"; rev: string; path: string }
  | { kind: "unknown" };

const BODY_FAULT_KEYS = ["truncateAfter", "flipByteAt", "stallAfterHeaders", "stallAfterBytes", "ignoreRange"] as const;

function toBuffer(content: Buffer | string): Buffer {
  return typeof content === "string" ? Buffer.from(content, "utf8") : content;
}

function gitObjectId(type: string, body: Buffer): string {
  return createHash("sha1").update(`${type} ${body.length}\0`).update(body).digest("hex");
}

function extensionOf(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot <= 0 ? "" : base.slice(dot + 1).toLowerCase();
}

function isDotFile(path: string): boolean {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.startsWith(".") && base.indexOf(".", 1) === -1;
}

function validatePath(path: string): void {
  if (!path || path.startsWith("/") || path.endsWith("/") || path.includes("\\") || path.split("/").some((s) => s === "" || s === "." || s === ".."))
    throw new Error(`hub-server: invalid file path ${JSON.stringify(path)}`);
}

function validateRepoId(id: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) throw new Error(`hub-server: repository ids are "org/name", got ${JSON.stringify(id)}`);
}

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: "none" };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!m) return { kind: "none" }; // multi-range or garbage: ignored, like S3
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return { kind: "none" };
  if (a === "") {
    const n = Number(b);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "ok", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== "" && Number(b) < start) return { kind: "none" };
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "ok", start, end: b === "" ? size - 1 : Math.min(Number(b), size - 1) };
}

function acceptsGzip(header: string | string[] | undefined): boolean {
  const value = Array.isArray(header) ? header.join(",") : header;
  if (!value) return false;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const part of value.split(",")) {
    const [coding = "", ...params] = part.trim().toLowerCase().split(";");
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (coding.trim() === "gzip") gzip = q;
    else if (coding.trim() === "*") star = q;
  }
  return (gzip ?? star ?? 0) > 0;
}

function xmlError(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>FIXTURE</RequestId></Error>`;
}

function describeFault(f: HubFault): string {
  const keys = ["status", "expireUrl", "stallBeforeHeaders", ...BODY_FAULT_KEYS] as const;
  return keys.filter((k) => f[k] !== undefined && f[k] !== false).join("+");
}

const gzipCache = new WeakMap<Buffer, Buffer>();
function gzipOf(content: Buffer): Buffer {
  let gz = gzipCache.get(content);
  if (!gz) {
    gz = gzipSync(content);
    gzipCache.set(content, gz);
  }
  return gz;
}

class HubServerImpl implements HubServer {
  endpoint = "";
  cdnOrigin = "";
  readonly settings: HubServerSettings;
  readonly requests: HubRequestLogEntry[] = [];
  readonly bytesSent: Record<string, number> = {};
  readonly inFlight: HubConnectionCounts = { hub: 0, cdn: 0, total: 0 };
  readonly maxInFlight: HubConnectionCounts = { hub: 0, cdn: 0, total: 0 };

  private readonly repos = new Map<string, Repo>();
  private readonly aliases = new Map<string, string>();
  private readonly blobs = new Map<string, Blob>();
  private readonly faults: FaultState[] = [];
  private readonly tokens = new Set<string>();
  private readonly secret = randomBytes(32);
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<NonNullable<ServerResponse["socket"]>>();
  private readonly active = new Set<AbortController>();
  private readonly quotas: Record<Bucket, number>;
  private readonly windowSeconds: number;
  private windowStart = Date.now();
  private readonly used: Record<Bucket, number> = { api: 0, resolvers: 0, pages: 0 };

  constructor(options: HubServerOptions) {
    this.settings = {
      signedUrlTtlSeconds: options.signedUrlTtlSeconds ?? 3600,
      bytesPerSecondPerConnection: options.bytesPerSecondPerConnection,
      treePageSize: options.treePageSize ?? 3,
    };
    for (const t of options.tokens ?? []) this.tokens.add(t);
    this.quotas = { api: options.rateLimit?.api ?? 1000, resolvers: options.rateLimit?.resolvers ?? 5000, pages: options.rateLimit?.pages ?? 1000 };
    this.windowSeconds = options.rateLimit?.windowSeconds ?? 300;
  }

  async listen(hubHost: string, cdnHost: string): Promise<void> {
    const start = async (host: "hub" | "cdn", address: string, advertised = address): Promise<string> => {
      const server = createServer((req, res) => this.dispatch(host, req, res));
      server.on("connection", (socket) => {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
      });
      this.servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, address, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const addr = server.address();
      if (addr === null || typeof addr === "string") throw new Error("hub-server: no TCP address");
      return `http://${advertised}:${addr.port}`;
    };
    this.endpoint = await start("hub", hubHost);
    try {
      this.cdnOrigin = await start("cdn", cdnHost);
    } catch (err) {
      // Only Linux routes all of 127.0.0.0/8 to loopback. Elsewhere keep a different host
      // *name* for the CDN: "localhost" on the Hub's address.
      if ((err as NodeJS.ErrnoException).code !== "EADDRNOTAVAIL" || cdnHost !== "127.0.0.2") throw err;
      this.servers.pop();
      this.cdnOrigin = await start("cdn", hubHost, "localhost");
    }
  }

  async close(): Promise<void> {
    for (const a of this.active) a.abort();
    for (const s of this.sockets) s.destroy();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.closeAllConnections();
            s.close(() => resolve());
          }),
      ),
    );
  }

  // ------------------------------------------------------------ repository state

  addRepo(spec: HubRepoSpec): HubCommitInfo {
    validateRepoId(spec.id);
    const tokens = spec.token === undefined ? [] : Array.isArray(spec.token) ? spec.token : [spec.token];
    if (spec.renamedTo !== undefined) {
      validateRepoId(spec.renamedTo);
      if (this.repos.has(spec.id) || this.aliases.has(spec.id)) throw new Error(`hub-server: ${spec.id} already exists`);
      const existing = this.repos.get(spec.renamedTo);
      if (existing) {
        if (spec.files || spec.branches || spec.tags) throw new Error(`hub-server: ${spec.renamedTo} exists; a rename to it takes no files`);
        this.aliases.set(spec.id, spec.renamedTo);
        return this.commitInfo(existing, "main", this.head(existing, "main"));
      }
      const info = this.addRepo({ ...spec, id: spec.renamedTo, renamedTo: undefined });
      this.aliases.set(spec.id, spec.renamedTo);
      return info;
    }
    if (this.repos.has(spec.id) || this.aliases.has(spec.id)) throw new Error(`hub-server: ${spec.id} already exists`);
    const branches = { ...spec.branches };
    const mainFiles = branches.main ?? spec.files ?? [];
    if (branches.main && spec.files) throw new Error("hub-server: give main's files either as `files` or as `branches.main`");
    delete branches.main;
    const repo: Repo = {
      id: spec.id,
      private: spec.private ?? false,
      gated: spec.gated ?? false,
      disabled: spec.disabled ?? false,
      tokens: new Set(tokens),
      commits: new Map(),
      branches: new Map(),
      tags: new Map(),
      createdAt: new Date(BASE_TIME_MS),
      objectId: createHash("sha1").update(spec.id).digest("hex").slice(0, 24),
      clock: 0,
    };
    for (const t of tokens) this.tokens.add(t);
    this.repos.set(repo.id, repo);
    const main = this.commit(repo, this.storeFiles(repo, mainFiles, new Map()), undefined, "initial commit");
    repo.branches.set("main", main.sha);
    for (const [name, files] of Object.entries(branches)) {
      const c = this.commit(repo, this.storeFiles(repo, files, new Map()), main.sha, `branch ${name}`);
      repo.branches.set(name, c.sha);
    }
    for (const [tag, target] of Object.entries(spec.tags ?? {})) repo.tags.set(tag, this.resolveRevision(repo.id, target));
    return this.commitInfo(repo, "main", main);
  }

  pushCommit(id: string, files: HubFileSpec[], options: HubPushOptions = {}): HubCommitInfo {
    const repo = this.repoOrThrow(id);
    const branch = options.branch ?? "main";
    const parentSha = repo.branches.get(branch) ?? repo.branches.get("main");
    const parent = parentSha === undefined ? undefined : repo.commits.get(parentSha);
    const tree = new Map(options.replace || !parent ? [] : parent.files);
    for (const path of options.deletes ?? []) {
      if (!tree.delete(path)) throw new Error(`hub-server: cannot delete ${path}: not in ${id}@${branch}`);
    }
    const c = this.commit(repo, this.storeFiles(repo, files, tree), parentSha, options.message ?? `update ${branch}`);
    repo.branches.set(branch, c.sha);
    if (options.tag !== undefined) repo.tags.set(options.tag, c.sha);
    return this.commitInfo(repo, branch, c);
  }

  renameRepo(oldId: string, newId: string): void {
    validateRepoId(newId);
    const repo = this.repoOrThrow(oldId);
    if (this.repos.has(newId) || this.aliases.has(newId)) throw new Error(`hub-server: ${newId} already exists`);
    this.repos.delete(repo.id);
    this.aliases.set(repo.id, newId);
    repo.id = newId;
    this.repos.set(newId, repo);
  }

  addToken(token: string): void {
    this.tokens.add(token);
  }

  listFiles(id: string, rev = "main"): HubFile[] {
    const repo = this.repoOrThrow(id);
    const c = this.findCommit(repo, rev);
    if (!c) throw new Error(`hub-server: no revision ${rev} in ${id}`);
    return this.fileInfos(c);
  }

  resolveRevision(id: string, rev = "main"): string {
    const repo = this.repoOrThrow(id);
    const c = this.findCommit(repo, rev);
    if (!c) throw new Error(`hub-server: no revision ${rev} in ${id}`);
    return c.sha;
  }

  resolveUrl(id: string, path: string, rev = "main"): string {
    return `${this.endpoint}/${id}/resolve/${encodeURIComponent(rev)}/${encodePath(path)}`;
  }

  signCdnUrl(sha256: string, ttlSeconds = this.settings.signedUrlTtlSeconds): string {
    const path = `/cdn/${sha256}`;
    const expires = Math.floor(Date.now() / 1000) + ttlSeconds;
    return `${this.cdnOrigin}${path}?Expires=${expires}&Signature=${this.signature(path, String(expires))}`;
  }

  private signature(path: string, expires: string): string {
    return createHmac("sha256", this.secret).update(`${path}\n${expires}`).digest("hex");
  }

  private repoOrThrow(id: string): Repo {
    const repo = this.repos.get(this.canonicalId(id) ?? id);
    if (!repo) throw new Error(`hub-server: no repository ${id}`);
    return repo;
  }

  private canonicalId(id: string): string | undefined {
    let current = id;
    for (let i = 0; i < 32 && !this.repos.has(current); i++) {
      const next = this.aliases.get(current);
      if (next === undefined) return undefined;
      current = next;
    }
    return this.repos.has(current) ? current : undefined;
  }

  private head(repo: Repo, branch: string): Commit {
    const sha = repo.branches.get(branch);
    const c = sha === undefined ? undefined : repo.commits.get(sha);
    if (!c) throw new Error(`hub-server: no branch ${branch} in ${repo.id}`);
    return c;
  }

  private findCommit(repo: Repo, rev: string): Commit | undefined {
    if (/^[0-9a-f]{40}$/.test(rev)) {
      const c = repo.commits.get(rev);
      if (c) return c;
    }
    const sha = repo.branches.get(rev) ?? repo.tags.get(rev);
    return sha === undefined ? undefined : repo.commits.get(sha);
  }

  private storeFiles(repo: Repo, specs: HubFileSpec[], into: Map<string, StoredFile>): Map<string, StoredFile> {
    for (const spec of specs) {
      validatePath(spec.path);
      const content = toBuffer(spec.content);
      const ext = extensionOf(spec.path);
      const base = spec.path.slice(spec.path.lastIndexOf("/") + 1);
      const lfs = spec.lfs ?? (LFS_EXTENSIONS.has(ext) || content.length > LFS_SIZE_THRESHOLD);
      const compressible = spec.compressible ?? (TEXT_EXTENSIONS.has(ext) || isDotFile(spec.path) || base === "LICENSE");
      let file: StoredFile;
      if (lfs) {
        const sha256 = createHash("sha256").update(content).digest("hex");
        const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${content.length}\n`);
        file = { path: spec.path, content, oid: gitBlobOid(pointer), sha256, pointer, compressible };
        let blob = this.blobs.get(sha256);
        if (!blob) {
          blob = { content, compressible, md5: createHash("md5").update(content).digest("hex"), refs: [] };
          this.blobs.set(sha256, blob);
        }
        if (!blob.refs.some((r) => r.repo === repo && r.path === spec.path)) blob.refs.push({ repo, path: spec.path });
      } else {
        file = { path: spec.path, content, oid: gitBlobOid(content), compressible };
      }
      into.set(spec.path, file);
    }
    return into;
  }

  private commit(repo: Repo, files: Map<string, StoredFile>, parent: string | undefined, message: string): Commit {
    interface DirNode {
      files: Map<string, StoredFile>;
      dirs: Map<string, DirNode>;
    }
    const root: DirNode = { files: new Map(), dirs: new Map() };
    for (const file of files.values()) {
      const parts = file.path.split("/");
      const name = parts.pop()!;
      let node = root;
      for (const part of parts) {
        if (node.files.has(part)) throw new Error(`hub-server: ${file.path} needs a directory where a file is`);
        let next = node.dirs.get(part);
        if (!next) {
          next = { files: new Map(), dirs: new Map() };
          node.dirs.set(part, next);
        }
        node = next;
      }
      if (node.dirs.has(name)) throw new Error(`hub-server: ${file.path} is also a directory`);
      node.files.set(name, file);
    }
    const dirs = new Map<string, string>();
    const children = new Map<string, TreeEntry[]>();
    const visit = (node: DirNode, prefix: string): string => {
      const items = [
        ...[...node.files].map(([name, f]) => ({ name, key: name, file: f as StoredFile | undefined, dir: undefined as DirNode | undefined })),
        ...[...node.dirs].map(([name, d]) => ({ name, key: `${name}/`, file: undefined as StoredFile | undefined, dir: d as DirNode | undefined })),
      ].sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
      const parts: Buffer[] = [];
      const list: TreeEntry[] = [];
      for (const item of items) {
        const path = prefix ? `${prefix}/${item.name}` : item.name;
        if (item.file) {
          parts.push(Buffer.from(`100644 ${item.name}\0`), Buffer.from(item.file.oid, "hex"));
          list.push({ type: "file", path, oid: item.file.oid, size: item.file.content.length, file: item.file });
        } else if (item.dir) {
          const oid = visit(item.dir, path);
          parts.push(Buffer.from(`40000 ${item.name}\0`), Buffer.from(oid, "hex"));
          list.push({ type: "directory", path, oid, size: 0 });
        }
      }
      const oid = gitObjectId("tree", Buffer.concat(parts));
      dirs.set(prefix, oid);
      children.set(prefix, list);
      return oid;
    };
    const rootTree = visit(root, "");
    const date = new Date(BASE_TIME_MS + repo.clock++ * 60_000);
    const stamp = `${Math.floor(date.getTime() / 1000)} +0000`;
    const body = `tree ${rootTree}\n${parent ? `parent ${parent}\n` : ""}author ${AUTHOR} ${stamp}\ncommitter ${AUTHOR} ${stamp}\n\n${message}\n`;
    const c: Commit = { sha: gitObjectId("commit", Buffer.from(body)), parent, message, date, files, dirs, children };
    repo.commits.set(c.sha, c);
    return c;
  }

  private fileInfos(c: Commit): HubFile[] {
    return [...c.files.values()]
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      .map((f) => ({
        path: f.path,
        size: f.content.length,
        oid: f.oid,
        ...(f.sha256 ? { sha256: f.sha256, lfs: { oid: f.sha256, size: f.content.length, pointerSize: f.pointer!.length } } : {}),
        etag: f.sha256 ?? f.oid,
        compressible: f.compressible,
        content: f.content,
      }));
  }

  private commitInfo(repo: Repo, branch: string, c: Commit): HubCommitInfo {
    return {
      id: repo.id,
      commit: c.sha,
      branch,
      files: this.fileInfos(c),
      branches: Object.fromEntries(repo.branches),
      tags: Object.fromEntries(repo.tags),
    };
  }

  // ------------------------------------------------------------ faults and log

  injectFault(path: string, fault: HubFault): HubFaultHandle {
    const times = fault.times ?? 1;
    if (!(times >= 1) || (!Number.isInteger(times) && times !== Infinity)) throw new Error("hub-server: fault.times must be a positive integer or Infinity");
    const terminal = fault.status !== undefined || fault.expireUrl === true;
    const body = BODY_FAULT_KEYS.some((k) => fault[k] !== undefined && fault[k] !== false);
    if (!terminal && !body && fault.stallBeforeHeaders === undefined) throw new Error("hub-server: a fault needs an action");
    if (fault.status !== undefined && fault.expireUrl) throw new Error("hub-server: status and expireUrl exclude each other");
    if (terminal && body) throw new Error("hub-server: status/expireUrl cannot be combined with body faults");
    if (fault.expireUrl && fault.on !== undefined && fault.on !== "cdn") throw new Error("hub-server: expireUrl only applies to the CDN");
    const state: FaultState = { path, fault, remaining: times, hits: 0 };
    this.faults.push(state);
    const faults = this.faults;
    return {
      get hits() {
        return state.hits;
      },
      get remaining() {
        return state.remaining;
      },
      remove() {
        state.remaining = 0;
        const i = faults.indexOf(state);
        if (i >= 0) faults.splice(i, 1);
      },
    };
  }

  clearFaults(): void {
    for (const f of this.faults) f.remaining = 0;
    this.faults.length = 0;
  }

  resetLog(): void {
    this.requests.length = 0;
    for (const k of Object.keys(this.bytesSent)) delete this.bytesSent[k];
    Object.assign(this.maxInFlight, this.inFlight);
  }

  /**
   * The first live fault matching this request in the given phase, consumed. `applies` checks
   * the phase-specific conditions (body coverage etc.).
   */
  private takeFault(ctx: Ctx, phase: "request" | "body", refs: FileRef[], applies: (f: HubFault) => boolean = () => true): HubFault | undefined {
    for (const state of this.faults) {
      const f = state.fault;
      if (state.remaining <= 0) continue;
      const isBody = BODY_FAULT_KEYS.some((k) => f[k] !== undefined && f[k] !== false);
      if ((phase === "body") !== isBody) continue;
      if (f.on !== undefined && f.on !== ctx.area) continue;
      if (f.method !== undefined && f.method !== ctx.method) continue;
      const hasRange = ctx.req.headers.range !== undefined;
      if (f.request === "range" && !hasRange) continue;
      if (f.request === "full" && hasRange) continue;
      if (f.expireUrl && ctx.area !== "cdn") continue;
      if (!this.faultPathMatches(state, ctx, refs)) continue;
      if (!applies(f)) continue;
      state.remaining--;
      state.hits++;
      if (state.remaining <= 0) this.faults.splice(this.faults.indexOf(state), 1);
      ctx.entry.fault = describeFault(f);
      return f;
    }
    return undefined;
  }

  private faultPathMatches(state: FaultState, ctx: Ctx, refs: FileRef[]): boolean {
    const p = state.path;
    if (p.startsWith("/")) {
      const path = ctx.url.pathname;
      return path === p || path.startsWith(p.endsWith("/") ? p : `${p}/`);
    }
    const repo = state.fault.repo;
    if (p === "*") return refs.some((r) => repo === undefined || r.repo === repo);
    return refs.some((r) => r.path === p && (repo === undefined || r.repo === repo));
  }

  // ------------------------------------------------------------ HTTP plumbing

  private dispatch(host: "hub" | "cdn", req: IncomingMessage, res: ServerResponse): void {
    const origin = host === "hub" ? this.endpoint : this.cdnOrigin;
    const target = req.url ?? "/";
    // origin + path, so that a path like "//x" stays a path instead of naming a host
    const url = target.startsWith("/") ? new URL(origin + target) : new URL(target, origin);
    const { authorization, ...headers } = req.headers;
    const entry: HubRequestLogEntry = {
      host,
      method: req.method ?? "GET",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      range: typeof req.headers.range === "string" ? req.headers.range : undefined,
      authorization: authorization !== undefined,
      status: 0,
      time: Date.now(),
      headers,
      bytes: 0,
    };
    this.requests.push(entry);
    this.inFlight[host]++;
    this.inFlight.total++;
    this.maxInFlight[host] = Math.max(this.maxInFlight[host], this.inFlight[host]);
    this.maxInFlight.total = Math.max(this.maxInFlight.total, this.inFlight.total);
    const abort = new AbortController();
    this.active.add(abort);
    res.on("close", () => {
      this.inFlight[host]--;
      this.inFlight.total--;
      this.active.delete(abort);
      abort.abort();
    });
    const ctx: Ctx = { host, req, res, url, method: entry.method, entry, abort, base: {}, area: host === "cdn" ? "cdn" : "other" };
    const work = host === "hub" ? this.handleHub(ctx) : this.handleCdn(ctx);
    work.catch((err: unknown) => {
      if (!res.headersSent) {
        this.send(ctx, 500, { "Content-Type": "text/plain; charset=utf-8" }, `hub-server: ${err instanceof Error ? err.stack : String(err)}`);
      } else {
        res.destroy();
      }
    });
  }

  private writeHead(ctx: Ctx, status: number, headers: Record<string, string | number>): void {
    ctx.entry.status = status;
    ctx.res.writeHead(status, { ...ctx.base, ...headers });
  }

  /** A complete small response (no body on HEAD, Content-Length always). */
  private send(ctx: Ctx, status: number, headers: Record<string, string | number>, body: string | Buffer = ""): void {
    const buf = toBuffer(body);
    this.writeHead(ctx, status, { "Content-Length": buf.length, ...headers });
    ctx.res.end(ctx.method === "HEAD" ? undefined : buf);
  }

  private hubError(ctx: Ctx, status: number, message: string, code?: string, extra: Record<string, string> = {}): void {
    this.send(
      ctx,
      status,
      {
        "Content-Type": "application/json; charset=utf-8",
        "X-Error-Message": message,
        ...(code ? { "X-Error-Code": code } : {}),
        ...extra,
      },
      JSON.stringify({ error: message }),
    );
  }

  private json(ctx: Ctx, value: unknown, headers: Record<string, string> = {}): void {
    this.send(ctx, 200, { "Content-Type": "application/json; charset=utf-8", ...headers }, JSON.stringify(value));
  }

  private sleep(ctx: Ctx, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const signal = ctx.abort.signal;
      if (signal.aborted) return resolve(false);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Write a chunk and wait until the socket has taken it (or the response is gone). */
  private writeChunk(ctx: Ctx, chunk: Buffer): Promise<boolean> {
    return new Promise((resolve) => {
      const signal = ctx.abort.signal;
      if (signal.aborted || ctx.res.destroyed) return resolve(false);
      const onAbort = () => resolve(false);
      signal.addEventListener("abort", onAbort, { once: true });
      ctx.res.write(chunk, (err) => {
        signal.removeEventListener("abort", onAbort);
        resolve(!err && !signal.aborted);
      });
    });
  }

  private countBytes(ctx: Ctx, n: number): void {
    ctx.entry.bytes += n;
    if (ctx.entry.file !== undefined) this.bytesSent[ctx.entry.file] = (this.bytesSent[ctx.entry.file] ?? 0) + n;
  }

  /** Stream a body with the throughput cap and the body faults. Headers must be written. */
  private async writeBody(ctx: Ctx, body: Buffer, fault: HubFault | undefined): Promise<void> {
    const { res } = ctx;
    const truncate = fault?.truncateAfter;
    const limit = truncate !== undefined ? Math.min(truncate, body.length) : body.length;
    let stall = fault?.stallAfterBytes;
    res.flushHeaders();
    if (fault?.stallAfterHeaders !== undefined && !(await this.sleep(ctx, fault.stallAfterHeaders))) return;
    let sent = 0;
    let t0 = Date.now();
    while (sent < limit || (stall && sent === stall.bytes)) {
      if (stall && sent === stall.bytes) {
        const before = Date.now();
        if (!(await this.sleep(ctx, stall.ms))) return;
        t0 += Date.now() - before;
        stall = undefined;
        continue;
      }
      const rate = this.settings.bytesPerSecondPerConnection;
      const chunkSize = rate ? Math.max(1, Math.min(64 * 1024, Math.floor(rate / 20))) : 256 * 1024;
      let end = Math.min(limit, sent + chunkSize);
      if (stall && sent < stall.bytes) end = Math.min(end, stall.bytes);
      const chunk = body.subarray(sent, end);
      this.countBytes(ctx, chunk.length);
      if (!(await this.writeChunk(ctx, chunk))) return;
      sent = end;
      if (rate) {
        const wait = t0 + (sent / rate) * 1000 - Date.now();
        if (wait > 0 && !(await this.sleep(ctx, wait))) return;
      }
    }
    if (truncate !== undefined && truncate < body.length) {
      // Make sure the headers (when nothing else was written) are out, then cut the connection.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const socket = res.socket;
      if (socket && !socket.destroyed && socket.writableLength > 0) await new Promise<void>((resolve) => socket.write(Buffer.alloc(0), () => resolve()));
      res.destroy();
      return;
    }
    res.end();
  }

  /**
   * Serve file bytes: gzip when accepted and compressible (ignoring Range), else Range/206/416.
   * `headers` are the route's own (ETag etc.); `refs` identify the file for faults.
   */
  private async serveBytes(
    ctx: Ctx,
    content: Buffer,
    compressible: boolean,
    headers: Record<string, string | number>,
    refs: FileRef[],
    unsatisfiable: (size: number) => { type: string; body: string },
  ): Promise<void> {
    const size = content.length;
    const gzip = compressible && acceptsGzip(ctx.req.headers["accept-encoding"]);
    const range = gzip ? ({ kind: "none" } as RangeResult) : parseRange(typeof ctx.req.headers.range === "string" ? ctx.req.headers.range : undefined, size);
    const hasRange = ctx.req.headers.range !== undefined;
    const gz = gzip ? gzipOf(content) : undefined;
    const fault =
      ctx.method === "GET"
        ? this.takeFault(ctx, "body", refs, (f) => {
            const r = f.ignoreRange ? ({ kind: "none" } as RangeResult) : range;
            if (r.kind === "unsatisfiable") return false;
            const [from, to] = gz ? [0, gz.length] : r.kind === "ok" ? [r.start, r.end + 1] : [0, size];
            const length = to - from;
            if (f.ignoreRange && !hasRange) return false;
            if (f.truncateAfter !== undefined && !(f.truncateAfter < length)) return false;
            if (f.stallAfterBytes !== undefined && !(f.stallAfterBytes.bytes < length)) return false;
            if (f.flipByteAt !== undefined && !(f.flipByteAt >= from && f.flipByteAt < to)) return false;
            return true;
          })
        : undefined;
    if (fault?.stallBeforeHeaders !== undefined && !(await this.sleep(ctx, fault.stallBeforeHeaders))) return;
    const effective = fault?.ignoreRange ? ({ kind: "none" } as RangeResult) : range;

    if (effective.kind === "unsatisfiable") {
      const e = unsatisfiable(size);
      this.send(ctx, 416, { ...headers, "Content-Type": e.type, "Content-Range": `bytes */${size}`, "Accept-Ranges": "bytes" }, e.body);
      return;
    }
    let body: Buffer;
    if (gz) {
      body = gz;
      this.writeHead(ctx, 200, { ...headers, "Content-Encoding": "gzip", Vary: "Accept-Encoding", "Accept-Ranges": "bytes" });
    } else if (effective.kind === "ok") {
      body = content.subarray(effective.start, effective.end + 1);
      this.writeHead(ctx, 206, {
        ...headers,
        "Accept-Ranges": "bytes",
        "Content-Length": body.length,
        "Content-Range": `bytes ${effective.start}-${effective.end}/${size}`,
      });
    } else {
      body = content;
      this.writeHead(ctx, 200, { ...headers, "Accept-Ranges": "bytes", "Content-Length": size });
    }
    if (ctx.method === "HEAD") {
      ctx.res.end();
      return;
    }
    if (fault?.flipByteAt !== undefined) {
      const offset = gz ? fault.flipByteAt : fault.flipByteAt - (effective.kind === "ok" ? effective.start : 0);
      body = Buffer.from(body);
      body[offset] = body[offset]! ^ 0xff;
    }
    await this.writeBody(ctx, body, fault);
  }

  /** Apply a request-phase fault (status/expire/stall). Returns true when the response was sent. */
  private async requestFault(ctx: Ctx, refs: FileRef[]): Promise<boolean> {
    const fault = this.takeFault(ctx, "request", refs);
    if (!fault) return false;
    if (fault.stallBeforeHeaders !== undefined && !(await this.sleep(ctx, fault.stallBeforeHeaders))) return true;
    if (fault.expireUrl) {
      this.send(ctx, 403, { "Content-Type": "application/xml" }, xmlError("AccessDenied", "Request has expired"));
      return true;
    }
    if (fault.status) {
      const { code, headers = {}, body } = fault.status;
      const text = STATUS_CODES[code] ?? "Error";
      const defaults =
        ctx.host === "cdn"
          ? { type: "application/xml", body: xmlError(text.replace(/\s+/g, ""), text) }
          : { type: "application/json; charset=utf-8", body: JSON.stringify({ error: text }) };
      this.send(ctx, code, { "Content-Type": defaults.type, ...headers }, body ?? defaults.body);
      return true;
    }
    return false;
  }

  // ------------------------------------------------------------ the Hub

  private parseHubRoute(ctx: Ctx): HubRoute {
    const raw = ctx.url.pathname.split("/").slice(1);
    const segs = raw.map(safeDecode);
    if (segs.some((s) => s === undefined)) return { kind: "unknown" };
    const s = segs as string[];
    const id = (a: number) => `${s[a]}/${s[a + 1]}`;
    if (s[0] === "api" && s[1] === "models" && s.length >= 4 && s[2] && s[3]) {
      const rest = s.slice(4);
      const method = ctx.method;
      if (rest.length === 0 && (method === "GET" || method === "HEAD")) return { kind: "info", id: id(2), rev: undefined };
      if (rest[0] === "revision" && rest.length >= 2 && (method === "GET" || method === "HEAD")) return { kind: "info", id: id(2), rev: rest.slice(1).join("/") };
      if (rest[0] === "tree" && rest.length >= 2 && rest[1] && (method === "GET" || method === "HEAD"))
        return { kind: "tree", id: id(2), rev: rest[1], path: rest.slice(2).filter(Boolean).join("/") };
      if (rest[0] === "paths-info" && rest.length >= 2 && method === "POST") return { kind: "paths-info", id: id(2), rev: rest.slice(1).join("/") };
      if (rest[0] === "auth-check" && rest.length === 1 && method === "GET") return { kind: "auth-check", id: id(2) };
      if (rest[0] === "xet-read-token" && method === "GET") return { kind: "xet-read-token", id: id(2) };
      return { kind: "unknown" };
    }
    if (s[0] !== "api" && s.length >= 5 && (s[2] === "resolve" || s[2] === "raw") && s[3] && (ctx.method === "GET" || ctx.method === "HEAD")) {
      const path = s.slice(4).join("/");
      if (path) return { kind: "file", id: id(0), mode: s[2], rev: s[3], path };
    }
    return { kind: "unknown" };
  }

  private rateHeaders(bucket: Bucket): { headers: Record<string, string>; exceeded: boolean; reset: number } {
    const now = Date.now();
    if (now >= this.windowStart + this.windowSeconds * 1000) {
      this.windowStart = now;
      this.used.api = this.used.resolvers = this.used.pages = 0;
    }
    this.used[bucket]++;
    const quota = this.quotas[bucket];
    const remaining = Math.max(0, quota - this.used[bucket]);
    const reset = Math.max(1, Math.ceil((this.windowStart + this.windowSeconds * 1000 - now) / 1000));
    return {
      headers: {
        RateLimit: `"${bucket}";r=${remaining};t=${reset}`,
        "RateLimit-Policy": `"fixed window";"${bucket}";q=${quota};w=${this.windowSeconds}`,
      },
      exceeded: this.used[bucket] > quota,
      reset,
    };
  }

  private async handleHub(ctx: Ctx): Promise<void> {
    const route = this.parseHubRoute(ctx);
    ctx.area = route.kind === "file" ? "resolve" : ctx.url.pathname.startsWith("/api/") ? "api" : "other";
    const rate = this.rateHeaders(route.kind === "file" ? "resolvers" : route.kind === "unknown" ? (ctx.area === "api" ? "api" : "pages") : "api");
    ctx.base = rate.headers;
    if (ctx.method !== "GET" && ctx.method !== "HEAD" && route.kind !== "paths-info") ctx.req.resume();

    const refs: FileRef[] = [];
    if (route.kind === "file") {
      const repoId = this.canonicalId(route.id) ?? route.id;
      refs.push({ repo: repoId, path: route.path });
      ctx.entry.repo = repoId;
      ctx.entry.file = route.path;
    }
    if (await this.requestFault(ctx, refs)) return;
    if (rate.exceeded) {
      this.hubError(ctx, 429, `You have been rate-limited; you can retry this action in about ${rate.reset} seconds.`, undefined, { "Retry-After": String(rate.reset) });
      return;
    }
    switch (route.kind) {
      case "unknown":
        return this.hubError(ctx, 404, "Sorry, we can't find the page you are looking for.");
      case "xet-read-token":
        return this.hubError(ctx, 404, "Xet storage is not enabled for this repository.");
      case "info":
        return this.handleInfo(ctx, route);
      case "tree":
        return this.handleTree(ctx, route);
      case "paths-info":
        return this.handlePathsInfo(ctx, route);
      case "auth-check": {
        const repo = this.access(ctx, route.id, true);
        if (repo) this.json(ctx, {});
        return;
      }
      case "file":
        return this.handleFile(ctx, route);
    }
  }

  private parseAuth(ctx: Ctx): Access {
    const h = ctx.req.headers.authorization;
    if (h === undefined) return { kind: "none" };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m || !this.tokens.has(m[1]!)) return { kind: "invalid" };
    return { kind: "token", token: m[1]! };
  }

  /** Auth, rename, existence, private/disabled/gated checks. Sends the error (or redirect) and returns undefined when access is refused. */
  private access(ctx: Ctx, id: string, content: boolean): Repo | undefined {
    const auth = this.parseAuth(ctx);
    if (auth.kind === "invalid") {
      this.hubError(ctx, 401, "Invalid credentials in Authorization header");
      return undefined;
    }
    let repo = this.repos.get(id);
    if (!repo) {
      const target = this.canonicalId(id);
      if (target !== undefined) {
        const [org, name] = id.split("/");
        const raw = ctx.url.pathname;
        const from = ctx.area === "resolve" ? `/${org}/${name}/` : `/api/models/${org}/${name}`;
        const to = ctx.area === "resolve" ? `/${target}/` : `/api/models/${target}`;
        const location = (raw.startsWith(from) ? to + raw.slice(from.length) : raw) + ctx.url.search;
        this.send(ctx, 307, { Location: location, "Content-Type": "text/plain; charset=utf-8" }, `Temporary Redirect. Redirecting to ${location}`);
        return undefined;
      }
      this.hubError(ctx, 404, "Repository not found", "RepoNotFound");
      return undefined;
    }
    const granted = auth.kind === "token" && repo.tokens.has(auth.token);
    if (repo.private && !granted) {
      if (auth.kind === "none") this.hubError(ctx, 401, "Invalid username or password.", "RepoNotFound");
      else this.hubError(ctx, 404, "Repository not found", "RepoNotFound");
      return undefined;
    }
    if (content && repo.disabled) {
      this.hubError(ctx, 403, "Access to this resource is disabled.");
      return undefined;
    }
    if (content && repo.gated !== false && !granted) {
      if (auth.kind === "none") this.hubError(ctx, 401, GATED_401(repo.id), "GatedRepo");
      else this.hubError(ctx, 403, GATED_403(repo.id), "GatedRepo");
      return undefined;
    }
    return repo;
  }

  private revision(ctx: Ctx, repo: Repo, rev: string): Commit | undefined {
    const c = this.findCommit(repo, rev);
    if (!c) this.hubError(ctx, 404, `Invalid rev id: ${rev}`, "RevisionNotFound");
    return c;
  }

  private handleInfo(ctx: Ctx, route: { id: string; rev: string | undefined }): void {
    const repo = this.access(ctx, route.id, false);
    if (!repo) return;
    const c = this.revision(ctx, repo, route.rev ?? "main");
    if (!c) return;
    const blobs = ctx.url.searchParams.get("blobs") === "true" || ctx.url.searchParams.get("blobs") === "1";
    const files = this.fileInfos(c);
    this.json(ctx, {
      _id: repo.objectId,
      id: repo.id,
      modelId: repo.id,
      author: repo.id.split("/")[0],
      sha: c.sha,
      lastModified: c.date.toISOString(),
      createdAt: repo.createdAt.toISOString(),
      private: repo.private,
      gated: repo.gated,
      disabled: repo.disabled,
      downloads: 0,
      likes: 0,
      tags: [],
      siblings: files.map((f) =>
        blobs
          ? { rfilename: f.path, size: f.size, blobId: f.oid, ...(f.sha256 ? { lfs: { sha256: f.sha256, size: f.size, pointerSize: f.lfs!.pointerSize } } : {}) }
          : { rfilename: f.path },
      ),
      ...(blobs ? { usedStorage: files.reduce((n, f) => n + f.size, 0) } : {}),
    });
  }

  private entryJson(repo: Repo, c: Commit, e: TreeEntry, expand: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = { type: e.type, oid: e.oid, size: e.size };
    if (e.file?.sha256) out.lfs = { oid: e.file.sha256, size: e.size, pointerSize: e.file.pointer!.length };
    out.path = e.path;
    if (expand) {
      const last = this.lastCommit(repo, c, e);
      out.lastCommit = { id: last.sha, title: last.message, date: last.date.toISOString() };
      if (e.type === "file") out.securityFileStatus = { status: "safe" };
    }
    return out;
  }

  /** The oldest ancestor (walking back) in which the entry still has the same id. */
  private lastCommit(repo: Repo, c: Commit, e: TreeEntry): Commit {
    const idIn = (x: Commit) => (e.type === "file" ? x.files.get(e.path)?.oid : x.dirs.get(e.path));
    let current = c;
    for (;;) {
      const parent = current.parent === undefined ? undefined : repo.commits.get(current.parent);
      if (!parent || idIn(parent) !== e.oid) return current;
      current = parent;
    }
  }

  private listing(c: Commit, dir: string, recursive: boolean): TreeEntry[] {
    const direct = c.children.get(dir) ?? [];
    if (!recursive) return direct;
    return direct.flatMap((e) => (e.type === "directory" ? [e, ...this.listing(c, e.path, true)] : [e]));
  }

  private handleTree(ctx: Ctx, route: { id: string; rev: string; path: string }): void {
    const repo = this.access(ctx, route.id, false);
    if (!repo) return;
    const c = this.revision(ctx, repo, route.rev);
    if (!c) return;
    if (!c.dirs.has(route.path)) {
      this.hubError(ctx, 404, "Entry not found", "EntryNotFound", { "X-Repo-Commit": c.sha });
      return;
    }
    const params = ctx.url.searchParams;
    const recursive = params.get("recursive") === "true" || params.get("recursive") === "1";
    const expand = params.get("expand") === "true" || params.get("expand") === "1";
    const all = this.listing(c, route.path, recursive);
    let offset = 0;
    const cursor = params.get("cursor");
    if (cursor !== null) {
      const decoded = /^\d+$/.test(Buffer.from(cursor, "base64url").toString()) ? Number(Buffer.from(cursor, "base64url").toString()) : NaN;
      if (!Number.isInteger(decoded) || decoded < 0 || decoded > all.length) {
        this.hubError(ctx, 400, "Invalid cursor");
        return;
      }
      offset = decoded;
    }
    const pageSize = Math.max(1, this.settings.treePageSize);
    const page = all.slice(offset, offset + pageSize);
    const headers: Record<string, string> = {};
    if (offset + pageSize < all.length) {
      const next = new URLSearchParams(params);
      next.set("cursor", Buffer.from(String(offset + pageSize)).toString("base64url"));
      headers.Link = `<${this.endpoint}${ctx.url.pathname}?${next.toString()}>; rel="next"`;
    }
    this.json(
      ctx,
      page.map((e) => this.entryJson(repo, c, e, expand)),
      headers,
    );
  }

  private async handlePathsInfo(ctx: Ctx, route: { id: string; rev: string }): Promise<void> {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of ctx.req) {
      total += (chunk as Buffer).length;
      if (total > 1024 * 1024) {
        this.hubError(ctx, 413, "Payload too large");
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const repo = this.access(ctx, route.id, false);
    if (!repo) return;
    const c = this.revision(ctx, repo, route.rev);
    if (!c) return;
    const text = Buffer.concat(chunks).toString("utf8");
    let paths: string[] = [];
    let expand = false;
    try {
      if (String(ctx.req.headers["content-type"] ?? "").includes("application/json")) {
        const body = JSON.parse(text) as { paths?: unknown; expand?: unknown };
        paths = Array.isArray(body.paths) ? body.paths.map(String) : [];
        expand = body.expand === true || body.expand === "true";
      } else {
        const form = new URLSearchParams(text);
        paths = form.getAll("paths");
        expand = form.get("expand") === "true";
      }
    } catch {
      this.hubError(ctx, 400, "Invalid request body");
      return;
    }
    const out: Record<string, unknown>[] = [];
    for (const path of paths) {
      const file = c.files.get(path);
      if (file) out.push(this.entryJson(repo, c, { type: "file", path, oid: file.oid, size: file.content.length, file }, expand));
      else if (path && c.dirs.has(path)) out.push(this.entryJson(repo, c, { type: "directory", path, oid: c.dirs.get(path)!, size: 0 }, expand));
    }
    this.json(ctx, out);
  }

  private async handleFile(ctx: Ctx, route: { id: string; mode: "resolve" | "raw"; rev: string; path: string }): Promise<void> {
    const repo = this.access(ctx, route.id, true);
    if (!repo) return;
    const c = this.revision(ctx, repo, route.rev);
    if (!c) return;
    const file = c.files.get(route.path);
    if (!file) {
      this.hubError(ctx, 404, "Entry not found", "EntryNotFound", { "X-Repo-Commit": c.sha });
      return;
    }
    const base = file.path.slice(file.path.lastIndexOf("/") + 1);
    const disposition = `inline; filename*=UTF-8''${encodeURIComponent(base)}; filename="${base.replace(/[^\x20-\x7e]|"/g, "_")}";`;
    if (file.sha256 && route.mode === "resolve") {
      const location = this.signCdnUrl(file.sha256);
      this.send(
        ctx,
        302,
        {
          Location: location,
          "Content-Type": "text/plain; charset=utf-8",
          "X-Repo-Commit": c.sha,
          "X-Linked-Etag": `"${file.sha256}"`,
          "X-Linked-Size": file.content.length,
          ETag: `"${file.oid}"`,
          "Content-Disposition": disposition,
        },
        `Found. Redirecting to ${location}`,
      );
      return;
    }
    const content = route.mode === "raw" && file.pointer ? file.pointer : file.content;
    const headers = {
      "Content-Type": file.compressible ? "text/plain; charset=utf-8" : "application/octet-stream",
      ETag: `"${file.oid}"`,
      "X-Repo-Commit": c.sha,
      "Content-Disposition": disposition,
    };
    const inm = ctx.req.headers["if-none-match"];
    if (typeof inm === "string" && inm.split(",").some((t) => t.trim().replace(/^W\//, "") === `"${file.oid}"`)) {
      this.writeHead(ctx, 304, headers);
      ctx.res.end();
      return;
    }
    await this.serveBytes(ctx, content, route.mode === "raw" ? true : file.compressible, headers, [{ repo: repo.id, path: file.path }], () => ({
      type: "application/json; charset=utf-8",
      body: JSON.stringify({ error: "Requested Range Not Satisfiable" }),
    }));
  }

  // ------------------------------------------------------------ the CDN

  private async handleCdn(ctx: Ctx): Promise<void> {
    const m = /^\/cdn\/([0-9a-f]{64})$/.exec(ctx.url.pathname);
    const blob = m ? this.blobs.get(m[1]!) : undefined;
    const refs = (blob?.refs ?? []).map((r) => ({ repo: r.repo.id, path: r.path }));
    if (refs[0]) {
      ctx.entry.repo = refs[0].repo;
      ctx.entry.file = refs[0].path;
    }
    const xml = { "Content-Type": "application/xml" };
    if (await this.requestFault(ctx, refs)) return;
    if (ctx.req.headers.authorization !== undefined) {
      this.send(ctx, 400, xml, xmlError("InvalidArgument", S3_ONE_AUTH));
      return;
    }
    if (!m) {
      this.send(ctx, 404, xml, xmlError("NoSuchKey", "The specified key does not exist."));
      return;
    }
    const expires = ctx.url.searchParams.get("Expires") ?? "";
    const given = ctx.url.searchParams.get("Signature") ?? "";
    const wanted = this.signature(ctx.url.pathname, expires);
    const valid = /^\d+$/.test(expires) && given.length === wanted.length && timingSafeEqual(Buffer.from(given), Buffer.from(wanted));
    if (!valid) {
      this.send(ctx, 403, xml, xmlError("AccessDenied", "Access denied"));
      return;
    }
    if (Date.now() / 1000 >= Number(expires)) {
      this.send(ctx, 403, xml, xmlError("AccessDenied", "Request has expired"));
      return;
    }
    if (ctx.method !== "GET" && ctx.method !== "HEAD") {
      ctx.req.resume();
      this.send(ctx, 405, xml, xmlError("MethodNotAllowed", "The specified method is not allowed against this resource."));
      return;
    }
    if (!blob) {
      this.send(ctx, 404, xml, xmlError("NoSuchKey", "The specified key does not exist."));
      return;
    }
    await this.serveBytes(
      ctx,
      blob.content,
      blob.compressible,
      {
        "Content-Type": "binary/octet-stream",
        ETag: `"${blob.md5}"`,
        "Last-Modified": new Date(BASE_TIME_MS).toUTCString(),
        "Cache-Control": "public, max-age=604800, immutable, s-maxage=604800",
        "X-Cache": "Hit from cloudfront",
      },
      refs,
      () => ({ type: "application/xml", body: xmlError("InvalidRange", "The requested range is not satisfiable") }),
    );
  }
}
