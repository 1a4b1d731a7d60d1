/**
 * NVIDIA GPUs, driver and CUDA toolkit as a CUDA build sees them: which compute
 * capabilities to compile for (`nvidia-smi --query-gpu=compute_cap`), whether the driver
 * can run what this nvcc produces (the `CUDA Version:` in nvidia-smi's header is the
 * newest CUDA the driver supports), and whether a built binary really uses CUDA.
 * Used by the build step and by `doctor`. Nothing here needs a GPU: without one (or
 * without nvidia-smi) every probe answers "absent".
 */
import { existsSync, readdirSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { runCommand } from "../core/process.js";

export interface NvidiaGpu {
  name: string;
  /** "8.9"; null where the driver cannot report it (drivers before 510). */
  computeCap: string | null;
}

export interface NvidiaProbe {
  /** Empty when no GPU answered (no nvidia-smi, no driver, no device). */
  gpus: NvidiaGpu[];
  /** "550.54.15" */
  driverVersion: string | null;
  /** The newest CUDA the driver supports, "12.4". */
  driverCudaVersion: string | null;
  /** Why `gpus` is empty (or incomplete), in words. */
  problem: string | null;
}

const SMI_TIMEOUT_MS = 15_000;

async function smi(args: string[], env: NodeJS.ProcessEnv): Promise<{ ok: boolean; text: string } | null> {
  try {
    const result = await runCommand(["nvidia-smi", ...args], { env, captureStdout: true, allowFailure: true, timeoutMs: SMI_TIMEOUT_MS, tailLines: 5 });
    return { ok: result.exitCode === 0, text: result.exitCode === 0 ? result.stdout : [result.stdout, ...result.tail].join("\n") };
  } catch {
    return null; // not on PATH (or it hung)
  }
}

/** `| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |` */
export function parseSmiHeader(text: string): { driverVersion: string | null; cudaVersion: string | null } {
  return {
    driverVersion: /Driver Version:\s*([0-9][0-9.]*)/.exec(text)?.[1] ?? null,
    cudaVersion: /CUDA Version:\s*([0-9]+\.[0-9]+)/.exec(text)?.[1] ?? null,
  };
}

/** `nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`: "NVIDIA GeForce RTX 4090, 8.9" per GPU. */
export function parseGpuQuery(text: string, withComputeCap: boolean): NvidiaGpu[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      if (!withComputeCap) return { name: line, computeCap: null };
      const comma = line.lastIndexOf(",");
      const name = comma < 0 ? line : line.slice(0, comma).trim();
      const cap = comma < 0 ? "" : line.slice(comma + 1).trim();
      return { name, computeCap: /^\d+\.\d+$/.test(cap) ? cap : null };
    });
}

/** The first line nvidia-smi printed when it failed ("NVIDIA-SMI has failed because ..."). */
const firstLine = (text: string) => (text.split("\n").map((l) => l.trim()).find(Boolean) ?? "no output").replace(/\.$/, "");

export async function probeNvidia(env: NodeJS.ProcessEnv): Promise<NvidiaProbe> {
  const [header, query] = await Promise.all([smi([], env), smi(["--query-gpu=name,compute_cap", "--format=csv,noheader"], env)]);
  const none = (problem: string): NvidiaProbe => ({ gpus: [], driverVersion: null, driverCudaVersion: null, problem });
  if (header === null) return none("nvidia-smi is not on PATH");
  if (!header.ok) return none(`nvidia-smi failed: ${firstLine(header.text)}`);
  const { driverVersion, cudaVersion } = parseSmiHeader(header.text);
  let gpus = query?.ok ? parseGpuQuery(query.text, true) : [];
  let problem: string | null = null;
  if (!query?.ok) {
    // Drivers before 510 do not know the compute_cap field: names only.
    const names = await smi(["--query-gpu=name", "--format=csv,noheader"], env);
    gpus = names?.ok ? parseGpuQuery(names.text, false) : [];
    problem = "nvidia-smi does not report compute capabilities (driver older than 510?)";
  }
  if (gpus.length === 0) return { ...none(problem ?? "nvidia-smi lists no GPU"), driverVersion, driverCudaVersion: cudaVersion };
  if (!problem && gpus.some((g) => g.computeCap === null)) problem = "nvidia-smi did not report the compute capability of every GPU";
  return { gpus, driverVersion, driverCudaVersion: cudaVersion, problem };
}

/** "8.9" -> "89"; several GPUs -> the distinct list in ascending order, "86;89". Null when none is known. */
export function cudaArchitecturesOf(gpus: readonly NvidiaGpu[]): string | null {
  const archs = [...new Set(gpus.flatMap((g) => (g.computeCap ? [Number(g.computeCap.replace(".", ""))] : [])))].sort((a, b) => a - b);
  return archs.length ? archs.join(";") : null;
}

/** "Cuda compilation tools, release 12.4, V12.4.131" -> "12.4". */
export function parseNvccRelease(versionLine: string): string | null {
  return /release (\d+\.\d+)/.exec(versionLine)?.[1] ?? null;
}

/** Compares "12.4" and "13.0" numerically, part by part. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/**
 * Other CUDA toolkits installed side by side (/usr/local/cuda-12.4, /opt/cuda-12.4),
 * newest first, that the given driver can run: what to point CUDACXX at.
 */
export function compatibleToolkits(driverCuda: string, roots: readonly string[] = ["/usr/local", "/opt"]): string[] {
  const found: { version: string; nvcc: string }[] = [];
  for (const root of roots) {
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      continue;
    }
    for (const name of names) {
      const version = /^cuda-(\d+\.\d+)$/.exec(name)?.[1];
      const nvcc = join(root, name, "bin", "nvcc");
      if (version && compareVersions(version, driverCuda) <= 0 && existsSync(nvcc)) found.push({ version, nvcc });
    }
  }
  return found.sort((a, b) => compareVersions(b.version, a.version)).map((t) => t.nvcc);
}

/** What to set CUDACXX to for this driver: a compatible toolkit found here, else the usual place of one. */
export function suggestCudacxx(driverCuda: string, roots?: readonly string[]): string {
  return compatibleToolkits(driverCuda, roots)[0] ?? `/usr/local/cuda-${driverCuda}/bin/nvcc`;
}

/**
 * Library names a CUDA build of the engine carries: the dynamic section of a Linux
 * binary names libcudart/libcublas (DT_NEEDED), a Windows one cudart64_NN.dll /
 * cublas64_NN.dll; a static build (LLAMA_STATIC) still loads the driver, libcuda.so.1.
 * A CPU build names none of them.
 */
export const CUDA_LIBRARY = /lib(?:cudart|cublas|cublasLt)\.so(?:\.\d+)*|(?:cudart|cublas|cublasLt)64_\d+\.dll|libcuda\.so\.1/g;
const CHUNK = 1 << 20;
const OVERLAP = 64;

/**
 * The CUDA libraries a binary links (distinct, in the order found), or [] for a CPU
 * binary. Reads the file in chunks and stops at the first chunk that names one: the
 * dynamic string table sits near the start, so a CUDA binary is read only a little.
 */
export async function cudaLibrariesOf(file: string): Promise<string[]> {
  const handle = await open(file, "r");
  try {
    const buffer = Buffer.alloc(CHUNK + OVERLAP);
    let carried = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, carried, CHUNK, null);
      if (bytesRead === 0) return [];
      const end = carried + bytesRead;
      const text = buffer.toString("latin1", 0, end);
      const found = [...new Set(text.match(CUDA_LIBRARY) ?? [])];
      if (found.length) return found;
      carried = Math.min(OVERLAP, end);
      buffer.copy(buffer, 0, end - carried, end);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Whether code built for these CMAKE_CUDA_ARCHITECTURES runs on a GPU of compute
 * capability `cap`: native code for the same major version and a minor at most the
 * GPU's, else PTX of an older architecture that the driver compiles at first launch.
 */
export function archSupport(architectures: string, cap: string): "native" | "compatible" | "ptx" | "none" | "unknown" {
  const entries = architectures.split(";").map((a) => a.trim()).filter(Boolean);
  if (entries.some((a) => !/^\d/.test(a))) return "unknown"; // native, all, all-major
  const [gMajor, gMinor] = cap.split(".").map(Number) as [number, number];
  const gpu = gMajor * 10 + gMinor;
  let best: "native" | "compatible" | "ptx" | "none" = "none";
  for (const entry of entries) {
    const m = /^(\d+)[a-z]?(?:-(real|virtual))?$/.exec(entry);
    if (!m) return "unknown";
    const arch = Number(m[1]);
    const kind = m[2];
    const major = Math.floor(arch / 10);
    if (kind !== "virtual") {
      if (arch === gpu) return "native";
      if (major === gMajor && arch < gpu) best = "compatible";
    }
    if (kind !== "real" && arch <= gpu && best === "none") best = "ptx";
  }
  return best;
}
