/**
 * The host a policy is rendered for: a profile from configs/hosts/<name>.yaml, or what
 * this machine has (physical cores, memory, GPUs with free VRAM from nvidia-smi or
 * rocm-smi where they answer).
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, delimiter, extname, join } from "node:path";
import { cpus, totalmem } from "node:os";
import { runCommand } from "../core/process.js";
import { physicalCoreCount } from "../model-bench/host.js";
import { loadYamlConfig } from "../config/load-yaml.js";
import { hostSchema } from "./schema.js";
import type { HostProfile } from "./types.js";

const GiB = 2 ** 30;

export async function loadHostProfile(file: string): Promise<HostProfile> {
  const host = await loadYamlConfig(file, hostSchema);
  return {
    name: host.name ?? basename(file, extname(file)),
    source: "file",
    physicalCores: host.physical_cores,
    memoryBytes: Math.round(host.memory_gib * GiB),
    gpus: host.gpus.map((g) => ({ name: g.name, memoryTotalBytes: Math.round(g.memory_gib * GiB), memoryFreeBytes: g.free_memory_gib === undefined ? null : Math.round(g.free_memory_gib * GiB) })),
  };
}

export async function detectHostProfile(env: NodeJS.ProcessEnv = process.env): Promise<HostProfile> {
  let cpuinfo: string | null = null;
  try {
    cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    // Not Linux: the logical count stands in.
  }
  const gpus = (await nvidiaGpus(env)) ?? (await rocmGpus(env)) ?? [];
  return { name: "detected", source: "detected", physicalCores: physicalCoreCount(cpuinfo, cpus().length), memoryBytes: totalmem(), gpus };
}

/** `nvidia-smi --query-gpu=name,memory.total,memory.free` (MiB), or null when it does not answer. */
export function parseNvidiaSmi(csv: string): HostProfile["gpus"] {
  return csv
    .split("\n")
    .map((line) => line.split(",").map((s) => s.trim()))
    .filter((f) => f.length === 3 && f[0])
    .map(([name, total, free]) => ({ name: name!, memoryTotalBytes: Number(total) * 2 ** 20, memoryFreeBytes: Number.isFinite(Number(free)) ? Number(free) * 2 ** 20 : null }));
}

async function nvidiaGpus(env: NodeJS.ProcessEnv): Promise<HostProfile["gpus"] | null> {
  const out = await query(["nvidia-smi", "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"], env);
  return out === null ? null : parseNvidiaSmi(out);
}

/** `rocm-smi --showmeminfo vram --json`: {"card0": {"VRAM Total Memory (B)": "...", "VRAM Total Used Memory (B)": "..."}}. */
export function parseRocmSmi(json: string): HostProfile["gpus"] {
  const cards = JSON.parse(json) as Record<string, Record<string, string>>;
  return Object.entries(cards)
    .filter(([card]) => card.startsWith("card"))
    .map(([card, info]) => {
      const total = Number(info["VRAM Total Memory (B)"]);
      const used = Number(info["VRAM Total Used Memory (B)"]);
      return { name: `AMD ${card}`, memoryTotalBytes: total, memoryFreeBytes: Number.isFinite(used) ? total - used : null };
    })
    .filter((g) => Number.isFinite(g.memoryTotalBytes) && g.memoryTotalBytes > 0);
}

async function rocmGpus(env: NodeJS.ProcessEnv): Promise<HostProfile["gpus"] | null> {
  const out = await query(["rocm-smi", "--showmeminfo", "vram", "--json"], env);
  if (out === null) return null;
  try {
    return parseRocmSmi(out);
  } catch {
    return null;
  }
}

async function query(argv: string[], env: NodeJS.ProcessEnv): Promise<string | null> {
  // Most hosts have neither tool: a PATH lookup is far cheaper than a failed spawn on every run.
  if (!(env.PATH ?? "").split(delimiter).some((dir) => dir && existsSync(join(dir, argv[0]!)))) return null;
  const result = await runCommand(argv, { env, captureStdout: true, allowFailure: true, timeoutMs: 10_000 }).catch(() => null);
  return result && result.exitCode === 0 ? result.stdout : null;
}
