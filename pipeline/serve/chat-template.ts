/**
 * Chat messages -> one prompt for the engine's /completion. GGUF files may carry a Jinja
 * template (tokenizer.chat_template); rather than a Jinja engine, the two shapes that cover
 * most models are recognised by their markers and written here, and anything else gets the
 * plain template below (said once at start-up). `--chat-template` picks one outright.
 *
 * plain (the shape of upstream's own OpenAI shim, examples/server/api_like_OAI.py):
 *
 *     <system messages, or "A chat between a curious user and an artificial intelligence assistant.">
 *     USER: <user message>
 *     ASSISTANT: <assistant message>
 *     USER: <user message>
 *     ASSISTANT:
 *
 *   each turn on a new line; generation stops at "\nUSER:".
 * chatml: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`;
 *   stops at `<|im_end|>`.
 * llama-2: `[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]`
 *   (the engine adds the first BOS itself); stops at the end-of-text token.
 */
export const CHAT_TEMPLATES = ["plain", "chatml", "llama-2"] as const;
export type ChatTemplateName = (typeof CHAT_TEMPLATES)[number];

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface RenderedChat {
  prompt: string;
  /** Stop sequences the template needs, before the request's own. */
  stop: string[];
}

export const DEFAULT_SYSTEM = "A chat between a curious user and an artificial intelligence assistant.";

/** Which template a GGUF's tokenizer.chat_template asks for, and why in words. */
export function detectChatTemplate(chatTemplate: string | undefined): { name: ChatTemplateName; reason: string } {
  if (chatTemplate === undefined || chatTemplate.trim() === "") return { name: "plain", reason: "the model has no tokenizer.chat_template" };
  if (chatTemplate.includes("<|im_start|>")) return { name: "chatml", reason: "tokenizer.chat_template uses <|im_start|> (ChatML)" };
  if (chatTemplate.includes("[INST]")) return { name: "llama-2", reason: "tokenizer.chat_template uses [INST] (Llama 2)" };
  return { name: "plain", reason: "tokenizer.chat_template is a template this server does not interpret (neither ChatML nor Llama 2)" };
}

export function renderChat(name: ChatTemplateName, messages: readonly ChatMessage[]): RenderedChat {
  switch (name) {
    case "chatml":
      return {
        prompt: messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("") + "<|im_start|>assistant\n",
        stop: ["<|im_end|>"],
      };
    case "llama-2":
      return { prompt: renderLlama2(messages), stop: [] };
    case "plain": {
      const system = messages.filter((m) => m.role === "system").map((m) => m.content);
      const turns = messages.filter((m) => m.role !== "system").map((m) => `\n${m.role === "user" ? "USER" : "ASSISTANT"}: ${m.content}`);
      return { prompt: `${system.length ? system.join("\n") : DEFAULT_SYSTEM}${turns.join("")}\nASSISTANT:`, stop: ["\nUSER:"] };
    }
  }
}

function renderLlama2(messages: readonly ChatMessage[]): string {
  const system = messages.filter((m) => m.role === "system").map((m) => m.content).join("\n");
  let out = "";
  let pendingSystem = system ? `<<SYS>>\n${system}\n<</SYS>>\n\n` : "";
  let open = false;
  for (const m of messages) {
    if (m.role === "system") continue;
    if (m.role === "user") {
      out += `${out ? "<s>" : ""}[INST] ${pendingSystem}${m.content} [/INST]`;
      pendingSystem = "";
      open = true;
    } else {
      out += ` ${m.content} </s>`;
      open = false;
    }
  }
  // A conversation that ends with the assistant's turn continues it: no closing tag.
  return open || out === "" ? out : out.slice(0, -" </s>".length);
}
