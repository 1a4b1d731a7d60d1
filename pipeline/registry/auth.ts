/**
 * Registry authentication: the `WWW-Authenticate` challenge, Basic auth, and the Bearer
 * token flow (distribution's token.md and oauth.md; oci-models.md §4).
 *
 * The first request to a registry goes without credentials; its 401 says which scheme the
 * registry wants. From then on Basic credentials go with every request, and Bearer tokens
 * are fetched ahead for each new set of scopes and cached by (realm, service, scopes) until
 * shortly before `expires_in` runs out. A 401 or 403 gets exactly one fresh attempt (a new
 * token, with the scopes the challenge names); a second refusal is E_REGISTRY_AUTH at once,
 * so wrong credentials cost two requests, not a retry storm.
 *
 * Credentials are looked up lazily (a credential helper runs only for a registry that asks),
 * and no message or event carries them: only where they came from.
 */
import { RegistryError } from "./errors.js";
import type { RegistryCredential, ResolvedCredential } from "./credentials.js";
import {
  abortError,
  assertTransportAllowed,
  originOf,
  readCapped,
  readErrorBody,
  RETRYABLE_STATUS,
  TransientRegistryError,
  withRetries,
  type HttpRequest,
  type HttpResponse,
  type RegistryEvent,
  type RegistryTransport,
  type RetryPolicy,
} from "./http.js";

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * All challenges in a `WWW-Authenticate` value (several may share one header, separated by
 * commas, or come as separate headers, joined here by "\n"). Parameter values may be quoted
 * and hold commas (`scope="repository:a:pull,push"`).
 */
export function parseChallenges(header: string | undefined): Challenge[] {
  const challenges: Challenge[] = [];
  for (const line of (header ?? "").split("\n")) {
    let current: Challenge | undefined;
    let i = 0;
    const skip = (chars: string) => {
      while (i < line.length && chars.includes(line[i]!)) i++;
    };
    const token = () => {
      const start = i;
      while (i < line.length && !' \t,="'.includes(line[i]!)) i++;
      return line.slice(start, i);
    };
    while (i < line.length) {
      skip(" \t,");
      const name = token();
      if (!name) {
        i++;
        continue;
      }
      skip(" \t");
      if (line[i] !== "=") {
        current = { scheme: name.toLowerCase(), params: {} };
        challenges.push(current);
        continue;
      }
      i++;
      skip(" \t");
      let value = "";
      if (line[i] === '"') {
        for (i++; i < line.length && line[i] !== '"'; i++) value += line[i] === "\\" ? (line[++i] ?? "") : line[i];
        i++;
      } else {
        value = token();
      }
      if (current) current.params[name.toLowerCase()] = value;
    }
  }
  return challenges;
}

/** What a request needs: pull or push on a repository, plus other scopes (a mount's source). */
export interface Access {
  repository?: string;
  actions?: ("pull" | "push" | "delete")[];
  extraScopes?: string[];
}

export function scopesFor(access: Access): string[] {
  const scopes = new Set(access.extraScopes ?? []);
  if (access.repository && access.actions?.length) scopes.add(`repository:${access.repository}:${access.actions.join(",")}`);
  return [...scopes].sort();
}

type Scheme = { kind: "unknown" } | { kind: "basic" } | { kind: "bearer"; realm: string; service?: string };

interface CachedToken {
  token: string;
  expiresAt: number;
}

export interface AuthorizerOptions {
  transport: RegistryTransport;
  /** Explicit credentials (null: anonymous), or a lookup run on first need per repository. */
  credentials: (repository: string | undefined) => Promise<ResolvedCredential | undefined>;
  retry: RetryPolicy;
  onEvent?: (event: RegistryEvent) => void;
  now?: () => number;
}

/** A token response: `token` or `access_token`, `expires_in` seconds (default 60 per token.md). */
export function parseTokenResponse(json: unknown): { token: string; expiresInS: number } | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const { token, access_token: accessToken, expires_in: expiresIn } = json as Record<string, unknown>;
  const value = typeof token === "string" && token ? token : typeof accessToken === "string" && accessToken ? accessToken : undefined;
  if (!value) return undefined;
  return { token: value, expiresInS: typeof expiresIn === "number" && expiresIn > 0 ? expiresIn : 60 };
}

export class Authorizer {
  private scheme: Scheme = { kind: "unknown" };
  private readonly tokens = new Map<string, CachedToken>();
  private readonly fetching = new Map<string, Promise<CachedToken>>();
  private readonly options: AuthorizerOptions;
  private readonly origin: string;

  constructor(options: AuthorizerOptions) {
    this.options = options;
    this.origin = originOf(options.transport.baseUrl);
  }

  /** Whether the scheme is known yet (a streamed upload should not be the request that finds out). */
  get knowsScheme(): boolean {
    return this.scheme.kind !== "unknown";
  }

  /** Sends `req` with the credentials `access` needs; one fresh attempt on 401/403, then E_REGISTRY_AUTH. */
  async send(req: HttpRequest, access: Access): Promise<HttpResponse> {
    // Credentials are for the registry's own origin: an upload Location elsewhere gets none.
    if (originOf(req.url) !== this.origin) return this.options.transport.send(req);
    const first = await this.authorization(access, { fresh: false, signal: req.signal });
    const response = await this.options.transport.send(withAuthorization(req, first?.header));
    if (!isRefusal(response) || originOf(response.url) !== this.origin) return response;

    const challenges = parseChallenges(response.headers["www-authenticate"]);
    const refusal = await readErrorBody(response);
    this.learn(challenges);
    const challengeScopes = challenges.find((c) => c.scheme === "bearer")?.params.scope?.split(" ").filter(Boolean) ?? [];
    const second = await this.authorization(access, { fresh: true, refused: first?.header, challengeScopes, signal: req.signal });
    if (!second) throw await this.refused(access, response.status, refusal.code, undefined);
    // The same credentials again would only be refused again.
    if (second.header === first?.header) throw await this.refused(access, response.status, refusal.code, second.source);
    const retried = await this.options.transport.send(withAuthorization(req, second.header));
    if (!isRefusal(retried) || originOf(retried.url) !== this.origin) return retried;
    const again = await readErrorBody(retried);
    throw await this.refused(access, retried.status, again.code, second.source);
  }

  /** Learns the scheme from a 401 (a ping does this before a streamed upload). */
  learn(challenges: Challenge[]): void {
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params.realm);
    if (bearer?.params.realm) {
      this.scheme = { kind: "bearer", realm: bearer.params.realm, ...(bearer.params.service !== undefined ? { service: bearer.params.service } : {}) };
    } else if (challenges.some((c) => c.scheme === "basic")) {
      this.scheme = { kind: "basic" };
    }
  }

  /** The header for `access`: undefined when none is due (an open registry, or nothing learnt yet). */
  private async authorization(
    access: Access,
    state: { fresh: boolean; refused?: string | undefined; challengeScopes?: string[]; signal: AbortSignal | undefined },
  ): Promise<{ header: string; source: string } | undefined> {
    if (this.scheme.kind === "unknown" && !state.fresh) {
      // Until a registry asks, only a static bearer token goes out (it is meant for this registry).
      const resolved = await this.options.credentials(access.repository);
      return resolved?.credential.registryToken ? { header: `Bearer ${resolved.credential.registryToken}`, source: resolved.source } : undefined;
    }
    const resolved = await this.options.credentials(access.repository);
    const credential = resolved?.credential;
    if (credential?.registryToken) {
      // A static token was refused once already when fresh: nothing else to try.
      return state.fresh ? undefined : { header: `Bearer ${credential.registryToken}`, source: resolved!.source };
    }
    if (this.scheme.kind === "basic") {
      if (!credential?.username || credential.password === undefined) return undefined;
      const basic = Buffer.from(`${credential.username}:${credential.password}`).toString("base64");
      if (state.fresh) this.options.onEvent?.({ type: "auth", scheme: "basic", source: resolved!.source });
      return { header: `Basic ${basic}`, source: resolved!.source };
    }
    if (this.scheme.kind !== "bearer") return undefined;
    const scopes = [...new Set([...scopesFor(access), ...(state.challengeScopes ?? [])])].sort();
    const key = `${this.scheme.realm}\n${this.scheme.service ?? ""}\n${scopes.join(" ")}`;
    const cached = this.tokens.get(key);
    // A fresh attempt still takes a cached token that is not the one just refused (a parallel
    // request fetched it meanwhile).
    if (cached && cached.expiresAt > (this.options.now ?? Date.now)() && `Bearer ${cached.token}` !== state.refused) return { header: `Bearer ${cached.token}`, source: resolved?.source ?? "anonymous" };
    // Parallel requests needing the same scopes share one token request. It runs without any
    // one caller's signal (another caller's abort must not fail the rest); each waits on its own.
    let pending = this.fetching.get(key);
    if (!pending) {
      const scheme = this.scheme;
      pending = this.fetchToken(scheme, scopes, resolved, undefined)
        .then((token) => {
          const lifetimeMs = token.expiresInS * 1000;
          const entry = { token: token.token, expiresAt: (this.options.now ?? Date.now)() + lifetimeMs - Math.min(30_000, lifetimeMs / 4) };
          this.tokens.set(key, entry);
          return entry;
        })
        .finally(() => this.fetching.delete(key));
      this.fetching.set(key, pending);
    }
    const token = await untilAborted(pending, state.signal);
    return { header: `Bearer ${token.token}`, source: resolved?.source ?? "anonymous" };
  }

  /** GET `<realm>?service=&scope=&scope=` with Basic credentials (or none), or the OAuth2 POST for an identity token. */
  private async fetchToken(
    scheme: Extract<Scheme, { kind: "bearer" }>,
    scopes: string[],
    resolved: ResolvedCredential | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; expiresInS: number }> {
    const realmUrl = new URL(scheme.realm, this.options.transport.baseUrl);
    assertTransportAllowed(realmUrl.toString(), this.options.transport.insecure, `token service ${realmUrl.host}`);
    const credential: RegistryCredential | undefined = resolved?.credential;
    const what = `token service ${realmUrl.host} for ${this.options.transport.registry}`;
    let req: HttpRequest;
    if (credential?.identityToken) {
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: credential.identityToken, client_id: "ai-tools", ...(scheme.service !== undefined ? { service: scheme.service } : {}) });
      if (scopes.length) form.set("scope", scopes.join(" "));
      req = { method: "POST", url: realmUrl.toString(), headers: { "content-type": "application/x-www-form-urlencoded" }, body: Buffer.from(form.toString()), signal };
    } else {
      const url = new URL(realmUrl);
      if (scheme.service !== undefined) url.searchParams.set("service", scheme.service);
      for (const scope of scopes) url.searchParams.append("scope", scope);
      const headers: Record<string, string> = {};
      if (credential?.username && credential.password !== undefined) {
        url.searchParams.set("account", credential.username);
        headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`;
      }
      req = { method: "GET", url: url.toString(), headers, signal };
    }
    const body = await withRetries(this.options.retry, req.signal, (e) => this.options.onEvent?.(e), async () => {
      const response = await this.options.transport.send(req);
      if (response.status === 200) return readCapped(response.body, 1 << 20);
      const error = await readErrorBody(response);
      if (response.status === 401 || response.status === 403) {
        throw new RegistryError(
          "E_REGISTRY_AUTH",
          resolved
            ? `${what} refused the credentials from ${resolved.source} (${response.status}${error.code ? ` ${error.code}` : ""}): log in again (docker login / skopeo login) or fix them`
            : `${what} refused anonymous access (${response.status}): this registry needs credentials: docker login / skopeo login, or AI_TOOLS_REGISTRY_USERNAME and AI_TOOLS_REGISTRY_PASSWORD`,
          { status: response.status, ...(error.code ? { registryCode: error.code } : {}) },
        );
      }
      const message = `${what} answered HTTP ${response.status}${error.message ? ` (${error.message})` : ""}`;
      if (RETRYABLE_STATUS.has(response.status)) throw new TransientRegistryError("E_REGISTRY_HTTP", message, { status: response.status });
      throw new RegistryError("E_REGISTRY_HTTP", message, { status: response.status });
    });
    let parsed: ReturnType<typeof parseTokenResponse>;
    try {
      parsed = parseTokenResponse(JSON.parse(body.toString("utf8")));
    } catch {
      parsed = undefined;
    }
    if (!parsed) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what} answered without a token`);
    this.options.onEvent?.({ type: "auth", scheme: "bearer", source: resolved?.source ?? "anonymous", realmHost: realmUrl.host });
    return parsed;
  }

  private async refused(access: Access, status: number, registryCode: string | undefined, source: string | undefined): Promise<RegistryError> {
    const registry = this.options.transport.registry;
    const target = access.repository ? `${access.actions?.join("/") ?? "access"} on ${access.repository}` : "access";
    const code = registryCode ? ` ${registryCode}` : "";
    if (source) {
      return new RegistryError(
        "E_REGISTRY_AUTH",
        status === 403
          ? `registry ${registry} denied ${target} to the credentials from ${source} (403${code}): they lack permission`
          : `registry ${registry} refused the credentials from ${source} (401${code}): log in again (docker login / skopeo login) or fix them`,
        { status, ...(registryCode ? { registryCode } : {}) },
      );
    }
    const resolved = await this.options.credentials(access.repository);
    return new RegistryError(
      "E_REGISTRY_AUTH",
      resolved
        ? `registry ${registry} refused ${target} (${status}${code}) with the credentials from ${resolved.source}`
        : `registry ${registry} needs credentials for ${target} (${status}${code}) and none were found: docker login / skopeo login ${registry}, or set AI_TOOLS_REGISTRY_USERNAME and AI_TOOLS_REGISTRY_PASSWORD`,
      { status, ...(registryCode ? { registryCode } : {}) },
    );
  }
}

/** `promise`, or the abort of `signal`, whichever comes first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function isRefusal(response: HttpResponse): boolean {
  return response.status === 401 || response.status === 403;
}

function withAuthorization(req: HttpRequest, header: string | undefined): HttpRequest {
  return header ? { ...req, headers: { ...req.headers, authorization: header } } : req;
}

