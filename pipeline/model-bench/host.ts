/**
 * The machine a number was measured on, so that a result is never separated from its
 * context and results from different kinds of machine are not compared. No schema here:
 * `run` loads this for its thread count and must not pay for bench.json's zod schemas.
 */
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { runCommand } from "../core/process.js";

export interface GpuInfo {
  name: string;
  driver: string;
  memoryBytes: number;
}

export interface HostInfo {
  cpuModel: string;
  physicalCores: number;
  logicalCores: number;
  memoryBytes: number;
  os: string;
  kernel: string;
  gpus: GpuInfo[];
  /** deriveHostClass(): CPU model, physical cores and GPUs. Results compare only within a class. */
  hostClass: string;
}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/\((?:r|tm|c)\)/g, " ")
    .replace(/\b(?:cpu|processor|with radeon graphics)\b/g, " ")
    .replace(/[^a-z0-9.]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/**
 * A short stable string for "the same kind of machine": CPU model, physical cores and GPU models (with counts), e.g.
 * `intel-xeon/2c` or `amd-epyc-9654-96-core/16c/nvidia-h100-80gb-hbm3`, `.../2xnvidia-a100-sxm4-80gb`. Memory size,
 * OS, kernel and driver are left out: they rarely change speed the way a CPU or GPU does.
 */
export function deriveHostClass(host: { cpuModel: string; physicalCores: number; gpus: readonly { name: string }[] }): string {
  const gpuCounts = new Map<string, number>();
  for (const gpu of host.gpus) gpuCounts.set(slug(gpu.name), (gpuCounts.get(slug(gpu.name)) ?? 0) + 1);
  const gpus = [...gpuCounts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => (n > 1 ? `${n}x${name}` : name));
  return [slug(host.cpuModel) || "unknown-cpu", `${host.physicalCores}c`, ...gpus].join("/");
}

/** Physical cores from /proc/cpuinfo (unique physical id + core id), else the logical count. */
export function physicalCoreCount(cpuinfo: string | null, logical: number): number {
  if (!cpuinfo) return logical;
  const cores = new Set<string>();
  let physical = "0";
  for (const line of cpuinfo.split("\n")) {
    const [key, value] = line.split(":").map((s) => s.trim());
    if (key === "physical id") physical = value ?? "0";
    if (key === "core id") cores.add(`${physical}:${value}`);
  }
  return cores.size > 0 ? cores.size : logical;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

export async function detectHost(env: NodeJS.ProcessEnv = process.env): Promise<HostInfo> {
  const logical = cpus().length;
  const physicalCores = physicalCoreCount(read("/proc/cpuinfo"), logical);
  const cpuModel = (cpus()[0]?.model ?? "unknown cpu").replace(/\s+/g, " ").trim();
  const osRelease = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(read("/etc/os-release") ?? "")?.[1];
  const gpus = await detectNvidiaGpus(env);
  return {
    cpuModel,
    physicalCores,
    logicalCores: logical,
    memoryBytes: totalmem(),
    os: osRelease ?? osType(),
    kernel: `${osType()} ${release()}`,
    gpus,
    hostClass: deriveHostClass({ cpuModel, physicalCores, gpus }),
  };
}

async function detectNvidiaGpus(env: NodeJS.ProcessEnv): Promise<GpuInfo[]> {
  const result = await runCommand(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"], {
    env,
    captureStdout: true,
    allowFailure: true,
    timeoutMs: 10_000,
  }).catch(() => null);
  if (!result || result.exitCode !== 0) return [];
  return result.stdout
    .split("\n")
    .map((line) => line.split(",").map((s) => s.trim()))
    .filter((f) => f.length === 3 && f[0])
    .map(([name, driver, mib]) => ({ name: name!, driver: driver!, memoryBytes: Number(mib) * 2 ** 20 }));
}

/**
 * Threads for a benchmark: the physical cores not already busy, never more (the engine's
 * threads busy-wait: oversubscribed, a token takes 1000x longer), and whether the load
 * makes the numbers noisy.
 */
export function benchThreads(physicalCores: number, load1 = loadavg()[0] ?? 0): { threads: number; noisy: boolean } {
  const busy = Math.floor(load1 + 0.25);
  return { threads: Math.max(1, physicalCores - busy), noisy: load1 > 0.5 };
}
