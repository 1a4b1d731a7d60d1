/**
 * The OpenAI-compatible engine against a local server that streams the way OpenAI, vLLM
 * and llama-server do: a role delta, content deltas, a chunk with finish_reason, a usage
 * chunk with empty choices, then `data: [DONE]`, each flushed after a short delay so that
 * streaming (onToken before the answer is complete) is observable.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildChatRequestBody, createOpenAiEngine, parseStreamData, serverErrorMessage } from "../engines/openai.js";
import { EngineError, type EngineErrorCode } from "../engines/types.js";
import type { OpenAiSettings, RenderedGeneration, RenderedPolicy } from "../pipeline/policy/types.js";
import { CLI } from "./helpers/workspace.js";

const KEY_ENV = "TEST_OPENAI_KEY";
/** Distinctive, so that any leak into an error is found by a plain substring search. */
const KEY = "sk-test-DO-NOT-LEAK-7f3a9c1e5b";
const MODEL = "tiny-chat-model";

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

let server: Server;
let baseUrl: string;
let handler: Handler;
let requests: Recorded[];

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (raw += chunk));
    req.on("end", () => {
      requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: raw ? JSON.parse(raw) : undefined });
      void handler(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  requests = [];
  handler = (_req, res) => void res.writeHead(500).end("no handler");
});

// --- the policy and the server's answers ------------------------------------------------

function policy(overrides: { generation?: Partial<RenderedGeneration>; openai?: Partial<OpenAiSettings>; baseUrl?: string } = {}): RenderedPolicy {
  return {
    file: "policies/remote.yaml",
    engine: "openai",
    modelPath: null,
    generation: { temperature: 0.7, top_p: 0.9, top_k: 40, repeat_penalty: 1.1, max_tokens: 64, ctx_size: 2048, seed: 42, stop: ["\n\n"], ...overrides.generation },
    runtime: { threads: 4, vram_budget_gb: null, gpu_layers: null, batch_size: null },
    openai: { base_url: overrides.baseUrl ?? baseUrl, model: MODEL, api_key_env: KEY_ENV, timeout_seconds: 5, ...overrides.openai },
    sources: {},
    warnings: [],
    policyHash: "0".repeat(64),
    host: { name: "detected", source: "detected", physicalCores: 4, memoryBytes: 8 * 2 ** 30, gpus: [] },
  };
}

const chunkBase = { id: "chatcmpl-123", object: "chat.completion.chunk", created: 1_700_000_000, model: MODEL, system_fingerprint: "fp_test" };
const choice = (delta: object, finish_reason: string | null = null) => ({ ...chunkBase, choices: [{ index: 0, delta, logprobs: null, finish_reason }], usage: null });

/** The SSE events of one answer, as OpenAI sends them with stream_options.include_usage. */
function answer(pieces: string[], options: { usage?: [number, number] | null; finish?: string; extraFinal?: object } = {}): string[] {
  const events: object[] = [choice({ role: "assistant", content: "" }), ...pieces.map((content) => choice({ content })), { ...choice({}, options.finish ?? "stop"), ...options.extraFinal }];
  const usage = options.usage === undefined ? ([9, pieces.length] as [number, number]) : options.usage;
  if (usage) events.push({ ...chunkBase, choices: [], usage: { prompt_tokens: usage[0], completion_tokens: usage[1], total_tokens: usage[0] + usage[1] } });
  return [...events.map((event) => `data: ${JSON.stringify(event)}\n\n`), "data: [DONE]\n\n"];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Writes the events one by one with a delay, stopping if the client goes away. Resolves
 * with the time the last byte was written (performance.now()), or null if the client left.
 */
async function stream(res: ServerResponse, events: string[], delayMs = 15, end = true): Promise<number | null> {
  let gone = false;
  res.on("close", () => (gone = !res.writableEnded));
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  for (const event of events) {
    await sleep(delayMs);
    if (gone) return null;
    res.write(event);
  }
  const at = performance.now();
  if (end) res.end();
  return at;
}

/** Awaits an EngineError with this code, and checks that the key appears nowhere in it. */
async function engineError(promise: Promise<unknown>, code: EngineErrorCode): Promise<EngineError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EngineError);
  const engineErr = error as EngineError;
  expect({ code: engineErr.code, message: engineErr.message }).toMatchObject({ code });
  for (const text of [engineErr.message, ...engineErr.details, String(engineErr.cause ?? ""), engineErr.stack ?? ""]) expect(text).not.toContain(KEY);
  return engineErr;
}

const withKey = () => createOpenAiEngine({ env: { [KEY_ENV]: KEY } });

// --- tests ------------------------------------------------------------------------------

describe("openai engine: generate", () => {
  it("streams the answer token by token and sends the policy's settings", async () => {
    const pieces = ["Hello", ",", " world", "!", " How", " are", " you", "?"];
    let lastByteAt: number | null = null;
    handler = async (_req, res) => void (lastByteAt = await stream(res, answer(pieces)));
    const tokenTimes: number[] = [];
    const tokens: string[] = [];
    const result = await withKey().generate("Say hello.", policy(), {
      onToken: (t) => {
        tokens.push(t);
        tokenTimes.push(performance.now());
      },
    });

    expect(result.text).toBe("Hello, world! How are you?");
    expect(tokens).toEqual(pieces);
    expect(tokens.join("")).toBe(result.text);
    expect(result.finishReason).toBe("stop");
    // Streaming, not buffering: most tokens reached us before the server wrote its last byte.
    expect(lastByteAt).not.toBeNull();
    expect(tokenTimes.filter((t) => t < lastByteAt!).length).toBeGreaterThanOrEqual(5);

    expect(requests).toHaveLength(1);
    const [request] = requests;
    expect(request!.method).toBe("POST");
    expect(request!.url).toBe("/v1/chat/completions");
    expect(request!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(request!.headers["content-type"]).toBe("application/json");
    expect(request!.body).toEqual({
      model: MODEL,
      messages: [{ role: "user", content: "Say hello." }],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 64,
      temperature: 0.7,
      top_p: 0.9,
      seed: 42,
      stop: ["\n\n"],
    });
  });

  it("sends no Authorization header without a key, and omits the unset settings", async () => {
    handler = async (_req, res) => void (await stream(res, answer(["ok"]), 1));
    const result = await createOpenAiEngine({ env: {} }).generate("hi", policy({ generation: { max_tokens: -1, seed: -1, stop: [] } }));
    expect(result.text).toBe("ok");
    const [request] = requests;
    expect(request!.headers.authorization).toBeUndefined();
    const body = request!.body as Record<string, unknown>;
    expect(body).not.toHaveProperty("max_tokens");
    expect(body).not.toHaveProperty("seed");
    expect(body).not.toHaveProperty("stop");
    expect(buildChatRequestBody("hi", policy({ generation: { max_tokens: 0 } })).max_tokens).toBe(0);
  });

  it("takes token counts from usage, and measures time to first token and speed", async () => {
    handler = async (_req, res) => void (await stream(res, answer(["a", "b", "c", "d"], { usage: [17, 12] }), 20));
    const { metrics } = await withKey().generate("count", policy());
    expect(metrics.source).toBe("measured");
    expect(metrics.promptTokens).toBe(17);
    expect(metrics.generatedTokens).toBe(12);
    const ttft = metrics.timeToFirstTokenMs!;
    // The role chunk (no text) comes first: the first token is the second event, ~40 ms in.
    expect(ttft).toBeGreaterThanOrEqual(30);
    expect(metrics.totalMs).toBeGreaterThan(ttft);
    expect(metrics.generationTokensPerSecond).toBeCloseTo(12 / ((metrics.totalMs - ttft) / 1000), 6);
    expect(metrics.promptTokensPerSecond).toBeNull();
  });

  it("counts content chunks when the server sends no usage, and uses llama-server's own timings when sent", async () => {
    handler = async (_req, res) => void (await stream(res, answer(["x", "y", "z"], { usage: null, finish: "length" }), 1));
    const plain = await withKey().generate("p", policy());
    expect(plain.finishReason).toBe("length");
    expect(plain.metrics).toMatchObject({ source: "measured", promptTokens: null, generatedTokens: 3 });

    const timings = { prompt_n: 5, prompt_ms: 10, prompt_per_second: 500, predicted_n: 3, predicted_ms: 30, predicted_per_second: 100 };
    handler = async (_req, res) => void (await stream(res, answer(["x", "y", "z"], { usage: [5, 3], extraFinal: { timings } }), 1));
    const llamaServer = await withKey().generate("p", policy());
    expect(llamaServer.metrics).toMatchObject({ source: "engine", promptTokens: 5, generatedTokens: 3, promptTokensPerSecond: 500, generationTokensPerSecond: 100 });
  });

  it("401 is E_ENGINE_AUTH naming the variable to set, never the key", async () => {
    handler = (req, res) => {
      // As OpenAI does: the rejected key is quoted back.
      const sent = String(req.headers.authorization).replace(/^Bearer /, "");
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${sent}.`, type: "invalid_request_error", param: null, code: "invalid_api_key" } }));
    };
    const error = await engineError(withKey().generate("hi", policy()), "E_ENGINE_AUTH");
    expect(error.message).toContain(KEY_ENV);
    expect(error.message).toContain("401");
    expect(error.message).toContain("Incorrect API key provided: ***");
  });

  it("500 is E_ENGINE_HTTP with the server's message", async () => {
    handler = (req, res) => {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `CUDA out of memory (request had ${String(req.headers.authorization)})`, type: "server_error", code: 500 } }));
    };
    const error = await engineError(withKey().generate("hi", policy()), "E_ENGINE_HTTP");
    expect(error.message).toContain("HTTP 500");
    expect(error.message).toContain("CUDA out of memory");

    // vLLM's older error shape, and a long body, which is quoted only in part.
    expect(serverErrorMessage(JSON.stringify({ object: "error", message: "The model `x` does not exist.", type: "NotFoundError", code: 404 }))).toBe(
      "The model `x` does not exist.",
    );
    expect(serverErrorMessage("<html>" + "x".repeat(5000) + "</html>").length).toBeLessThanOrEqual(303);
  });

  it("an unreachable server is E_ENGINE_UNAVAILABLE naming the URL", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await engineError(withKey().generate("hi", policy({ baseUrl: `http://127.0.0.1:${port}/v1` })), "E_ENGINE_UNAVAILABLE");
    expect(error.message).toContain(`http://127.0.0.1:${port}/v1`);
    expect(error.message).toContain("ECONNREFUSED");
  });

  it("a server that stalls is E_ENGINE_TIMEOUT after timeout_seconds, before or after its headers", async () => {
    const stalls: Handler[] = [
      () => {}, // never answers
      async (_req, res) => void (await stream(res, answer(["one"]).slice(0, 2), 1, false)), // a token, then silence
    ];
    for (const stall of stalls) {
      handler = stall;
      const started = performance.now();
      const error = await engineError(withKey().generate("hi", policy({ openai: { timeout_seconds: 0.5 } })), "E_ENGINE_TIMEOUT");
      const elapsed = performance.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(450);
      expect(elapsed).toBeLessThan(2_000);
      expect(error.message).toContain("0.5 s");
    }
  });

  it("aborting mid-stream is E_ENGINE_ABORTED, stops onToken and drops the connection", async () => {
    let serverSawClose!: () => void;
    const closedByClient = new Promise<void>((resolve) => (serverSawClose = resolve));
    handler = async (_req, res) => {
      res.on("close", () => {
        if (!res.writableEnded) serverSawClose();
      });
      await stream(res, answer(Array.from({ length: 100 }, (_, i) => ` t${i}`)), 20);
    };
    const controller = new AbortController();
    const tokens: string[] = [];
    const pending = withKey().generate("long", policy(), {
      signal: controller.signal,
      onToken: (t) => {
        tokens.push(t);
        if (tokens.length === 3) controller.abort();
      },
    });
    const error = await engineError(pending, "E_ENGINE_ABORTED");
    expect(error.message).toContain("aborted");
    expect(tokens).toHaveLength(3);
    await closedByClient;

    // An already aborted signal: nothing is sent.
    requests = [];
    await engineError(withKey().generate("x", policy(), { signal: AbortSignal.abort() }), "E_ENGINE_ABORTED");
    expect(requests).toHaveLength(0);
  });

  it("a stream that ends without [DONE], breaks off or holds bad JSON is E_ENGINE_FAILED", async () => {
    const full = answer(["partial", " answer"]);
    // 1. The response ends cleanly but early: no finish chunk, no usage, no [DONE].
    handler = async (_req, res) => void (await stream(res, full.slice(0, 3), 5));
    const tokens: string[] = [];
    const early = await engineError(withKey().generate("hi", policy(), { onToken: (t) => tokens.push(t) }), "E_ENGINE_FAILED");
    expect(early.message).toContain("[DONE]");
    expect(tokens).toEqual(["partial", " answer"]);

    // 2. The connection drops mid-stream.
    handler = async (_req, res) => {
      await stream(res, full.slice(0, 2), 5, false);
      res.socket?.destroy();
    };
    await engineError(withKey().generate("hi", policy()), "E_ENGINE_FAILED");

    // 3. A chunk that is not JSON.
    handler = async (_req, res) => void (await stream(res, [full[0]!, "data: {\"choices\": [\n\n", ...full.slice(1)], 5));
    const bad = await engineError(withKey().generate("hi", policy()), "E_ENGINE_FAILED");
    expect(bad.message).toContain("not JSON");

    // 4. An error reported inside the stream (vLLM, llama-server).
    expect(() => parseStreamData(JSON.stringify({ error: { message: "engine crashed", code: 500 } }))).toThrow(/engine crashed/);
  });
});

describe("ai-tools run --engine openai", () => {
  it("probes and queries the policy's server (a random port, not 8000) with the policy's key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ai-tools-openai-run-"));
    try {
      const file = join(dir, "remote.yaml");
      writeFileSync(file, `engine: openai\nopenai:\n  base_url: ${baseUrl}\n  model: ${MODEL}\n  api_key_env: ${KEY_ENV}\ngeneration:\n  max_tokens: 3\n`);
      handler = (req, res) => {
        if (req.url === "/v1/models") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ object: "list", data: [{ id: MODEL }] }));
        return void stream(res, answer(["Hello", ",", " world"]), 1);
      };
      const env: NodeJS.ProcessEnv = { ...process.env, CI: "true", AI_TOOLS_ROOT: dir, [KEY_ENV]: KEY };
      delete env.OPENAI_BASE_URL;
      delete env.OPENAI_API_KEY;
      // Not spawnSync: the server answering it runs in this process.
      const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, "run", "--engine", "openai", "--config", file, "--prompt", "Say hello"], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d));
        child.stderr.on("data", (d: Buffer) => (stderr += d));
        child.on("close", (status) => resolve({ status, stdout, stderr }));
      });
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toBe("Hello, world\n");
      expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual(["GET /v1/models", "POST /v1/chat/completions"]);
      for (const request of requests) expect(request.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(result.stderr).not.toContain(KEY);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("openai engine: the key goes to base_url's server only", () => {
  let other: Server;
  let otherUrl: string;
  let otherRequests: Recorded[];
  beforeAll(async () => {
    other = createServer((req, res) => {
      otherRequests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: undefined });
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ object: "list", data: [{ id: MODEL }] }));
    });
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    other.closeAllConnections();
    await new Promise((resolve) => other.close(resolve));
  });
  beforeEach(() => {
    otherRequests = [];
    // Another origin (another port): following this would hand the key and the prompt to it.
    handler = (req, res) => void res.writeHead(307, { location: `${otherUrl}${req.url}` }).end();
  });

  it("a redirected request is not followed: E_ENGINE_HTTP naming where to, nothing sent there", async () => {
    const error = await engineError(withKey().generate("the secret prompt", policy()), "E_ENGINE_HTTP");
    expect(error.message).toContain(`redirects (HTTP 307) to ${otherUrl}/v1/chat/completions: not followed`);
    expect(otherRequests).toEqual([]);
  });

  it("a redirected probe is not followed either", async () => {
    const probe = await withKey().probe(policy());
    expect(probe.available).toBe(false);
    expect(probe.detail).toContain(`redirects (HTTP 307) to ${otherUrl}/v1/models`);
    expect(otherRequests).toEqual([]);
    expect(requests[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
  });
});

describe("openai engine: probe and info", () => {
  it("lists the served models, sending the key", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: MODEL, object: "model", owned_by: "vllm" }, { id: "other-model", object: "model" }] }));
    };
    const probe = await createOpenAiEngine({ env: { [KEY_ENV]: KEY }, probe: { base_url: baseUrl, api_key_env: KEY_ENV } }).probe();
    expect(probe).toMatchObject({ name: "openai", available: true, version: `${MODEL}, other-model`, via: baseUrl });
    expect(requests[0]).toMatchObject({ method: "GET", url: "/v1/models" });
    expect(requests[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(JSON.stringify(probe)).not.toContain(KEY);
  });

  it("says why not when the server refuses or is down", async () => {
    handler = (_req, res) => void res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: `bad key ${KEY}` } }));
    const env = { OPENAI_BASE_URL: baseUrl, OPENAI_API_KEY: KEY };
    const refused = await createOpenAiEngine({ env }).probe();
    expect(refused).toMatchObject({ available: false, version: null });
    expect(refused.detail).toContain("OPENAI_API_KEY");
    expect(JSON.stringify(refused)).not.toContain(KEY);

    const down = await createOpenAiEngine({ env: {}, probe: { base_url: "http://127.0.0.1:9/v1" } }).probe();
    expect(down.available).toBe(false);
    expect(down.detail).toContain("http://127.0.0.1:9/v1/models");
  });

  it("given the policy, asks the policy's server with the policy's key (not $OPENAI_BASE_URL or port 8000)", async () => {
    handler = (_req, res) => void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ object: "list", data: [{ id: MODEL }] }));
    const env = { OPENAI_BASE_URL: "http://127.0.0.1:9/v1", OPENAI_API_KEY: "sk-wrong-key-for-this-server", [KEY_ENV]: KEY };
    const probe = await createOpenAiEngine({ env }).probe(policy());
    expect(probe).toMatchObject({ available: true, via: baseUrl, version: MODEL });
    expect(requests).toHaveLength(1);
    expect(requests[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
  });

  it("describes itself as a remote engine", () => {
    const engine = createOpenAiEngine({ env: {} });
    expect(engine.name).toBe("openai");
    expect(engine.info()).toMatchObject({ name: "openai", formats: ["remote"] });
  });
});
