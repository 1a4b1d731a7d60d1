/**
 * `oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`: the one way a user names something in a
 * registry. The repository and tag grammars are the distribution spec's (oci-models.md §3);
 * a bad reference fails here, naming the part that is wrong, before any request is made.
 */
import { RegistryError } from "./errors.js";

export interface RegistryReference {
  /** `host[:port]`, host lower-cased (`ghcr.io`, `127.0.0.1:5000`, `[::1]:5000`). */
  registry: string;
  /** `org/model`: the distribution spec's name grammar. */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>`. With a tag too, the digest is what is fetched (the tag is informative). */
  digest?: string;
}

const SCHEME = "oci://";
/** distribution-spec v1.1 `<name>`. */
const REPOSITORY = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
/** distribution-spec v1.1 `<reference>` as a tag. */
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;
/** Distribution refuses longer names (`reference.NameTotalLengthMax`, host included). */
const MAX_NAME_LENGTH = 255;

function fail(text: string, problem: string): never {
  throw new RegistryError("E_REGISTRY_REFERENCE", `${text}: ${problem}`, { details: ["expected oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST], e.g. oci://ghcr.io/acme/model:v1"] });
}

export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}

export function isTag(text: string): boolean {
  return TAG.test(text);
}

/** Checks a repository name (as the client's methods get it); throws E_REGISTRY_REFERENCE naming it. */
export function assertRepository(name: string, context = name): void {
  if (!REPOSITORY.test(name)) {
    const hint = name !== name.toLowerCase() ? " (repository names are lower case)" : name.startsWith("/") || name.endsWith("/") || name.includes("//") ? " (empty path component)" : "";
    fail(context, `repository "${name}" is not a valid name${hint}: lower-case letters and digits, separated by ".", "_", "__", "-" or "/"`);
  }
}

export function assertDigest(digest: string, context = digest): void {
  if (!DIGEST.test(digest)) fail(context, `digest "${digest}" is not sha256:<64 lower-case hex digits>`);
}

/** `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port 1–65535. */
export function normalizeRegistryHost(text: string, context = text): string {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(text);
  const host = match?.[1]?.toLowerCase() ?? "";
  const port = match?.[2];
  if (!host || !(HOST_NAME.test(host) || IPV6.test(host))) fail(context, `registry host "${text}" is not a host name or address`);
  if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) fail(context, `registry port "${port}" is not a number from 1 to 65535`);
  return port === undefined ? host : `${host}:${port}`;
}

export function parseReference(text: string): RegistryReference {
  if (!text.startsWith(SCHEME)) fail(text, `a registry reference starts with ${SCHEME}`);
  const rest = text.slice(SCHEME.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) fail(text, slash === 0 ? "the registry host is missing" : "no repository after the registry host (a host is required: oci://HOST/REPOSITORY)");
  const registry = normalizeRegistryHost(rest.slice(0, slash), text);
  let path = rest.slice(slash + 1);

  let digest: string | undefined;
  const at = path.indexOf("@");
  if (at >= 0) {
    digest = path.slice(at + 1);
    path = path.slice(0, at);
    assertDigest(digest, text);
  }
  let tag: string | undefined;
  const colon = path.lastIndexOf(":");
  if (colon > path.lastIndexOf("/")) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) fail(text, `tag "${tag}" is not valid: up to 128 letters, digits, "_", "." or "-", not starting with "." or "-"`);
  }
  if (!path) fail(text, "the repository is missing");
  assertRepository(path, text);
  if (registry.length + 1 + path.length > MAX_NAME_LENGTH) fail(text, `host and repository are longer than ${MAX_NAME_LENGTH} characters`);
  return { registry, repository: path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

export function formatReference(reference: RegistryReference): string {
  return `${SCHEME}${reference.registry}/${reference.repository}${reference.tag !== undefined ? `:${reference.tag}` : ""}${reference.digest !== undefined ? `@${reference.digest}` : ""}`;
}

/** What a manifest request names: the digest when there is one, else the tag, else `latest` (as docker and skopeo default). */
export function manifestReference(reference: RegistryReference): string {
  return reference.digest ?? reference.tag ?? "latest";
}

/** Loopback by name or address: the only hosts plain HTTP is used with unless forced. */
export function isLoopbackHost(registry: string): boolean {
  const host = registry.startsWith("[") ? registry.slice(0, registry.indexOf("]") + 1) : registry.replace(/:\d+$/, "");
  return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
