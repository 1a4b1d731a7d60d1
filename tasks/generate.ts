/**
 * Task `generate`: the offline demo model. Instead of downloading, a script under
 * scripts/ writes a tiny random checkpoint in Hugging Face format plus its predictor
 * (deterministic for a seed), so the whole pipeline runs with no Hub access at all.
 * It hands the convert step the same shape a download does.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import type { TaskDefinition } from "../pipeline/core/graph.js";
import { sha256File } from "../pipeline/core/files.js";
import { PipelineError } from "../pipeline/core/errors.js";
import { choosePython, type PythonChoice } from "../pipeline/python.js";
import { PACKAGE_ROOT, type Workspace } from "../pipeline/workspace.js";

export interface GenerateSettings {
  model: string;
  recipeFile: string;
  script: string;
  seed: number;
  python?: string;
}

export interface GeneratedCheckpoint {
  model: { dir: string };
  predictor: { dir: string };
  files: { path: string; size: number; sha256: string }[];
  script: string;
  scriptSha256: string;
  seed: number;
  python: { path: string; version: string; modules: PythonChoice["modules"] };
}

/** The generator needs what the converter needs: numpy and sentencepiece. */
const MODULES = ["numpy", "sentencepiece"] as const;

export function generateTask(workspace: Workspace, settings: GenerateSettings): TaskDefinition<GeneratedCheckpoint> {
  const outDir = join("build", "generated", settings.model);
  // The workspace's copy of the script if it has one, else the one shipped with the toolkit.
  const scriptPath = () => [join(workspace.root, settings.script), join(PACKAGE_ROOT, settings.script)].find((p) => existsSync(p)) ?? join(workspace.root, settings.script);
  let python: Promise<PythonChoice> | undefined;
  const interpreter = () => (python ??= choosePython(MODULES, { flag: settings.python, root: workspace.root, env: workspace.env }));

  return {
    id: "generate",
    instance: `generate--${settings.model}`,
    title: `Generate ${settings.model} checkpoint`,
    version: 2,
    dependsOn: [],

    async inputs() {
      const py = await interpreter();
      return {
        values: {
          [`${settings.recipeFile}#generate`]: { script: settings.script, seed: settings.seed },
          [`${settings.script} (sha256)`]: await sha256File(scriptPath()),
        },
        tools: { python: `Python ${py.version} numpy ${py.modules.numpy} sentencepiece ${py.modules.sentencepiece} (${py.path})` },
      };
    },

    identity: (record) => (record.result as GeneratedCheckpoint).files.map((f) => [f.path, f.sha256]),

    async verify(record, ctx) {
      for (const file of (record.result as GeneratedCheckpoint).files) {
        const size = statSync(join(ctx.root, outDir, file.path), { throwIfNoEntry: false })?.size;
        if (size !== file.size) return `generated file ${join(outDir, file.path)} ${size === undefined ? "missing" : "changed"}`;
      }
      return null;
    },

    async run(ctx) {
      const py = await interpreter();
      const final = join(ctx.root, outDir);
      const temp = `${final}.tmp-${process.pid}`;
      await rm(temp, { recursive: true, force: true });
      await mkdir(temp, { recursive: true });
      ctx.progress({ percent: 0, message: `${settings.script} --seed ${settings.seed}` });
      try {
        await ctx.run([py.path, scriptPath(), "--out", temp, "--seed", String(settings.seed)], { cwd: ctx.root, timeoutMs: 10 * 60_000 });
        for (const part of ["model", "predictor"]) {
          if (readdirSync(join(temp, part), { withFileTypes: true }).length === 0) {
            throw new PipelineError("E_CONVERT_OUTPUT", `${settings.script} wrote nothing into ${part}/`);
          }
        }
        // Replace the previous output only now that the new one is complete.
        await rm(final, { recursive: true, force: true });
        await rename(temp, final);
      } finally {
        await rm(temp, { recursive: true, force: true });
      }
      const files: GeneratedCheckpoint["files"] = [];
      for (const path of walk(final)) files.push({ path: relative(final, path), size: statSync(path).size, sha256: await sha256File(path) });
      return {
        model: { dir: join(final, "model") },
        predictor: { dir: join(final, "predictor") },
        files,
        script: settings.script,
        scriptSha256: await sha256File(scriptPath()),
        seed: settings.seed,
        python: { path: py.path, version: py.version, modules: py.modules },
      };
    },
  };
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}
