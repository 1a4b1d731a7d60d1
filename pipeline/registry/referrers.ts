/**
 * Referrers: manifests whose `subject` is another manifest (signatures, provenance).
 *
 * Reading asks the Referrers API first (`GET /v2/<name>/referrers/<digest>`, pages linked by
 * `Link: <…>; rel="next"`); a 404 means the registry has no such API (Distribution 2.x/3.x,
 * GHCR), so the tag-schema index `sha256-<hex>` is read instead. Entries written by other
 * tools are tolerated: cosign (through go-containerregistry) has written them without
 * annotations and with the empty media type as `artifactType` (sigstore/cosign#4641), so
 * when filtering, such an entry's own manifest is fetched to learn its type.
 *
 * Writing the tag index follows the spec's "Unavailable Referrers API" steps: GET (404 = an
 * empty index, anything but an index = refuse), skip if listed, append the full descriptor,
 * PUT with If-Match when an ETag came back. 2.8.2 ignores If-Match, so the index is read
 * again and the PUT repeated (bounded) until our entry is there. Other entries are copied
 * through untouched, whatever fields they have.
 */
import { RegistryError } from "./errors.js";
import type { CallOptions, ClientPlumbing, Manifest } from "./client-plumbing.js";
import { MANIFEST_SIZE_LIMIT, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, type Descriptor } from "./types.js";
import { discard, readCapped } from "./http.js";
import { assertDigest, assertRepository, isDigest } from "./reference.js";

export interface ReferrerList {
  manifests: Descriptor[];
  /** Where they came from: the Referrers API or the tag-schema index. */
  source: "api" | "tag-schema";
}

export interface AddReferrerResult {
  /** False when the index already listed the descriptor. */
  updated: boolean;
  /** Digest of the index now under the tag. */
  indexDigest: string;
}

const MAX_PAGES = 64;
const ANY_MANIFEST = [OCI_INDEX, OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"];
/** Entries whose type is learnt by fetching their manifest, at most (a hostile index could list thousands). */
const MAX_TYPE_LOOKUPS = 32;

/** The tag-schema tag for `subject`: `sha256-<hex>`. */
export function referrersTagFor(subject: string): string {
  assertDigest(subject);
  return subject.replace(":", "-");
}

/** The entries of an index that are usable descriptors (others are skipped, not fatal). */
export function descriptorsOf(index: Record<string, unknown>): Descriptor[] {
  const manifests = index.manifests;
  if (manifests === undefined || manifests === null) return [];
  if (!Array.isArray(manifests)) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `referrers index: "manifests" is not a list`);
  return manifests.filter(
    (m): m is Descriptor => typeof m === "object" && m !== null && typeof (m as Descriptor).mediaType === "string" && typeof (m as Descriptor).digest === "string" && isDigest((m as Descriptor).digest) && Number.isSafeInteger((m as Descriptor).size),
  );
}

/** The `rel="next"` target of a Link header, if any. */
export function nextLink(link: string | undefined, base: string): string | undefined {
  for (const part of (link ?? "").split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /(?:^|;)\s*rel="?next"?\s*(?:;|$)/i.test(match[2] ?? "")) return new URL(match[1] ?? "", base).toString();
  }
  return undefined;
}

async function readIndexPage(client: ClientPlumbing, repository: string, url: string, what: string, signal: AbortSignal | undefined): Promise<{ index: Record<string, unknown>; next: string | undefined } | "unsupported"> {
  const request = { method: "GET" as const, url, headers: { accept: OCI_INDEX }, followRedirects: true, access: { repository, actions: ["pull" as const] }, what, ...(signal ? { signal } : {}) };
  const answer = await client.exchange(request, async (response) => {
    if (response.status === 404) {
      await discard(response);
      return "unsupported" as const;
    }
    if (response.status !== 200) throw await client.errorFor(response, what);
    if (Number(response.headers["content-length"]) > MANIFEST_SIZE_LIMIT) throw new RegistryError("E_REGISTRY_LIMIT", `${what}: a page over ${MANIFEST_SIZE_LIMIT} bytes`);
    const bytes = await readCapped(response.body, MANIFEST_SIZE_LIMIT + 1);
    if (bytes.length > MANIFEST_SIZE_LIMIT) throw new RegistryError("E_REGISTRY_LIMIT", `${what}: a page over ${MANIFEST_SIZE_LIMIT} bytes`);
    return { bytes, link: response.headers.link };
  });
  if (answer === "unsupported") return answer;
  let index: unknown;
  try {
    index = JSON.parse(answer.bytes.toString("utf8"));
  } catch {
    throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: not JSON`);
  }
  if (typeof index !== "object" || index === null || Array.isArray(index)) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: not an image index`);
  return { index: index as Record<string, unknown>, next: nextLink(answer.link, url) };
}

/** The artifact type of a listed referrer, fetching its manifest when the entry does not say. */
async function artifactTypeOf(client: ClientPlumbing, repository: string, entry: Descriptor, lookups: { left: number }, signal: AbortSignal | undefined): Promise<string | undefined> {
  if (entry.artifactType && entry.artifactType !== OCI_EMPTY) return entry.artifactType;
  if (lookups.left-- <= 0) return entry.artifactType;
  const manifest = await client.getManifest(repository, entry.digest, signal ? { signal } : {}).catch((error: unknown) => {
    if (error instanceof RegistryError && error.code === "E_REGISTRY_NOT_FOUND") return undefined;
    throw error;
  });
  if (!manifest) return entry.artifactType;
  const own = manifest.json.artifactType;
  const configType = (manifest.json.config as { mediaType?: unknown } | undefined)?.mediaType;
  return typeof own === "string" ? own : typeof configType === "string" ? configType : entry.artifactType;
}

export async function listReferrers(client: ClientPlumbing, repository: string, subject: string, artifactType: string | undefined, call?: CallOptions): Promise<ReferrerList> {
  assertRepository(repository);
  assertDigest(subject);
  const signal = client.signalFor(call);
  const what = `referrers of ${repository}@${subject}`;
  let url: string | undefined = client.transport.url(`/v2/${repository}/referrers/${subject}${artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : ""}`);
  let all: Descriptor[] = [];
  let source: ReferrerList["source"] = "api";
  for (let page = 0; url; page++) {
    if (page >= MAX_PAGES) throw new RegistryError("E_REGISTRY_LIMIT", `${what}: more than ${MAX_PAGES} pages`);
    const answer = await readIndexPage(client, repository, url, what, signal);
    if (answer === "unsupported") {
      if (page > 0) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: page ${page + 1} is missing`);
      source = "tag-schema";
      all = descriptorsOf((await readFallbackIndex(client, repository, subject, signal))?.json ?? {});
      break;
    }
    all.push(...descriptorsOf(answer.index));
    url = answer.next;
  }
  if (artifactType === undefined) return { manifests: all, source };
  const lookups = { left: MAX_TYPE_LOOKUPS };
  const kept: Descriptor[] = [];
  // Filtered here too: a registry may ignore the artifactType parameter (no OCI-Filters-Applied).
  for (const entry of all) if ((await artifactTypeOf(client, repository, entry, lookups, signal)) === artifactType) kept.push(entry);
  return { manifests: kept, source };
}

/** The tag-schema index of `subject`, or undefined when there is none; anything but an index is refused. */
async function readFallbackIndex(client: ClientPlumbing, repository: string, subject: string, signal: AbortSignal | undefined): Promise<Manifest | undefined> {
  const tag = referrersTagFor(subject);
  let manifest: Manifest;
  try {
    // Accept every manifest type: with only the index type, 2.8.2 answers 404 for a manifest
    // under the tag, which would read as "no index yet" and overwrite it.
    manifest = await client.getManifest(repository, tag, { accept: ANY_MANIFEST, ...(signal ? { signal } : {}) });
  } catch (error) {
    if (error instanceof RegistryError && error.code === "E_REGISTRY_NOT_FOUND") return undefined;
    throw error;
  }
  if (manifest.mediaType !== OCI_INDEX) {
    throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${repository}:${tag} should be the referrers index of ${subject}, but it holds a ${manifest.mediaType}; refusing to overwrite it`);
  }
  return manifest;
}

export async function addReferrerToFallbackIndex(
  client: ClientPlumbing,
  repository: string,
  subject: string,
  descriptor: Descriptor,
  options: CallOptions & { attempts?: number } = {},
): Promise<AddReferrerResult> {
  assertRepository(repository);
  assertDigest(subject);
  assertDigest(descriptor.digest);
  const signal = client.signalFor(options);
  const tag = referrersTagFor(subject);
  const attempts = options.attempts ?? 5;
  let updated = false;
  for (let attempt = 0; ; attempt++) {
    const current = await readFallbackIndex(client, repository, subject, signal);
    const listed = current ? descriptorsOf(current.json) : [];
    if (current && listed.some((m) => m.digest === descriptor.digest)) return { updated, indexDigest: current.digest };
    if (attempt >= attempts) {
      throw new RegistryError("E_REGISTRY_HTTP", `${repository}:${tag}: our referrer ${descriptor.digest} was still missing after ${attempts} updates (another client keeps rewriting the index); rerun`);
    }
    // Keep the existing document as it is (other tools' entries and fields), adding one entry.
    const base = current?.json ?? { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
    const manifests = Array.isArray(base.manifests) ? base.manifests : [];
    const next = { ...base, manifests: [...manifests, descriptor] };
    const bytes = Buffer.from(JSON.stringify(next));
    const etag = current?.etag;
    try {
      await client.putManifest(repository, tag, bytes, OCI_INDEX, { ...(etag ? { ifMatch: etag } : {}), ...(signal ? { signal } : {}) });
      updated = true;
    } catch (error) {
      // Someone else changed it since our GET: read again.
      if (!(error instanceof RegistryError && error.status === 412)) throw error;
    }
  }
}
