/**
 * A converted, signed model directory shaped like `convert`'s output
 * (models/powerinfer/<m>/): a PowerInfer GGUF (PWRI, F16), activation/*.pt, bench.json,
 * policy.yaml, config.json, a GPU index, the runtime-written `*.generated.gpuidx` the
 * signature ignores, and SHA256SUMS + model.sig + provenance.sigstore.json written by the
 * real signer.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { signModelDirectory, type SignResult } from "../../pipeline/signing/sign.js";
import type { ProvenanceInput } from "../../pipeline/signing/provenance.js";
import { powerInferModelSpec, writeGguf } from "./gguf-writer.js";
import { prng } from "./prng.js";

export const MODEL_ID = "tiny-sparse";
export const FINISHED_ON = "2025-03-04T05:06:07.000Z";
export const ENGINE_COMMIT = "0123456789abcdef0123456789abcdef01234567";

export function testProvenance(modelId = MODEL_ID): ProvenanceInput {
  return {
    modelId,
    externalParameters: {
      recipe: modelId,
      modelId,
      source: { uri: "https://huggingface.co/example/tiny-sparse", revision: "fedcba9876543210fedcba9876543210fedcba98" },
      model: { format: "gguf", quantization: "f16", family: "llama" },
      audit: { model_version: "1.2.0", source_repo: "example/tiny-sparse" },
    },
    resolvedDependencies: [{ name: "powerinfer", uri: `git+https://github.com/SJTU-IPADS/PowerInfer@${ENGINE_COMMIT}`, digest: { gitCommit: ENGINE_COMMIT } }],
    builder: { id: "urn:ai-tools:builder:test", version: { "ai-tools": "0.1.0", powerinfer: ENGINE_COMMIT } },
    invocationId: "urn:uuid:00000000-0000-0000-0000-000000000000",
    startedOn: "2025-03-04T05:00:00.000Z",
    finishedOn: FINISHED_ON,
  };
}

export function seededBytes(seed: number, size: number): Buffer {
  const random = prng(seed);
  return Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 256)));
}

/** Writes the model files (unsigned) into `dir`; `order` reverses creation order for the readdir-order tests. */
export function writeModelFiles(dir: string, options: { activationFiles?: number; reverse?: boolean } = {}): void {
  const count = options.activationFiles ?? 6;
  mkdirSync(join(dir, "activation"), { recursive: true });
  writeGguf(join(dir, "model.powerinfer.gguf"), powerInferModelSpec({ fileType: 1 }));
  const indexes = [...Array(count).keys()];
  for (const i of options.reverse ? indexes.reverse() : indexes) writeFileSync(join(dir, "activation", `activation_${i}.pt`), seededBytes(100 + i, 700 + i * 13));
  writeFileSync(join(dir, "bench.json"), JSON.stringify({ evalTokensPerSecond: 12.5 }) + "\n");
  writeFileSync(join(dir, "policy.yaml"), `engine: powerinfer\nmodel_path: powerinfer/${MODEL_ID}/model.powerinfer.gguf\n`);
  writeFileSync(join(dir, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"], hidden_size: 64 }) + "\n");
  writeFileSync(join(dir, "model.host-a.gpuidx"), seededBytes(7, 512));
  // What a GPU build writes at load time: ignored by the signature, never packed.
  writeFileSync(join(dir, "model.powerinfer.gguf.generated.gpuidx"), seededBytes(8, 256));
}

export interface SignedModel {
  dir: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  signed: SignResult;
}

export async function makeSignedModel(dir: string, options: { activationFiles?: number; reverse?: boolean; key?: { privateKey: KeyObject; publicKey: KeyObject } } = {}): Promise<SignedModel> {
  writeModelFiles(dir, options);
  const { privateKey, publicKey } = options.key ?? generateKeyPairSync("ec", { namedCurve: "P-256" });
  const signed = await signModelDirectory(dir, { privateKey, provenance: testProvenance(), subjectName: MODEL_ID });
  return { dir, privateKey, publicKey, signed };
}
