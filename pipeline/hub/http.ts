/**
 * HTTP to the Hub and its CDN over got: retries with backoff that honour Retry-After
 * and RateLimit on 408/429/5xx and network errors, no automatic redirects (the
 * Authorization header must never follow a redirect to the CDN host), no transparent
 * decompression (a gzip answer ignores Range), and typed errors from X-Error-Code.
 */
import type { Got, Headers, Response } from "got";
import { PipelineError, type ErrorCode } from "../core/errors.js";
import type { HubSettings } from "./env.js";

export interface HttpOptions {
  settings: HubSettings;
  signal?: AbortSignal;
  /** Attempts after the first, for retryable failures. */
  retries?: number;
  /** First backoff step; doubled per attempt (with jitter), capped by maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** No byte for this long = a stalled connection (it is dropped and retried). */
  stallMs?: number;
}

/** got is loaded on first use: it costs ~0.1 s of start-up that runs needing no network should not pay. */
let gotModule: Promise<Got> | undefined;
export const loadGot = (): Promise<Got> => (gotModule ??= import("got").then((m) => m.default));

export const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export class HubHttpError extends PipelineError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly status: number | undefined,
    readonly retryAfterMs?: number,
  ) {
    super(code, message);
  }
}

/** Milliseconds the server asks us to wait: Retry-After (seconds or date), else RateLimit t=. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const retryAfter = headers["retry-after"];
  if (typeof retryAfter === "string") {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const date = Date.parse(retryAfter);
    if (Number.isFinite(date)) return Math.max(0, date - now);
  }
  const rateLimit = headers["ratelimit"];
  if (typeof rateLimit === "string") {
    const remaining = /;r=(\d+)/.exec(rateLimit);
    const reset = /;t=(\d+)/.exec(rateLimit);
    if (remaining?.[1] === "0" && reset) return (Number(reset[1]) + 1) * 1000;
  }
  return undefined;
}

/** The typed error for a non-success answer, with what the user can do about it (`endpoint`: HF_ENDPOINT, named in advice). */
export function errorFromResponse(response: Pick<Response, "statusCode" | "headers">, repo: string, what: string, endpoint: string): HubHttpError {
  const status = response.statusCode;
  const code = String(response.headers["x-error-code"] ?? "");
  const serverMessage = String(response.headers["x-error-message"] ?? "");
  if (code === "GatedRepo") {
    return new HubHttpError(
      "E_HUB_GATED",
      status === 401
        ? `${repo} is a gated repository: set HF_TOKEN (or run \`hf auth login\`) with a token of an account that has been granted access.`
        : `${repo} is gated and this token's account is not on its access list: ask for access at ${endpoint}/${repo}, then rerun.`,
      status,
    );
  }
  if (code === "RevisionNotFound") return new HubHttpError("E_HUB_REVISION_NOT_FOUND", `${what}: revision not found in ${repo}. Check the recipe's revision.`, status);
  if (code === "EntryNotFound") return new HubHttpError("E_HUB_ENTRY_NOT_FOUND", `${what}: no such file in ${repo}.`, status);
  if (code === "RepoNotFound" || status === 404) {
    return new HubHttpError(
      "E_HUB_REPO_NOT_FOUND",
      `${repo} was not found on the Hub${status === 401 ? " (or it is private: set HF_TOKEN with a token that can read it)" : ""}. Check the repository id in the recipe.`,
      status,
    );
  }
  if (status === 401 || status === 403) {
    return new HubHttpError("E_HUB_AUTH", `${what}: ${status} ${serverMessage || "access denied"}. Check HF_TOKEN.`, status);
  }
  if (status === 429) return new HubHttpError("E_HUB_RATE_LIMITED", `${what}: the Hub kept answering 429 (rate limited). Wait a few minutes or set HF_TOKEN (higher quota).`, status, retryAfterMs(response.headers));
  return new HubHttpError("E_HUB_HTTP", `${what}: HTTP ${status}${serverMessage ? ` (${serverMessage})` : ""}`, status, retryAfterMs(response.headers));
}

export function isRetryable(error: unknown): boolean {
  if (error instanceof HubHttpError) return error.status !== undefined && RETRYABLE_STATUS.has(error.status);
  if (error instanceof PipelineError) return false;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const name = (error as Error | undefined)?.name;
  return (
    name === "TimeoutError" ||
    name === "ReadError" ||
    name === "RequestError" ||
    ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ERR_STREAM_PREMATURE_CLOSE", "E_TRUNCATED"].includes(code ?? "")
  );
}

/**
 * Runs `attempt` with retries; `attempt` gets the 0-based attempt number. A retryable failure
 * that persists is rethrown saying how many attempts were made over how long (`what` names
 * the repository and file, for errors that do not).
 */
export async function withRetries<T>(options: HttpOptions, attempt: (n: number) => Promise<T>, what?: string): Promise<T> {
  const retries = options.retries ?? 5;
  const started = Date.now();
  for (let n = 0; ; n++) {
    options.signal?.throwIfAborted();
    try {
      return await attempt(n);
    } catch (error) {
      if (!isRetryable(error)) throw error;
      if (n >= retries) throw gaveUp(error, n + 1, Date.now() - started, what);
      const asked = error instanceof HubHttpError ? error.retryAfterMs : undefined;
      const base = options.baseDelayMs ?? 1000;
      const backoff = Math.min(options.maxDelayMs ?? 30_000, base * 2 ** n) * (0.75 + Math.random() * 0.5);
      await sleep(Math.min(asked ?? backoff, 5 * 60_000), options.signal);
    }
  }
}

/** The last error of a retry loop, saying that it persisted. */
function gaveUp(error: unknown, attempts: number, elapsedMs: number, what: string | undefined): unknown {
  const after = `gave up after ${attempts} attempts over ${(elapsedMs / 1000).toFixed(1)} s`;
  const message = (error as Error | undefined)?.message ?? String(error);
  const said = what && !message.startsWith(what) ? `${what}: ${message}` : message;
  if (error instanceof HubHttpError) return new HubHttpError(error.code, `${said} (${after})`, error.status);
  return new HubHttpError("E_HUB_HTTP", `${said} (${after}; the network or the server keeps failing: rerun later, the download resumes)`, undefined);
}

/** Waits `ms`; the abort listener is removed when the wait ends (a shared signal collects no listeners). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A signal for one request, aborted when `parent` is. Every request of a download shares the
 * task's signal; giving each its own listener on it passes Node's limit of 10 listeners per
 * signal (MaxListenersExceededWarning on stderr). Here a parent carries one listener that
 * aborts all of its current children; `release` forgets a child once its request is done.
 */
const childrenOf = new WeakMap<AbortSignal, Set<AbortController>>();
export function requestSignal(parent: AbortSignal | undefined): { signal: AbortSignal | undefined; release: () => void } {
  if (!parent) return { signal: undefined, release: () => undefined };
  const controller = new AbortController();
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { signal: controller.signal, release: () => undefined };
  }
  let children = childrenOf.get(parent);
  if (!children) {
    const set = new Set<AbortController>();
    childrenOf.set(parent, set);
    parent.addEventListener("abort", () => {
      for (const child of set) child.abort(parent.reason);
      set.clear();
    }, { once: true });
    children = set;
  }
  children.add(controller);
  return { signal: controller.signal, release: () => children.delete(controller) };
}

/** Headers for a request to `url`: the token only ever goes to the Hub's own host. */
export function requestHeaders(settings: HubSettings, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { "accept-encoding": "identity", "user-agent": "ai-tools (+https://github.com/ai-tools)", ...extra };
  if (settings.token && new URL(url).host === new URL(settings.endpoint).host) headers.authorization = `Bearer ${settings.token}`;
  return headers;
}

/** GET a JSON document from the Hub API, following same-host redirects (renamed repos). */
export async function getJson(options: HttpOptions, url: string, repo: string, what: string): Promise<{ body: unknown; headers: Headers; url: string }> {
  return withRetries(options, async () => {
    let current = url;
    for (let hops = 0; hops < 5; hops++) {
      const got = await loadGot();
      const request = requestSignal(options.signal);
      const response = await got(current, {
        headers: requestHeaders(options.settings, current),
        followRedirect: false,
        throwHttpErrors: false,
        decompress: false,
        retry: { limit: 0 },
        timeout: { request: options.stallMs ?? 30_000 },
        ...(request.signal ? { signal: request.signal } : {}),
      }).finally(request.release);
      if ([301, 302, 307, 308].includes(response.statusCode) && response.headers.location) {
        const next = new URL(response.headers.location, current).toString();
        if (new URL(next).host !== new URL(current).host) throw new HubHttpError("E_HUB_BAD_RESPONSE", `${what}: the API redirected off the Hub (${new URL(next).host})`, response.statusCode);
        current = next;
        continue;
      }
      if (response.statusCode !== 200) throw errorFromResponse(response, repo, what, options.settings.endpoint);
      try {
        return { body: JSON.parse(response.body) as unknown, headers: response.headers, url: current };
      } catch {
        throw new HubHttpError("E_HUB_BAD_RESPONSE", `${what}: the Hub answered with malformed JSON`, response.statusCode);
      }
    }
    throw new HubHttpError("E_HUB_BAD_RESPONSE", `${what}: too many redirects`, undefined);
  }, what);
}
