/**
 * A client for one OCI registry (distribution-spec v1.1; oci-models.md §3, §7, §8): blobs,
 * manifests and referrers, with authentication, retries and digest checks built in. Push and
 * pull are written on top of it; it never prints, it reports through callbacks.
 *
 * Every method takes an optional AbortSignal (besides the client's own) and fails with a
 * RegistryError (or core's AbortedError): E_REGISTRY_NOT_FOUND for unknown objects,
 * E_DIGEST_MISMATCH for content that is not what its digest says, E_REGISTRY_LIMIT for
 * oversized manifests, E_REGISTRY_AUTH after one fresh authentication attempt.
 */
import { createHash } from "node:crypto";
import { createReadStream, readFileSync } from "node:fs";
import { mkdir, open, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PipelineError } from "../core/errors.js";
import { writeAll } from "../core/files.js";
import { Authorizer, type Access } from "./auth.js";
import { sha256Sink, type Sha256Sink } from "./hasher.js";
import { resolveCredentials, type RegistryCredential, type ResolvedCredential } from "./credentials.js";
import { RegistryError } from "./errors.js";
import {
  abortError,
  DEFAULT_RETRY,
  discard,
  networkError,
  readErrorBody,
  RETRYABLE_STATUS,
  RegistryTransport,
  TransientRegistryError,
  parseContentRange,
  parseRetryAfter,
  withRetries,
  type HttpRequest,
  type HttpResponse,
  type RegistryEvent,
  type RetryPolicy,
} from "./http.js";
import { assertDigest, assertRepository, isDigest, normalizeRegistryHost, type RegistryReference } from "./reference.js";
import { MANIFEST_SIZE_LIMIT, OCI_MANIFEST_TYPES, type Descriptor } from "./types.js";
import { addReferrerToFallbackIndex, listReferrers, type AddReferrerResult, type ReferrerList } from "./referrers.js";
import { mountBlob, uploadBlob, type BlobSource, type MountResult, type UploadOptions, type UploadResult } from "./upload.js";
import type { CallOptions, ClientPlumbing, Manifest } from "./client-plumbing.js";

export type { CallOptions, Manifest } from "./client-plumbing.js";

export interface RegistryClientOptions {
  /** `host[:port]`. */
  registry: string;
  /** Explicit credentials; `null` = anonymous; absent = looked up (env, auth files, helpers). */
  credentials?: RegistryCredential | null;
  /** Environment for the credential lookup (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Plain HTTP (default: only for loopback hosts). */
  plainHttp?: boolean;
  /** Allow plain HTTP to a host that is not loopback. */
  insecure?: boolean;
  /** PEM CA certificate(s) to trust besides the system's (a private registry CA). */
  ca?: string | Buffer;
  /** The same, from a file (read once, here). */
  caFile?: string;
  retry?: Partial<RetryPolicy>;
  /** No byte for this long = a stalled exchange, retried. Default 120 s. */
  stallTimeoutMs?: number;
  /** Stops every request of this client. */
  signal?: AbortSignal;
  onEvent?: (event: RegistryEvent) => void;
}

export interface ManifestHead {
  digest: string | undefined;
  mediaType: string | undefined;
  size: number | undefined;
}

export interface GetBlobOptions extends CallOptions {
  /** Where the bytes go (a `.partial` path: the caller renames it once this returns). */
  file: string;
  /** Keep this many bytes already in `file` and ask for the rest (default: all of them; 0 starts over). */
  offset?: number;
  /** Named in errors (`model.gguf`), beside the digest. */
  name?: string;
  /**
   * The size the manifest lists: more bytes are refused, and a large blob is hashed on another
   * thread (pass it: without it the hash runs inline, about half the speed on a fast link).
   */
  size?: number;
  onProgress?: (received: number, total: number | undefined) => void;
}

export interface GetBlobResult {
  digest: string;
  size: number;
  /** Bytes that were already on disk and not fetched again. */
  resumedFrom: number;
}

function mediaTypeOf(contentType: string | undefined): string | undefined {
  const type = contentType?.split(";")[0]?.trim().toLowerCase();
  return type || undefined;
}

export class RegistryClient implements ClientPlumbing {
  readonly registry: string;
  /** Internal plumbing shared with upload.ts and referrers.ts. */
  readonly transport: RegistryTransport;
  readonly retry: RetryPolicy;
  private readonly authorizer: Authorizer;
  private readonly options: RegistryClientOptions;
  private readonly credentials = new Map<string, Promise<ResolvedCredential | undefined>>();
  /** Whether a request has shown the auth needs of writes (a ping, or any push answered without a challenge). */
  private authProbed = false;

  constructor(options: RegistryClientOptions) {
    this.options = options;
    this.registry = normalizeRegistryHost(options.registry);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    let ca = options.ca;
    if (options.caFile) {
      try {
        ca = Buffer.concat([...(ca ? [Buffer.from(ca), Buffer.from("\n")] : []), readFileSync(options.caFile)]);
      } catch (error) {
        throw new PipelineError("E_CONFIG_MISSING", `the registry CA file ${options.caFile} could not be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
    this.transport = new RegistryTransport({
      registry: this.registry,
      ...(options.plainHttp !== undefined ? { plainHttp: options.plainHttp } : {}),
      ...(options.insecure !== undefined ? { insecure: options.insecure } : {}),
      ...(ca !== undefined ? { ca } : {}),
      ...(options.stallTimeoutMs !== undefined ? { stallTimeoutMs: options.stallTimeoutMs } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    });
    this.authorizer = new Authorizer({
      transport: this.transport,
      credentials: (repository) => this.credentialFor(repository),
      retry: this.retry,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    });
  }

  static forReference(reference: RegistryReference, options: Omit<RegistryClientOptions, "registry"> = {}): RegistryClient {
    return new RegistryClient({ ...options, registry: reference.registry });
  }

  private credentialFor(repository: string | undefined): Promise<ResolvedCredential | undefined> {
    const explicit = this.options.credentials;
    if (explicit === null) return Promise.resolve(undefined);
    if (explicit !== undefined) return Promise.resolve({ credential: explicit, source: "the credentials given" });
    const key = repository ?? "";
    let pending = this.credentials.get(key);
    if (!pending) {
      pending = resolveCredentials(this.registry, { ...(repository ? { repository } : {}), ...(this.options.env ? { env: this.options.env } : {}), ...(this.options.signal ? { signal: this.options.signal } : {}) });
      this.credentials.set(key, pending);
    }
    return pending;
  }

  /** The client's signal and the call's, as one. (Plumbing for upload.ts and referrers.ts, like request, exchange, errorFor.) */
  signalFor(call: CallOptions | undefined): AbortSignal | undefined {
    const signals = [this.options.signal, call?.signal].filter((s): s is AbortSignal => s !== undefined);
    return signals.length <= 1 ? signals[0] : AbortSignal.any(signals);
  }

  emit(event: RegistryEvent): void {
    this.options.onEvent?.(event);
  }

  /**
   * One request with authentication, retried on 429/5xx and network failures (unless `retries`
   * is false: a streamed upload recovers by asking the session's offset instead). Any other
   * status comes back to the caller.
   */
  async request(req: HttpRequest & { access: Access; what: string; retries?: boolean }): Promise<HttpResponse> {
    const policy = req.retries === false ? { ...this.retry, attempts: 1 } : this.retry;
    if (req.body !== undefined && !Buffer.isBuffer(req.body) && !this.authProbed && !this.authorizer.knowsScheme) {
      // A streamed body must not be the request that learns the auth scheme (it would be sent twice).
      await this.ping({ ...(req.signal ? { signal: req.signal } : {}) });
    }
    return withRetries(policy, req.signal, (e) => this.emit(e), async () => {
      const response = await this.authorizer.send(req, req.access);
      if (response.status < 300 && req.access.actions?.includes("push")) this.authProbed = true;
      if (RETRYABLE_STATUS.has(response.status)) {
        const retryAfterMs = parseRetryAfter(response.headers["retry-after"]);
        const error = await readErrorBody(response);
        throw new TransientRegistryError("E_REGISTRY_HTTP", `${req.what}: HTTP ${response.status}${error.code ? ` ${error.code}` : ""}${error.message ? ` (${error.message})` : ""}`, {
          status: response.status,
          ...(error.code ? { registryCode: error.code } : {}),
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        });
      }
      return response;
    });
  }

  /**
   * A request whose answer `consume` reads, retried as a whole under one budget: a 429/5xx answer
   * and a connection that breaks while the body is read both get another attempt.
   */
  async exchange<T>(req: HttpRequest & { access: Access; what: string }, consume: (response: HttpResponse) => Promise<T>): Promise<T> {
    return withRetries(this.retry, req.signal, (e) => this.emit(e), async () => {
      const response = await this.request({ ...req, retries: false });
      try {
        return await consume(response);
      } catch (error) {
        response.body.destroy();
        if (req.signal?.aborted) throw abortError(req.signal);
        if (error instanceof PipelineError) throw error;
        throw networkError(error, `${req.what}: reading the answer`);
      }
    });
  }

  /** The typed error for an answer that is not what `what` expected. */
  async errorFor(response: HttpResponse, what: string): Promise<RegistryError> {
    const body = await readErrorBody(response);
    const code = body.code;
    const suffix = `${code ? ` ${code}` : ""}${body.message ? ` (${body.message})` : ""}`;
    const details = body.all.slice(1).map((e) => `${e.code ?? "error"}: ${e.message ?? ""}${typeof e.detail === "string" ? ` ${e.detail}` : e.detail ? ` ${JSON.stringify(e.detail)}` : ""}`);
    const options = { status: response.status, ...(code ? { registryCode: code } : {}), ...(details.length ? { details } : {}) };
    if (response.status === 404) return new RegistryError("E_REGISTRY_NOT_FOUND", `${what}: not found on ${this.registry}${suffix}`, options);
    if (response.status === 413) return new RegistryError("E_REGISTRY_LIMIT", `${what}: the registry refused it as too large (413)${suffix}`, options);
    return new RegistryError("E_REGISTRY_HTTP", `${what}: HTTP ${response.status}${suffix}`, options);
  }

  /** `GET /v2/`: checks the registry speaks the API and learns its auth scheme (logging in when it has one). */
  async ping(call?: CallOptions): Promise<void> {
    const signal = this.signalFor(call);
    const what = `registry ${this.registry}`;
    const response = await this.request({ method: "GET", url: this.transport.url("/v2/"), access: {}, what, ...(signal ? { signal } : {}) });
    if (response.status !== 200) throw await this.errorFor(response, `${what}: GET /v2/ (is this an OCI registry?)`);
    await discard(response);
    this.authProbed = true;
  }

  /** `HEAD` a blob: its size, or null when the repository does not have it. */
  async statBlob(repository: string, digest: string, call?: CallOptions): Promise<number | null> {
    assertRepository(repository);
    assertDigest(digest);
    const signal = this.signalFor(call);
    const what = `blob ${digest} in ${repository}`;
    const response = await this.request({ method: "HEAD", url: this.transport.url(`/v2/${repository}/blobs/${digest}`), followRedirects: true, access: { repository, actions: ["pull"] }, what, ...(signal ? { signal } : {}) });
    await discard(response);
    if (response.status === 404) return null;
    if (response.status !== 200) throw await this.errorFor(response, what);
    const size = Number(response.headers["content-length"]);
    if (!Number.isSafeInteger(size) || size < 0) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: HEAD answered without a Content-Length`);
    return size;
  }

  /** Cross-repository mount: 201 = the blob is now in `repository`; 202 = a plain upload session to use instead. */
  mountBlob(repository: string, digest: string, fromRepository: string, call?: CallOptions): Promise<MountResult> {
    return mountBlob(this, repository, digest, fromRepository, call);
  }

  /** Uploads a blob (HEAD first unless told otherwise): monolithic when small, chunked and resumable when large. */
  uploadBlob(repository: string, blob: BlobSource, options?: UploadOptions): Promise<UploadResult> {
    return uploadBlob(this, repository, blob, options ?? {});
  }

  /**
   * Streams a blob into `options.file`, continuing a partial file with `Range: bytes=<offset>-`
   * (the hash runs over the bytes already there first), and checks the sha256. On a mismatch
   * the file is deleted and E_DIGEST_MISMATCH names the digest (and `name`).
   */
  async getBlob(repository: string, digest: string, options: GetBlobOptions): Promise<GetBlobResult> {
    assertRepository(repository);
    assertDigest(digest);
    const signal = this.signalFor(options);
    const what = `blob ${options.name ? `${options.name} (${digest})` : digest} in ${repository}`;
    await mkdir(dirname(options.file), { recursive: true });
    const handle = await open(options.file, "r+").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return open(options.file, "w+");
      throw error;
    });
    const partial: PartialBlob = { handle, have: 0, hash: sha256Sink(options.size) };
    try {
      const onDisk = (await handle.stat()).size;
      partial.have = Math.min(options.offset ?? onDisk, onDisk, options.size ?? Infinity);
      if (partial.have < onDisk) await handle.truncate(partial.have);
      if (partial.have > 0) await hashFilePrefix(options.file, partial.have, partial.hash);
      const resumedFrom = partial.have;
      let fromZero = partial.have === 0;
      for (;;) {
        try {
          await withRetries(this.retry, signal, (e) => this.emit(e), () => this.fetchBlobInto(repository, digest, what, partial, options, signal));
        } catch (error) {
          // Bytes that are not the blob are not kept, not even to resume from.
          if (error instanceof RegistryError && error.code === "E_DIGEST_MISMATCH") await discardFile(handle, options.file);
          throw error;
        }
        const actual = await partial.hash.digest();
        if (actual === digest) return { digest, size: partial.have, resumedFrom };
        if (!fromZero) {
          // The bytes kept from before may be the bad ones: fetch everything once more.
          fromZero = true;
          await resetPartial(partial);
          continue;
        }
        await discardFile(handle, options.file);
        throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the registry sent bytes whose sha256 is ${actual}, not ${digest}. The registry's copy is damaged (or was replaced); nothing was kept.`);
      }
    } finally {
      await handle.close().catch(() => undefined);
      await partial.hash.close();
    }
  }

  /** One GET of a blob from `partial.have` on, appended to the file; a transient failure keeps what arrived. */
  private async fetchBlobInto(repository: string, digest: string, what: string, partial: PartialBlob, options: GetBlobOptions, signal: AbortSignal | undefined): Promise<void> {
    const response = await this.request({
      method: "GET",
      url: this.transport.url(`/v2/${repository}/blobs/${digest}`),
      headers: partial.have > 0 ? { range: `bytes=${partial.have}-` } : {},
      followRedirects: true,
      access: { repository, actions: ["pull"] },
      what,
      // The caller retries the whole exchange, resuming from what arrived.
      retries: false,
      ...(signal ? { signal } : {}),
    });
    let total: number | undefined;
    if (response.status === 416) {
      const range = parseContentRange(response.headers["content-range"]);
      await discard(response);
      if (range?.total === partial.have) return; // Everything was already there.
      // More on disk than the blob holds: start over.
      await resetPartial(partial);
      throw new TransientRegistryError("E_REGISTRY_HTTP", `${what}: the partial file was longer than the blob`, { status: 416, retryAfterMs: 0 });
    }
    if (response.status === 200) {
      // No Range asked, or the server ignored it: the body starts at byte 0.
      if (partial.have > 0) await resetPartial(partial);
      const length = Number(response.headers["content-length"]);
      total = Number.isSafeInteger(length) ? length : undefined;
    } else if (response.status === 206) {
      const range = parseContentRange(response.headers["content-range"]);
      if (range?.start !== partial.have) {
        await discard(response);
        throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: asked for bytes from ${partial.have}, the registry sent Content-Range "${response.headers["content-range"] ?? ""}"`);
      }
      total = range.total;
    } else {
      throw await this.errorFor(response, what);
    }
    if (options.size !== undefined && total !== undefined && total !== options.size) {
      await discard(response);
      throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the registry offers ${total} bytes, the manifest lists ${options.size}`);
    }
    const writer = partialWriter(partial, options.size, (have) => options.onProgress?.(have, total));
    try {
      await pipeline(response.body, writer.stream);
    } catch (error) {
      // The write in flight lands (or fails) before anyone reads `have` again.
      await writer.idle();
      if (signal?.aborted) throw abortError(signal);
      if ((error as NodeJS.ErrnoException).code === "ENOSPC") {
        throw new PipelineError("E_DISK_FULL", `${what}: the disk holding ${options.file} filled up after ${partial.have} bytes; free space and rerun (the download resumes)`, { cause: error });
      }
      if (error instanceof PipelineError) throw new RegistryError((error as RegistryError).code, `${what}: ${error.message}`, { cause: error });
      throw new TransientRegistryError("E_REGISTRY_UNREACHABLE", `${what}: the connection broke after ${partial.have} bytes (${(error as Error).message})`, { cause: error });
    }
    if (total !== undefined && partial.have < total) throw new TransientRegistryError("E_REGISTRY_UNREACHABLE", `${what}: the body ended after ${partial.have} of ${total} bytes`, {});
  }

  /** A small blob (a config) in memory, digest-checked, refused past `maxBytes` (default 4 MiB). */
  async getBlobBytes(repository: string, digest: string, options: CallOptions & { maxBytes?: number; name?: string } = {}): Promise<Buffer> {
    assertRepository(repository);
    assertDigest(digest);
    const signal = this.signalFor(options);
    const limit = options.maxBytes ?? MANIFEST_SIZE_LIMIT;
    const what = `blob ${options.name ? `${options.name} (${digest})` : digest} in ${repository}`;
    const request = { method: "GET" as const, url: this.transport.url(`/v2/${repository}/blobs/${digest}`), followRedirects: true, access: { repository, actions: ["pull" as const] }, what, ...(signal ? { signal } : {}) };
    const bytes = await this.exchange(request, async (response) => {
      if (response.status !== 200) throw await this.errorFor(response, what);
      return readLimited(response, limit, what);
    });
    const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (actual !== digest) throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the registry sent bytes whose sha256 is ${actual}, not ${digest}`);
    return bytes;
  }

  /**
   * A manifest by tag or digest, refused past `maxBytes` (4 MiB) before more is read, its
   * Content-Type checked against its `mediaType`, its digest checked (against the reference
   * when that is a digest, and against `Docker-Content-Digest`).
   */
  async getManifest(repository: string, reference: string, options: CallOptions & { accept?: readonly string[]; maxBytes?: number } = {}): Promise<Manifest> {
    assertRepository(repository);
    const signal = this.signalFor(options);
    const accept = options.accept ?? OCI_MANIFEST_TYPES;
    const what = `manifest ${repository}${isDigest(reference) ? "@" : ":"}${reference}`;
    const request = {
      method: "GET" as const,
      url: this.transport.url(`/v2/${repository}/manifests/${reference}`),
      headers: { accept: accept.join(", ") },
      followRedirects: true,
      access: { repository, actions: ["pull" as const] },
      what,
      ...(signal ? { signal } : {}),
    };
    const { bytes, response } = await this.exchange(request, async (response) => {
      if (response.status !== 200) throw await this.errorFor(response, what);
      return { bytes: await readLimited(response, options.maxBytes ?? MANIFEST_SIZE_LIMIT, what), response };
    });
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (isDigest(reference) && digest !== reference) throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the registry sent a manifest whose sha256 is ${digest}`);
    const announced = response.headers["docker-content-digest"];
    if (announced?.startsWith("sha256:") && announced !== digest) throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the registry says its digest is ${announced}, the bytes hash to ${digest}`);
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString("utf8"));
    } catch {
      throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: not JSON`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: not a JSON object`);
    const object = json as Record<string, unknown>;
    const contentType = mediaTypeOf(response.headers["content-type"]);
    const declared = typeof object.mediaType === "string" ? object.mediaType : undefined;
    if (declared !== undefined && contentType !== undefined && declared !== contentType) {
      throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: served as ${contentType} but its mediaType says ${declared}; refusing an ambiguous manifest`);
    }
    const mediaType = declared ?? contentType;
    if (!mediaType || !accept.includes(mediaType)) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: media type ${mediaType ?? "(none)"} is not one of ${accept.join(", ")}`);
    return { bytes, mediaType, digest, json: object, ...(response.headers.etag ? { etag: response.headers.etag } : {}) };
  }

  /** `HEAD` a manifest: digest, type and size as the registry reports them, or null when it does not exist. */
  async headManifest(repository: string, reference: string, options: CallOptions & { accept?: readonly string[] } = {}): Promise<ManifestHead | null> {
    assertRepository(repository);
    const signal = this.signalFor(options);
    const what = `manifest ${repository}${isDigest(reference) ? "@" : ":"}${reference}`;
    const response = await this.request({
      method: "HEAD",
      url: this.transport.url(`/v2/${repository}/manifests/${reference}`),
      headers: { accept: (options.accept ?? OCI_MANIFEST_TYPES).join(", ") },
      followRedirects: true,
      access: { repository, actions: ["pull"] },
      what,
      ...(signal ? { signal } : {}),
    });
    await discard(response);
    if (response.status === 404) return null;
    if (response.status !== 200) throw await this.errorFor(response, what);
    const size = Number(response.headers["content-length"]);
    return {
      digest: response.headers["docker-content-digest"],
      mediaType: mediaTypeOf(response.headers["content-type"]),
      size: Number.isSafeInteger(size) ? size : undefined,
    };
  }

  /**
   * Stores `bytes` as a manifest under `reference` (a tag, or its own digest). Returns its digest
   * and the `OCI-Subject` the registry answered with (absent: keep the referrers tag index).
   */
  async putManifest(
    repository: string,
    reference: string,
    bytes: Buffer,
    mediaType: string,
    options: CallOptions & { ifMatch?: string } = {},
  ): Promise<{ digest: string; subject: string | undefined; status: number }> {
    assertRepository(repository);
    const signal = this.signalFor(options);
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    const what = `manifest ${repository}${isDigest(reference) ? "@" : ":"}${reference}`;
    if (bytes.length > MANIFEST_SIZE_LIMIT) {
      throw new RegistryError("E_REGISTRY_LIMIT", `${what}: ${bytes.length} bytes is over the ${MANIFEST_SIZE_LIMIT}-byte manifest limit registries enforce; use fewer layers`);
    }
    if (isDigest(reference) && reference !== digest) throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the bytes hash to ${digest}`);
    const response = await this.request({
      method: "PUT",
      url: this.transport.url(`/v2/${repository}/manifests/${reference}`),
      headers: { "content-type": mediaType, ...(options.ifMatch ? { "if-match": options.ifMatch } : {}) },
      body: bytes,
      access: { repository, actions: ["pull", "push"] },
      what,
      ...(signal ? { signal } : {}),
    });
    if (response.status !== 201 && response.status !== 200) throw await this.errorFor(response, `pushing ${what}`);
    await discard(response);
    const stored = response.headers["docker-content-digest"];
    if (stored?.startsWith("sha256:") && stored !== digest) throw new RegistryError("E_DIGEST_MISMATCH", `pushing ${what}: the registry stored ${stored}, we sent ${digest}`);
    return { digest, subject: response.headers["oci-subject"], status: response.status };
  }

  /** Manifests that name `subject` as their subject: the Referrers API, else the `sha256-<hex>` tag index. */
  listReferrers(repository: string, subject: string, artifactType?: string, call?: CallOptions): Promise<ReferrerList> {
    return listReferrers(this, repository, subject, artifactType, call);
  }

  /** Adds `descriptor` to the referrers tag index of `subject`, keeping every entry already there. */
  addReferrerToFallbackIndex(repository: string, subject: string, descriptor: Descriptor, options?: CallOptions & { attempts?: number }): Promise<AddReferrerResult> {
    return addReferrerToFallbackIndex(this, repository, subject, descriptor, options);
  }

  /** Closes the connection pool. */
  async close(): Promise<void> {
    await this.transport.close();
  }
}

/** Reads a body up to `limit` bytes; more (announced or arriving) is E_REGISTRY_LIMIT without reading on. */
async function readLimited(response: HttpResponse, limit: number, what: string): Promise<Buffer> {
  const announced = Number(response.headers["content-length"]);
  const tooLarge = () => new RegistryError("E_REGISTRY_LIMIT", `${what}: larger than ${limit} bytes; refused without reading it (a manifest that large is broken or hostile)`);
  if (Number.isFinite(announced) && announced > limit) {
    response.body.destroy();
    throw tooLarge();
  }
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limit) {
      response.body.destroy();
      throw tooLarge();
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/** A download in progress: the file, how many bytes it holds, and their running hash. */
interface PartialBlob {
  handle: FileHandle;
  have: number;
  hash: Sha256Sink;
}

/**
 * Appends to the partial file, batching what arrived while the previous write ran (writev), and
 * hashes each batch only once it is on disk: the hash always covers exactly the file's bytes,
 * so a broken transfer resumes from `have` without reading the file again.
 */
function partialWriter(partial: PartialBlob, limit: number | undefined, onWritten: (have: number) => void): { stream: Writable; idle(): Promise<void> } {
  let inflight: Promise<void> = Promise.resolve();
  const stream = new Writable({
    highWaterMark: 4 * 1024 * 1024,
    writev(chunks, done) {
      const buffers = chunks.map((c) => c.chunk as Buffer);
      const length = buffers.reduce((sum, b) => sum + b.length, 0);
      if (limit !== undefined && partial.have + length > limit) {
        done(new RegistryError("E_DIGEST_MISMATCH", `the registry sent more than the ${limit} bytes the manifest lists`));
        return;
      }
      inflight = writeAll(partial.handle, buffers, partial.have).then(async () => {
        await partial.hash.update(buffers);
        partial.have += length;
        onWritten(partial.have);
      });
      inflight.then(() => done(), done);
    },
  });
  return { stream, idle: () => inflight.catch(() => undefined) };
}


async function discardFile(handle: FileHandle, path: string): Promise<void> {
  await handle.close().catch(() => undefined);
  await rm(path, { force: true });
}

async function resetPartial(partial: PartialBlob): Promise<void> {
  await partial.handle.truncate(0);
  partial.have = 0;
  partial.hash.reset();
}

async function hashFilePrefix(path: string, length: number, hash: Sha256Sink): Promise<void> {
  if ((await stat(path)).size < length) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${path} is shorter than the ${length} bytes to resume from`);
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) await hash.update([chunk as Buffer]);
}

