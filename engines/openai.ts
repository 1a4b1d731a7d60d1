/**
 * The OpenAI-compatible engine: any server that speaks POST /v1/chat/completions with
 * SSE streaming (vLLM, llama.cpp's llama-server, the OpenAI API itself). The policy's
 * `openai` block names the server and model; the API key comes from the environment
 * variable it names, read at request time, and is masked out of every message that
 * leaves this module (servers like to echo a rejected key back in their error text).
 * The key goes to the base_url's origin only: redirects are not followed (an answer
 * that redirects is an error naming where to), so it never travels to another host.
 *
 * Layout: pure helpers (request body, chunk parser, metrics, error text) that tests and
 * other engines can reuse, then the thin fetch-based I/O in createOpenAiEngine.
 */
import { createParser } from "eventsource-parser";
import { redact } from "../pipeline/core/redact.js";
import type { OpenAiSettings, RenderedPolicy } from "../pipeline/policy/types.js";
import { EngineError, type Engine, type EngineProbe, type GenerateOptions, type GenerateResult, type RequestMetrics } from "./types.js";

export interface OpenAiEngineOptions {
  /** Where the API key is read from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The fetch to use (default the global one); tests and proxies inject their own. */
  fetch?: typeof fetch;
  /**
   * The server probe() asks when it is given no policy: default $OPENAI_BASE_URL, else
   * http://127.0.0.1:8000/v1 (vLLM's default); the key from $OPENAI_API_KEY. Given a
   * policy, probe() asks the policy's base_url with the policy's api_key_env.
   */
  probe?: { base_url?: string; api_key_env?: string };
}

/** probe() is a liveness check: a server that needs longer than this to list its models is not usable now. */
const PROBE_TIMEOUT_MS = 5_000;
/** Server error text is quoted, not dumped: an HTML error page or a stack trace must not flood the terminal. */
const SERVER_MESSAGE_MAX = 300;
const DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1";

// ---------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------

export interface ChatRequestBody {
  model: string;
  messages: { role: "user"; content: string }[];
  stream: true;
  stream_options: { include_usage: true };
  temperature: number;
  top_p: number;
  max_tokens?: number;
  seed?: number;
  stop?: string[];
}

/** `${base_url}/<path>`, tolerating a trailing slash on base_url. */
export function endpoint(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, "")}/${path}`;
}

/**
 * The chat-completions body for one prompt. Only parameters of the OpenAI API itself are
 * sent (top_k and repeat_penalty are server extensions the real API rejects); the
 * policy's "unset" sentinels (-1) become omitted keys so the server's defaults apply.
 */
export function buildChatRequestBody(prompt: string, policy: RenderedPolicy): ChatRequestBody {
  const settings = requireSettings(policy);
  const g = policy.generation;
  const body: ChatRequestBody = {
    model: settings.model,
    messages: [{ role: "user", content: prompt }],
    stream: true,
    // Without it the server never says how many tokens it used; with it, a last chunk carries usage.
    stream_options: { include_usage: true },
    temperature: g.temperature,
    top_p: g.top_p,
  };
  // max_tokens -1 (until end of text) and -2 (until the context is full) both mean "no limit" here.
  if (g.max_tokens >= 0) body.max_tokens = g.max_tokens;
  if (g.seed >= 0) body.seed = g.seed;
  if (g.stop.length > 0) body.stop = [...g.stop];
  return body;
}

export interface Usage {
  promptTokens: number | null;
  completionTokens: number | null;
}

/** llama-server's own timings, sent in its last chunk (vLLM sends none). */
export interface ServerTimings {
  promptPerSecond: number | null;
  predictedPerSecond: number | null;
}

/** One SSE `data:` payload of a chat-completions stream, reduced to what generate() uses. */
export type StreamEvent =
  | { kind: "done" }
  | { kind: "chunk"; content: string; finishReason: string | null; usage: Usage | null; timings: ServerTimings | null };

/**
 * Parses one `data:` payload. Throws E_ENGINE_FAILED on text that is not a JSON object
 * and on an in-stream error object (vLLM and llama-server report failures that happen
 * after the 200 this way).
 */
export function parseStreamData(data: string): StreamEvent {
  if (data.trim() === "[DONE]") return { kind: "done" };
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (error) {
    throw new EngineError("E_ENGINE_FAILED", `the server sent a stream chunk that is not JSON: ${truncate(data, 120)}`, { cause: error });
  }
  if (!isRecord(json)) throw new EngineError("E_ENGINE_FAILED", `the server sent a stream chunk that is not a JSON object: ${truncate(data, 120)}`);
  if (json.error !== undefined && json.error !== null) {
    throw new EngineError("E_ENGINE_FAILED", `the server reported an error mid-stream: ${errorText(json) ?? truncate(data, SERVER_MESSAGE_MAX)}`);
  }
  // n = 1 is all we ask for: the first choice is the answer. The usage chunk has `choices: []`.
  const choice = Array.isArray(json.choices) ? json.choices[0] : undefined;
  const delta = isRecord(choice) && isRecord(choice.delta) ? choice.delta : undefined;
  return {
    kind: "chunk",
    content: typeof delta?.content === "string" ? delta.content : "",
    finishReason: isRecord(choice) && typeof choice.finish_reason === "string" ? choice.finish_reason : null,
    usage: isRecord(json.usage)
      ? { promptTokens: countOrNull(json.usage.prompt_tokens), completionTokens: countOrNull(json.usage.completion_tokens) }
      : null,
    timings: isRecord(json.timings)
      ? { promptPerSecond: rateOrNull(json.timings.prompt_per_second), predictedPerSecond: rateOrNull(json.timings.predicted_per_second) }
      : null,
  };
}

export interface StreamObservation {
  /** performance.now() values: request sent, first non-empty content, [DONE] received. */
  startedAt: number;
  firstContentAt: number | null;
  endedAt: number;
  /** Non-empty content deltas: about one token each, the estimate when the server sends no usage. */
  contentChunks: number;
  usage: Usage | null;
  timings: ServerTimings | null;
}

/**
 * Request metrics from the stream's timestamps. Token counts come from the server's usage
 * when it sent one, else from the chunk count. Rates are the server's own when it reports
 * them (llama-server: source "engine"); otherwise generation speed is measured here as
 * generated tokens over the time after the first token, and prompt speed is unknown
 * (time to first token also holds queueing and network time).
 */
export function streamMetrics(o: StreamObservation): RequestMetrics {
  const totalMs = o.endedAt - o.startedAt;
  const timeToFirstTokenMs = o.firstContentAt === null ? null : o.firstContentAt - o.startedAt;
  const generatedTokens = o.usage?.completionTokens ?? o.contentChunks;
  const promptTokens = o.usage?.promptTokens ?? null;
  if (o.timings && (o.timings.promptPerSecond !== null || o.timings.predictedPerSecond !== null)) {
    return {
      timeToFirstTokenMs,
      totalMs,
      promptTokens,
      generatedTokens,
      promptTokensPerSecond: o.timings.promptPerSecond,
      generationTokensPerSecond: o.timings.predictedPerSecond,
      source: "engine",
    };
  }
  const generationMs = timeToFirstTokenMs === null ? 0 : totalMs - timeToFirstTokenMs;
  return {
    timeToFirstTokenMs,
    totalMs,
    promptTokens,
    generatedTokens,
    promptTokensPerSecond: null,
    generationTokensPerSecond: generationMs > 0 && generatedTokens > 0 ? generatedTokens / (generationMs / 1000) : null,
    source: "measured",
  };
}

/**
 * The message of an error body: OpenAI and llama-server send {error: {message}}, vLLM
 * {message} (newer: {error: {message}}), FastAPI {detail}; anything else is quoted as
 * text. Truncated either way.
 */
export function serverErrorMessage(body: string): string {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  const text = (isRecord(json) ? errorText(json) : undefined) ?? body.trim().replace(/\s+/g, " ");
  return truncate(text, SERVER_MESSAGE_MAX);
}

function errorText(json: Record<string, unknown>): string | undefined {
  const { error, message, detail } = json;
  if (isRecord(error) && typeof error.message === "string") return error.message;
  if (typeof error === "string") return error;
  if (typeof message === "string") return message;
  if (typeof detail === "string") return detail;
  return undefined;
}

/** The model ids of a GET /models answer ({data: [{id}]}, as OpenAI, vLLM and llama-server send it). */
export function parseModelList(body: unknown): string[] | undefined {
  if (!isRecord(body) || !Array.isArray(body.data)) return undefined;
  return body.data.flatMap((m) => (isRecord(m) && typeof m.id === "string" ? [m.id] : []));
}

function requireSettings(policy: RenderedPolicy): OpenAiSettings {
  if (!policy.openai) throw new EngineError("E_ENGINE_FAILED", `${policy.file}: engine openai needs an openai block (base_url, model)`);
  return policy.openai;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function countOrNull(value: unknown): number | null {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : null;
}

function rateOrNull(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : null;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}

/** The network error code under fetch's "fetch failed" TypeError (ECONNREFUSED, ENOTFOUND, ...). */
function networkCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: unknown; errors?: { code?: unknown }[] } } | undefined)?.cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  return typeof code === "string" ? code : undefined;
}

// ---------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------

/**
 * One request's cancellation: the caller's signal, and an inactivity timer that fires when
 * the server sends nothing for `idleMs`. Inactivity rather than a total deadline, as
 * OpenAI's own clients do: a long healthy generation keeps sending, a hung server does not.
 */
class RequestGuard {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private readonly onAbort = () => this.controller.abort();

  constructor(
    private readonly callerSignal: AbortSignal | undefined,
    private readonly idleMs: number,
  ) {
    callerSignal?.addEventListener("abort", this.onAbort, { once: true });
    this.touch();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.callerSignal?.aborted ?? false;
  }

  /** The server said something: restart the inactivity timer. */
  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.idleMs);
  }

  /** Which of our own reasons ended the request, if any (else the failure is the server's). */
  reason(): "aborted" | "timeout" | undefined {
    if (this.aborted) return "aborted";
    if (this.timedOut) return "timeout";
    return undefined;
  }

  /** Stops the timer and drops the connection if it is still open. */
  dispose(): void {
    clearTimeout(this.timer);
    this.callerSignal?.removeEventListener("abort", this.onAbort);
    this.controller.abort();
  }
}

export function createOpenAiEngine(options: OpenAiEngineOptions = {}): Engine {
  const env = options.env ?? process.env;
  const fetchImpl = options.fetch ?? globalThis.fetch;

  /** The key as of now (set per request: a long-lived process may have it rotated), or undefined. */
  const apiKey = (envName: string): string | undefined => env[envName] || undefined;
  const headers = (key: string | undefined): Record<string, string> => (key ? { authorization: `Bearer ${key}` } : {});

  /** Every text that leaves: URL credentials and known secrets masked, and this key wherever it appears. */
  const masker = (key: string | undefined) => (text: string) => {
    const out = redact(text, env);
    return key && key.length >= 4 ? out.split(key).join("***") : out;
  };

  async function generate(prompt: string, policy: RenderedPolicy, generateOptions: GenerateOptions = {}): Promise<GenerateResult> {
    const settings = requireSettings(policy);
    const key = apiKey(settings.api_key_env);
    const mask = masker(key);
    const url = endpoint(settings.base_url, "chat/completions");
    const shownUrl = mask(url);
    const { signal, onToken } = generateOptions;
    if (signal?.aborted) throw new EngineError("E_ENGINE_ABORTED", `the request to ${shownUrl} was aborted before it was sent`);

    const aborted = () => new EngineError("E_ENGINE_ABORTED", `the request to ${shownUrl} was aborted`);
    const guard = new RequestGuard(signal, settings.timeout_seconds * 1000);
    /** Maps a failure of fetch or of reading the body to the error the user sees. */
    const ioError = (error: unknown, otherwise: () => EngineError): EngineError => {
      const reason = guard.reason();
      if (reason === "aborted") return aborted();
      if (reason === "timeout") {
        return new EngineError("E_ENGINE_TIMEOUT", `${shownUrl} sent nothing for ${settings.timeout_seconds} s (openai.timeout_seconds in ${policy.file})`);
      }
      return error instanceof EngineError ? error : otherwise();
    };

    const startedAt = performance.now();
    try {
      let response: Response;
      try {
        response = await fetchImpl(url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "text/event-stream", ...headers(key) },
          body: JSON.stringify(buildChatRequestBody(prompt, policy)),
          signal: guard.signal,
          redirect: "manual",
        });
      } catch (error) {
        throw ioError(error, () => unreachable(mask(settings.base_url), error, mask));
      }
      guard.touch();
      if (isRedirect(response)) throw redirected(response, shownUrl, mask);
      if (!response.ok) throw await httpError(response, settings, shownUrl, mask);
      const type = response.headers.get("content-type") ?? "";
      if (!type.includes("text/event-stream") || !response.body) {
        const body = await response.text().catch(() => "");
        throw new EngineError("E_ENGINE_FAILED", `${shownUrl} answered ${type || "no content type"} instead of an event stream: ${mask(truncate(body, 120))}`);
      }

      let text = "";
      let firstContentAt: number | null = null;
      let contentChunks = 0;
      let finishReason: string | undefined;
      let usage: Usage | null = null;
      let timings: ServerTimings | null = null;
      let done = false;
      for await (const data of sseData(response.body, guard, (error) => ioError(error, () => brokenStream(shownUrl, error, mask)))) {
        // One read can hold several chunks: once the caller aborts (say from onToken), stop at once.
        if (guard.aborted) throw aborted();
        const event = parseStreamData(data);
        if (event.kind === "done") {
          done = true;
          break;
        }
        if (event.content !== "") {
          firstContentAt ??= performance.now();
          contentChunks++;
          text += event.content;
          onToken?.(event.content);
        }
        if (event.finishReason !== null) finishReason = event.finishReason;
        if (event.usage) usage = event.usage;
        if (event.timings) timings = event.timings;
      }
      const endedAt = performance.now();
      if (guard.aborted) throw aborted();
      // A server that died mid-answer can still close the response cleanly: only [DONE] says the text is whole.
      if (!done) throw new EngineError("E_ENGINE_FAILED", `the stream from ${shownUrl} ended without [DONE] after ${contentChunks} content chunk(s): the server stopped mid-answer`);
      return {
        text,
        metrics: streamMetrics({ startedAt, firstContentAt, endedAt, contentChunks, usage, timings }),
        ...(finishReason === undefined ? {} : { finishReason }),
      };
    } finally {
      guard.dispose();
    }
  }

  async function probe(policy?: RenderedPolicy): Promise<EngineProbe> {
    const baseUrl = policy?.openai?.base_url ?? options.probe?.base_url ?? (env.OPENAI_BASE_URL || DEFAULT_BASE_URL);
    const keyEnv = policy?.openai?.api_key_env ?? options.probe?.api_key_env ?? "OPENAI_API_KEY";
    const key = apiKey(keyEnv);
    const mask = masker(key);
    const via = mask(baseUrl);
    const url = endpoint(baseUrl, "models");
    const result = (available: boolean, detail: string, version: string | null = null): EngineProbe => ({
      name: "openai",
      available,
      version,
      commit: null,
      via,
      detail: mask(detail),
    });
    let response: Response;
    try {
      response = await fetchImpl(url, { headers: { accept: "application/json", ...headers(key) }, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), redirect: "manual" });
    } catch (error) {
      if ((error as Error | undefined)?.name === "TimeoutError") return result(false, `${url} did not answer within ${PROBE_TIMEOUT_MS / 1000} s`);
      return result(false, `cannot reach ${url} (${networkCode(error) ?? (error as Error).message}): is the server running?`);
    }
    if (isRedirect(response)) return result(false, redirected(response, url, mask).message);
    const body = await response.text().catch(() => "");
    if (response.status === 401 || response.status === 403) {
      return result(false, `${url} answered ${response.status}: ${key ? `the key in ${keyEnv} was refused` : `set ${keyEnv} to an API key`}`);
    }
    if (!response.ok) return result(false, `${url} answered HTTP ${response.status}: ${serverErrorMessage(body)}`);
    let ids: string[] | undefined;
    try {
      ids = parseModelList(JSON.parse(body));
    } catch {
      ids = undefined;
    }
    if (ids === undefined) return result(false, `${url} answered, but not with an OpenAI model list: ${truncate(body, 120)}`);
    if (ids.length === 0) return result(true, `${url} answered but lists no models`);
    return result(true, `serves ${ids.length} model(s) at ${baseUrl}`, ids.join(", "));
  }

  return {
    name: "openai",
    info: () => ({
      name: "openai",
      description: "An OpenAI-compatible server (vLLM, llama.cpp llama-server, ...): streamed /v1/chat/completions; policy.openai names it",
      formats: ["remote"],
    }),
    probe,
    generate,
  };
}

/**
 * The `data:` payloads of an SSE body, in order, as they arrive. Read failures are turned
 * into engine errors by `fail` here, so that the consumer's own errors (a throwing
 * onToken) pass through untouched.
 */
async function* sseData(body: ReadableStream<Uint8Array>, guard: RequestGuard, fail: (error: unknown) => EngineError): AsyncGenerator<string> {
  const pending: string[] = [];
  const parser = createParser({ onEvent: (event) => pending.push(event.data) });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read().catch((error: unknown) => {
        throw fail(error);
      });
      if (done) break;
      guard.touch();
      parser.feed(decoder.decode(value, { stream: true }));
      while (pending.length > 0) yield pending.shift()!;
    }
    parser.feed(decoder.decode());
    while (pending.length > 0) yield pending.shift()!;
  } finally {
    // Stopping early ([DONE], an error): release the body so the connection is not left half-read.
    await reader.cancel().catch(() => {});
  }
}

/** A 3xx answer (fetch with redirect: "manual" hands it back instead of following it). */
function isRedirect(response: Response): boolean {
  return response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400);
}

/** Following it would send the key (and the prompt) to wherever the server points: say where, and stop. */
function redirected(response: Response, shownUrl: string, mask: (text: string) => string): EngineError {
  const location = response.headers.get("location");
  void response.body?.cancel().catch(() => {});
  let target = "an unnamed location";
  if (location) {
    try {
      target = mask(new URL(location, shownUrl).href);
    } catch {
      target = mask(truncate(location, 200));
    }
  }
  return new EngineError("E_ENGINE_HTTP", `${shownUrl} redirects (HTTP ${response.status}) to ${target}: not followed, the API key goes to openai.base_url's server only. Set openai.base_url to the server that answers.`);
}

/** 401/403: the key; other statuses: the server's own words. */
async function httpError(response: Response, settings: OpenAiSettings, shownUrl: string, mask: (text: string) => string): Promise<EngineError> {
  const body = await response.text().catch(() => "");
  const message = mask(serverErrorMessage(body));
  const said = message ? `: ${message}` : "";
  if (response.status === 401 || response.status === 403) {
    return new EngineError("E_ENGINE_AUTH", `${shownUrl} answered ${response.status}${said}. Set ${settings.api_key_env} to an API key this server accepts.`);
  }
  return new EngineError("E_ENGINE_HTTP", `${shownUrl} answered HTTP ${response.status}${said}`, {
    details: response.status === 404 ? [`openai.base_url must be the server's OpenAI-compatible root (e.g. ${DEFAULT_BASE_URL}), and openai.model a model it serves.`] : [],
  });
}

function unreachable(shownBaseUrl: string, error: unknown, mask: (text: string) => string): EngineError {
  const code = networkCode(error);
  return new EngineError(
    "E_ENGINE_UNAVAILABLE",
    `cannot reach the OpenAI-compatible server at ${shownBaseUrl} (${code ?? mask((error as Error | undefined)?.message ?? String(error))}): is it running, and is openai.base_url right?`,
    { cause: error },
  );
}

function brokenStream(shownUrl: string, error: unknown, mask: (text: string) => string): EngineError {
  const why = networkCode(error) ?? mask((error as Error | undefined)?.message ?? String(error));
  return new EngineError("E_ENGINE_FAILED", `the stream from ${shownUrl} broke off (${why}): the server stopped mid-answer`, { cause: error });
}
