/**
 * `ai-tools/verify`: verify a signed model directory before loading it. Node built-ins
 * only (yaml loads lazily, for YAML trust files); no CLI, UI or network code.
 *
 *   import { verifyModel, loadTrustedKeys } from "ai-tools/verify";
 *   const result = await verifyModel(dir, { trustedKeys: await loadTrustedKeys("trusted-keys.yaml") });
 */
export { verifyModel, compareToManifest, type VerifyOptions, type VerifyResult, type VerifiedFile, type ManifestComparison } from "./signing/verify.js";
export { VerifyError, isVerifyError, type VerifyErrorCode } from "./signing/errors.js";
export { loadTrustedKeys, parseTrustedKeys, type TrustedKey, type TrustedKeyEntry } from "./signing/trust.js";
export { keyHint, publicKeyPem } from "./signing/keys.js";
export { DigestCache, defaultDigestCacheDir } from "./signing/digest-cache.js";
export { rootDigest, OMS_PREDICATE_TYPE, type Resource } from "./signing/oms.js";
export type { ProvenanceSummary } from "./signing/provenance.js";
