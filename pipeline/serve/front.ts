/**
 * The OpenAI-compatible front: /v1/models, /v1/completions and /v1/chat/completions (streamed
 * or not) on top of the engine's /completion, plus /healthz and /metrics.
 *
 * Plain node:http rather than a framework: five routes, and the parts that matter here (SSE
 * with backpressure, noticing a client that goes away, draining on shutdown) work on the raw
 * request and response objects anyway; no dependency, nothing to load at start-up.
 *
 * Each generation request: parsed and checked (openai-protocol.ts), admitted by the queue
 * (a slot of the engine, or a place in line, or 503 with Retry-After), streamed from the
 * engine and passed on as OpenAI chunks; a client that disconnects closes the engine request,
 * which stops the engine at its next token. max_tokens is enforced here too: the engine
 * sends one token past n_predict (and at least four), which is dropped.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isPipelineError } from "../core/errors.js";
import { EngineError, type RequestMetrics } from "../../engines/types.js";
import type { RenderedGeneration } from "../policy/types.js";
import { QueueFullError, type AdmissionQueue } from "./admission.js";
import type { ChatTemplateName } from "./chat-template.js";
import { EngineBusyError, type EngineEvent } from "./engine-client.js";
import {
  ApiError,
  completeResponse,
  modelList,
  modelObject,
  newIdentity,
  parseChatRequest,
  parseCompletionRequest,
  planEngineRequest,
  fitToContext,
  promptTokensAtMost,
  streamChunk,
  usageChunk,
  usageOf,
  type EngineCompletionBody,
  type EnginePlan,
  type FinishReason,
  type GenerationRequest,
  type RequestKind,
} from "./openai-protocol.js";
import { PROMETHEUS_CONTENT_TYPE, type ServeMetrics } from "./serve-metrics.js";

export interface FrontEngine {
  /** The engine's events for one request; closing the iterator closes the request. */
  stream(body: EngineCompletionBody, signal: AbortSignal): AsyncGenerator<EngineEvent>;
  /** The engine's token count of a text (no BOS). */
  countTokens(text: string, signal: AbortSignal): Promise<number>;
}

/** How one generation request ended, for its metrics record. */
export interface RequestOutcome {
  kind: RequestKind;
  /** The prompt as the engine got it (chat: rendered); "" for token ids. */
  prompt: string;
  output: string;
  metrics: RequestMetrics | null;
  /** What ended it early: a PipelineError-style code ("E_ENGINE_ABORTED" when the client left). */
  error?: unknown;
  status: number;
}

export interface FrontOptions {
  host: string;
  port: number;
  model: { id: string; created: number };
  /** The policy's generation settings: defaults, and the max_tokens limit (n_predict). */
  generation: RenderedGeneration;
  /** Tokens of context each request gets (an engine slot's); null: unknown, not checked. */
  slotContext: number | null;
  template: ChatTemplateName;
  /** Required as `Authorization: Bearer <key>` on /v1/ when set. */
  apiKey: string | null;
  queue: AdmissionQueue;
  metrics: ServeMetrics;
  onRequestEnd?(outcome: RequestOutcome): void;
  /** One line per generation request (no prompt, no key). */
  log?(line: string): void;
  /** Request bodies above this are refused with 413 (default 4 MiB). */
  maxBodyBytes?: number;
  /** How long to keep asking an engine that reports no free slot (default 30 s). */
  busyRetryMs?: number;
}

export interface Front {
  /** http://host:port */
  url: string;
  /** The engine to use; null: not (or no longer) there, generation requests get 503. */
  setEngine(engine: FrontEngine | null): void;
  /** Generation requests admitted and not finished (queued ones included). */
  inFlight(): number;
  /** Stops accepting, lets the requests in flight finish (at most graceMs), then closes every connection. */
  shutdown(graceMs: number): Promise<void>;
}

class ClientGoneError extends Error {
  constructor() {
    super("the client closed the connection");
    this.name = "ClientGoneError";
  }
}

const DEFAULT_MAX_BODY = 4 * 2 ** 20;

export async function startFront(options: FrontOptions): Promise<Front> {
  let engine: FrontEngine | null = null;
  let draining = false;
  const requests = new Set<AbortController>();
  let drained: (() => void) | null = null;
  const expectedKey = options.apiKey === null ? null : sha256(options.apiKey);

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // A bug, not a client's mistake: a 500 without details (they stay in the log line).
      options.log?.(`internal error on ${req.method} ${req.url}: ${(error as Error)?.stack ?? String(error)}`);
      if (!res.headersSent) sendError(res, new ApiError(500, "internal error", "server_error"));
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://front").pathname.replace(/\/+$/, "") || "/";
    if (draining) res.setHeader("connection", "close");
    if (path === "/healthz") {
      if (req.method !== "GET" && req.method !== "HEAD") return methodNotAllowed(res, "GET");
      const status = draining ? "shutting down" : engine ? "ok" : "engine not ready";
      return sendJson(res, status === "ok" ? 200 : 503, { status });
    }
    if (path === "/metrics") {
      if (req.method !== "GET") return methodNotAllowed(res, "GET");
      res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE });
      res.end(options.metrics.render({ running: options.queue.running, waiting: options.queue.waiting, engineUp: engine !== null }));
      return;
    }
    if (!path.startsWith("/v1/")) return sendError(res, new ApiError(404, `no route ${path}: the API is under /v1/`, "invalid_request_error", null, "not_found"));
    if (!authorized(req)) {
      res.setHeader("www-authenticate", "Bearer");
      const given = req.headers.authorization !== undefined;
      return sendError(res, new ApiError(401, given ? "Incorrect API key provided." : "You didn't provide an API key: send it as 'Authorization: Bearer <key>'.", "invalid_request_error", null, "invalid_api_key"));
    }
    if (path === "/v1/models") return req.method === "GET" ? sendJson(res, 200, modelList(options.model)) : methodNotAllowed(res, "GET");
    if (path.startsWith("/v1/models/")) {
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      if (id !== options.model.id) return sendError(res, modelNotFound(id));
      return sendJson(res, 200, modelObject(options.model));
    }
    const kind: RequestKind | null = path === "/v1/chat/completions" ? "chat" : path === "/v1/completions" ? "text" : null;
    if (kind === null) return sendError(res, new ApiError(404, `no route ${path}`, "invalid_request_error", null, "not_found"));
    if (req.method !== "POST") return methodNotAllowed(res, "POST");
    return generate(req, res, kind);
  }

  function authorized(req: IncomingMessage): boolean {
    if (expectedKey === null) return true;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    // Digests of equal length, compared in constant time: neither the key's length nor a prefix leaks.
    return match !== null && timingSafeEqual(sha256(match[1]!), expectedKey);
  }

  async function generate(req: IncomingMessage, res: ServerResponse, kind: RequestKind): Promise<void> {
    const arrived = performance.now();
    let request: GenerationRequest;
    try {
      const body = await readJson(req, options.maxBodyBytes ?? DEFAULT_MAX_BODY);
      request = kind === "chat" ? parseChatRequest(body, options.template) : parseCompletionRequest(body);
      if (request.model !== options.model.id) throw modelNotFound(request.model);
    } catch (error) {
      if (error instanceof ApiError) return sendError(res, error);
      throw error;
    }
    if (draining) return sendError(res, new ApiError(503, "the server is shutting down", "server_error", null, "shutting_down"));
    const current = engine;
    if (current === null) {
      res.setHeader("retry-after", "1");
      return sendError(res, new ApiError(503, "the engine is not ready", "server_error", null, "engine_not_ready"));
    }
    let plan = planEngineRequest(request, options.generation);
    const prompt = typeof request.prompt === "string" ? request.prompt : "";
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new ClientGoneError());
    };
    res.on("close", onClose);
    requests.add(controller);
    let release: (() => void) | undefined;
    let output = "";
    let status = 200;
    const done = (outcome: Omit<RequestOutcome, "kind" | "prompt" | "output" | "status">) => options.onRequestEnd?.({ kind, prompt, output, status, ...outcome });
    try {
      // Prompt and answer must fit the slot's context: counted by the engine unless the text is short enough to be sure.
      const context = options.slotContext;
      if (context !== null && !(plan.maxTokens !== null && promptTokensAtMost(request.prompt) + plan.maxTokens + 2 <= context)) {
        const tokens = typeof request.prompt === "string" ? (await current.countTokens(request.prompt, controller.signal)) + 1 : request.prompt.length;
        plan = fitToContext(plan, tokens, context, kind === "chat" ? "messages" : "prompt");
      }
      try {
        release = await options.queue.acquire(controller.signal);
      } catch (error) {
        if (error instanceof QueueFullError) {
          options.metrics.rejected++;
          res.setHeader("retry-after", String(error.retryAfterSeconds));
          status = 503;
          sendError(res, new ApiError(503, `the server is busy: ${options.queue.running} requests running and ${options.queue.waiting} waiting; retry after ${error.retryAfterSeconds} s`, "server_error", null, "queue_full"));
          return;
        }
        throw error;
      }
      const id = newIdentity(kind, options.model.id);
      const clamped =
        plan.contextLimited ? { "x-ai-tools-max-tokens": `${plan.maxTokens} (what the context leaves after the prompt)` }
        : plan.clampedFrom !== null ? { "x-ai-tools-max-tokens": `${plan.maxTokens} (asked ${plan.clampedFrom}; the policy's max_tokens)` }
        : {};
      if (request.stream) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...clamped });
        if (kind === "chat") await send(res, streamChunk(kind, id, { role: "assistant", content: "" }, request.includeUsage));
      }
      const { final, firstAt, cut } = await relay(current, plan, controller.signal, (content) => {
        output += content;
        return request.stream ? send(res, streamChunk(kind, id, { content }, request.includeUsage)) : undefined;
      });
      const finishReason: FinishReason = !cut && (final.stoppedWord || final.stoppedEos) ? "stop" : "length";
      const completionTokens = plan.maxTokens !== null ? Math.min(final.tokensPredicted, plan.maxTokens) : final.tokensPredicted;
      const usage = usageOf(final.tokensEvaluated, completionTokens);
      if (request.stream) {
        await send(res, streamChunk(kind, id, { finishReason }, request.includeUsage));
        if (request.includeUsage) await send(res, usageChunk(kind, id, usage));
        res.end("data: [DONE]\n\n");
      } else {
        res.writeHead(200, { "content-type": "application/json", ...clamped });
        res.end(JSON.stringify(completeResponse(kind, id, output, finishReason, usage)));
      }
      const endedAt = performance.now();
      done({
        metrics: {
          timeToFirstTokenMs: firstAt === null ? null : firstAt - arrived,
          totalMs: endedAt - arrived,
          promptTokens: final.tokensEvaluated,
          generatedTokens: completionTokens,
          promptTokensPerSecond: final.timings.promptPerSecond,
          generationTokensPerSecond: final.timings.predictedPerSecond,
          source: "engine",
        },
      });
      options.log?.(`${req.method} ${req.url} 200 ${completionTokens} tokens in ${((endedAt - arrived) / 1000).toFixed(2)} s (${finishReason})`);
    } catch (error) {
      if (error instanceof ApiError) {
        status = error.status;
        sendError(res, error);
        return;
      }
      if (controller.signal.reason instanceof ClientGoneError) {
        status = 499;
        done({ metrics: null, error: new EngineError("E_ENGINE_ABORTED", "the client closed the connection") });
        options.log?.(`${req.method} ${req.url}: the client closed the connection; the engine request was stopped`);
        return;
      }
      const code = isPipelineError(error) ? error.code : "E_INTERNAL";
      status = code === "E_ENGINE_TIMEOUT" ? 504 : code === "E_ENGINE_ABORTED" ? 503 : 502;
      const apiError = new ApiError(status, `the engine failed: ${(error as Error).message}`, "server_error", null, code.toLowerCase().replace(/^e_/, ""));
      if (res.headersSent) {
        // Mid-stream: an error event (the official clients raise it), and no [DONE].
        res.end(`data: ${JSON.stringify(apiError.body())}\n\n`);
      } else sendError(res, apiError);
      done({ metrics: null, error });
      options.log?.(`${req.method} ${req.url} ${status}: ${(error as Error).message}`);
    } finally {
      release?.();
      res.off("close", onClose);
      requests.delete(controller);
      if (requests.size === 0) drained?.();
    }
  }

  /**
   * The engine's text for one request, passed to `onText` piece by piece, up to max_tokens (the
   * engine's extra tokens are dropped); then its final event, and whether tokens were dropped.
   */
  async function relay(current: FrontEngine, plan: EnginePlan, signal: AbortSignal, onText: (text: string) => Promise<void> | undefined) {
    let events = 0;
    let firstAt: number | null = null;
    for await (const event of engineEvents(current, plan.body, signal)) {
      if (event.kind === "final") return { final: event.final, firstAt, cut: plan.maxTokens !== null && events > plan.maxTokens };
      if ((plan.maxTokens !== null && ++events > plan.maxTokens) || event.content === "") continue;
      firstAt ??= performance.now();
      await onText(event.content);
    }
    throw new EngineError("E_ENGINE_FAILED", "the engine's stream ended without its final event");
  }

  /** The engine's events; an engine that reports no free slot (a slot just freed, not yet released) is asked again. */
  async function* engineEvents(current: FrontEngine, body: EngineCompletionBody, signal: AbortSignal): AsyncGenerator<EngineEvent> {
    const deadline = performance.now() + (options.busyRetryMs ?? 30_000);
    for (let delay = 5; ; delay = Math.min(2 * delay, 200)) {
      try {
        yield* current.stream(body, signal);
        return;
      } catch (error) {
        if (!(error instanceof EngineBusyError)) throw error;
        if (performance.now() > deadline) throw new EngineError("E_ENGINE_FAILED", `the engine reported no free slot for ${Math.round((options.busyRetryMs ?? 30_000) / 1000)} s`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        signal.throwIfAborted();
      }
    }
  }

  server.listen(options.port, options.host);
  await Promise.race([once(server, "listening"), once(server, "error").then(([error]) => Promise.reject(error))]);
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    setEngine: (next) => void (engine = next),
    inFlight: () => requests.size,
    async shutdown(graceMs: number) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (requests.size > 0) {
        const allDone = new Promise<void>((resolve) => (drained = resolve));
        const timer = setTimeout(() => {
          for (const controller of requests) controller.abort(new Error("shutdown grace period over"));
        }, graceMs);
        await allDone;
        clearTimeout(timer);
      }
      server.closeAllConnections();
      await closed;
    },
  };
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

function modelNotFound(id: string): ApiError {
  return new ApiError(404, `The model '${id}' does not exist: this server serves one model (GET /v1/models)`, "invalid_request_error", "model", "model_not_found");
}

function methodNotAllowed(res: ServerResponse, allowed: string): void {
  res.setHeader("allow", allowed);
  sendError(res, new ApiError(405, `method not allowed here; use ${allowed}`, "invalid_request_error", null, "method_not_allowed"));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function sendError(res: ServerResponse, error: ApiError): void {
  sendJson(res, error.status, error.body());
}

/** One SSE event, waiting while the client's socket is full (a slow reader does not fill our memory). */
async function send(res: ServerResponse, chunk: unknown): Promise<void> {
  if (res.destroyed) throw new ClientGoneError();
  if (!res.write(`data: ${JSON.stringify(chunk)}\n\n`)) {
    await Promise.race([once(res, "drain"), once(res, "close")]);
  }
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw new ApiError(413, `the request body is over ${limit} bytes`, "invalid_request_error", null, "request_too_large");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ApiError(413, `the request body is over ${limit} bytes`, "invalid_request_error", null, "request_too_large");
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new ApiError(400, "the request body is not valid JSON", "invalid_request_error", null, "invalid_json");
  }
}
