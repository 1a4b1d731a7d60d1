/**
 * A client of the engine server's POST /completion, always streamed: one event per sampled
 * token, then the final one with the stop reasons, token counts and timings.
 *
 * node:http with a new connection per request (agent: false), not fetch or a keep-alive pool:
 * closing the connection is how the engine learns that the client went away (it checks the
 * socket before each token); cpp-httplib drops idle keep-alive connections after 5 s, which
 * races with a request sent on a reused one; and each kept connection would hold one of
 * its worker threads. A loopback connect costs about 0.1 ms.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { createParser } from "eventsource-parser";
import { EngineError } from "../../engines/types.js";
import type { EngineCompletionBody } from "./openai-protocol.js";

export interface EngineTimings {
  promptN: number | null;
  promptMs: number | null;
  promptPerSecond: number | null;
  predictedN: number | null;
  predictedMs: number | null;
  predictedPerSecond: number | null;
}

export interface EngineFinal {
  stoppedEos: boolean;
  stoppedWord: boolean;
  stoppedLimit: boolean;
  stoppingWord: string;
  tokensPredicted: number;
  tokensEvaluated: number;
  truncated: boolean;
  timings: EngineTimings;
}

export type EngineEvent = { kind: "token"; content: string } | { kind: "final"; final: EngineFinal };

/** The engine had no free slot: it answers a streamed request with an empty event stream. */
export class EngineBusyError extends Error {
  constructor() {
    super("the engine has no free slot");
    this.name = "EngineBusyError";
  }
}

export interface StreamOptions {
  signal: AbortSignal;
  /** The engine said nothing for this long: stop waiting (its loop may have died while the process lives). */
  idleTimeoutMs: number;
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** One `data:` payload of the engine's stream. */
export function parseEngineEvent(data: string): EngineEvent {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (error) {
    throw new EngineError("E_ENGINE_FAILED", `the engine sent an event that is not JSON: ${data.slice(0, 120)}`, { cause: error });
  }
  if (typeof json !== "object" || json === null || typeof (json as { stop?: unknown }).stop !== "boolean") {
    throw new EngineError("E_ENGINE_FAILED", `the engine sent an event without "stop": ${data.slice(0, 120)}`);
  }
  const e = json as Record<string, unknown>;
  if (e.stop === false) return { kind: "token", content: typeof e.content === "string" ? e.content : "" };
  const t = (typeof e.timings === "object" && e.timings !== null ? e.timings : {}) as Record<string, unknown>;
  return {
    kind: "final",
    final: {
      stoppedEos: e.stopped_eos === true,
      stoppedWord: e.stopped_word === true,
      stoppedLimit: e.stopped_limit === true,
      stoppingWord: typeof e.stopping_word === "string" ? e.stopping_word : "",
      tokensPredicted: num(e.tokens_predicted) ?? 0,
      tokensEvaluated: num(e.tokens_evaluated) ?? 0,
      truncated: e.truncated === true,
      timings: {
        promptN: num(t.prompt_n),
        promptMs: num(t.prompt_ms),
        promptPerSecond: num(t.prompt_per_second),
        predictedN: num(t.predicted_n),
        predictedMs: num(t.predicted_ms),
        predictedPerSecond: num(t.predicted_per_second),
      },
    },
  };
}

/** The engine's token count of `text` (POST /tokenize; without the BOS a prompt gets). */
export async function countTokens(baseUrl: string, text: string, signal: AbortSignal): Promise<number> {
  const url = `${baseUrl}/tokenize`;
  const payload = Buffer.from(JSON.stringify({ content: text }), "utf8");
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", agent: false, signal, headers: { "content-type": "application/json", "content-length": payload.length } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new EngineError("E_ENGINE_HTTP", `${url} answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`))));
      res.on("error", reject);
    });
    req.on("error", (error) => reject(signal.aborted ? new EngineError("E_ENGINE_ABORTED", `the request to ${url} was stopped`) : new EngineError("E_ENGINE_UNAVAILABLE", `cannot reach the engine server at ${url} (${(error as NodeJS.ErrnoException).code ?? error.message})`)));
    req.end(payload);
  });
  const tokens = (JSON.parse(body) as { tokens?: unknown }).tokens;
  if (!Array.isArray(tokens)) throw new EngineError("E_ENGINE_FAILED", `${url} answered without a token list: ${body.slice(0, 120)}`);
  return tokens.length;
}

/** The engine's events for one request, as they arrive. Breaking out of the loop closes the connection (and so stops the engine). */
export async function* streamCompletion(baseUrl: string, body: EngineCompletionBody, options: StreamOptions): AsyncGenerator<EngineEvent> {
  const url = `${baseUrl}/completion`;
  const payload = Buffer.from(JSON.stringify(body), "utf8");
  let req: ClientRequest | undefined;
  let timedOut = false;
  const failure = (error: unknown, during: string): EngineError => {
    if (options.signal.aborted) return new EngineError("E_ENGINE_ABORTED", `the request to ${url} was stopped`);
    if (timedOut) return new EngineError("E_ENGINE_TIMEOUT", `the engine at ${url} sent nothing for ${Math.round(options.idleTimeoutMs / 1000)} s`);
    if (error instanceof EngineError) return error;
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return during === "connect"
      ? new EngineError("E_ENGINE_UNAVAILABLE", `cannot reach the engine server at ${url} (${code})`, { cause: error })
      : new EngineError("E_ENGINE_FAILED", `the engine's stream from ${url} broke off (${code})`, { cause: error });
  };
  const onAbort = () => req?.destroy(new Error("aborted"));
  options.signal.throwIfAborted();
  options.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      req = httpRequest(url, {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "content-length": payload.length, accept: "text/event-stream" },
      });
      req.setTimeout(options.idleTimeoutMs, () => {
        timedOut = true;
        req!.destroy(new Error("idle timeout"));
      });
      req.once("response", resolve);
      req.once("error", reject);
      req.end(payload);
    }).catch((error: unknown) => {
      throw failure(error, "connect");
    });
    if (response.statusCode !== 200) {
      let text = "";
      for await (const chunk of response) text += chunk;
      throw new EngineError("E_ENGINE_HTTP", `the engine answered HTTP ${response.statusCode}: ${text.trim().replace(/\s+/g, " ").slice(0, 300)}`);
    }
    const pending: string[] = [];
    const parser = createParser({ onEvent: (event) => pending.push(event.data) });
    const decoder = new TextDecoder();
    let events = 0;
    let final = false;
    try {
      for await (const chunk of response as AsyncIterable<Buffer>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        while (pending.length > 0) {
          const event = parseEngineEvent(pending.shift()!);
          events++;
          if (event.kind === "final") final = true;
          yield event;
          if (final) return;
        }
      }
    } catch (error) {
      throw failure(error, "stream");
    }
    if (options.signal.aborted || timedOut) throw failure(null, "stream");
    if (events === 0) throw new EngineBusyError();
    throw new EngineError("E_ENGINE_FAILED", `the engine's stream from ${url} ended after ${events} event(s) without its final one: the engine stopped mid-answer`);
  } finally {
    options.signal.removeEventListener("abort", onAbort);
    // Done, failed, or the consumer stopped reading: close the connection (the engine stops at its next token).
    req?.destroy();
  }
}
