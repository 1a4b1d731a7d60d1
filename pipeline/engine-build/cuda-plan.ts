/**
 * CUDA build planning, for the `build` task (tasks/build.ts): which CMAKE_CUDA_ARCHITECTURES
 * to pass and why, which nvcc, the GPUs and driver it was planned for (a build input: another
 * GPU rebuilds), and the checks around the build: the flag and config are sane, the driver
 * can run what this toolkit produces, and the built `main` really uses CUDA. Pure functions
 * over what was probed (pipeline/engine-build/nvidia.ts), except assertCudaBinary, which reads the binary.
 */
import { PipelineError, UsageError } from "../core/errors.js";
import { CUDA_ARCHITECTURES } from "../config/engine-config.js";
import { compatibleToolkits, compareVersions, cudaArchitecturesOf, cudaLibrariesOf, parseNvccRelease, suggestCudacxx, type NvidiaGpu, type NvidiaProbe } from "./nvidia.js";

/** --cuda-arch as given: a CMAKE_CUDA_ARCHITECTURES list; a dotted compute capability ("8.9") gets its fix. */
export function assertCudaArchFlag(flag: string | undefined): void {
  if (flag === undefined || CUDA_ARCHITECTURES.test(flag)) return;
  const dotted = /^\d+\.\d+(;\d+\.\d+)*$/.test(flag) ? flag.replaceAll(".", "") : null;
  throw new UsageError(
    `--cuda-arch must be a CMAKE_CUDA_ARCHITECTURES list such as "89" or "80;86;89;90" (or native, all, all-major); got "${flag}"`,
    dotted ? [`Compute capability 8.9 is written 89: --cuda-arch "${dotted}".`] : [],
  );
}

/** Where CMAKE_CUDA_ARCHITECTURES came from, strongest first. */
export type CudaArchSource = "--cuda-arch" | "detected GPU" | "config" | "engine default";

export interface CudaArchChoice {
  /** The CMAKE_CUDA_ARCHITECTURES passed; null: none (the engine's own default, 52;61;70). */
  architectures: string | null;
  source: CudaArchSource;
  /** Why, in words (logged, and kept in the build result). */
  reason: string;
}

const describeGpus = (gpus: readonly NvidiaGpu[]) =>
  gpus.map((g) => `${g.name} (compute capability ${g.computeCap ?? "unknown"})`).join(", ");

/**
 * CMAKE_CUDA_ARCHITECTURES: an explicit --cuda-arch, else the compute capabilities of
 * the GPUs nvidia-smi lists (exact code for the card: no slow JIT from PTX at first
 * launch, none of upstream's "invalid device symbol" errors, a shorter build), else the
 * config's list (a machine without a GPU: a CI image building for others), else
 * nothing (the engine's default).
 */
export function chooseCudaArchitectures(options: { flag?: string; gpu: NvidiaProbe; config?: string; configKey: string }): CudaArchChoice {
  const { flag, gpu, config, configKey } = options;
  const detected = cudaArchitecturesOf(gpu.gpus);
  if (flag) {
    const note = detected && detected !== flag ? ` (the detected GPU would give ${detected})` : "";
    return { architectures: flag, source: "--cuda-arch", reason: `--cuda-arch ${flag}${note}` };
  }
  if (detected) return { architectures: detected, source: "detected GPU", reason: `detected GPU: ${describeGpus(gpu.gpus)}` };
  const why = gpu.gpus.length > 0 ? (gpu.problem ?? "nvidia-smi did not report a compute capability") : `no GPU detected (${gpu.problem ?? "nvidia-smi lists none"})`;
  if (config) return { architectures: config, source: "config", reason: `${configKey}: ${why}, so the configured architectures are kept` };
  return { architectures: null, source: "engine default", reason: `the engine's default (52;61;70): ${why} and ${configKey} is not set` };
}

/** What a CUDA build was made for and with: part of the build's inputs and of its result. */
export interface CudaBuildPlan {
  architectures: string | null;
  architecturesSource: CudaArchSource;
  architecturesReason: string;
  /** The nvcc passed as CMAKE_CUDA_COMPILER (real path). */
  compiler: string;
  /** nvcc's release, "12.4". */
  toolkitVersion: string | null;
  /** The GPUs nvidia-smi listed; [] without one. */
  gpus: NvidiaGpu[];
  driverVersion: string | null;
  /** The newest CUDA the driver supports. */
  driverCudaVersion: string | null;
}

export interface CudaBuildInfo extends CudaBuildPlan {
  /** The check that the binary is a CUDA one: the CUDA libraries it names. */
  binary: { path: string; libraries: string[] };
}

/**
 * A toolkit newer than the driver builds fine and then fails at run time (CUDA error
 * 222, "the provided PTX was compiled with an unsupported toolchain"): refuse it before
 * building. Only where a GPU answers: without one there is no driver to run on here.
 */
export function assertDriverSupportsToolkit(plan: CudaBuildPlan, searchRoots?: readonly string[]): void {
  const { driverCudaVersion: driver, toolkitVersion: toolkit } = plan;
  if (plan.gpus.length === 0 || !driver || !toolkit || compareVersions(toolkit, driver) <= 0) return;
  const older = compatibleToolkits(driver, searchRoots);
  const cudacxx = suggestCudacxx(driver, searchRoots);
  throw new PipelineError(
    "E_BUILD_BACKEND",
    `the NVIDIA driver supports CUDA up to ${driver}; nvcc is ${toolkit}: install a newer driver or an older toolkit (CUDACXX=${cudacxx})`,
    {
      details: [
        `Driver ${plan.driverVersion ?? "unknown"} (nvidia-smi), nvcc ${plan.compiler}.`,
        "Binaries from a toolkit newer than the driver fail when they start (CUDA error 222: the provided PTX was compiled with an unsupported toolchain).",
        older.length
          ? `Toolkits on this machine the driver supports: ${older.join(", ")}.`
          : `No toolkit of CUDA ${driver} or older was found under /usr/local or /opt; set CUDACXX to one's nvcc, or build with --backend cpu.`,
      ],
    },
  );
}

/** A CUDA build whose `main` names no CUDA library is a CPU build, whatever CMake said. */
export async function assertCudaBinary(file: string, shownAs: string): Promise<string[]> {
  const libraries = await cudaLibrariesOf(file);
  if (libraries.length > 0) return libraries;
  throw new PipelineError("E_BUILD_BACKEND", `${shownAs} is a CPU binary from a cuda build: it links neither libcudart nor libcublas.`, {
    details: [
      "CMake configured a CUDA build, but the engine was compiled without it (upstream would print \"warning: PowerInfer was compiled without cuBLAS\").",
      "Check that the cuda preset sets -DLLAMA_CUBLAS=ON (not llama.cpp's newer -DGGML_CUDA=ON) and that the CUDA toolkit includes cuBLAS.",
    ],
  });
}

const CUDA_PIN = /^-DCMAKE_CUDA_(ARCHITECTURES|COMPILER)(:[A-Z]+)?=/;

/** The configured cmakeFlags must leave the architectures and the compiler to the plan. */
export function assertNoPinnedCudaFlags(cmakeFlags: readonly string[], configName: string): void {
  const pinned = cmakeFlags.find((f) => CUDA_PIN.test(f));
  if (!pinned) return;
  throw new PipelineError("E_CONFIG_INVALID", `${configName}: the cmakeFlags set ${pinned.split("=")[0]!.slice(2)} ("${pinned}"), which the pipeline sets itself.`, {
    details: [
      "Set build.presets.cuda.cudaArchitectures (or pass --cuda-arch) for the architectures, and CUDACXX for the nvcc to use.",
      "Without them, a detected GPU's compute capability and the nvcc on PATH are used.",
    ],
  });
}

/** The plan from what was probed: the GPUs and driver, and nvcc (`compiler`: its real path; `nvccVersion`: its version line). */
export function planCudaBuild(options: { flag?: string; gpu: NvidiaProbe; config?: string; configKey: string; compiler: string; nvccVersion: string }): CudaBuildPlan {
  const { gpu } = options;
  const arch = chooseCudaArchitectures(options);
  return {
    architectures: arch.architectures,
    architecturesSource: arch.source,
    architecturesReason: arch.reason,
    compiler: options.compiler,
    toolkitVersion: parseNvccRelease(options.nvccVersion),
    gpus: gpu.gpus,
    driverVersion: gpu.driverVersion,
    driverCudaVersion: gpu.driverCudaVersion,
  };
}

/** The CMake flags the plan adds: the compiler, and the architectures when chosen. */
export function cudaConfigureArgs(plan: CudaBuildPlan): string[] {
  return [`-DCMAKE_CUDA_COMPILER=${plan.compiler}`, ...(plan.architectures ? [`-DCMAKE_CUDA_ARCHITECTURES=${plan.architectures}`] : [])];
}

/** The build inputs the plan adds: a different GPU or driver rebuilds, and the reason names where the architectures came from. */
export function cudaBuildInputs(plan: CudaBuildPlan): Record<string, string> {
  return {
    "CUDA architectures": `${plan.architectures ?? "engine default"} (${plan.architecturesSource})`,
    "GPU compute capabilities": [...new Set(plan.gpus.map((g) => g.computeCap ?? "unknown"))].sort().join(", ") || "none",
    "NVIDIA driver CUDA version": plan.driverCudaVersion ?? "none",
  };
}

/** What the build logs about the plan before it starts. */
export function describeCudaPlan(plan: CudaBuildPlan): string[] {
  return [
    `CUDA architectures: ${plan.architectures ?? "not set (the engine's default, 52;61;70)"} (${plan.architecturesReason})`,
    `nvcc: ${plan.compiler} (release ${plan.toolkitVersion ?? "unknown"})`,
    plan.gpus.length
      ? `GPUs: ${describeGpus(plan.gpus)}; driver ${plan.driverVersion ?? "unknown"} supports CUDA up to ${plan.driverCudaVersion ?? "unknown"}`
      : "GPUs: none answered (nvidia-smi): building without a GPU, the driver/toolkit check is skipped",
  ];
}
