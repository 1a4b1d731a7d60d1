/**
 * JSON Schemas generated from the zod schemas (zod 4's toJSONSchema), so editors complete
 * and check the YAML files: policies, recipes, host profiles, the engine config. A test
 * checks the committed files are what the schemas generate.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod";
import { hostSchema, policySchema } from "./schema.js";

export async function schemaDocuments(): Promise<Record<string, unknown>> {
  const [{ recipeSchemaFor }, { engineConfigSchema }] = await Promise.all([import("../config/recipe.js"), import("../config/engine-config.js")]);
  const generate = (schema: z.ZodType, title: string) => ({ title, ...z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) });
  return {
    "policy.schema.json": generate(policySchema, "ai-tools runtime policy"),
    "recipe.schema.json": generate(recipeSchemaFor("recipe"), "ai-tools model recipe (configs/models/powerinfer/*.yaml)"),
    "host.schema.json": generate(hostSchema, "ai-tools host profile (configs/hosts/*.yaml)"),
    "engine.schema.json": generate(engineConfigSchema, "ai-tools engine config (configs/engines/powerinfer.yaml)"),
  };
}

export async function writeSchemas(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, document] of Object.entries(await schemaDocuments())) {
    await writeFile(join(dir, name), JSON.stringify(document, null, 2) + "\n");
    written.push(join(dir, name));
  }
  return written;
}
