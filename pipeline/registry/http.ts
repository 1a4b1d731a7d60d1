/**
 * One HTTP exchange with a registry, and the retry policy around exchanges.
 *
 * Over undici's `request` (the npm package, pinned; Node 20's global fetch is undici 6 inside
 * but exposes no Agent to give it a CA): a per-client Agent carries a custom CA, bodies
 * stream both ways with no WHATWG stream layer (pulls and pushes run at disk speed, the
 * bench compares with skopeo), nothing is decompressed, and redirects are never followed
 * behind our back. got (used for the Hub) would do most of this too, but streams an upload
 * body only through its Duplex API and costs more per byte.
 *
 * Rules enforced here, for every caller:
 * - plain HTTP only to loopback hosts unless `insecure` (E_REGISTRY_INSECURE), also for a
 *   redirect target or a token realm;
 * - `Authorization` only ever goes to the origin it was made for: GET/HEAD redirects are
 *   followed by hand and a cross-origin hop drops it;
 * - network failures become typed errors, and the ones worth another try say so.
 */
import { rootCertificates } from "node:tls";
import { setTimeout as delay } from "node:timers/promises";
import type { Readable } from "node:stream";
import { Agent, request, type Dispatcher } from "undici";
import { AbortedError, PipelineError } from "../core/errors.js";
import { RegistryError } from "./errors.js";
import { isLoopbackHost } from "./reference.js";

export type HttpMethod = "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";

export interface HttpRequest {
  method: HttpMethod;
  url: string;
  headers?: Record<string, string>;
  /** A Buffer, or a factory for a fresh stream (called once per attempt). */
  body?: Buffer | (() => Readable);
  /** Follow redirects (GET and HEAD only), dropping `Authorization` across origins. */
  followRedirects?: boolean;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", " (`www-authenticate` keeps them apart with "\n"). */
  headers: Record<string, string>;
  body: Dispatcher.ResponseData["body"];
  /** The URL that answered (after redirects). */
  url: string;
}

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** First backoff step, doubled per attempt, with ±25 % jitter. */
  baseDelayMs: number;
  /** Cap on any wait, Retry-After included. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 250, maxDelayMs: 30_000 };

export const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/** A failure another attempt may cure: a 5xx/429, a reset, a refused connection. */
export class TransientRegistryError extends RegistryError {
  constructor(
    code: "E_REGISTRY_HTTP" | "E_REGISTRY_UNREACHABLE",
    message: string,
    options: { status?: number; registryCode?: string; cause?: unknown; retryAfterMs?: number },
  ) {
    super(code, message, options);
    this.retryAfterMs = options.retryAfterMs;
  }

  readonly retryAfterMs: number | undefined;
}

/** What a client reports (for logs, progress and tests); URLs are paths only, never credentials. */
export type RegistryEvent =
  | { type: "request"; method: HttpMethod; host: string; path: string; status: number; ms: number }
  | { type: "retry"; attempt: number; delayMs: number; reason: string }
  | { type: "auth"; scheme: "basic" | "bearer"; source: string; realmHost?: string };

export interface TransportOptions {
  /** `host[:port]` of the registry. */
  registry: string;
  /** Default: true for loopback hosts, false otherwise. */
  plainHttp?: boolean;
  /** Allow plain HTTP to a host that is not loopback. */
  insecure?: boolean;
  /** Extra CA certificates (PEM) trusted besides the system's. */
  ca?: string | Buffer;
  /** No header or body byte for this long = a stalled exchange (retried). */
  stallTimeoutMs?: number;
  userAgent?: string;
  onEvent?: (event: RegistryEvent) => void;
}

const NETWORK_RETRYABLE = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "ERR_STREAM_PREMATURE_CLOSE",
  "E_TRUNCATED",
]);
const TLS_CODE = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/;
const REDIRECT = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export function originOf(url: string): string {
  return new URL(url).origin;
}

/** `Range: 0-<end>` of an upload status; "0-0" is both 0 and 1 bytes, so `hint` decides. */
export function parseUploadRange(range: string | undefined, hint: number): number | undefined {
  const match = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? "");
  if (!match) return undefined;
  const end = Number(match[1]);
  return end === 0 ? (hint === 1 ? 1 : 0) : end + 1;
}

/** `Content-Range: bytes <start>-<end>/<total|*>` (or `bytes *\/<total>`). */
export function parseContentRange(value: string | undefined): { start?: number; end?: number; total?: number } | undefined {
  const match = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(value?.trim() ?? "");
  if (!match) return undefined;
  return {
    ...(match[1] !== undefined ? { start: Number(match[1]), end: Number(match[2]) } : {}),
    ...(match[3] !== "*" ? { total: Number(match[3]) } : {}),
  };
}

/** Throws E_REGISTRY_INSECURE for plain HTTP to a host that is not loopback, unless allowed. */
export function assertTransportAllowed(url: string, insecure: boolean | undefined, what: string): void {
  const parsed = new URL(url);
  if (parsed.protocol === "https:") return;
  if (parsed.protocol !== "http:") throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: unsupported URL scheme ${parsed.protocol}`);
  if (!insecure && !isLoopbackHost(parsed.host)) {
    throw new RegistryError("E_REGISTRY_INSECURE", `${what}: refusing plain HTTP to ${parsed.host}, which is not a loopback address (credentials and content would travel unprotected). Use HTTPS, or allow it explicitly with the insecure option.`);
  }
}

/** Milliseconds Retry-After asks for (seconds or an HTTP date), if it is there and sane. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** The wait before attempt `attempt + 1`: Retry-After when given, else exponential backoff with jitter; both capped. */
export function retryDelayMs(policy: RetryPolicy, attempt: number, retryAfterMs: number | undefined, random = Math.random): number {
  const backoff = policy.baseDelayMs * 2 ** attempt * (0.75 + random() * 0.5);
  return Math.round(Math.min(policy.maxDelayMs, retryAfterMs ?? backoff));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, undefined, signal ? { signal } : undefined).catch((error: unknown) => {
    throw signal?.aborted ? abortError(signal) : error;
  });
}

export function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof AbortedError ? signal.reason : new AbortedError("registry transfer interrupted");
}

/** Runs `attempt` until it succeeds, fails for good, or the policy's attempts are spent. */
export async function withRetries<T>(
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  onRetry: ((event: Extract<RegistryEvent, { type: "retry" }>) => void) | undefined,
  attempt: (n: number) => Promise<T>,
): Promise<T> {
  for (let n = 0; ; n++) {
    if (signal?.aborted) throw abortError(signal);
    try {
      return await attempt(n);
    } catch (error) {
      if (!(error instanceof TransientRegistryError) || n + 1 >= policy.attempts || signal?.aborted) throw error;
      const delayMs = retryDelayMs(policy, n, error.retryAfterMs);
      onRetry?.({ type: "retry", attempt: n + 1, delayMs, reason: error.message });
      await sleep(delayMs, signal);
    }
  }
}

export interface RegistryErrorEntry {
  code?: string;
  message?: string;
  detail?: unknown;
}

/** The registry's JSON error body, read with a cap: `{"errors":[{"code","message","detail"}]}`; the first entry plus all. */
export async function readErrorBody(response: HttpResponse): Promise<RegistryErrorEntry & { all: RegistryErrorEntry[] }> {
  try {
    const text = await readCapped(response.body, 64 * 1024);
    const errors = (JSON.parse(text.toString("utf8")) as { errors?: unknown }).errors;
    const all = (Array.isArray(errors) ? errors : []).map((e: { code?: unknown; message?: unknown; detail?: unknown }) => ({
      ...(typeof e?.code === "string" ? { code: e.code } : {}),
      ...(typeof e?.message === "string" ? { message: e.message } : {}),
      ...(e?.detail !== undefined ? { detail: e.detail } : {}),
    }));
    return { ...(all[0] ?? {}), all };
  } catch {
    return { all: [] };
  }
}

/** Up to `limit` bytes of a body; the rest is discarded. */
export async function readCapped(body: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (length < limit) parts.push(chunk.subarray(0, limit - length));
    length += chunk.length;
    if (length >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(parts);
}

/** Discards a body we do not need, so the connection can be reused. */
export async function discard(response: HttpResponse): Promise<void> {
  await response.body.dump({ limit: 256 * 1024 }).catch(() => undefined);
}

function flattenHeaders(headers: Dispatcher.ResponseData["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(name.toLowerCase() === "www-authenticate" ? "\n" : ", ") : value;
  }
  return out;
}

/** A network-level failure as a typed error: TLS problems are final, resets and refusals transient. */
export function networkError(error: unknown, what: string): RegistryError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? "";
  const cause = (error as { cause?: NodeJS.ErrnoException } | undefined)?.cause;
  const detail = code || cause?.code || (error as Error | undefined)?.name || "network error";
  if (TLS_CODE.test(detail)) {
    return new RegistryError("E_REGISTRY_UNREACHABLE", `${what}: TLS failed (${detail}). A registry with a private CA needs the CA file option; check the host name and its certificate.`, { cause: error });
  }
  if (detail === "ENOTFOUND") return new RegistryError("E_REGISTRY_UNREACHABLE", `${what}: the host name does not resolve (ENOTFOUND); check the registry host`, { cause: error });
  const message = `${what}: ${detail}${(error as Error | undefined)?.message ? ` (${(error as Error).message})` : ""}`;
  if (NETWORK_RETRYABLE.has(detail) || NETWORK_RETRYABLE.has(cause?.code ?? "")) return new TransientRegistryError("E_REGISTRY_UNREACHABLE", message, { cause: error });
  return new RegistryError("E_REGISTRY_UNREACHABLE", message, { cause: error });
}

/** The registry's base URL and a connection pool; one exchange at a time per call, no retries. */
export class RegistryTransport {
  readonly registry: string;
  readonly baseUrl: string;
  readonly insecure: boolean;
  private readonly dispatcher: Agent;
  private readonly options: TransportOptions;

  constructor(options: TransportOptions) {
    this.options = options;
    this.registry = options.registry;
    this.insecure = options.insecure === true;
    const plain = options.plainHttp ?? isLoopbackHost(options.registry);
    this.baseUrl = `${plain ? "http" : "https"}://${options.registry}`;
    assertTransportAllowed(this.baseUrl, this.insecure, `registry ${options.registry}`);
    const timeout = options.stallTimeoutMs ?? 120_000;
    this.dispatcher = new Agent({
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connectTimeout: Math.min(timeout, 30_000),
      // A custom CA is added to the system's, not put in their place: blob redirects go to public CDNs.
      ...(options.ca ? { connect: { ca: [...rootCertificates, options.ca.toString()] } } : {}),
    });
  }

  url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  /** One exchange (plus redirects for GET/HEAD when asked). Never throws for an HTTP status. */
  async send(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    const headers: Record<string, string> = { "user-agent": this.options.userAgent ?? "ai-tools-registry", ...req.headers };
    const origin = originOf(url);
    for (let hops = 0; ; hops++) {
      assertTransportAllowed(url, this.insecure, `${req.method} ${pathOf(url)}`);
      if (req.signal?.aborted) throw abortError(req.signal);
      const started = performance.now();
      const body = req.body === undefined ? null : Buffer.isBuffer(req.body) ? req.body : req.body();
      let data: Dispatcher.ResponseData;
      try {
        data = await request(url, {
          method: req.method,
          headers,
          body,
          dispatcher: this.dispatcher,
          signal: req.signal ?? null,
          // Fewer, larger chunks for blob bodies (the default is 64 KiB).
          highWaterMark: 1024 * 1024,
        });
      } catch (error) {
        if (req.signal?.aborted) throw abortError(req.signal);
        // A source stream that failed (our own file, not the network) keeps its own error.
        if (error instanceof PipelineError) throw error;
        throw networkError(error, `${req.method} ${new URL(url).host}${pathOf(url)}`);
      }
      const response: HttpResponse = { status: data.statusCode, headers: flattenHeaders(data.headers), body: data.body, url };
      this.options.onEvent?.({ type: "request", method: req.method, host: new URL(url).host, path: pathOf(url), status: response.status, ms: Math.round(performance.now() - started) });
      const location = response.headers.location;
      if (!req.followRedirects || !REDIRECT.has(response.status) || !location) return response;
      await discard(response);
      if (hops + 1 > MAX_REDIRECTS) throw new RegistryError("E_REGISTRY_LIMIT", `${req.method} ${pathOf(req.url)}: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(location, url).toString();
      // Credentials are for the registry only: never forwarded to another origin (a CDN, object storage).
      if (originOf(url) !== origin) delete headers.authorization;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }
}

/** The path of a URL for messages and events: no query (upload state tokens, signed URLs). */
export function pathOf(url: string): string {
  return new URL(url).pathname;
}
