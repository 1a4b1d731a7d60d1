/**
 * Task `convert` of a ready-made GGUF recipe: no converter runs. The PowerInfer GGUF the
 * `download` step took from the Hub (one named file plus `activation/`) is validated as a
 * converted file would be (PWRI magic, architecture, a predictor for every block, the
 * tensor list, the declared type), then placed at models/powerinfer/<model>/model.powerinfer.gguf
 * (a hard link to the Hub cache's blob where the filesystem allows, else a copy: never a
 * symbolic link, which signing refuses), with activation/ copied next to it and policy.yaml
 * rendered exactly as after a conversion. Its result has the ConvertResult shape, so bench
 * and sign treat both kinds alike.
 *
 * Validation comes before placement: a file that is not what the recipe says never reaches
 * the model directory, and the previous good file stays.
 */
import { constants, existsSync } from "node:fs";
import { copyFile, cp, link, mkdir, realpath, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import { atomicWriteFile, sha256File } from "../pipeline/core/files.js";
import { PipelineError } from "../pipeline/core/errors.js";
import { FAMILY_ARCHITECTURE, GGUF_TYPE_FILE_TYPE, type GenerationSettings, type GgufSource, type RecipeFamily, type RuntimeSettings } from "../pipeline/config/recipe.js";
import { SUPPORTED_MODEL_TYPES } from "../pipeline/config/architecture.js";
import { readGgufHeader, type GgufHeader } from "../pipeline/gguf/reader.js";
import { summarizeGguf, validatePowerInferGguf } from "../pipeline/gguf/validate.js";
import { READY_MADE, renderPolicy, type ConvertResult } from "./convert.js";
import type { DownloadResult } from "./download.js";

export interface FetchGgufSettings {
  model: string;
  recipeFile: string;
  gguf: Pick<GgufSource, "repo" | "revision" | "file" | "type">;
  family: RecipeFamily;
  generation: GenerationSettings;
  runtime: RuntimeSettings;
  /** recipe.audit: copied into policy.yaml with the file's checksum. */
  audit?: { model_version: string; source_repo?: string };
}

/** GGUF architectures the pinned engine's loader runs sparse. */
const ENGINE_ARCHITECTURES = new Set(Object.values(SUPPORTED_MODEL_TYPES));

export function fetchGgufTask(settings: FetchGgufSettings): TaskDefinition<ConvertResult> {
  const outDir = join("models", "powerinfer", settings.model);
  const output = join(outDir, "model.powerinfer.gguf");
  const policy = join(outDir, "policy.yaml");

  return {
    id: "convert",
    instance: `convert--${settings.model}`,
    title: `Validate and place ${settings.model}'s ready-made ${settings.gguf.file}`,
    version: 1,
    dependsOn: ["download"],

    // What the file is, not how it is listed (sizeBytes) or fetched (gated): those belong to `download`.
    inputs: () => ({
      values: {
        [`${settings.recipeFile}#gguf`]: { repo: settings.gguf.repo, revision: settings.gguf.revision, file: settings.gguf.file, type: settings.gguf.type },
        [`${settings.recipeFile}#family`]: settings.family,
        [`${settings.recipeFile}#generation`]: settings.generation,
        [`${settings.recipeFile}#runtime`]: settings.runtime,
        ...(settings.audit ? { [`${settings.recipeFile}#audit`]: settings.audit } : {}),
      },
    }),

    outputs: () => [
      { path: output, hash: true },
      { path: policy, hash: true },
    ],

    async run(ctx) {
      const download = ctx.deps.get("download")?.result as DownloadResult;
      const repo = download.gguf;
      if (!repo) throw new PipelineError("E_DEPENDENCY_NOT_READY", `the download step of ${settings.model} recorded no GGUF repository`);
      const entry = repo.files.find((f) => f.path === settings.gguf.file);
      const source = join(repo.dir, settings.gguf.file);
      const label = `${repo.repo}@${repo.commit.slice(0, 12)}/${settings.gguf.file}`;

      ctx.progress({ message: `validating ${settings.gguf.file}` });
      const header = await readGgufHeader(source);
      const problems = validateReadyMade(header, settings);
      if (problems.length > 0) {
        throw new PipelineError("E_CONVERT_OUTPUT", `the ready-made ${label} is not a valid PowerInfer model for ${settings.model}: ${problems[0]}`, {
          details: [...problems.slice(1), `Check gguf.file and gguf.type in ${settings.recipeFile}: nothing was placed in ${outDir}/.`],
        });
      }
      const summary = summarizeGguf(header);

      // Place it: a temporary name, then rename (a rename onto the same inode is a no-op: the temporary is removed below).
      await mkdir(join(ctx.root, outDir), { recursive: true });
      const final = join(ctx.root, output);
      const temp = join(ctx.root, outDir, `.model.powerinfer.gguf.tmp-${process.pid}`);
      let placed: "hard link" | "copy";
      try {
        const blob = await realpath(source);
        await rm(temp, { force: true });
        try {
          await link(blob, temp);
          placed = "hard link";
        } catch {
          // Another filesystem (EXDEV), or one without hard links: a copy (a reflink where the filesystem can).
          ctx.progress({ message: `copying ${settings.gguf.file} (${(((await stat(blob)).size) / 2 ** 30).toFixed(2)} GiB)` });
          await copyFile(blob, temp, constants.COPYFILE_FICLONE);
          placed = "copy";
        }
        await rename(temp, final);
      } finally {
        await rm(temp, { force: true });
      }
      // The LFS sha256 was checked when the blob was downloaded; files without one (not in LFS) are hashed here.
      const checksum = entry?.sha256 ?? (await sha256File(final));
      ctx.log(`${label}: ${summary.architecture}, ${summary.blockCount} blocks, ${summary.fileTypeName}, ${summary.predictorLayers} predictor layers -> ${output} (${placed})`);

      const activationSource = join(repo.dir, "activation");
      const activationTarget = join(ctx.root, outDir, "activation");
      const activation = existsSync(activationSource);
      await rm(activationTarget, { recursive: true, force: true });
      if (activation) await cp(activationSource, activationTarget, { recursive: true, dereference: true });
      else ctx.log(`note: ${repo.repo} has no activation/: a GPU build will offload no FFN weights`);

      await atomicWriteFile(join(ctx.root, policy), renderPolicy(settings, `powerinfer/${settings.model}/model.powerinfer.gguf`, checksum));
      return {
        output,
        policy,
        converter: { script: READY_MADE, argv: [] },
        python: null,
        checkpoint: { modelDir: repo.dir, predictorDir: repo.dir, layers: summary.blockCount ?? 0, modelType: summary.architecture ?? "" },
        gguf: summary,
        activation,
        readyMade: { repo: repo.repo, revision: repo.revision, commit: repo.commit, file: settings.gguf.file, sha256: entry?.sha256 ?? null },
      };
    },
  };
}

/**
 * What is wrong with a ready-made file for this recipe: the family's architecture (or,
 * for a family without one, one the engine runs), the file's own block count (a predictor
 * and the full tensor list for every block), PWRI magic and the declared type.
 */
export function validateReadyMade(header: GgufHeader, settings: Pick<FetchGgufSettings, "family" | "gguf">): string[] {
  const declared = header.kv.get("general.architecture");
  const architecture = FAMILY_ARCHITECTURE[settings.family] ?? (typeof declared === "string" ? declared : "");
  if (!ENGINE_ARCHITECTURES.has(architecture)) {
    return [`general.architecture is ${JSON.stringify(declared ?? null)}: not an architecture the pinned engine runs sparse (${[...ENGINE_ARCHITECTURES].join(", ")})`];
  }
  const blocks = header.kv.get(`${architecture}.block_count`);
  const blockCount = typeof blocks === "number" ? blocks : typeof blocks === "bigint" ? Number(blocks) : undefined;
  if (blockCount === undefined || !Number.isSafeInteger(blockCount) || blockCount < 1) {
    const problems = validatePowerInferGguf(header, { sparse: true, architecture, blockCount: 0 }).filter((p) => !p.includes("block_count"));
    return [`${architecture}.block_count is ${blocks === undefined ? "missing" : String(blocks)}: not a ${architecture} model file`, ...problems];
  }
  return validatePowerInferGguf(header, { sparse: true, architecture, blockCount, fileType: GGUF_TYPE_FILE_TYPE[settings.gguf.type] });
}
