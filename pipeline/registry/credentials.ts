/**
 * Where a registry's credentials come from, as docker, podman and skopeo look them up
 * (oci-models.md §4, §8), so a user who ran `docker login` or `skopeo login` needs nothing else:
 *
 * 1. explicit credentials (options), then the environment for CI: `AI_TOOLS_REGISTRY_USERNAME` +
 *    `AI_TOOLS_REGISTRY_PASSWORD`, or `AI_TOOLS_REGISTRY_TOKEN` (a bearer token sent as is); limited
 *    to one registry when `AI_TOOLS_REGISTRY_HOST` is set;
 * 2. `$REGISTRY_AUTH_FILE`;
 * 3. `${XDG_RUNTIME_DIR}/containers/auth.json` (`/run/containers/<uid>/auth.json` without it), then
 *    `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`;
 * 4. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
 *
 * Within a file: `credHelpers[host]`, then `credsStore` (both run `docker-credential-<name> get`),
 * then `auths[host]`. A configured helper replaces the file's stored `auth`; a helper that has
 * nothing for the host passes on to the next file. Keys match the host exactly (Docker Hub's
 * aliases normalised; containers' `host/namespace` keys most specific first), never by substring:
 * a key merely containing the host would send the password to another registry.
 *
 * The functions up to `resolveCredentials` are pure; only it reads files and runs helpers.
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { PipelineError } from "../core/errors.js";
import { runCommand } from "../core/process.js";
import { RegistryError } from "./errors.js";

export interface RegistryCredential {
  /** Basic auth, and the token server's login. */
  username?: string;
  password?: string;
  /** An OAuth2 refresh token for the token server (docker's `identitytoken`, a helper's `<token>` user). */
  identityToken?: string;
  /** A registry bearer token, sent as `Authorization: Bearer` without the token flow. */
  registryToken?: string;
}

export interface ResolvedCredential {
  credential: RegistryCredential;
  /** Where it came from, for messages: never the secret itself. */
  source: string;
}

interface StoredAuth {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

export interface AuthFile {
  path: string;
  auths: Record<string, StoredAuth>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

/** What one auth file says about a registry. */
export type AuthFileAnswer =
  | { kind: "helper"; helper: string; serverUrl: string; via: string }
  | { kind: "stored"; credential: RegistryCredential; via: string };

const DOCKER_HUB = "docker.io";
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.docker.io", "registry.hub.docker.com"]);
/** What docker login stores Docker Hub under, and passes to its helpers. */
const DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/";

/** The registry host as credential keys name it: lower case, Docker Hub's aliases as `docker.io`. */
export function canonicalRegistryHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}

/**
 * An auth file key as `{host, path}`. Docker's legacy keys are URLs (`https://index.docker.io/v1/`):
 * their path is not a namespace. containers' keys may be `host/namespace/repo`.
 */
export function parseAuthKey(key: string): { host: string; path: string } {
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(key) ? key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "") : undefined;
  const text = url ?? key;
  const slash = text.indexOf("/");
  const host = canonicalRegistryHost(slash < 0 ? text : text.slice(0, slash));
  const path = url !== undefined || slash < 0 ? "" : text.slice(slash + 1).replace(/\/+$/, "");
  return { host, path };
}

export function parseAuthFile(text: string, path: string): AuthFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PipelineError("E_CONFIG_SYNTAX", `${path} is not valid JSON (${(error as Error).message}): fix or remove the file`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new PipelineError("E_CONFIG_INVALID", `${path}: expected a JSON object with "auths"`);
  const object = json as Record<string, unknown>;
  const record = <T>(key: string, check: (value: unknown) => value is T): Record<string, T> => {
    const value = object[key];
    if (value === undefined) return {};
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new PipelineError("E_CONFIG_INVALID", `${path}: "${key}" must be an object`);
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(value)) {
      if (!check(v)) throw new PipelineError("E_CONFIG_INVALID", `${path}: "${key}" entry "${k}" has the wrong type`);
      out[k] = v;
    }
    return out;
  };
  const isStoredAuth = (v: unknown): v is StoredAuth =>
    typeof v === "object" && v !== null && ["auth", "username", "password", "identitytoken"].every((f) => (v as Record<string, unknown>)[f] === undefined || typeof (v as Record<string, unknown>)[f] === "string");
  const isString = (v: unknown): v is string => typeof v === "string";
  const credsStore = object.credsStore;
  if (credsStore !== undefined && typeof credsStore !== "string") throw new PipelineError("E_CONFIG_INVALID", `${path}: "credsStore" must be a string`);
  return { path, auths: record("auths", isStoredAuth), credHelpers: record("credHelpers", isString), ...(credsStore ? { credsStore } : {}) };
}

/** Keys of `entries` that name `host` (and, for namespace keys, a prefix of `repository`), most specific first. */
function matchingKeys(keys: string[], host: string, repository: string | undefined): string[] {
  const wanted = canonicalRegistryHost(host);
  return keys
    .map((key) => ({ key, ...parseAuthKey(key) }))
    .filter((k) => k.host === wanted && (k.path === "" || (repository !== undefined && (repository === k.path || repository.startsWith(`${k.path}/`)))))
    .sort((a, b) => b.path.length - a.path.length)
    .map((k) => k.key);
}

function decodeStoredAuth(entry: StoredAuth, via: string): RegistryCredential | undefined {
  const credential: RegistryCredential = {};
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) throw new PipelineError("E_CONFIG_INVALID", `${via}: "auth" is not base64 of "user:password"; log in again`);
    credential.username = decoded.slice(0, colon);
    credential.password = decoded.slice(colon + 1);
  } else if (entry.username && entry.password) {
    credential.username = entry.username;
    credential.password = entry.password;
  }
  if (entry.identitytoken) credential.identityToken = entry.identitytoken;
  return credential.password !== undefined || credential.identityToken !== undefined ? credential : undefined;
}

/** What `file` offers for `host`: a helper to run, stored credentials, or nothing. */
export function lookupInAuthFile(file: AuthFile, host: string, repository?: string): AuthFileAnswer | undefined {
  const helperKey = matchingKeys(Object.keys(file.credHelpers), host, repository)[0];
  const serverUrl = canonicalRegistryHost(host) === DOCKER_HUB ? DOCKER_HUB_SERVER_URL : host.toLowerCase();
  if (helperKey !== undefined && file.credHelpers[helperKey]) {
    return { kind: "helper", helper: file.credHelpers[helperKey], serverUrl, via: `${file.path} credHelpers["${helperKey}"]` };
  }
  if (file.credsStore) return { kind: "helper", helper: file.credsStore, serverUrl, via: `${file.path} credsStore` };
  for (const key of matchingKeys(Object.keys(file.auths), host, repository)) {
    const via = `${file.path} auths["${key}"]`;
    const credential = decodeStoredAuth(file.auths[key] ?? {}, via);
    if (credential) return { kind: "stored", credential, via };
  }
  return undefined;
}

/** A credential helper's `get` answer: `{"Username","Secret"}`; `<token>` as the user means an identity token. */
export function parseHelperOutput(stdout: string, helper: string): RegistryCredential {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    // Never quote the output: it may hold the secret.
    throw new RegistryError("E_REGISTRY_AUTH", `docker-credential-${helper} get printed something that is not JSON; check the helper`);
  }
  const { Username: username, Secret: secret } = (json ?? {}) as { Username?: unknown; Secret?: unknown };
  if (typeof secret !== "string" || (username !== undefined && typeof username !== "string")) {
    throw new RegistryError("E_REGISTRY_AUTH", `docker-credential-${helper} get did not print {"Username","Secret"}; check the helper`);
  }
  return username === "<token>" ? { identityToken: secret } : { username: username ?? "", password: secret };
}

/** The CI variables, when set (and meant for this registry). */
export function credentialsFromEnv(env: NodeJS.ProcessEnv, host: string): ResolvedCredential | undefined {
  const scope = env.AI_TOOLS_REGISTRY_HOST;
  if (scope && canonicalRegistryHost(scope) !== canonicalRegistryHost(host)) return undefined;
  const { AI_TOOLS_REGISTRY_USERNAME: username, AI_TOOLS_REGISTRY_PASSWORD: password, AI_TOOLS_REGISTRY_TOKEN: token } = env;
  if (token) return { credential: { registryToken: token }, source: "AI_TOOLS_REGISTRY_TOKEN" };
  if (username && !password) throw new RegistryError("E_REGISTRY_AUTH", "AI_TOOLS_REGISTRY_USERNAME is set but AI_TOOLS_REGISTRY_PASSWORD is not: set both, or neither");
  if (password && !username) throw new RegistryError("E_REGISTRY_AUTH", "AI_TOOLS_REGISTRY_PASSWORD is set but AI_TOOLS_REGISTRY_USERNAME is not: set both, or neither");
  if (username && password) return { credential: { username, password }, source: "AI_TOOLS_REGISTRY_USERNAME/AI_TOOLS_REGISTRY_PASSWORD" };
  return undefined;
}

/** The auth files to consult, in order (files that do not exist are skipped later). */
export function authFilePaths(env: NodeJS.ProcessEnv, uid = process.getuid?.() ?? 0, home = env.HOME ?? homedir()): string[] {
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  paths.push(env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, "containers", "auth.json") : join("/run", "containers", String(uid), "auth.json"));
  paths.push(join(env.XDG_CONFIG_HOME || join(home, ".config"), "containers", "auth.json"));
  paths.push(env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, "config.json") : join(home, ".docker", "config.json"));
  return [...new Set(paths)];
}

export interface ResolveCredentialsOptions {
  repository?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Seconds a credential helper may take (a keychain may prompt). */
  helperTimeoutMs?: number;
}

/** Runs `docker-credential-<helper> get`; undefined when the helper has nothing for the server. */
async function askHelper(answer: Extract<AuthFileAnswer, { kind: "helper" }>, options: ResolveCredentialsOptions): Promise<RegistryCredential | undefined> {
  const program = `docker-credential-${answer.helper}`;
  let result;
  try {
    result = await runCommand([program, "get"], {
      input: answer.serverUrl,
      captureStdout: "raw",
      allowFailure: true,
      env: options.env ?? process.env,
      timeoutMs: options.helperTimeoutMs ?? 60_000,
      signal: options.signal,
      tailLines: 0,
    });
  } catch (error) {
    if (error instanceof PipelineError && error.code === "E_TOOL_MISSING") {
      throw new RegistryError("E_REGISTRY_AUTH", `${answer.via} names the credential helper "${answer.helper}", but ${program} is not on PATH: install it, or remove the key from the file`);
    }
    if (error instanceof PipelineError && error.code === "E_COMMAND_TIMEOUT") {
      throw new RegistryError("E_REGISTRY_AUTH", `${program} get (${answer.via}) did not answer in time`);
    }
    throw error;
  }
  if (result.exitCode !== 0) {
    // The protocol's "not found" answer; anything else is a failing helper. Its output is not quoted (it may hold secrets).
    if (/credentials not found/i.test(result.stdout)) return undefined;
    throw new RegistryError("E_REGISTRY_AUTH", `${program} get (${answer.via}) failed with exit code ${result.exitCode}; run \`echo ${answer.serverUrl} | ${program} get\` to see why`);
  }
  const credential = parseHelperOutput(result.stdout, answer.helper);
  return credential.password || credential.identityToken ? credential : undefined;
}

/** The credential for `host`, or undefined for anonymous access. */
export async function resolveCredentials(host: string, options: ResolveCredentialsOptions = {}): Promise<ResolvedCredential | undefined> {
  const env = options.env ?? process.env;
  const fromEnv = credentialsFromEnv(env, host);
  if (fromEnv) return fromEnv;
  for (const path of authFilePaths(env)) {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if (["ENOENT", "ENOTDIR"].includes((error as NodeJS.ErrnoException).code ?? "")) continue;
      throw new PipelineError("E_CONFIG_MISSING", `${path} could not be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const answer = lookupInAuthFile(parseAuthFile(text, path), host, options.repository);
    if (!answer) continue;
    if (answer.kind === "stored") return { credential: answer.credential, source: answer.via };
    const credential = await askHelper(answer, options);
    if (credential) return { credential, source: `docker-credential-${answer.helper} (${answer.via})` };
  }
  return undefined;
}
