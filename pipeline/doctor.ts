/**
 * `pnpm pipeline doctor`: every tool the pipeline needs, found or missing, with the
 * exact way to install what is missing; NVIDIA GPUs, driver and toolkit, and whether
 * the built engine uses them (never a failure on a machine without a GPU). Nothing is
 * changed.
 */
import { existsSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { isPipelineError } from "./core/errors.js";
import { StateStore } from "./core/state.js";
import { TOOLS, type BuildResult } from "../tasks/build.js";
import { archSupport, compareVersions, cudaArchitecturesOf, cudaLibrariesOf, parseNvccRelease, probeNvidia, suggestCudacxx, type NvidiaProbe } from "./engine-build/nvidia.js";
import { GIT_INSTALL_HINT } from "../tasks/upstream.js";
import { hubSettings } from "./hub/env.js";
import { choosePython, CONVERTER_MODULES } from "./python.js";
import type { Workspace } from "./workspace.js";

export interface DoctorRow {
  name: string;
  status: "ok" | "missing" | "optional-missing";
  detail: string;
  hint?: string;
}

export async function runDoctor(workspace: Workspace): Promise<DoctorRow[]> {
  const rows: DoctorRow[] = [];
  const tool = async (name: string, spec: { command: string; installHint: string; versionLine?: RegExp }, required: boolean, what: string) => {
    const found = await workspace.tools.find(spec);
    rows.push(
      found
        ? { name, status: "ok", detail: `${found.version} (${found.path})` }
        : { name, status: required ? "missing" : "optional-missing", detail: `not on PATH (${what})`, hint: spec.installHint },
    );
  };
  await tool("git", { command: "git", installHint: GIT_INSTALL_HINT }, true, "fetches the engine");
  await tool("cmake", TOOLS.cmake, true, "builds the engine");
  await tool("C compiler", { ...TOOLS.cc, command: workspace.env.CC || "cc" }, true, "builds the engine");
  await tool("C++ compiler", { ...TOOLS.cxx, command: workspace.env.CXX || "c++" }, true, "builds the engine");
  // The nvcc a cuda build would use: $CUDACXX, else the one on PATH.
  await tool("nvcc", { ...TOOLS.nvcc, command: workspace.env.CUDACXX || TOOLS.nvcc.command }, false, "only for --backend cuda");
  await tool("hipcc", TOOLS.hipcc, false, "only for --backend hip");
  await workspace.tools.save();
  rows.push(...(await gpuRows(workspace)));

  for (const [script, modules] of Object.entries(CONVERTER_MODULES)) {
    const required = script === "convert.py";
    try {
      const py = await choosePython(modules, { root: workspace.root, env: workspace.env });
      rows.push({ name: `python for ${script}`, status: "ok", detail: `${py.path} (${py.source}, Python ${py.version}; ${modules.map((m) => `${m} ${py.modules[m]}`).join(", ")})` });
    } catch (error) {
      if (!isPipelineError(error)) throw error;
      rows.push({
        name: `python for ${script}`,
        status: required ? "missing" : "optional-missing",
        detail: `${error.message}${required ? "" : " (only Falcon/OPT recipes use it)"} ${error.details.slice(0, -1).join("; ")}`,
        hint: error.details.at(-1),
      });
    }
  }

  for (const [name, dir] of [
    ["disk (workspace)", workspace.root],
    ["disk (Hugging Face cache)", hubSettings(workspace.env).cacheDir],
  ] as const) {
    rows.push({ name, status: "ok", detail: `${await freeSpace(dir)} free at ${dir}` });
  }
  return rows;
}

/**
 * NVIDIA GPUs, the driver and the CUDA it supports, whether nvcc suits that driver, and
 * whether the built engine uses them. Never "missing": a machine without a GPU is fine.
 */
async function gpuRows(workspace: Workspace): Promise<DoctorRow[]> {
  const rows: DoctorRow[] = [];
  const gpu = await probeNvidia(workspace.env);
  if (gpu.gpus.length === 0) {
    rows.push({ name: "NVIDIA GPU", status: "optional-missing", detail: `none (${gpu.problem ?? "nvidia-smi lists none"}; only for --backend cuda)` });
  }
  gpu.gpus.forEach((g, i) => {
    const arch = cudaArchitecturesOf([g]);
    rows.push({
      name: `NVIDIA GPU ${i}`,
      status: "ok",
      detail: g.computeCap ? `${g.name}, compute capability ${g.computeCap} (CMAKE_CUDA_ARCHITECTURES ${arch})` : `${g.name}, compute capability unknown (${gpu.problem})`,
    });
  });
  rows.push(
    gpu.driverVersion
      ? { name: "NVIDIA driver", status: "ok", detail: `${gpu.driverVersion}, supports CUDA up to ${gpu.driverCudaVersion ?? "unknown"}` }
      : { name: "NVIDIA driver", status: "optional-missing", detail: "none (only for --backend cuda)" },
  );

  const nvcc = await workspace.tools.find({ ...TOOLS.nvcc, command: workspace.env.CUDACXX || TOOLS.nvcc.command });
  const toolkit = nvcc ? parseNvccRelease(nvcc.version) : null;
  if (gpu.driverCudaVersion && toolkit) {
    rows.push(
      compareVersions(toolkit, gpu.driverCudaVersion) <= 0
        ? { name: "nvcc vs driver", status: "ok", detail: `nvcc ${toolkit} <= CUDA ${gpu.driverCudaVersion} of the driver: its binaries run here` }
        : {
            name: "nvcc vs driver",
            status: "optional-missing",
            detail: `nvcc ${toolkit} is newer than the driver's CUDA ${gpu.driverCudaVersion}: a cuda build fails before building`,
            hint: `install a newer driver or an older toolkit (CUDACXX=${suggestCudacxx(gpu.driverCudaVersion)})`,
          },
    );
  }
  rows.push(await builtEngineRow(workspace, gpu, toolkit));
  return rows;
}

const SUPPORT_WORDS = {
  native: "native code",
  compatible: "runs code built for an older card of its generation",
  ptx: "only PTX, compiled by the driver at first launch (slow start)",
  none: "not built for it",
  unknown: "architectures not checkable",
} as const;

/** The build record (backend, architectures, nvcc) and a fresh look at the binary's bytes. */
async function builtEngineRow(workspace: Workspace, gpu: NvidiaProbe, toolkit: string | null): Promise<DoctorRow> {
  const name = "built engine";
  const record = await new StateStore(workspace.stateDir).read("build");
  const result = record?.result as BuildResult | undefined;
  if (!result?.binaries) return { name, status: "optional-missing", detail: "not built yet", hint: "pnpm pipeline engine" };
  const main = result.binaries.main ?? Object.values(result.binaries)[0];
  if (!main || !existsSync(join(workspace.root, main))) {
    return { name, status: "optional-missing", detail: `${result.backend} build in ${result.buildDir}, but its binaries are gone`, hint: "pnpm pipeline engine" };
  }
  if (result.backend !== "cuda") {
    const idle = gpu.gpus.length > 0 && result.backend === "cpu";
    return {
      name,
      status: "ok",
      detail: `${result.backend} build (${result.buildDir})${idle ? ": does not use the NVIDIA GPU" : ""}`,
      ...(idle && toolkit ? { hint: "pnpm pipeline engine --backend cuda builds one that does" } : {}),
    };
  }
  const libraries = await cudaLibrariesOf(join(workspace.root, main));
  if (libraries.length === 0) {
    return {
      name,
      status: "optional-missing",
      detail: `cuda build (${result.buildDir}), but ${main} names no CUDA library: a CPU binary`,
      hint: "pnpm pipeline engine --backend cuda --force build",
    };
  }
  const cuda = result.cuda;
  const parts = [`cuda build (${result.buildDir})`, `${main} links ${libraries.join(", ")}`];
  const problems: string[] = [];
  if (cuda) {
    parts.push(`architectures ${cuda.architectures ?? "52;61;70 (engine default)"} (${cuda.architecturesSource}), nvcc ${cuda.toolkitVersion ?? "unknown"}`);
    for (const [i, g] of gpu.gpus.entries()) {
      if (!g.computeCap) continue;
      const support = archSupport(cuda.architectures ?? "52;61;70", g.computeCap);
      parts.push(`GPU ${i} (${g.computeCap}): ${SUPPORT_WORDS[support]}`);
      if (support === "none" || support === "ptx") problems.push(`GPU ${i}`);
    }
    if (gpu.driverCudaVersion && cuda.toolkitVersion && compareVersions(cuda.toolkitVersion, gpu.driverCudaVersion) > 0) {
      parts.push(`built with nvcc ${cuda.toolkitVersion}, newer than the driver's CUDA ${gpu.driverCudaVersion}`);
      problems.push("driver");
    }
  }
  if (gpu.gpus.length === 0) {
    parts.push("no NVIDIA GPU here to run it");
    problems.push("no GPU");
  }
  return {
    name,
    status: problems.length ? "optional-missing" : "ok",
    detail: parts.join("; "),
    ...(problems.length ? { hint: "rebuild on this machine: pnpm pipeline engine --backend cuda (the architectures follow the GPU)" } : {}),
  };
}

async function freeSpace(path: string): Promise<string> {
  for (let dir = path; ; dir = dirname(dir)) {
    try {
      const fs = await statfs(dir);
      return `${((fs.bavail * fs.bsize) / 2 ** 30).toFixed(1)} GiB`;
    } catch {
      if (dirname(dir) === dir) return "unknown";
    }
  }
}
