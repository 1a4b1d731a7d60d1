/**
 * Which ModelPack media type a model file gets (oci-models.md §8). Pure.
 *
 * | files | layer |
 * | --- | --- |
 * | weights: `*.gguf`, `*.gpuidx`, `*.safetensors`, `*.pt`, `*.bin`, … | `weight.v1.raw` |
 * | HF config and tokenizer files, `policy.yaml` (how to run the weights) | `weight.config.v1.raw` |
 * | `SHA256SUMS`, `model.sig`, `provenance.sigstore.json`, `bench.json`, README, LICENSE | `doc.v1.raw` |
 * | `*.py`, `*.sh` | `code.v1.raw` |
 * | anything else | `doc.v1.raw`, annotated `org.cncf.model.file.mediatype.untested: "true"` |
 * | a folder of many small files (`activation/`) | `<shared kind>.v1.tar` |
 */
import type { LayerContent } from "./oci-spec.js";

const WEIGHT = /\.(gguf|gpuidx|safetensors|pt|pth|bin|onnx|ckpt|npy|npz)$/i;
const WEIGHT_CONFIG = new Set([
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "vocab.txt",
  "merges.txt",
  "chat_template.jinja",
  "policy.yaml",
]);
const DOC_NAMES = new Set(["SHA256SUMS", "SHA256SUMS.sshsig", "model.sig", "provenance.sigstore.json", "bench.json"]);
const DOC = /^(README|LICENSE|LICENCE|NOTICE|COPYING|USE_POLICY)(\..*)?$|\.md$/i;
const CODE = /\.(py|sh)$/i;

export interface FileKind {
  content: LayerContent;
  /** The media type was guessed, not known (org.cncf.model.file.mediatype.untested). */
  untested: boolean;
}

export function fileKind(path: string): FileKind {
  const base = path.slice(path.lastIndexOf("/") + 1);
  if (WEIGHT.test(base)) return { content: "weight", untested: false };
  if (WEIGHT_CONFIG.has(base)) return { content: "weight.config", untested: false };
  if (DOC_NAMES.has(base) || DOC.test(base)) return { content: "doc", untested: false };
  if (CODE.test(base)) return { content: "code", untested: false };
  return { content: "doc", untested: true };
}

/** A tar layer's kind: the kind all its files share, else an untested doc layer. */
export function folderKind(paths: readonly string[]): FileKind {
  const kinds = paths.map(fileKind);
  const first = kinds[0];
  if (first && kinds.every((k) => k.content === first.content && !k.untested)) return first;
  return { content: "doc", untested: true };
}
