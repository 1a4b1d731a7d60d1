/**
 * What upload.ts and referrers.ts use of a registry client. RegistryClient (client.ts)
 * implements it and hands uploads and referrers to those modules; they name this
 * interface, not the class, so no two modules import each other.
 */
import type { Access } from "./auth.js";
import type { RegistryError } from "./errors.js";
import type { HttpRequest, HttpResponse, RegistryEvent, RegistryTransport, RetryPolicy } from "./http.js";

export interface CallOptions {
  signal?: AbortSignal;
}

export interface Manifest {
  /** Exactly the bytes the registry stored (their sha256 is `digest`). */
  bytes: Buffer;
  mediaType: string;
  digest: string;
  /** The parsed JSON object. */
  json: Record<string, unknown>;
  etag?: string;
}

export interface ClientPlumbing {
  readonly registry: string;
  readonly transport: RegistryTransport;
  readonly retry: RetryPolicy;
  signalFor(call: CallOptions | undefined): AbortSignal | undefined;
  emit(event: RegistryEvent): void;
  request(req: HttpRequest & { access: Access; what: string; retries?: boolean }): Promise<HttpResponse>;
  exchange<T>(req: HttpRequest & { access: Access; what: string }, consume: (response: HttpResponse) => Promise<T>): Promise<T>;
  errorFor(response: HttpResponse, what: string): Promise<RegistryError>;
  statBlob(repository: string, digest: string, call?: CallOptions): Promise<number | null>;
  getManifest(repository: string, reference: string, options?: CallOptions & { accept?: readonly string[]; maxBytes?: number }): Promise<Manifest>;
  putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string, options?: CallOptions & { ifMatch?: string }): Promise<{ digest: string; subject: string | undefined; status: number }>;
}
