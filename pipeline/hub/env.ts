/**
 * Where the Hub is, where its cache lives and which token to send, read from the
 * environment exactly as huggingface_hub does (hf-hub.md §4, §7), so that both
 * clients share one cache and one login.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface HubSettings {
  /** HF_ENDPOINT without a trailing slash. */
  endpoint: string;
  /** HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > $HF_HOME/hub. */
  cacheDir: string;
  /** HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1): no HTTP at all. */
  offline: boolean;
  /** Never logged: see redact(). */
  token: string | undefined;
  /** HF_HUB_DISABLE_SYMLINKS=1: snapshots hold copies (filesystems without symlinks). */
  disableSymlinks: boolean;
}

function expand(path: string, env: NodeJS.ProcessEnv): string {
  const home = env.HOME ?? homedir();
  return resolve(path.replace(/^~(?=$|\/)/, home).replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => env[name] ?? ""));
}

const truthy = (value: string | undefined) => value !== undefined && ["1", "ON", "YES", "TRUE"].includes(value.toUpperCase());

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const hfHome = env.HF_HOME
    ? expand(env.HF_HOME, env)
    : join(env.XDG_CACHE_HOME ? expand(env.XDG_CACHE_HOME, env) : join(env.HOME ?? homedir(), ".cache"), "huggingface");
  const cache = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  return {
    endpoint: (env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, ""),
    cacheDir: cache ? expand(cache, env) : join(hfHome, "hub"),
    offline: truthy(env.HF_HUB_OFFLINE) || truthy(env.TRANSFORMERS_OFFLINE),
    token: readToken(env, hfHome),
    disableSymlinks: truthy(env.HF_HUB_DISABLE_SYMLINKS),
  };
}

/** HF_TOKEN, legacy HUGGING_FACE_HUB_TOKEN, then the file `hf auth login` writes. */
function readToken(env: NodeJS.ProcessEnv, hfHome: string): string | undefined {
  if (truthy(env.HF_HUB_DISABLE_IMPLICIT_TOKEN)) return undefined;
  const fromEnv = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv?.trim()) return fromEnv.trim();
  try {
    const token = readFileSync(env.HF_TOKEN_PATH ? expand(env.HF_TOKEN_PATH, env) : join(hfHome, "token"), "utf8").trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}
