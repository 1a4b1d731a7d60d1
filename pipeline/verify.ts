/**
 * `ai-tools/verify`: verify a signed model directory before loading it. Node built-ins,
 * plus (bundled) @sigstore/core's ASN.1 reader for certificate Key Usage; yaml loads
 * lazily, for YAML trust files; no CLI, UI or network code.
 *
 *   import { verifyModel, loadTrustedKeys } from "ai-tools/verify";
 *   const result = await verifyModel(dir, { trustedKeys: await loadTrustedKeys("trusted-keys.yaml") });
 */
export { verifyModel, compareToManifest, type VerifyOptions, type VerifyResult, type VerifiedFile, type ManifestComparison } from "./signing/verify.js";
export { VerifyError, isVerifyError, type VerifyErrorCode } from "./signing/errors.js";
export { loadTrustedKeys, loadTrustStore, parseTrustedKeys, parseTrustedRoots, type TrustedKey, type TrustedKeyEntry, type TrustedRoot, type TrustedRootEntry, type TrustStore } from "./signing/trust.js";
export { escapeForTerminal } from "./core/escape.js";
export { keyHint, publicKeyPem } from "./signing/keys.js";
export { DigestCache, defaultDigestCacheDir } from "./core/digest-cache.js";
export { rootDigest, OMS_PREDICATE_TYPE, type Resource } from "./signing/oms.js";
export type { ProvenanceSummary } from "./signing/provenance.js";
