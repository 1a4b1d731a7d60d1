/**
 * The file hasher (core/hash.ts) as signing and verification use it: a file that could
 * not be hashed is reported in the verifier's taxonomy (signing.md §8), a VerifyError
 * with the same code, message and files, so consumers of `ai-tools/verify` switch on one
 * error class.
 */
import { digestFiles as digestFilesInCore, HashError, type DigestOptions, type FileDigest, type HashTarget } from "../core/hash.js";
import { VerifyError } from "./errors.js";

export { SMALL_FILE_BYTES, type DigestOptions, type FileDigest, type HashTarget } from "../core/hash.js";

export async function digestFiles(targets: readonly (string | HashTarget)[], options: DigestOptions = {}): Promise<(FileDigest & { cached: boolean })[]> {
  try {
    return await digestFilesInCore(targets, options);
  } catch (error) {
    throw error instanceof HashError ? new VerifyError(error.code, error.message, { cause: error.cause, files: error.files }) : error;
  }
}
