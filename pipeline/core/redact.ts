/**
 * Secrets never reach logs, errors or records: credentials in URLs and the values of
 * secret-bearing environment variables are masked wherever text leaves the process.
 */
const SECRET_ENV = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AI_TOOLS_SIGNING_KEY", "AI_TOOLS_SIGNING_KEY_PASSPHRASE", "OPENAI_API_KEY", "GITHUB_TOKEN", "AI_TOOLS_REGISTRY_PASSWORD", "AI_TOOLS_REGISTRY_TOKEN"];

export function redact(text: string, env: NodeJS.ProcessEnv = process.env): string {
  // The lookbehind anchors a scheme at its first character: without it the regex retries from
  // every position of a long run of scheme characters (quadratic on base64-like text).
  let out = text.includes("://") ? text.replace(/(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, "$1***@") : text;
  for (const name of SECRET_ENV) {
    const value = env[name];
    if (value && value.length >= 4) out = out.split(value).join("***");
  }
  return out;
}
