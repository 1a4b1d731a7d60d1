/**
 * The one table of error codes: each code's exit status and its README troubleshooting row
 * (what happened, what to do). `satisfies Record<ErrorCode, ErrorRow>` makes tsc refuse a
 * code a domain declares without a row, and a row for a code no domain declares;
 * test/error-codes.test.ts checks the same at run time, and that README.md's Troubleshooting
 * table is this one rendered (`pnpm readme` writes it). Codes that share a row object share
 * one README row. The domains' codes reach ErrorCode through their augmentations of core's
 * ErrorCodes, so this module imports none of them.
 */
import type { ErrorCode } from "../core/errors.js";
import { EXIT, type ExitStatus } from "./exit-status.js";

export interface ErrorRow {
  readonly exit: ExitStatus;
  /** "what happened", a README cell (Markdown). */
  readonly what: string;
  /** "what to do", a README cell (Markdown). */
  readonly todo: string;
}

// Rows several codes share.
const GRAPH: ErrorRow = { exit: EXIT.usage, what: "a graph definition is wrong", todo: "a bug in a custom graph: fix its `dependsOn`" };
const HUB_MISSING: ErrorRow = { exit: EXIT.failed, what: "the repo, revision or file does not exist on the Hub", todo: "fix the recipe's repo id or revision" };
const HUB_ACCESS: ErrorRow = { exit: EXIT.failed, what: "the repo needs access or the token is refused", todo: "accept the terms on the Hub and set `HF_TOKEN`" };
const HUB_ANSWER: ErrorRow = { exit: EXIT.failed, what: "the Hub or CDN answered with an error or nonsense", todo: "retry later; check `HF_ENDPOINT`" };
const GGUF: ErrorRow = { exit: EXIT.failed, what: "a GGUF file is unreadable, cut short, not GGUF, or implausible", todo: "re-download or reconvert the file" };
const BENCH: ErrorRow = { exit: EXIT.failed, what: "the engine's timings or a bench.json could not be read", todo: "check the engine build (its log), or the bench.json given to `--compare`" };
const KEY_VALIDITY: ErrorRow = { exit: EXIT.failed, what: "the key is outside notBefore/notAfter, or revoked", todo: "get the model re-signed with a current key" };
const FILE_SET: ErrorRow = { exit: EXIT.failed, what: "files removed from or added to the signed directory", todo: "restore it; `--ignore-unsigned-files` accepts extras explicitly" };
const ENGINE_SERVER: ErrorRow = { exit: EXIT.failed, what: "the server refused the key or answered with an error", todo: "set the key variable the message names; check `base_url` and `model`" };

/** In README order. */
export const ERROR_TABLE = {
  E_USAGE: { exit: EXIT.usage, what: "a flag or argument is wrong", todo: "see `--help`; the message names the flag" },
  E_CONFIG_MISSING: { exit: EXIT.usage, what: "a config, recipe, policy or host profile file is absent", todo: "check the path; `models` lists recipes" },
  E_CONFIG_SYNTAX: { exit: EXIT.usage, what: "a YAML file does not parse", todo: "fix the file at the `file:line:col` shown" },
  E_CONFIG_INVALID: { exit: EXIT.usage, what: "a value is wrong, unknown or out of range", todo: "fix the key named at `file:line:col`; `--strict` refusals list each clamp" },
  E_TOOL_MISSING: { exit: EXIT.failed, what: "git, cmake, a compiler, nvcc or python is not on PATH", todo: "install what the message names (`pnpm pipeline doctor`)" },
  E_COMMAND_FAILED: { exit: EXIT.failed, what: "a tool exited non-zero", todo: "read the first error lines and the log path printed under it" },
  E_COMMAND_TIMEOUT: { exit: EXIT.failed, what: "a tool ran past its timeout and was stopped", todo: "raise the timeout in the config/recipe, or look for a hang in the log" },
  E_ABORTED: { exit: EXIT.interrupted, what: "interrupted", todo: "rerun: finished steps are kept" },
  E_LOCK_BUSY: { exit: EXIT.busy, what: "another run holds the step (`--no-wait`)", todo: "wait, or let that run finish; a dead holder's lock is taken over automatically" },
  E_GRAPH_CYCLE: GRAPH,
  E_GRAPH_UNKNOWN_TASK: GRAPH,
  E_DEPENDENCY_NOT_READY: { exit: EXIT.failed, what: "`--only` with a stale dependency", todo: "run without `--only`, or run the dependency first" },
  E_UPSTREAM_DIRTY: { exit: EXIT.failed, what: "`external/powerinfer` has local changes", todo: "commit them elsewhere, or `--reset-upstream` to discard them" },
  E_UPSTREAM_PIN_MISMATCH: { exit: EXIT.failed, what: "the config pin and the submodule gitlink disagree", todo: "update one to match the other (the message says how)" },
  E_UPSTREAM_FETCH: { exit: EXIT.failed, what: "the engine source could not be fetched", todo: "check the URL/mirror; a self-hosted mirror needs `uploadpack.allowFilter`" },
  E_BUILD_OUTPUT: { exit: EXIT.failed, what: "the build finished without a binary it should make", todo: "check `build.targets` and the build log" },
  E_BUILD_BACKEND: { exit: EXIT.failed, what: "a GPU build came out as a CPU build, or the toolkit is missing", todo: "install the CUDA/ROCm toolkit, or build `--backend cpu`" },
  E_HUB_REPO_NOT_FOUND: HUB_MISSING,
  E_HUB_REVISION_NOT_FOUND: HUB_MISSING,
  E_HUB_ENTRY_NOT_FOUND: HUB_MISSING,
  E_HUB_GATED: HUB_ACCESS,
  E_HUB_AUTH: HUB_ACCESS,
  E_HUB_RATE_LIMITED: { exit: EXIT.failed, what: "the Hub asked to slow down (after retries)", todo: "wait and rerun; the download resumes" },
  E_HUB_HTTP: HUB_ANSWER,
  E_HUB_BAD_RESPONSE: HUB_ANSWER,
  E_HUB_UNSAFE_PATH: { exit: EXIT.failed, what: "a repo listed a file name that escapes the cache", todo: "refuse that repo (it is hostile or broken)" },
  E_HUB_OFFLINE_MISS: { exit: EXIT.failed, what: "`HF_HUB_OFFLINE` and the files are not cached", todo: "download once online, or unset `HF_HUB_OFFLINE`" },
  E_HUB_NO_MATCH: { exit: EXIT.failed, what: "the recipe's patterns match no file", todo: "fix `allowPatterns` / `ignorePatterns`" },
  E_DIGEST_MISMATCH: { exit: EXIT.failed, what: "bytes differ from their expected sha256 (download, registry blob or manifest, audit.checksum, or a signed file)", todo: "download again / restore the file; for a signed model, get a good copy" },
  E_REGISTRY_AUTH: { exit: EXIT.failed, what: "the registry or its token service refused the credentials, needs some and none were found, or a credential helper failed", todo: "`docker login` / `skopeo login HOST`, or set `AI_TOOLS_REGISTRY_USERNAME` and `AI_TOOLS_REGISTRY_PASSWORD`; the message names where the credentials came from" },
  E_REGISTRY_UNREACHABLE: { exit: EXIT.failed, what: "no connection (refused, reset past the retries, DNS) or TLS failed", todo: "check the host and port; a registry with a private CA needs the CA option" },
  E_REGISTRY_HTTP: { exit: EXIT.failed, what: "the registry answered with an error; the message has the status and the registry's code", todo: "e.g. `MANIFEST_BLOB_UNKNOWN`: a blob is missing; `DENIED`: no permission; 5xx: retry later" },
  E_REGISTRY_NOT_FOUND: { exit: EXIT.failed, what: "the repository, tag, manifest or blob does not exist", todo: "check the reference (`skopeo list-tags docker://HOST/REPO`)" },
  E_REGISTRY_REFERENCE: { exit: EXIT.usage, what: "an `oci://` reference does not parse", todo: "write `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]` (repository in lower case)" },
  E_REGISTRY_INSECURE: { exit: EXIT.usage, what: "plain HTTP to a host that is not loopback", todo: "use HTTPS, or allow plain HTTP explicitly (insecure) on a network you trust" },
  E_REGISTRY_LIMIT: { exit: EXIT.failed, what: "a manifest over 4 MiB, a pulled one listing more than 10,000 layers or naming a config over 4 MiB, or too many pages or redirects", todo: "refuse that artifact: the registry or the artifact is broken or hostile; a model with that many files packs them into tar layers" },
  E_REGISTRY_BAD_RESPONSE: { exit: EXIT.failed, what: "the registry broke the protocol (Content-Type against mediaType, no Location, a wrong Range, a referrers tag holding something else)", todo: "do not use what it served; tell the registry's operators" },
  E_DISK_FULL: { exit: EXIT.failed, what: "no space left", todo: "free space (`pnpm pipeline clean`), then rerun: downloads resume" },
  E_PYTHON_UNSUITABLE: { exit: EXIT.failed, what: "no interpreter with numpy < 2 and sentencepiece", todo: "`apt-get install python3-numpy python3-sentencepiece`, `pnpm pipeline setup-python`, or `--python`" },
  E_CONVERT_OUTPUT: { exit: EXIT.failed, what: "the converter wrote nothing, an empty file or an invalid model", todo: "read the converter log (path shown); check the checkpoint and predictor" },
  E_MODEL_UNSUPPORTED: { exit: EXIT.usage, what: "the model is not one the pinned engine can run sparsely (not ReLU-family, mixture-of-experts, another format) or convert", todo: "pick a recipe from `pnpm pipeline models` (for ProSparse: its `-gguf` recipe)" },
  E_GPU_SPLIT: { exit: EXIT.failed, what: "the GPU split solver failed or wrote an index that does not validate", todo: "read the gpu-split log; check the host's VRAM budget and the model's `activation/` files" },
  E_UNSAFE_OUTTYPE: { exit: EXIT.failed, what: "f32/q8_0 sparse models give NaN on CPU", todo: "use f16 (optionally `quantize: Q4_0`), or `--allow-unsafe-outtype`" },
  E_GGUF_IO: GGUF,
  E_GGUF_TRUNCATED: GGUF,
  E_GGUF_MAGIC: GGUF,
  E_GGUF_VERSION: GGUF,
  E_GGUF_LIMIT: GGUF,
  E_GGUF_INVALID: GGUF,
  E_BENCH_NO_TIMINGS: BENCH,
  E_BENCH_LOG_INVALID: BENCH,
  E_BENCH_LLAMA_BENCH_INVALID: BENCH,
  E_BENCH_RESULT_INVALID: BENCH,
  E_SIGNING_KEY: { exit: EXIT.failed, what: "the signing key is missing, unreadable, world-readable, encrypted without passphrase, or not EC", todo: "`pnpm pipeline keygen`, `chmod 600`, set `AI_TOOLS_SIGNING_KEY_PASSPHRASE`; a release needs a configured key" },
  E_SIGN_INPUT: { exit: EXIT.failed, what: "the directory has links, special files, empty folders or bad names, or another process is writing it", todo: "replace links with files; remove the rest; wait for the other signer" },
  E_SIGN_UNSAFE_NAME: { exit: EXIT.failed, what: "a file name holds control characters, bidirectional overrides or bytes that are not UTF-8", todo: "rename the files shown (escaped) in the message" },
  E_NO_SIGNATURE: { exit: EXIT.failed, what: "no model.sig (or provenance when required)", todo: "sign the model, or pass `--signature` to a published copy" },
  E_MALFORMED: { exit: EXIT.failed, what: "the signature file is not a bundle (bad JSON, base64, too large)", todo: "get the signature file again" },
  E_UNSUPPORTED: { exit: EXIT.failed, what: "another bundle, statement or predicate version, or the shards method", todo: "re-sign with OMS v1.0, method files" },
  E_UNKNOWN_KEY: { exit: EXIT.failed, what: "signed by a key the trust file does not list", todo: "add the publisher's public key to the trust file if you trust it" },
  E_KEY_EXPIRED: KEY_VALIDITY,
  E_KEY_REVOKED: KEY_VALIDITY,
  E_BAD_SIGNATURE: { exit: EXIT.failed, what: "the signature does not match its statement", todo: "the signature file was altered or made by another key: do not use the model" },
  E_MANIFEST_INVALID: { exit: EXIT.failed, what: "the signed manifest is inconsistent (paths, order, root)", todo: "do not use the model; re-sign it with the toolkit" },
  E_NOT_REGULAR_FILE: { exit: EXIT.failed, what: "a link or special file in the model directory", todo: "replace it with the real file" },
  E_MISSING_FILE: FILE_SET,
  E_EXTRA_FILE: FILE_SET,
  E_PROVENANCE_MISMATCH: { exit: EXIT.failed, what: "the provenance is for another model, another key, or absent when required", todo: "get the matching provenance file" },
  E_POLICY: { exit: EXIT.failed, what: "builder, source, model id or age not allowed", todo: "check the trust file's allowed lists and `--max-age-days`" },
  E_TRUST_CONFIG: { exit: EXIT.usage, what: "the trust file is missing, invalid, empty, or lists one key (or root) twice", todo: "fix the key named in the message (format: `configs/trusted-keys.yaml`)" },
  E_IO: { exit: EXIT.failed, what: "a file could not be read or listed (permissions, a path too long, a failing disk)", todo: "the message names the path and the system's reason; `AI_TOOLS_DEBUG=1` adds a stack trace" },
  E_INTERNAL: { exit: EXIT.failed, what: "an unexpected error: a bug, not a bad input", todo: "rerun with `AI_TOOLS_DEBUG=1` for its stack trace, and report it" },
  E_ENGINE_UNKNOWN: { exit: EXIT.usage, what: "no engine of that name", todo: "`ai-tools engines` lists them" },
  E_ENGINE_UNAVAILABLE: { exit: EXIT.failed, what: "the engine's binary, library or server is not there", todo: "`pnpm pipeline engine`, `--binary`, or start the server" },
  E_ENGINE_FAILED: { exit: EXIT.failed, what: "the engine exited with an error (or refused the model)", todo: "the message quotes the engine's error line; check the model format and flags" },
  E_ENGINE_TIMEOUT: { exit: EXIT.failed, what: "no result in time", todo: "raise the timeout, lower `max_tokens`, check the host's load" },
  E_ENGINE_AUTH: ENGINE_SERVER,
  E_ENGINE_HTTP: ENGINE_SERVER,
  E_ENGINE_ABORTED: { exit: EXIT.interrupted, what: "interrupted", todo: "exit 130; rerun" },
  E_REGISTRY_UNSAFE_PATH: { exit: EXIT.failed, what: "a layer path or tar member would land outside its place: `..`, absolute, backslash, control characters, a link or device, a duplicate or colliding name", todo: "refuse that artifact; nothing was written" },
  E_REGISTRY_MANIFEST_INVALID: { exit: EXIT.failed, what: "not a ModelPack manifest this toolkit reads (types, digests, a layer without a file path, a compressed tar layer), or a store file that is not an OCI layout", todo: "check the reference points at a model pushed by `pnpm pipeline push` (or another ModelPack packer using raw/tar layers)" },
} satisfies Record<ErrorCode, ErrorRow>;

/** The README's Troubleshooting table: one line per row, listing the codes that share it, in table order. */
export function troubleshootingMarkdown(table: Readonly<Record<string, ErrorRow>> = ERROR_TABLE): string {
  const codesByRow = new Map<ErrorRow, string[]>();
  for (const [code, row] of Object.entries(table)) codesByRow.set(row, [...(codesByRow.get(row) ?? []), code]);
  const cell = (text: string) => text.replaceAll("|", "\\|");
  return [
    "| code | exit | what happened | what to do |",
    "| --- | --- | --- | --- |",
    ...[...codesByRow].map(([row, codes]) => `| ${codes.map((code) => `\`${code}\``).join(", ")} | ${row.exit} | ${cell(row.what)} | ${cell(row.todo)} |`),
  ].join("\n");
}
