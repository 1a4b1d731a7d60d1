/**
 * Blob uploads (distribution-spec "Pushing blobs"; oci-models.md §3, §7, §8).
 *
 * HEAD first: a blob the repository has costs one request. Then a session (`POST`, or the
 * one a 202 mount answer opened), and either one `PUT ?digest=` with the whole blob (up to
 * `monolithicLimit`) or `PATCH` chunks (`Content-Range: <start>-<end>`, no `bytes ` prefix;
 * never smaller than the registry's `OCI-Chunk-Min-Length`) and a closing `PUT ?digest=`.
 * Only the newest `Location` is used, with its query kept (2.8.2's `_state` token; an older
 * one is refused).
 *
 * Recovery never trusts our own idea of what arrived: Distribution 2.8.2 ignores
 * `Content-Range`, so after any failure the client asks `GET <location>` for the real `Range`
 * and continues from there. A session the registry no longer knows (404) is restarted from
 * byte 0. With a session store, the newest Location survives the process, so a rerun continues
 * the session. Distribution 2.8.2 cancels a session whose stored size differs from its signed
 * state, i.e. one cut off in the middle of a PATCH: that one restarts (newer Distribution code
 * checks this only on writes, so its status GET reports the real size and we continue from it).
 * So an abort lets the PATCH in flight finish (within `abortGraceMs`) and stops between chunks.
 */
import { Readable } from "node:stream";
import { PipelineError } from "../core/errors.js";
import type { CallOptions, ClientPlumbing } from "./client-plumbing.js";
import { RegistryError } from "./errors.js";
import { abortError, discard, parseUploadRange, retryDelayMs, sleep, TransientRegistryError, type HttpResponse } from "./http.js";
import { assertDigest, assertRepository } from "./reference.js";
import { uploadSessionKey, type UploadSessionStore } from "./sessions.js";

export interface BlobSource {
  digest: string;
  size: number;
  /**
   * A fresh stream of the blob from byte `start`; `end` (exclusive) is where this request stops,
   * for sources that can stop early (`createReadStream(path, {start, end: end - 1})`). Called
   * once per request; extra bytes are not read on.
   */
  open(start: number, end: number): Readable;
  /** Named in errors and messages (`model.gguf`). */
  name?: string;
}

/** An open upload session: the newest Location and how many bytes the registry holds. */
export interface UploadSession {
  location: string;
  offset: number;
  /** `OCI-Chunk-Min-Length` from the registry, when it sent one. */
  minChunkLength?: number;
}

export type MountResult = { mounted: true } | { mounted: false; session: UploadSession };

export interface UploadOptions extends CallOptions {
  /** Bytes per PATCH (default 64 MiB; raised to the registry's minimum). */
  chunkSize?: number;
  /** Blobs up to this size go in one PUT (default 64 MiB). */
  monolithicLimit?: number;
  /** Bytes the registry holds (or is receiving) of `total`; may go back after a failure. */
  onProgress?: (sent: number, total: number) => void;
  /** Remembers the newest Location, so a rerun continues an interrupted session. */
  sessions?: UploadSessionStore;
  /** A session to use (from `mountBlob`'s 202). Skips the HEAD. */
  session?: UploadSession;
  /** Do not HEAD first (the caller just did). */
  skipExistenceCheck?: boolean;
  /**
   * On abort, how long the PATCH in flight may take to finish (default 15 s), so its session
   * stays continuable; then it is cut. A monolithic PUT is cut at once (it has no session to keep).
   */
  abortGraceMs?: number;
}

export interface UploadResult {
  digest: string;
  size: number;
  outcome: "exists" | "uploaded";
  /** Body bytes sent, failed attempts included (0 when the blob existed). */
  bytesSent: number;
  /** The offset an earlier session was continued from (0: a fresh session). */
  resumedFrom: number;
}

export const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;
export const DEFAULT_ABORT_GRACE_MS = 15_000;

/** A signal that follows `signal` only `graceMs` after it fired (undefined: nothing to follow). */
function graceful(signal: AbortSignal | undefined, graceMs: number): { signal: AbortSignal | undefined; dispose(): void } {
  if (!signal) return { signal: undefined, dispose: () => undefined };
  const delayed = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    timer = setTimeout(() => delayed.abort(signal.reason), graceMs);
  };
  if (signal.aborted) fire();
  else signal.addEventListener("abort", fire, { once: true });
  return {
    signal: delayed.signal,
    dispose: () => {
      signal.removeEventListener("abort", fire);
      if (timer) clearTimeout(timer);
    },
  };
}
export const DEFAULT_MONOLITHIC_LIMIT = 64 * 1024 * 1024;
const UPLOAD_SESSION_GONE = new Set(["BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"]);

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
}

function sessionFrom(response: HttpResponse, base: string, offset: number, what: string): UploadSession {
  const location = response.headers.location;
  if (!location) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: the registry answered ${response.status} without a Location`);
  const minimum = Number(response.headers["oci-chunk-min-length"]);
  return { location: new URL(location, base).toString(), offset, ...(Number.isSafeInteger(minimum) && minimum > 0 ? { minChunkLength: minimum } : {}) };
}

export async function mountBlob(client: ClientPlumbing, repository: string, digest: string, fromRepository: string, call?: CallOptions): Promise<MountResult> {
  assertRepository(repository);
  assertRepository(fromRepository);
  assertDigest(digest);
  const signal = client.signalFor(call);
  const what = `mounting ${digest} from ${fromRepository} into ${repository}`;
  const url = client.transport.url(`/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepository)}`);
  const response = await client.request({
    method: "POST",
    url,
    headers: { "content-length": "0" },
    access: { repository, actions: ["pull", "push"], extraScopes: [`repository:${fromRepository}:pull`] },
    what,
    ...(signal ? { signal } : {}),
  });
  if (response.status === 201) {
    await discard(response);
    return { mounted: true };
  }
  if (response.status === 202) {
    await discard(response);
    return { mounted: false, session: sessionFrom(response, url, 0, what) };
  }
  throw await client.errorFor(response, what);
}

async function startSession(client: ClientPlumbing, repository: string, what: string, signal: AbortSignal | undefined): Promise<UploadSession> {
  const url = client.transport.url(`/v2/${repository}/blobs/uploads/`);
  const response = await client.request({ method: "POST", url, headers: { "content-length": "0" }, access: { repository, actions: ["pull", "push"] }, what, ...(signal ? { signal } : {}) });
  if (response.status !== 202) throw await client.errorFor(response, what);
  await discard(response);
  return sessionFrom(response, url, 0, what);
}

/** `GET <location>`: the session as the registry sees it, or undefined when it is gone. */
async function querySession(client: ClientPlumbing, repository: string, session: UploadSession, what: string, signal: AbortSignal | undefined): Promise<UploadSession | undefined> {
  const response = await client.request({ method: "GET", url: session.location, access: { repository, actions: ["pull", "push"] }, what: `${what}: upload status`, ...(signal ? { signal } : {}) });
  if (response.status === 404 || response.status === 400) {
    await discard(response);
    return undefined;
  }
  if (response.status !== 204 && response.status !== 200) throw await client.errorFor(response, `${what}: upload status`);
  await discard(response);
  const offset = parseUploadRange(response.headers.range, session.offset);
  if (offset === undefined) return undefined;
  return { ...session, ...(response.headers.location ? { location: new URL(response.headers.location, session.location).toString() } : {}), offset };
}

/** How an upload continues after `error`: from the registry's offset, from a new session, or not at all. */
function recoveryFor(error: unknown): "resume" | "restart" | "fail" {
  if (error instanceof TransientRegistryError) return "resume";
  if (error instanceof RegistryError && error.status === 416) return "resume";
  if (error instanceof RegistryError && error.status === 404 && UPLOAD_SESSION_GONE.has(error.registryCode ?? "")) return "restart";
  return "fail";
}

/** Bytes `start..end` of the blob as a request body, counted as they go; a short or failing source is E_IO. */
function bodyOf(blob: BlobSource, start: number, end: number, label: string, onBytes: (position: number, delta: number) => void): () => Readable {
  return () => {
    async function* take(): AsyncGenerator<Buffer> {
      let position = start;
      let source: Readable | undefined;
      try {
        source = blob.open(start, end);
        for await (const chunk of source as AsyncIterable<Buffer | string>) {
          const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
          const piece = data.length > end - position ? data.subarray(0, end - position) : data;
          position += piece.length;
          onBytes(position, piece.length);
          yield piece;
          if (position >= end) break;
        }
      } catch (error) {
        if (error instanceof PipelineError) throw error;
        throw new PipelineError("E_IO", `${label}: reading the source failed at byte ${position}: ${(error as Error).message}`, { cause: error });
      } finally {
        source?.destroy();
      }
      if (position < end) throw new PipelineError("E_IO", `${label}: the source ended at byte ${position}, before ${end} (did the file change?)`);
    }
    return Readable.from(take(), { objectMode: false });
  };
}

export async function uploadBlob(client: ClientPlumbing, repository: string, blob: BlobSource, options: UploadOptions): Promise<UploadResult> {
  assertRepository(repository);
  assertDigest(blob.digest);
  if (!Number.isSafeInteger(blob.size) || blob.size < 0) throw new RangeError(`uploadBlob: size ${blob.size} is not a byte count`);
  const signal = client.signalFor(options);
  const label = blob.name ? `${blob.name} (${blob.digest})` : blob.digest;
  const what = `uploading ${label} to ${repository}`;
  const result = (outcome: UploadResult["outcome"], bytesSent: number, resumedFrom: number): UploadResult => ({ digest: blob.digest, size: blob.size, outcome, bytesSent, resumedFrom });

  if (!options.session && !options.skipExistenceCheck) {
    if ((await client.statBlob(repository, blob.digest, signal ? { signal } : {})) !== null) return result("exists", 0, 0);
  }

  const store = options.sessions;
  const key = uploadSessionKey(client.registry, repository, blob.digest);
  let session = options.session;
  if (!session && store) {
    const stored = await store.get(key);
    if (stored) {
      session = await querySession(client, repository, { location: stored.location, offset: stored.offset }, what, signal);
      if (!session) await store.delete(key);
    }
  }
  const resumedFrom = session?.offset ?? 0;
  const chunkSize = Math.max(1, options.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const monolithicLimit = options.monolithicLimit ?? DEFAULT_MONOLITHIC_LIMIT;
  let bytesSent = 0;
  const onBytes = (position: number, delta: number) => {
    bytesSent += delta;
    options.onProgress?.(position, blob.size);
  };
  const remember = async (current: UploadSession) => {
    await store?.set(key, { location: current.location, offset: current.offset, updatedAt: new Date().toISOString() });
  };

  /** Sends what the registry lacks and closes the session; `current` follows the newest Location. */
  const send = async (current: UploadSession): Promise<void> => {
    let closing: HttpResponse;
    if (current.offset === 0 && blob.size <= monolithicLimit) {
      closing = await client.request({
        method: "PUT",
        url: withDigest(current.location, blob.digest),
        headers: { "content-type": "application/octet-stream", "content-length": String(blob.size) },
        body: bodyOf(blob, 0, blob.size, label, onBytes),
        access: { repository, actions: ["pull", "push"] },
        what,
        retries: false,
        ...(signal ? { signal } : {}),
      });
    } else {
      const chunk = Math.max(chunkSize, current.minChunkLength ?? 0);
      while (current.offset < blob.size) {
        if (signal?.aborted) throw abortError(signal);
        const start = current.offset;
        const end = Math.min(blob.size, start + chunk);
        // An abort lets the chunk in flight finish (up to abortGraceMs): Distribution cancels a
        // session cut off mid-chunk, but one stopped between chunks continues on the rerun.
        const chunkSignal = graceful(signal, options.abortGraceMs ?? DEFAULT_ABORT_GRACE_MS);
        let response: HttpResponse;
        try {
          response = await client.request({
            method: "PATCH",
            url: current.location,
            headers: { "content-type": "application/octet-stream", "content-range": `${start}-${end - 1}`, "content-length": String(end - start) },
            body: bodyOf(blob, start, end, label, onBytes),
            access: { repository, actions: ["pull", "push"] },
            what,
            retries: false,
            ...(chunkSignal.signal ? { signal: chunkSignal.signal } : {}),
          });
        } finally {
          chunkSignal.dispose();
        }
        if (response.status !== 202) throw await client.errorFor(response, `${what}: bytes ${start}-${end - 1}`);
        await discard(response);
        const next = sessionFrom(response, current.location, end, what);
        const acknowledged = parseUploadRange(response.headers.range, end) ?? end;
        if (acknowledged > end) throw new RegistryError("E_REGISTRY_BAD_RESPONSE", `${what}: the registry claims ${acknowledged} bytes after we sent ${end}`);
        current.location = next.location;
        current.offset = acknowledged;
        await remember(current);
      }
      closing = await client.request({
        method: "PUT",
        url: withDigest(current.location, blob.digest),
        headers: { "content-type": "application/octet-stream", "content-length": "0" },
        access: { repository, actions: ["pull", "push"] },
        what,
        retries: false,
        ...(signal ? { signal } : {}),
      });
    }
    if (closing.status === 400) {
      const error = await client.errorFor(closing, what);
      if (error.registryCode === "DIGEST_INVALID") {
        await store?.delete(key);
        throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the registry refused the bytes as not matching ${blob.digest} (did the file change during the push?)`, { status: 400, registryCode: "DIGEST_INVALID" });
      }
      throw error;
    }
    if (closing.status !== 201) throw await client.errorFor(closing, what);
    await discard(closing);
    const stored = closing.headers["docker-content-digest"];
    if (stored?.startsWith("sha256:") && stored !== blob.digest) throw new RegistryError("E_DIGEST_MISMATCH", `${what}: the registry stored it as ${stored}`);
  };

  for (let failures = 0; ; ) {
    if (signal?.aborted) throw abortError(signal);
    try {
      session ??= await startSession(client, repository, what, signal);
      if (store && session.offset === 0 && blob.size > monolithicLimit) await remember(session);
      await send(session);
      await store?.delete(key);
      return result("uploaded", bytesSent, resumedFrom);
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      const recovery = recoveryFor(error);
      if (recovery === "fail" || ++failures >= client.retry.attempts) throw error;
      const delayMs = retryDelayMs(client.retry, failures - 1, error instanceof TransientRegistryError ? error.retryAfterMs : undefined);
      client.emit({ type: "retry", attempt: failures, delayMs, reason: (error as Error).message });
      await sleep(delayMs, signal);
      session = recovery === "resume" && session ? await querySession(client, repository, session, what, signal) : undefined;
      if (!session) await store?.delete(key);
      options.onProgress?.(session?.offset ?? 0, blob.size);
    }
  }
}
