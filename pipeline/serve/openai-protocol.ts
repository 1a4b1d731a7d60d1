/**
 * The OpenAI API as this server speaks it, without I/O: request bodies checked and reduced
 * to one GenerationRequest, the engine's /completion body built from it under the policy's
 * limits, and the response objects and stream chunks of /v1/completions and
 * /v1/chat/completions (shapes as the API reference and the official clients have them).
 */
import { randomBytes } from "node:crypto";
import type { RenderedGeneration } from "../policy/types.js";
import { renderChat, type ChatMessage, type ChatTemplateName } from "./chat-template.js";

/** An answer the client gets as `{error: {message, type, param, code}}` with this HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: "invalid_request_error" | "authentication_error" | "not_found_error" | "server_error" = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export type RequestKind = "chat" | "text";

export interface SamplingOverrides {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  repeat_penalty?: number;
  seed?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  /** [token id, bias] pairs, the engine's form of logit_bias. */
  logit_bias?: [number, number][];
}

export interface GenerationRequest {
  kind: RequestKind;
  model: string;
  /** Text (chat: rendered by the template) or token ids. */
  prompt: string | number[];
  stream: boolean;
  includeUsage: boolean;
  /** max_tokens / max_completion_tokens as asked; undefined: the policy's max_tokens. */
  maxTokens: number | undefined;
  sampling: SamplingOverrides;
  /** The template's stops, then the request's. */
  stop: string[];
}

/** At most this many stop sequences per request (OpenAI allows 4; the policy schema 16). */
export const MAX_STOP_SEQUENCES = 16;

type Body = Record<string, unknown>;

const isRecord = (v: unknown): v is Body => typeof v === "object" && v !== null && !Array.isArray(v);
const present = (body: Body, key: string) => body[key] !== undefined && body[key] !== null;

function invalid(param: string, message: string): ApiError {
  return new ApiError(400, message, "invalid_request_error", param, "invalid_value");
}

function number(body: Body, key: string, min: number, max: number, integer = false): number | undefined {
  if (!present(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw invalid(key, `'${key}' must be ${integer ? "an integer" : "a number"}`);
  }
  if (v < min || v > max) throw invalid(key, `'${key}' must be between ${min} and ${max}; got ${v}`);
  return v;
}

function bool(body: Body, key: string): boolean | undefined {
  if (!present(body, key)) return undefined;
  if (typeof body[key] !== "boolean") throw invalid(key, `'${key}' must be a boolean`);
  return body[key] as boolean;
}

/** Parameters of the API this server cannot honour: refused rather than silently ignored. */
function refuseUnsupported(body: Body): void {
  const refuse = (param: string, why: string) => {
    throw new ApiError(400, `'${param}' is not supported by this server: ${why}`, "invalid_request_error", param, "unsupported_parameter");
  };
  if (present(body, "n") && body.n !== 1) refuse("n", "one choice per request");
  if (present(body, "best_of") && body.best_of !== 1) refuse("best_of", "one choice per request");
  if (body.echo === true) refuse("echo", "the prompt is not echoed");
  if (present(body, "logprobs") && body.logprobs !== false && body.logprobs !== 0) refuse("logprobs", "the engine's token probabilities are not exposed");
  if (present(body, "top_logprobs")) refuse("top_logprobs", "the engine's token probabilities are not exposed");
  if (typeof body.suffix === "string" && body.suffix !== "") refuse("suffix", "no infilling");
  for (const key of ["tools", "tool_choice", "functions", "function_call", "audio", "prediction"]) {
    if (present(body, key) && !(Array.isArray(body[key]) && (body[key] as unknown[]).length === 0) && body[key] !== "none") refuse(key, "no tool calling, audio or predicted outputs");
  }
  if (isRecord(body.response_format) && body.response_format.type !== "text") refuse("response_format", "only plain text");
}

function commonFields(body: Body, kind: RequestKind): Omit<GenerationRequest, "kind" | "prompt" | "stop"> & { stop: string[] } {
  if (typeof body.model !== "string" || body.model === "") throw new ApiError(400, "you must provide a model parameter", "invalid_request_error", "model", "missing_required_parameter");
  refuseUnsupported(body);
  const stream = bool(body, "stream") ?? false;
  if (present(body, "stream_options")) {
    if (!stream) throw invalid("stream_options", "'stream_options' is only allowed when 'stream' is enabled");
    if (!isRecord(body.stream_options)) throw invalid("stream_options", "'stream_options' must be an object");
  }
  const includeUsage = stream && isRecord(body.stream_options) ? bool(body.stream_options, "include_usage") ?? false : false;
  const limitKey = kind === "chat" && present(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const maxTokens = number(body, limitKey, 1, 1_048_576, true);

  const stop = present(body, "stop") ? [body.stop].flat() : [];
  if (!stop.every((s): s is string => typeof s === "string")) throw invalid("stop", "'stop' must be a string or an array of strings");
  if (stop.length > MAX_STOP_SEQUENCES) throw invalid("stop", `at most ${MAX_STOP_SEQUENCES} stop sequences`);
  // The engine would stop at once on an empty one.
  if (stop.includes("")) throw invalid("stop", "stop sequences must not be empty");

  const sampling: SamplingOverrides = {};
  const put = <K extends keyof SamplingOverrides>(key: K, value: SamplingOverrides[K] | undefined) => value !== undefined && (sampling[key] = value);
  put("temperature", number(body, "temperature", 0, 2));
  put("top_p", number(body, "top_p", 0, 1));
  put("top_k", number(body, "top_k", 0, 1_000_000, true));
  put("repeat_penalty", number(body, "repeat_penalty", 0, 5));
  put("seed", number(body, "seed", -1, 0xffff_ffff, true));
  put("presence_penalty", number(body, "presence_penalty", -2, 2));
  put("frequency_penalty", number(body, "frequency_penalty", -2, 2));
  if (present(body, "logit_bias")) {
    if (!isRecord(body.logit_bias)) throw invalid("logit_bias", "'logit_bias' must be an object of token ids to biases");
    sampling.logit_bias = Object.entries(body.logit_bias).map(([token, bias]) => {
      if (!/^\d+$/.test(token) || typeof bias !== "number" || !Number.isFinite(bias) || bias < -100 || bias > 100) {
        throw invalid("logit_bias", "'logit_bias' maps token ids to numbers from -100 to 100");
      }
      return [Number(token), bias];
    });
  }
  return { model: body.model, stream, includeUsage, maxTokens, sampling, stop };
}

/** POST /v1/completions: one prompt (a string, or token ids). */
export function parseCompletionRequest(body: unknown): GenerationRequest {
  if (!isRecord(body)) throw new ApiError(400, "the request body must be a JSON object");
  const common = commonFields(body, "text");
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && (typeof prompt[0] === "string" || Array.isArray(prompt[0]))) prompt = prompt[0];
  const tokens = Array.isArray(prompt) && prompt.every((t) => Number.isInteger(t) && (t as number) >= 0);
  if (typeof prompt !== "string" && !tokens) {
    throw invalid("prompt", Array.isArray(prompt) ? "one prompt per request: a string or an array of token ids" : "'prompt' must be a string or an array of token ids");
  }
  if ((prompt as string | number[]).length === 0) throw invalid("prompt", "'prompt' must not be empty");
  return { kind: "text", ...common, prompt: prompt as string | number[] };
}

/** POST /v1/chat/completions: messages rendered with the model's chat template. */
export function parseChatRequest(body: unknown, template: ChatTemplateName): GenerationRequest {
  if (!isRecord(body)) throw new ApiError(400, "the request body must be a JSON object");
  const common = commonFields(body, "chat");
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw invalid("messages", "'messages' must be a non-empty array");
  const messages: ChatMessage[] = body.messages.map((m, i) => {
    const param = `messages[${i}]`;
    if (!isRecord(m)) throw invalid(param, `${param} must be an object`);
    const role = m.role === "developer" ? "system" : m.role;
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw invalid(`${param}.role`, `${param}.role must be system, developer, user or assistant (no tool messages); got ${JSON.stringify(m.role)}`);
    }
    return { role, content: messageText(m.content, `${param}.content`) };
  });
  const rendered = renderChat(template, messages);
  return { kind: "chat", ...common, prompt: rendered.prompt, stop: [...rendered.stop, ...common.stop] };
}

function messageText(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        if (!isRecord(part) || part.type !== "text" || typeof part.text !== "string") throw invalid(param, `${param}: only text parts are supported`);
        return part.text;
      })
      .join("");
  }
  throw invalid(param, `${param} must be a string or an array of text parts`);
}

// ---------------------------------------------------------------------------------------
// The engine's side
// ---------------------------------------------------------------------------------------

/** The fields of the engine's POST /completion this server sends (the server reads nothing else we need). */
export interface EngineCompletionBody {
  prompt: string | number[];
  /** -1: until the end of text. */
  n_predict: number;
  temperature: number;
  top_p: number;
  top_k: number;
  repeat_penalty: number;
  seed?: number;
  stop: string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  logit_bias?: [number, number][];
  stream: true;
}

export interface EnginePlan {
  body: EngineCompletionBody;
  /** Tokens the client may get; null: no limit (until the end of text). */
  maxTokens: number | null;
  /** The max_tokens asked for, when the policy's max_tokens lowered it. */
  clampedFrom: number | null;
  /** maxTokens was lowered to what the context leaves after the prompt. */
  contextLimited?: boolean;
}

/**
 * The engine request for a client request. max_tokens is clamped to the policy's max_tokens
 * (the policy is the operator's limit); sampling the client does not set comes from the
 * policy. Always streamed from the engine: a client that goes away can then stop it (the
 * engine notices a closed stream at its next token, never a waiting non-streamed request).
 */
export function planEngineRequest(request: GenerationRequest, policy: RenderedGeneration): EnginePlan {
  // max_tokens -2 ("until the context is full") means nothing to the server, which shifts its context.
  const limit = policy.max_tokens >= 0 ? policy.max_tokens : null;
  const asked = request.maxTokens ?? null;
  const maxTokens = asked === null ? limit : limit === null ? asked : Math.min(asked, limit);
  const s = request.sampling;
  const seed = s.seed ?? (policy.seed >= 0 ? policy.seed : undefined);
  const body: EngineCompletionBody = {
    prompt: request.prompt,
    n_predict: maxTokens ?? -1,
    temperature: s.temperature ?? policy.temperature,
    top_p: s.top_p ?? policy.top_p,
    top_k: s.top_k ?? policy.top_k,
    repeat_penalty: s.repeat_penalty ?? policy.repeat_penalty,
    stop: [...new Set([...request.stop, ...policy.stop])],
    stream: true,
    ...(seed !== undefined && seed >= 0 ? { seed } : {}),
    ...(s.presence_penalty !== undefined ? { presence_penalty: s.presence_penalty } : {}),
    ...(s.frequency_penalty !== undefined ? { frequency_penalty: s.frequency_penalty } : {}),
    ...(s.logit_bias ? { logit_bias: s.logit_bias } : {}),
  };
  return { body, maxTokens, clampedFrom: asked !== null && limit !== null && asked > limit ? asked : null };
}

/**
 * Prompt tokens at most, without asking the engine: every token of the engine's tokenizer covers
 * at least one byte of the text, plus the space it puts in front and the BOS.
 */
export function promptTokensAtMost(prompt: string | number[]): number {
  return typeof prompt === "string" ? Buffer.byteLength(prompt, "utf8") + 2 : prompt.length;
}

/**
 * The engine request fitted to a slot's context: a prompt that fills it is refused (the engine
 * would cut it silently), and n_predict stops short of the end of the context, where the engine
 * would start shifting it (at this commit its loop can die doing that, leaving requests
 * unanswered). `promptTokens` is the engine's count (or promptTokensAtMost when that is enough).
 */
export function fitToContext(plan: EnginePlan, promptTokens: number, slotContext: number, param: "prompt" | "messages"): EnginePlan {
  // The engine samples one token past its limit; one more of margin.
  const room = slotContext - promptTokens - 2;
  if (room < 1) {
    throw new ApiError(400, `This model's context is ${slotContext} tokens per request (ctx_size); the prompt has ${promptTokens}, leaving no room to generate.`, "invalid_request_error", param, "context_length_exceeded");
  }
  if (plan.maxTokens !== null && plan.maxTokens <= room) return plan;
  return { ...plan, body: { ...plan.body, n_predict: room }, maxTokens: room, contextLimited: true };
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

export type FinishReason = "stop" | "length";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ResponseIdentity {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

export function newIdentity(kind: RequestKind, model: string, now = Date.now()): ResponseIdentity {
  return { id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`, created: Math.floor(now / 1000), model };
}

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** The whole answer of a request without `stream`. */
export function completeResponse(kind: RequestKind, id: ResponseIdentity, text: string, finishReason: FinishReason, usage: Usage): Record<string, unknown> {
  const choice =
    kind === "chat"
      ? { index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: finishReason }
      : { text, index: 0, logprobs: null, finish_reason: finishReason };
  return { id: id.id, object: kind === "chat" ? "chat.completion" : "text_completion", created: id.created, model: id.model, choices: [choice], usage };
}

/**
 * One stream chunk: the assistant role (chat, first chunk), a piece of text, or the finish
 * reason. With include_usage every chunk has `usage: null`, as the API sends it.
 */
export function streamChunk(kind: RequestKind, id: ResponseIdentity, part: { role?: "assistant"; content?: string; finishReason?: FinishReason }, includeUsage: boolean): Record<string, unknown> {
  const finish_reason = part.finishReason ?? null;
  const choice =
    kind === "chat"
      ? { index: 0, delta: part.finishReason ? {} : { ...(part.role ? { role: part.role } : {}), content: part.content ?? "" }, logprobs: null, finish_reason }
      : { text: part.content ?? "", index: 0, logprobs: null, finish_reason };
  return {
    id: id.id,
    object: kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: id.created,
    model: id.model,
    choices: [choice],
    ...(includeUsage ? { usage: null } : {}),
  };
}

/** The last chunk before [DONE] with stream_options.include_usage: no choices, the usage. */
export function usageChunk(kind: RequestKind, id: ResponseIdentity, usage: Usage): Record<string, unknown> {
  return { id: id.id, object: kind === "chat" ? "chat.completion.chunk" : "text_completion", created: id.created, model: id.model, choices: [], usage };
}

/** GET /v1/models. */
export function modelList(model: { id: string; created: number }): Record<string, unknown> {
  return { object: "list", data: [modelObject(model)] };
}

export function modelObject(model: { id: string; created: number }): Record<string, unknown> {
  return { id: model.id, object: "model", created: model.created, owned_by: "ai-tools" };
}
