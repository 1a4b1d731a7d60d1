/**
 * Reading a policy: a policy YAML (engine, model_path, generation, runtime, audit), or a
 * model recipe (configs/models/powerinfer/<name>.yaml), which is the policy of the model it
 * converts: engine powerinfer, model_path powerinfer/<name>/model.powerinfer.gguf.
 */
import { createHash } from "node:crypto";
import { basename, extname } from "node:path";
import stringify from "safe-stable-stringify";
import { displayPath, readYamlDocument, validateYamlDocument, type LoadYamlOptions } from "../config/load-yaml.js";
import { DEFAULT_GENERATION, policySchema, type Policy } from "./schema.js";

export interface LoadedPolicy {
  file: string;
  policy: Policy;
  /** "policy" file, or "recipe" (the model recipe stands in for a policy). */
  kind: "policy" | "recipe";
}

/** The converted model file of a recipe, relative to the model root. */
export const recipeModelPath = (name: string) => `powerinfer/${name}/model.powerinfer.gguf`;

export async function loadPolicy(file: string, options: Pick<LoadYamlOptions, "onNote"> = {}): Promise<LoadedPolicy> {
  const yaml = await readYamlDocument(file, displayPath(file));
  const top = yaml.data;
  // A recipe (converted, ready-made or generated) rather than a policy: its runtime defaults apply to the model it produces.
  if (top && typeof top === "object" && !("engine" in top) && ["convert", "gguf", "generate", "model", "unsupported"].some((key) => key in top)) {
    const { recipeSchemaFor } = await import("../config/recipe.js");
    const name = basename(file, extname(file));
    const recipe = validateYamlDocument(yaml, recipeSchemaFor(name), options);
    const { model_version, source_repo, checksum } = recipe.audit;
    const policy: Policy = {
      engine: "powerinfer",
      model_path: recipeModelPath(name),
      generation: recipe.generation,
      runtime: recipe.runtime,
      audit: { model_version, ...(source_repo ? { source_repo } : {}), ...(checksum ? { checksum } : {}) },
    };
    return { file, policy, kind: "recipe" };
  }
  return { file, policy: validateYamlDocument(yaml, policySchema, options), kind: "policy" };
}

/** The policy with every default applied, as the hash and `render` see it. */
export function withDefaults(policy: Policy): Policy {
  const { $schema: _ignored, ...rest } = policy;
  return { ...rest, generation: { ...DEFAULT_GENERATION, ...policy.generation }, runtime: { threads: "auto", ...policy.runtime } };
}

/** sha256 of the canonical JSON (keys sorted) of the validated policy with defaults applied. */
export function policyHash(policy: Policy): string {
  return createHash("sha256").update(stringify(withDefaults(policy))!).digest("hex");
}

