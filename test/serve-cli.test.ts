/**
 * `ai-tools serve` end to end, as a user runs it: the converted, signed demo model served by
 * the fixture engine's `server` build (built on demand), queried by the official `openai`
 * npm client and by our own `openai` engine (`ai-tools run --engine openai`), over 127.0.0.1.
 * The fixture server logs every sampled token (FIXTURE_SERVER_EVENTS), so the tests see
 * what the engine did, not only what the front said.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gv, powerInferModelSpec, writeGguf } from "./helpers/gguf-writer.js";
import { serveCli, type Served } from "./helpers/serve.js";
import { isAlive, waitFor } from "./helpers/wait.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const MODEL = "tiny-relu-llama";
const POLICY = `models/powerinfer/${MODEL}/policy.yaml`;

const events = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []);

describe.skipIf(!pythonReady)("ai-tools serve (needs /usr/bin/python3 with numpy<2 and sentencepiece for the demo model)", () => {
  let ws: TestWorkspace;
  let server: Served;
  let client: OpenAI;
  const eventsFile = () => join(ws.root, "engine-events.log");
  const metricsLog = () => join(ws.root, "build", "serve-metrics.jsonl");

  beforeAll(async () => {
    ws = makeWorkspace();
    const converted = await ws.cli(["convert", MODEL]);
    expect(converted.code, converted.stdout + converted.stderr).toBe(0);
    // The demo model's policy with a longer limit, so that a generation can outlast a client.
    writeFileSync(join(ws.root, "serve-policy.yaml"), readFileSync(join(ws.root, POLICY), "utf8").replace("max_tokens: 16", "max_tokens: 400").replace("ctx_size: 256", "ctx_size: 512"));
    server = await serveCli(ws, ["--config", "serve-policy.yaml", "--queue", "4", "--metrics-log", "build/serve-metrics.jsonl"], {
      FIXTURE_SERVER_TOKEN_DELAY_MS: "15",
      FIXTURE_SERVER_EVENTS: eventsFile(),
    });
    client = new OpenAI({ baseURL: `${server.base}/v1`, apiKey: "unused", maxRetries: 0, timeout: 30_000 });
  }, 180_000);

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill("SIGTERM");
      await server.exit;
    }
    ws?.cleanup();
  });

  it("builds the engine's server step on demand, verifies the model, and says where it serves", async () => {
    expect(server.stderr()).toContain("[build-server] run: no record of a successful run");
    expect(server.stderr()).toMatch(/verified 4 files/);
    expect(server.stderr()).toContain("chat template plain: the model has no tokenizer.chat_template");
    const health = await fetch(`${server.base}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: "ok" }]);
    const models = await client.models.list();
    expect(models.data.map((m) => [m.id, m.object, m.owned_by])).toEqual([[MODEL, "model", "ai-tools"]]);
    expect((await client.models.retrieve(MODEL)).id).toBe(MODEL);
  });

  it("answers the official client: completions and chat, with usage; streamed text equals the unstreamed text", async () => {
    const completion = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 5, seed: 11 });
    const choice = completion.choices[0]!;
    expect(completion.object).toBe("text_completion");
    expect(choice.text.length).toBeGreaterThan(0);
    expect(choice.finish_reason).toBe("length");
    expect(completion.usage).toMatchObject({ completion_tokens: 5, total_tokens: completion.usage!.prompt_tokens + 5 });
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(1);

    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }], max_tokens: 6, seed: 11 });
    expect(chat.object).toBe("chat.completion");
    expect(chat.choices[0]!.message.role).toBe("assistant");
    expect(chat.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(chat.usage!.completion_tokens).toBe(6);

    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
      max_tokens: 6,
      seed: 11,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(chat.choices[0]!.message.content);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("length");
    // Usage in the last chunk (no choices), the same numbers as without streaming.
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual(chat.usage);

    const textStream = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 5, seed: 11, stream: true });
    let text = "";
    for await (const chunk of textStream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(choice.text);
  });

  it("clamps max_tokens to the policy's max_tokens and enforces it exactly, though the engine overshoots", async () => {
    const asked = await fetch(`${server.base}/v1/completions`, { method: "POST", body: JSON.stringify({ model: MODEL, prompt: "Once", max_tokens: 100000, seed: 5 }) });
    expect(asked.status).toBe(200);
    expect(asked.headers.get("x-ai-tools-max-tokens")).toBe("400 (asked 100000; the policy's max_tokens)");
    // The engine was asked for the policy's limit (it then stopped at its end of text).
    expect(events(eventsFile()).filter((l) => / start /.test(l)).at(-1)).toMatch(/n_predict 400$/);
    const body = (await asked.json()) as { choices: { finish_reason: string }[]; usage: { completion_tokens: number } };
    expect(body.choices[0]!.finish_reason).toBe("stop");
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(400);

    // max_tokens 1: the engine samples at least four tokens; the client gets one.
    const one = await client.completions.create({ model: MODEL, prompt: "Once", max_tokens: 1, seed: 5, stream: true, stream_options: { include_usage: true } });
    const pieces: string[] = [];
    let usage;
    for await (const chunk of one) {
      if (chunk.choices[0]?.text) pieces.push(chunk.choices[0].text);
      if (chunk.usage) usage = chunk.usage;
    }
    expect(pieces).toHaveLength(1);
    expect(usage).toMatchObject({ completion_tokens: 1 });
    expect(events(eventsFile()).filter((l) => / end /.test(l)).at(-1)).toMatch(/end limit tokens_predicted 3$/);
  });

  it("fits each request to the slot's context (512): the engine counts long prompts; one that fills it is refused", async () => {
    // " the" is one token of the fixture's vocabulary: 490 of them plus the BOS.
    const long = await fetch(`${server.base}/v1/completions`, { method: "POST", body: JSON.stringify({ model: MODEL, prompt: " the".repeat(490), max_tokens: 100, seed: 2 }) });
    expect(long.status).toBe(200);
    expect(long.headers.get("x-ai-tools-max-tokens")).toBe("19 (what the context leaves after the prompt)");
    expect(events(eventsFile()).filter((l) => / start /.test(l)).at(-1)).toMatch(/n_predict 19$/);
    expect(((await long.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage).toMatchObject({ prompt_tokens: 491 });
    await expect(client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: " the".repeat(600) }] })).rejects.toMatchObject({
      status: 400,
      code: "context_length_exceeded",
      param: "messages",
    });
  });

  it("stop sequences: the text ends before the first one, streamed or not", async () => {
    const pieces: string[] = [];
    for await (const chunk of await client.completions.create({ model: MODEL, prompt: "Once", max_tokens: 12, seed: 21, stream: true })) pieces.push(chunk.choices[0]?.text ?? "");
    const tokens = pieces.filter(Boolean);
    // A piece that starts at a token boundary and does not occur before it.
    const at = tokens.findIndex((p, i) => i >= 2 && /^[ -~]+$/.test(p) && !(tokens.slice(0, i).join("") + p).slice(0, -p.length).includes(p));
    expect(at).toBeGreaterThan(0);
    const stop = tokens[at]!;
    const expected = tokens.slice(0, at).join("");
    const plain = await client.completions.create({ model: MODEL, prompt: "Once", max_tokens: 12, seed: 21, stop: [stop] });
    expect(plain.choices[0]).toMatchObject({ text: expected, finish_reason: "stop" });
    let streamed = "";
    let finish;
    for await (const chunk of await client.completions.create({ model: MODEL, prompt: "Once", max_tokens: 12, seed: 21, stop, stream: true })) {
      streamed += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect([streamed, finish]).toEqual([expected, "stop"]);
  });

  it("refuses bad requests with the API's error shapes", async () => {
    await expect(client.completions.create({ model: "gpt-4", prompt: "x" })).rejects.toMatchObject({ status: 404, code: "model_not_found" });
    await expect(client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "x" }], n: 2 })).rejects.toMatchObject({ status: 400, param: "n" });
    const notJson = await fetch(`${server.base}/v1/completions`, { method: "POST", body: "{" });
    expect([notJson.status, ((await notJson.json()) as { error: { code: string } }).error.code]).toEqual([400, "invalid_json"]);
    expect((await fetch(`${server.base}/v1/completions`)).status).toBe(405);
  });

  it("our own openai engine: ai-tools run --engine openai against the served URL", async () => {
    writeFileSync(
      join(ws.root, "remote.yaml"),
      `engine: openai\nopenai: { base_url: "${server.base}/v1", model: ${MODEL} }\ngeneration: { n_predict: 8, seed: 3 }\n`,
    );
    // OPENAI_BASE_URL for the engine's probe as it stands before the probe reads the policy's URL.
    const run = await ws.cli(["run", "--config", "remote.yaml", "--prompt", "Once upon a time", "--metrics-log", "build/run-openai.jsonl"], { OPENAI_BASE_URL: `${server.base}/v1` });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim().length).toBeGreaterThan(0);
    const record = JSON.parse(readFileSync(join(ws.root, "build", "run-openai.jsonl"), "utf8").trim());
    expect(record).toMatchObject({ exitStatus: "ok", engine: { name: "openai" }, metrics: { generatedTokens: 8 } });
    expect(record.metrics.promptTokens).toBeGreaterThan(1);
  });

  it("a client that disconnects mid-stream stops the engine's generation", async () => {
    const before = events(eventsFile()).length;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${server.base}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
        let chunks = 0;
        res.on("data", (d: Buffer) => {
          chunks += (d.toString().match(/^data: /gm) ?? []).length;
          if (chunks >= 2) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on("error", (e) => (e.message === "socket hang up" ? undefined : reject(e)));
      // The policy allows 400 tokens; without the disconnect the engine would go on to its end of text (16+).
      req.end(JSON.stringify({ model: MODEL, prompt: "Once", max_tokens: 400, seed: 8, stream: true }));
    });
    await waitFor(() => events(eventsFile()).slice(before).some((l) => / end /.test(l)), "the engine to end the request", 10_000);
    const mine = events(eventsFile()).slice(before);
    const end = mine.find((l) => / end /.test(l));
    expect(end).toMatch(/ end cancelled tokens_predicted \d+$/);
    expect(Number(/tokens_predicted (\d+)/.exec(end!)![1])).toBeLessThan(16);
    // Nothing generated for it after that; the slot is free for the next request.
    const task = / (\d+) /.exec(end!)![1];
    expect(mine.slice(mine.indexOf(end!) + 1).some((l) => l.startsWith(`task ${task} token`))).toBe(false);
    const next = await client.completions.create({ model: MODEL, prompt: "x", max_tokens: 3 });
    expect(next.choices[0]!.finish_reason).toBe("length");
  });

  it("so does one that gives up on an unstreamed answer (the engine itself would finish it)", async () => {
    const before = events(eventsFile()).length;
    const gaveUp = fetch(`${server.base}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: MODEL, prompt: "Once", max_tokens: 400, seed: 8 }),
      signal: AbortSignal.timeout(100),
    });
    await expect(gaveUp).rejects.toThrow();
    await waitFor(() => events(eventsFile()).slice(before).some((l) => / end /.test(l)), "the engine to end the request", 10_000);
    const end = events(eventsFile()).slice(before).find((l) => / end /.test(l));
    expect(end).toMatch(/ end cancelled tokens_predicted \d+$/);
    expect(Number(/tokens_predicted (\d+)/.exec(end!)![1])).toBeLessThan(16);
  });

  it("20 concurrent clients are all answered or told 503 with Retry-After; none hangs", async () => {
    const metricsText = async () => (await fetch(`${server.base}/metrics`)).text();
    const rejectedBefore = Number(/^ai_tools_serve_rejected_total (\d+)$/m.exec(await metricsText())![1]);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        fetch(`${server.base}/v1/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: `client ${i}` }], max_tokens: 12, seed: i }),
          signal: AbortSignal.timeout(30_000),
        }).then(async (r) => ({ status: r.status, retryAfter: r.headers.get("retry-after"), body: (await r.json()) as { error?: { code: string }; usage?: unknown } })),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const busy = results.filter((r) => r.status === 503);
    expect(ok.length + busy.length).toBe(20);
    // One slot and four places in the queue were free: at least five answered.
    expect(ok.length).toBeGreaterThanOrEqual(5);
    expect(busy.length).toBeGreaterThan(0);
    for (const r of ok) expect(r.body.usage).toBeDefined();
    for (const r of busy) {
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(r.body.error!.code).toBe("queue_full");
    }
    expect(Number(/^ai_tools_serve_rejected_total (\d+)$/m.exec(await metricsText())![1]) - rejectedBefore).toBe(busy.length);
  });

  it("/metrics has the per-request numbers `run` logs (the disconnect counted as an error); the metrics log one line per request", async () => {
    const text = await (await fetch(`${server.base}/metrics`)).text();
    const series = (name: string) => Number(new RegExp(`^${name}\\{model="${MODEL}@0",engine="powerinfer"\\} (\\S+)$`, "m").exec(text)?.[1]);
    expect(series("ai_tools_requests_total")).toBeGreaterThan(10);
    expect(series("ai_tools_request_errors_total")).toBeGreaterThanOrEqual(1);
    expect(series("ai_tools_time_to_first_token_seconds_count")).toBeGreaterThan(5);
    expect(series("ai_tools_generation_tokens_per_second_count")).toBeGreaterThan(5);
    expect(text).toMatch(/^# TYPE ai_tools_serve_requests_waiting gauge$/m);
    expect(text).toMatch(/^ai_tools_serve_engine_up 1$/m);
    const read = () => readFileSync(metricsLog(), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    // Each line is appended once its answer is out: the last ones may still be on their way.
    await waitFor(() => read().length === series("ai_tools_requests_total"), "one metrics line per request", 5000);
    const lines = read();
    expect(lines.find((l) => l.exitStatus === "E_ENGINE_ABORTED")).toBeDefined();
    const ok = lines.find((l) => l.exitStatus === "ok")!;
    expect(ok).toMatchObject({ model: { name: MODEL, version: "0" }, engine: { name: "powerinfer", commit: ws.commit }, metrics: { source: "engine" } });
    expect(ok.model.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(ok.engine.version).toMatch(/^build \d+ \([0-9a-f]{7}\)$/);
    expect(ok.prompt).toBeUndefined();
  });

  it("with --api-key-env, /v1 needs the key (never printed); /healthz and /metrics do not; the engine dying ends serve with exit 1", async () => {
    const key = "serve-test-key-7c1d";
    const keyed = await serveCli(ws, ["--config", POLICY, "--api-key-env", "SERVE_TEST_KEY"], { SERVE_TEST_KEY: key });
    try {
      const wrong = new OpenAI({ baseURL: `${keyed.base}/v1`, apiKey: "not-the-key", maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });
      expect((await fetch(`${keyed.base}/v1/models`)).status).toBe(401);
      const right = new OpenAI({ baseURL: `${keyed.base}/v1`, apiKey: key, maxRetries: 0 });
      expect((await right.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2 })).choices).toHaveLength(1);
      expect((await fetch(`${keyed.base}/healthz`)).status).toBe(200);
      expect((await fetch(`${keyed.base}/metrics`)).status).toBe(200);
      // The build step is fresh the second time.
      expect(keyed.stderr()).toContain("[build-server] fresh, skipped");

      process.kill(keyed.enginePid, "SIGKILL");
      const exit = await keyed.exit;
      expect(exit.code).toBe(1);
      expect(keyed.stderr()).toContain("error [E_ENGINE_FAILED]: the engine server exited");
      expect(keyed.stderr()).not.toContain(key);
    } finally {
      if (keyed.child.exitCode === null) keyed.child.kill("SIGKILL");
    }
  });

  it("uses the GGUF's chat template (ChatML here), and --log-prompts keeps the rendered prompt in the metrics log", async () => {
    const spec = powerInferModelSpec({ name: "chatty" });
    writeGguf(join(ws.root, "chatty.powerinfer.gguf"), { ...spec, kv: [...spec.kv!, ["tokenizer.chat_template", gv.str("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")]] });
    writeFileSync(join(ws.root, "chatty.yaml"), "engine: powerinfer\nmodel_path: chatty.powerinfer.gguf\ngeneration: { n_predict: 8 }\n");
    const chatty = await serveCli(ws, ["--config", "chatty.yaml", "--model-root", ws.root, "--log-prompts", "--metrics-log", "build/chatty.jsonl"]);
    try {
      expect(chatty.stderr()).toContain("chat template chatml: tokenizer.chat_template uses <|im_start|> (ChatML)");
      const local = new OpenAI({ baseURL: `${chatty.base}/v1`, apiKey: "unused", maxRetries: 0 });
      expect((await local.models.list()).data[0]!.id).toBe("chatty");
      await local.chat.completions.create({ model: "chatty", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
      // Appended once the answer is out.
      await waitFor(() => existsSync(join(ws.root, "build", "chatty.jsonl")), "the metrics line", 5000);
      const record = JSON.parse(readFileSync(join(ws.root, "build", "chatty.jsonl"), "utf8").trim());
      expect(record.prompt).toBe("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
      expect(record.model).toMatchObject({ name: "chatty", version: null });
    } finally {
      chatty.child.kill("SIGTERM");
      expect((await chatty.exit).code).toBe(0);
    }
  });

  it("SIGTERM with a request in flight: it finishes, then the engine's process group is stopped and serve exits 0", async () => {
    const stopping = await serveCli(ws, ["--config", POLICY], { FIXTURE_SERVER_TOKEN_DELAY_MS: "60" });
    const local = new OpenAI({ baseURL: `${stopping.base}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = await local.completions.create({ model: MODEL, prompt: "Once", max_tokens: 10, seed: 4, stream: true });
    let pieces = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text && ++pieces === 1) stopping.child.kill("SIGTERM");
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(pieces).toBeGreaterThan(1);
    expect(finish).toBe("length");
    const exit = await stopping.exit;
    expect(exit.code, stopping.stderr()).toBe(0);
    expect(stopping.stderr()).toContain("shutting down: finishing 1 request(s)");
    expect(isAlive(stopping.enginePid)).toBe(false);
    await expect(fetch(`${stopping.base}/healthz`)).rejects.toThrow();
  });

  it("start-up failures are clear: the engine's own error, a port in use", async () => {
    const crashed = await ws.cli(["serve", "--config", POLICY, "--port", "0"], { FIXTURE_SERVER_EXIT: "3" });
    expect(crashed.code).toBe(1);
    expect(crashed.stderr).toContain("error [E_ENGINE_FAILED]: the engine server exited with code 3 before it was ready");
    // A broken policy fails before anything is built.
    const missing = await ws.cli(["serve", "--config", "no-such-policy.yaml", "--port", "0"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error [E_CONFIG_MISSING]: no-such-policy.yaml");
    expect(missing.stderr).not.toContain("running serve");
    const taken = await ws.cli(["serve", "--config", POLICY, "--port", new URL(server.base).port]);
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(/127\.0\.0\.1:\d+ is already in use: pass another --port/);
  });
});
