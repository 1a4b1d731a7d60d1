/**
 * Which Python runs the converter. The upstream converter needs numpy < 2 (it calls
 * `newbyteorder` on scalars, gone in NumPy 2) and sentencepiece; the hf script for
 * Falcon/OPT also torch, transformers and safetensors. We try, in order: --python,
 * AI_TOOLS_PYTHON, the project venv (build/python-venv), python3 on PATH,
 * /usr/bin/python3 — and take the first that imports what is needed, so a missing
 * module is one actionable line before anything runs, never a traceback.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import which from "which";
import { PipelineError } from "./core/errors.js";
import { runCommand } from "./core/process.js";
import { atomicWriteFile } from "./core/files.js";

/** No interpreter has the modules a step needs (numpy < 2 and sentencepiece; the solver's torch and cvxopt). */
export const PYTHON_ERROR_CODES = ["E_PYTHON_UNSUITABLE"] as const;

declare module "./core/errors.js" {
  interface ErrorCodes extends Record<(typeof PYTHON_ERROR_CODES)[number], true> {}
}

export type PythonModule = "numpy" | "sentencepiece" | "torch" | "transformers" | "safetensors" | "powerinfer" | "cvxopt";

export const CONVERTER_MODULES: Record<string, PythonModule[]> = {
  "convert.py": ["numpy", "sentencepiece"],
  "convert-hf-to-powerinfer-gguf.py": ["numpy", "sentencepiece", "torch", "transformers", "safetensors"],
};

/** Debian package per module (bookworm has no transformers/safetensors: those need pip). */
const APT: Partial<Record<PythonModule, string>> = {
  numpy: "python3-numpy",
  sentencepiece: "python3-sentencepiece",
  torch: "python3-torch",
  cvxopt: "python3-cvxopt",
};

export interface PythonProbe {
  path: string;
  version: string;
  modules: Partial<Record<PythonModule, string | null>>;
  /** sys.path: installing or removing a package changes one of these folders. */
  searchPath?: string[];
}

export interface PythonChoice extends PythonProbe {
  /** Where the choice came from, e.g. "--python", "AI_TOOLS_PYTHON", "PATH". */
  source: string;
}

const PROBE = `
import json, sys, importlib
out = {"version": sys.version.split()[0], "executable": sys.executable, "modules": {}, "path": [p for p in sys.path if p]}
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
    const parsed = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "") as { version: string; modules: PythonProbe["modules"]; path?: string[] };
    return { path, version: parsed.version, modules: parsed.modules, ...(parsed.path ? { searchPath: parsed.path } : {}) };
  } catch {
    return null;
  }
}

const probeMemo = new Map<string, Promise<PythonProbe | null>>();

interface CachedProbe {
  stamp: string;
  probe: PythonProbe;
}

/**
 * Probes are remembered in this process and on disk (build/state/python.json), keyed
 * by the interpreter file and the mtimes of its sys.path folders: a pip or apt install
 * changes one of those folders, so a cached answer is never stale, and a no-op run
 * spawns no Python (each probe imports numpy: ~0.1-0.3 s).
 */
function memoizedProbe(path: string, modules: readonly PythonModule[], env: NodeJS.ProcessEnv, cacheFile?: string): Promise<PythonProbe | null> {
  const key = `${path}\0${[...modules].sort().join(",")}\0${env.PATH ?? ""}\0${env.PYTHONPATH ?? ""}`;
  let probe = probeMemo.get(key);
  if (!probe) probeMemo.set(key, (probe = cachedProbe(key, path, modules, env, cacheFile)));
  return probe;
}

function stampOf(path: string, searchPath: readonly string[]): string | null {
  const parts: string[] = [];
  for (const file of [path, ...searchPath]) {
    try {
      const info = statSync(file);
      parts.push(`${file}:${info.size}:${Math.trunc(info.mtimeMs)}`);
    } catch {
      parts.push(`${file}:-`);
    }
  }
  return parts.join("|");
}

async function cachedProbe(key: string, path: string, modules: readonly PythonModule[], env: NodeJS.ProcessEnv, cacheFile?: string): Promise<PythonProbe | null> {
  let cache: Record<string, CachedProbe> = {};
  if (cacheFile) {
    try {
      cache = JSON.parse(readFileSync(cacheFile, "utf8")) as Record<string, CachedProbe>;
    } catch {
      // no cache yet
    }
    const hit = cache[key];
    if (hit && stampOf(path, hit.probe.searchPath ?? []) === hit.stamp) return hit.probe;
  }
  const probe = await probePython(path, modules, env);
  if (probe && cacheFile) {
    cache[key] = { stamp: stampOf(path, probe.searchPath ?? [])!, probe };
    await atomicWriteFile(cacheFile, JSON.stringify(cache, null, 2) + "\n").catch(() => undefined);
  }
  return probe;
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
  const unique = candidates.filter((c, i) => candidates.findIndex((d) => d.path === c.path) === i);
  // Probed at once (each import of numpy costs ~0.1 s) and remembered for this process:
  // the generate and convert steps ask the same question.
  const cacheFile = join(options.root, "build", "state", "python.json");
  const probes = await Promise.all(unique.map((c) => memoizedProbe(c.path, modules, env, cacheFile)));
  for (const [index, candidate] of unique.entries()) {
    const probe = probes[index]!;
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

/**
 * `pnpm pipeline setup-python`: a venv under build/ with what convert.py needs, for
 * machines where a package index is reachable. The venv is then the third candidate
 * above. On machines without an index the error says to use the Debian packages.
 */
export async function setupPythonVenv(options: { root: string; env?: NodeJS.ProcessEnv; base?: string; logFile?: string }): Promise<PythonChoice> {
  const env = options.env ?? process.env;
  const venv = join(options.root, "build", "python-venv");
  const base = options.base ?? (await which("python3", { nothrow: true, path: env.PATH ?? "" })) ?? "/usr/bin/python3";
  const created = await runCommand([base, "-m", "venv", venv], { env, allowFailure: true, timeoutMs: 5 * 60_000, ...(options.logFile ? { logFile: options.logFile } : {}) });
  if (created.exitCode !== 0) {
    throw new PipelineError("E_PYTHON_UNSUITABLE", `${base} could not create a venv at ${venv}.`, {
      details: [...created.tail.slice(-5), "On Debian/Ubuntu: apt-get install python3-venv, then rerun; or install python3-numpy python3-sentencepiece instead."],
    });
  }
  const python = join(venv, "bin", "python");
  const installed = await runCommand([python, "-m", "pip", "install", "--disable-pip-version-check", "numpy<2", "sentencepiece"], {
    env,
    allowFailure: true,
    timeoutMs: 20 * 60_000,
    ...(options.logFile ? { logFile: options.logFile } : {}),
  });
  if (installed.exitCode !== 0) {
    throw new PipelineError("E_PYTHON_UNSUITABLE", `pip could not install numpy<2 and sentencepiece into ${venv} (is a package index reachable?).`, {
      details: [...installed.tail.slice(-5), "Without a package index: apt-get install python3-numpy python3-sentencepiece (Debian/Ubuntu) and use /usr/bin/python3."],
    });
  }
  return choosePython(["numpy", "sentencepiece"], { flag: python, root: options.root, env, systemPythons: [] });
}
