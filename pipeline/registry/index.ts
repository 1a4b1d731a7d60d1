/** The registry transport: what push, pull and the build cache are written on. */
export { RegistryClient, type CallOptions, type GetBlobOptions, type GetBlobResult, type Manifest, type ManifestHead, type RegistryClientOptions } from "./client.js";
export { RegistryError, isRegistryError, type RegistryErrorCode, type RegistryFailureCode } from "./errors.js";
export { formatReference, isDigest, isLoopbackHost, manifestReference, parseReference, type RegistryReference } from "./reference.js";
export { resolveCredentials, type RegistryCredential, type ResolvedCredential } from "./credentials.js";
export { DEFAULT_RETRY, type RegistryEvent, type RetryPolicy } from "./http.js";
export { FileUploadSessionStore, MemoryUploadSessionStore, uploadSessionKey, type StoredUploadSession, type UploadSessionStore } from "./sessions.js";
export { DEFAULT_CHUNK_SIZE, DEFAULT_MONOLITHIC_LIMIT, type BlobSource, type MountResult, type UploadOptions, type UploadResult, type UploadSession } from "./upload.js";
export { referrersTagFor, type AddReferrerResult, type ReferrerList } from "./referrers.js";
export { MANIFEST_SIZE_LIMIT, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, OCI_MANIFEST_TYPES, type Descriptor } from "./types.js";
