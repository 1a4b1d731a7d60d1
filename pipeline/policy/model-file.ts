/**
 * The model file a policy (or --model) names: where a relative path is looked up, and what
 * the file must be before any engine sees it. A policy is input that may come from
 * elsewhere, so its model_path must be a GGUF file inside the model root or the workspace
 * (unless --allow-outside-root): a policy cannot point an engine at /etc/shadow or a
 * file of another user, and a wrong file is a config error, not the engine's loader error.
 *
 * Lookup of a relative path, the same from any current directory:
 *   model_path: <model root>/<path>, else <workspace root>/<path>
 *   --model:    ./<path> (a command-line path), <model root>/<path>,
 *               <model root>/powerinfer/<name>/model.powerinfer.gguf, <workspace root>/<path>
 */
import { closeSync, existsSync, openSync, readSync, realpathSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { PipelineError } from "../core/errors.js";

/** GGUF files start with "GGUF"; PowerInfer's sparse files with "PWRI" (powerinfer-upstream.md §7). */
export const MODEL_MAGICS = ["GGUF", "PWRI"] as const;

export interface ModelFileOptions {
  /** The policy file, for messages. */
  file: string;
  modelRoot: string;
  workspaceRoot?: string;
  /** Where the path came from: --model (a command-line argument) or the policy's model_path. */
  from: "flag" | "policy";
  /** --allow-outside-root: a policy's model_path may name a file outside the model root and workspace. */
  allowOutsideRoot?: boolean;
}

/** Candidate locations of `given`, in lookup order (see the header). */
export function modelCandidates(given: string, options: Pick<ModelFileOptions, "modelRoot" | "workspaceRoot" | "from">): string[] {
  if (isAbsolute(given)) return [given];
  const underWorkspace = options.workspaceRoot ? [join(options.workspaceRoot, given)] : [];
  if (options.from === "policy") return [join(options.modelRoot, given), ...underWorkspace];
  return [resolve(given), join(options.modelRoot, given), join(options.modelRoot, "powerinfer", given, "model.powerinfer.gguf"), ...underWorkspace];
}

/** The model file `given` names, checked: it exists, is a regular GGUF file and (for a policy) lies inside the roots. Throws E_CONFIG_INVALID. */
export function resolveModelFile(given: string, options: ModelFileOptions): string {
  const key = options.from === "flag" ? "--model" : "model_path";
  const invalid = (message: string, details: string[] = []) => new PipelineError("E_CONFIG_INVALID", `${options.file}: ${key}: ${message}`, { details });
  const candidates = modelCandidates(given, options);
  const isFile = (c: string) => existsSync(c) && statSync(c).isFile();
  const path = candidates.find(isFile) ?? candidates.find((c) => existsSync(c));
  if (path === undefined) {
    const where = candidates.length === 1 ? candidates[0] : `${candidates.join(", ")} (tried in this order)`;
    throw invalid(`${given} does not exist: looked for ${where} (model root ${options.modelRoot}; set --model-root or AI_TOOLS_MODEL_ROOT)`);
  }
  if (!statSync(path).isFile()) throw invalid(`${path} is not a regular file`);
  // Containment first: a policy from elsewhere does not get a file outside the roots even opened.
  if (options.from === "policy" && !options.allowOutsideRoot) {
    const roots = [options.modelRoot, options.workspaceRoot].filter((r): r is string => r !== undefined && existsSync(r));
    const real = realpathSync(path);
    if (!roots.some((root) => isInside(real, realpathSync(root)))) {
      throw invalid(`${path}${real === path ? "" : ` (really ${real})`} is outside the model root ${options.modelRoot}${options.workspaceRoot ? ` and the workspace ${options.workspaceRoot}` : ""}`, [
        "A policy may only name models under the model root or the workspace. Move the model there, set --model-root, or pass --allow-outside-root if you trust this policy.",
      ]);
    }
  }
  const magic = fileMagic(path);
  if (!(MODEL_MAGICS as readonly string[]).includes(magic)) {
    throw invalid(`${path} is not a GGUF model (it starts with ${JSON.stringify(magic)}, not "GGUF" or "PWRI")`, ["Point it at a .gguf or .powerinfer.gguf file, e.g. models/powerinfer/<model>/model.powerinfer.gguf."]);
  }
  return path;
}

function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

/** The first four bytes as latin1 ("" for a shorter file). */
export function fileMagic(path: string): string {
  const fd = openSync(path, "r");
  try {
    const magic = Buffer.alloc(4);
    const n = readSync(fd, magic, 0, 4, 0);
    return magic.subarray(0, n).toString("latin1");
  } finally {
    closeSync(fd);
  }
}
