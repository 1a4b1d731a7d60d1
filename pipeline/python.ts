/**
 * Which Python runs the converter. The upstream converter needs numpy < 2 (it calls
 * `newbyteorder` on scalars, gone in NumPy 2) and sentencepiece; the hf script for
 * Falcon/OPT also torch, transformers and safetensors. We try, in order: --python,
 * AI_TOOLS_PYTHON, the project venv (build/python-venv), python3 on PATH,
 * /usr/bin/python3 — and take the first that imports what is needed, so a missing
 * module is one actionable line before anything runs, never a traceback.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import which from "which";
import { PipelineError } from "./core/errors.js";
import { runCommand } from "./core/process.js";

export type PythonModule = "numpy" | "sentencepiece" | "torch" | "transformers" | "safetensors";

export const CONVERTER_MODULES: Record<string, PythonModule[]> = {
  "convert.py": ["numpy", "sentencepiece"],
  "convert-hf-to-powerinfer-gguf.py": ["numpy", "sentencepiece", "torch", "transformers", "safetensors"],
};

/** Debian package per module (bookworm has no transformers/safetensors: those need pip). */
const APT: Partial<Record<PythonModule, string>> = {
  numpy: "python3-numpy",
  sentencepiece: "python3-sentencepiece",
  torch: "python3-torch",
};

export interface PythonProbe {
  path: string;
  version: string;
  modules: Partial<Record<PythonModule, string | null>>;
}

export interface PythonChoice extends PythonProbe {
  /** Where the choice came from, e.g. "--python", "AI_TOOLS_PYTHON", "PATH". */
  source: string;
}

const PROBE = `
import json, sys, importlib
out = {"version": sys.version.split()[0], "executable": sys.executable, "modules": {}}
for name in sys.argv[1:]:
    try:
        m = importlib.import_module(name)
        out["modules"][name] = str(getattr(m, "__version__", "unknown"))
    except Exception:
        out["modules"][name] = None
print(json.dumps(out))
`;

export async function probePython(path: string, modules: readonly PythonModule[], env: NodeJS.ProcessEnv = process.env): Promise<PythonProbe | null> {
  const result = await runCommand([path, "-c", PROBE, ...modules], { env, captureStdout: true, allowFailure: true, timeoutMs: 60_000 }).catch(() => null);
  if (!result || result.exitCode !== 0) return null;
  try {
    const parsed = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "") as { version: string; modules: PythonProbe["modules"] };
    return { path, version: parsed.version, modules: parsed.modules };
  } catch {
    return null;
  }
}

/** Why `probe` cannot run the converter, or null when it can. */
export function rejectionReason(probe: PythonProbe, modules: readonly PythonModule[]): string | null {
  const missing = modules.filter((m) => !probe.modules[m]);
  if (missing.length) return `missing ${missing.join(", ")}`;
  const numpy = probe.modules.numpy;
  if (numpy && Number(numpy.split(".")[0]) >= 2) return `numpy ${numpy}: the converter needs numpy < 2 (it calls newbyteorder, removed in NumPy 2)`;
  return null;
}

export function installHint(modules: readonly PythonModule[]): string {
  const apt = modules.map((m) => APT[m]).filter(Boolean);
  const pip = modules.map((m) => (m === "numpy" ? "'numpy<2'" : m));
  return `Install them for /usr/bin/python3: apt-get install ${apt.join(" ")}${apt.length < modules.length ? " (and pip for the rest)" : ""}; or, where a package index is reachable: pnpm pipeline setup-python (a venv with ${pip.join(" ")}), or pass --python / set AI_TOOLS_PYTHON.`;
}

export async function choosePython(
  modules: readonly PythonModule[],
  options: { flag?: string; root: string; env?: NodeJS.ProcessEnv; systemPythons?: readonly string[] },
): Promise<PythonChoice> {
  const env = options.env ?? process.env;
  const candidates: { path: string; source: string }[] = [];
  if (options.flag) candidates.push({ path: options.flag, source: "--python" });
  if (env.AI_TOOLS_PYTHON) candidates.push({ path: env.AI_TOOLS_PYTHON, source: "AI_TOOLS_PYTHON" });
  const venv = join(options.root, "build", "python-venv", "bin", "python");
  if (existsSync(venv)) candidates.push({ path: venv, source: "build/python-venv" });
  const onPath = await which("python3", { nothrow: true, path: env.PATH ?? "" });
  if (onPath) candidates.push({ path: onPath, source: "PATH" });
  for (const system of options.systemPythons ?? ["/usr/bin/python3"]) if (existsSync(system)) candidates.push({ path: system, source: "system" });

  const rejected: string[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (seen.has(candidate.path)) continue;
    seen.add(candidate.path);
    const probe = await probePython(candidate.path, modules, env);
    if (!probe) {
      rejected.push(`${candidate.path} (${candidate.source}): does not run`);
      continue;
    }
    const why = rejectionReason(probe, modules);
    if (!why) return { ...probe, source: candidate.source };
    rejected.push(`${candidate.path} (${candidate.source}, Python ${probe.version}): ${why}`);
  }
  throw new PipelineError("E_PYTHON_UNSUITABLE", `no Python can run the converter: it needs ${modules.map((m) => (m === "numpy" ? "numpy<2" : m)).join(", ")}.`, {
    details: [...(rejected.length ? rejected : ["no python3 found"]), installHint(modules)],
  });
}
