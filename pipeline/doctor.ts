/**
 * `pnpm pipeline doctor`: every tool the pipeline needs, found or missing, with the
 * exact way to install what is missing. Nothing is changed.
 */
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { isPipelineError } from "./core/errors.js";
import { TOOLS } from "../tasks/build.js";
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
  await tool("nvcc", TOOLS.nvcc, false, "only for --backend cuda");
  await tool("hipcc", TOOLS.hipcc, false, "only for --backend hip");
  await workspace.tools.save();

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
