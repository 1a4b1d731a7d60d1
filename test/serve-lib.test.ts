/**
 * The serve library's pure parts: chat templates, OpenAI request checking, the engine
 * request under the policy's limits, the engine's event format, the server argv, and the
 * admission queue.
 */
import { describe, expect, it, vi } from "vitest";
import { AdmissionQueue, QueueFullError } from "../pipeline/serve/admission.js";
import { detectChatTemplate, renderChat, DEFAULT_SYSTEM } from "../pipeline/serve/chat-template.js";
import { parseEngineEvent } from "../pipeline/serve/engine-client.js";
import { engineServerArgv } from "../pipeline/serve/engine-server.js";
import { ApiError, fitToContext, parseChatRequest, parseCompletionRequest, planEngineRequest, promptTokensAtMost, streamChunk, usageChunk, newIdentity } from "../pipeline/serve/openai-protocol.js";
import { servedModelName } from "../pipeline/serve/serve.js";
import type { RenderedGeneration, RenderedPolicy } from "../pipeline/policy/types.js";

const generation: RenderedGeneration = { temperature: 0.8, top_p: 0.9, top_k: 40, repeat_penalty: 1.1, max_tokens: 16, ctx_size: 256, seed: -1, stop: [] };

const refused = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error("not refused");
};

describe("chat templates", () => {
  it("recognises ChatML and Llama 2 templates by their markers; anything else, or none, is plain", () => {
    expect(detectChatTemplate("{% for m in messages %}<|im_start|>{{ m.role }}...").name).toBe("chatml");
    expect(detectChatTemplate("{{ bos_token }}{% if ... %}[INST] {{ m.content }} [/INST]").name).toBe("llama-2");
    expect(detectChatTemplate("{{ '<start_of_turn>' + role }}")).toMatchObject({ name: "plain", reason: expect.stringContaining("does not interpret") });
    expect(detectChatTemplate(undefined)).toMatchObject({ name: "plain", reason: "the model has no tokenizer.chat_template" });
  });

  const conversation = [
    { role: "system" as const, content: "Be brief." },
    { role: "user" as const, content: "Hi" },
    { role: "assistant" as const, content: "Hello." },
    { role: "user" as const, content: "Sum 2+2" },
  ];

  it("plain: system text (or the default), USER:/ASSISTANT: turns, open assistant turn, stops at the next USER:", () => {
    expect(renderChat("plain", conversation)).toEqual({ prompt: "Be brief.\nUSER: Hi\nASSISTANT: Hello.\nUSER: Sum 2+2\nASSISTANT:", stop: ["\nUSER:"] });
    expect(renderChat("plain", [{ role: "user", content: "Hi" }]).prompt).toBe(`${DEFAULT_SYSTEM}\nUSER: Hi\nASSISTANT:`);
  });

  it("chatml and llama-2 shapes", () => {
    expect(renderChat("chatml", conversation)).toEqual({
      prompt: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nSum 2+2<|im_end|>\n<|im_start|>assistant\n",
      stop: ["<|im_end|>"],
    });
    expect(renderChat("llama-2", conversation).prompt).toBe("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Sum 2+2 [/INST]");
  });
});

describe("OpenAI requests", () => {
  it("a chat request: messages rendered, template stops first, max_completion_tokens read, developer = system", () => {
    const request = parseChatRequest(
      { model: "m", messages: [{ role: "developer", content: "Rules." }, { role: "user", content: [{ type: "text", text: "Hi" }] }], max_completion_tokens: 7, stop: "END", stream: true, stream_options: { include_usage: true }, seed: 3 },
      "plain",
    );
    expect(request).toMatchObject({ kind: "chat", model: "m", prompt: "Rules.\nUSER: Hi\nASSISTANT:", stop: ["\nUSER:", "END"], maxTokens: 7, stream: true, includeUsage: true, sampling: { seed: 3 } });
  });

  it("a completion prompt: a string, token ids, or a one-element list of either", () => {
    expect(parseCompletionRequest({ model: "m", prompt: ["once"] }).prompt).toBe("once");
    expect(parseCompletionRequest({ model: "m", prompt: [[1, 2, 3]] }).prompt).toEqual([1, 2, 3]);
    expect(parseCompletionRequest({ model: "m", prompt: [5, 6] }).prompt).toEqual([5, 6]);
  });

  it("refuses what it cannot honour with a 400 naming the parameter", () => {
    expect(refused(() => parseCompletionRequest({ model: "m", prompt: ["a", "b"] }))).toMatchObject({ status: 400, param: "prompt" });
    expect(refused(() => parseCompletionRequest({ model: "m", prompt: "" }))).toMatchObject({ param: "prompt" });
    expect(refused(() => parseCompletionRequest({ prompt: "x" }))).toMatchObject({ param: "model", code: "missing_required_parameter" });
    expect(refused(() => parseChatRequest({ model: "m", messages: [] }, "plain"))).toMatchObject({ param: "messages" });
    expect(refused(() => parseChatRequest({ model: "m", messages: [{ role: "tool", content: "x" }] }, "plain"))).toMatchObject({ param: "messages[0].role" });
    expect(refused(() => parseChatRequest({ model: "m", messages: [{ role: "user", content: [{ type: "image_url" }] }] }, "plain"))).toMatchObject({ param: "messages[0].content" });
    expect(refused(() => parseChatRequest({ model: "m", messages: [{ role: "user", content: "x" }], n: 2 }, "plain"))).toMatchObject({ param: "n", code: "unsupported_parameter" });
    expect(refused(() => parseChatRequest({ model: "m", messages: [{ role: "user", content: "x" }], tools: [{ type: "function" }] }, "plain"))).toMatchObject({ param: "tools" });
    expect(refused(() => parseCompletionRequest({ model: "m", prompt: "x", temperature: 3 }))).toMatchObject({ param: "temperature" });
    expect(refused(() => parseCompletionRequest({ model: "m", prompt: "x", max_tokens: 0 }))).toMatchObject({ param: "max_tokens" });
    expect(refused(() => parseCompletionRequest({ model: "m", prompt: "x", stop: ["a", ""] }))).toMatchObject({ param: "stop" });
    expect(refused(() => parseCompletionRequest({ model: "m", prompt: "x", stop: [1] }))).toMatchObject({ param: "stop" });
    expect(refused(() => parseCompletionRequest({ model: "m", prompt: "x", stream_options: { include_usage: true } }))).toMatchObject({ param: "stream_options" });
  });

  it("the engine request: always streamed, max_tokens clamped to the policy's n_predict, policy defaults for the rest", () => {
    const asked = parseCompletionRequest({ model: "m", prompt: "x", max_tokens: 100, temperature: 0, stop: ["\n"], logit_bias: { "15": -100 } });
    expect(planEngineRequest(asked, { ...generation, stop: ["###"] })).toEqual({
      body: { prompt: "x", n_predict: 16, temperature: 0, top_p: 0.9, top_k: 40, repeat_penalty: 1.1, stop: ["\n", "###"], stream: true, logit_bias: [[15, -100]] },
      maxTokens: 16,
      clampedFrom: 100,
    });
    const small = planEngineRequest(parseCompletionRequest({ model: "m", prompt: "x", max_tokens: 4, seed: 9 }), generation);
    expect(small).toMatchObject({ maxTokens: 4, clampedFrom: null, body: { n_predict: 4, seed: 9 } });
    // No limit in the policy (-1, and -2 which the server cannot honour) and none asked: until the end of text.
    for (const n_predict of [-1, -2]) {
      expect(planEngineRequest(parseCompletionRequest({ model: "m", prompt: "x" }), { ...generation, max_tokens: n_predict })).toMatchObject({ maxTokens: null, body: { n_predict: -1 } });
    }
    expect(planEngineRequest(parseCompletionRequest({ model: "m", prompt: "x" }), { ...generation, seed: 42 }).body.seed).toBe(42);
  });

  it("fits the request to a slot's context: a prompt that fills it is refused, the answer stops short of its end", () => {
    const plan = planEngineRequest(parseCompletionRequest({ model: "m", prompt: "x", max_tokens: 100 }), { ...generation, max_tokens: -1 });
    expect(fitToContext(plan, 200, 256, "prompt")).toMatchObject({ maxTokens: 54, contextLimited: true, body: { n_predict: 54 } });
    expect(fitToContext({ ...plan, maxTokens: 10 }, 200, 256, "prompt")).toMatchObject({ maxTokens: 10 });
    expect(refused(() => fitToContext(plan, 255, 256, "messages"))).toMatchObject({ status: 400, param: "messages", code: "context_length_exceeded" });
    // The bound that spares asking the engine: never below the engine's count (one token per byte at most, plus space and BOS).
    expect(promptTokensAtMost("héllo")).toBe(8);
    expect(promptTokensAtMost([1, 2, 3])).toBe(3);
  });

  it("stream chunks have the API's shapes; usage chunks have no choices", () => {
    const id = newIdentity("chat", "m", 1_700_000_000_000);
    expect(id.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(streamChunk("chat", id, { role: "assistant", content: "" }, true)).toMatchObject({ object: "chat.completion.chunk", created: 1_700_000_000, usage: null, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] });
    expect(streamChunk("chat", id, { finishReason: "stop" }, false)).toMatchObject({ choices: [{ delta: {}, finish_reason: "stop" }] });
    expect(streamChunk("chat", id, { finishReason: "stop" }, false)).not.toHaveProperty("usage");
    expect(streamChunk("text", id, { content: " a" }, false)).toMatchObject({ object: "text_completion", choices: [{ text: " a", finish_reason: null }] });
    expect(usageChunk("text", id, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 })).toMatchObject({ choices: [], usage: { total_tokens: 5 } });
  });
});

describe("the engine's side", () => {
  it("parses the server's token and final events (upstream's field names)", () => {
    expect(parseEngineEvent('{"content":" the","multimodal":false,"slot_id":0,"stop":false}')).toEqual({ kind: "token", content: " the" });
    const final = parseEngineEvent(
      '{"content":"","stop":true,"stopped_eos":false,"stopped_limit":true,"stopped_word":false,"stopping_word":"","timings":{"predicted_ms":4.2,"predicted_n":3,"predicted_per_second":704.7,"prompt_ms":4.2,"prompt_n":8,"prompt_per_second":null},"tokens_evaluated":8,"tokens_predicted":3,"truncated":false}',
    );
    expect(final).toEqual({
      kind: "final",
      final: {
        stoppedEos: false,
        stoppedWord: false,
        stoppedLimit: true,
        stoppingWord: "",
        tokensPredicted: 3,
        tokensEvaluated: 8,
        truncated: false,
        timings: { promptN: 8, promptMs: 4.2, promptPerSecond: null, predictedN: 3, predictedMs: 4.2, predictedPerSecond: 704.7 },
      },
    });
    expect(() => parseEngineEvent("not json")).toThrow(expect.objectContaining({ code: "E_ENGINE_FAILED" }));
  });

  it("the server argv: the policy's model, threads and batch, a context per slot, loopback only, continuous batching with slots", () => {
    const policy = {
      modelPath: "/m/model.powerinfer.gguf",
      generation,
      runtime: { threads: 2, vram_budget_gb: 4, gpu_layers: 10, batch_size: 64 },
    } as unknown as RenderedPolicy;
    expect(engineServerArgv({ binary: "/b/server", policy, sparse: true, parallel: 4 }, 4321)).toEqual([
      "/b/server", "-m", "/m/model.powerinfer.gguf", "-c", "1024", "-t", "2", "-b", "64", "--vram-budget", "4",
      "--host", "127.0.0.1", "--port", "4321", "-np", "4", "-cb",
    ]);
    // A dense model on a GPU build gets -ngl, as with `run`.
    expect(engineServerArgv({ binary: "s", policy, sparse: false, parallel: 1 }, 1)).toEqual(expect.arrayContaining(["-ngl", "10"]));
    expect(engineServerArgv({ binary: "s", policy, sparse: false, parallel: 1 }, 1)).not.toContain("-cb");
  });

  it("names the served model after the converted model's folder, else the file", () => {
    expect(servedModelName("/w/models/powerinfer/tiny-relu-llama/model.powerinfer.gguf")).toBe("tiny-relu-llama");
    expect(servedModelName("/data/llama-7b.q4.gguf")).toBe("llama-7b.q4");
  });
});

describe("the admission queue", () => {
  it("runs `slots` at once, queues up to maxWaiting in order, refuses the next with a retry estimate", async () => {
    const queue = new AdmissionQueue(1, 2);
    const first = await queue.acquire();
    const order: string[] = [];
    const second = queue.acquire().then((release) => (order.push("second"), release));
    const third = queue.acquire().then((release) => (order.push("third"), release));
    expect([queue.running, queue.waiting]).toEqual([1, 2]);
    await expect(queue.acquire()).rejects.toBeInstanceOf(QueueFullError);
    first();
    (await second)();
    (await third)();
    expect(order).toEqual(["second", "third"]);
    expect([queue.running, queue.waiting]).toEqual([0, 0]);
  });

  it("a waiter whose client leaves gives up its place", async () => {
    const queue = new AdmissionQueue(1, 1);
    const held = await queue.acquire();
    const controller = new AbortController();
    const waiting = queue.acquire(controller.signal);
    controller.abort(new Error("gone"));
    await expect(waiting).rejects.toThrow("gone");
    expect(queue.waiting).toBe(0);
    const next = queue.acquire();
    held();
    (await next)();
    expect(queue.running).toBe(0);
  });

  it("Retry-After grows with the queue and the measured request time", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    try {
      const queue = new AdmissionQueue(1, 3);
      expect(queue.retryAfterSeconds()).toBe(1);
      const release = await queue.acquire();
      vi.advanceTimersByTime(4000);
      release();
      const held = await queue.acquire();
      const waiting = [queue.acquire(), queue.acquire()];
      // Two ahead plus this one, 4 s each, one slot.
      expect(queue.retryAfterSeconds()).toBe(12);
      held();
      for (const w of waiting) (await w)();
    } finally {
      vi.useRealTimers();
    }
    expect(() => new AdmissionQueue(0, 1)).toThrow(RangeError);
  });
});
