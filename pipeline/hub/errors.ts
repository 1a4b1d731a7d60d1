/**
 * The Hugging Face Hub client's error codes (http.ts, api.ts, snapshot.ts, cache.ts): what
 * the Hub, its CDN or the local cache refused. A file whose bytes differ from the Hub's
 * sha256 is core's E_DIGEST_MISMATCH; a full disk, core's E_DISK_FULL.
 */
export const HUB_ERROR_CODES = [
  "E_HUB_REPO_NOT_FOUND",
  "E_HUB_REVISION_NOT_FOUND",
  "E_HUB_ENTRY_NOT_FOUND",
  "E_HUB_GATED",
  "E_HUB_AUTH",
  "E_HUB_RATE_LIMITED",
  "E_HUB_HTTP",
  "E_HUB_BAD_RESPONSE",
  // A file name in a repo listing that would land outside the cache.
  "E_HUB_UNSAFE_PATH",
  // HF_HUB_OFFLINE and the files are not cached.
  "E_HUB_OFFLINE_MISS",
  // The recipe's allow/ignore patterns match no file.
  "E_HUB_NO_MATCH",
] as const;

export type HubErrorCode = (typeof HUB_ERROR_CODES)[number];

declare module "../core/errors.js" {
  interface ErrorCodes extends Record<HubErrorCode, true> {}
}
