/**
 * Task `build`: CMake configure + build of the engine into
 * build/powerinfer/<backend>-<short fingerprint>/. The fingerprint covers the source
 * commit, every CMake flag, and the cmake/compiler/nvcc identities, so a changed
 * toolchain gets a new build folder and an unchanged one is skipped.
 *
 * A cuda build is verified: CMAKE_CUDA_ARCHITECTURES follows the GPUs nvidia-smi lists
 * (unless --cuda-arch is given), nvcc is passed as CMAKE_CUDA_COMPILER, a driver older
 * than the toolkit stops it before configuring, and `main` must name the CUDA libraries.
 * The GPUs' compute capabilities and the driver's CUDA version are inputs: another GPU
 * rebuilds.
 */
import { existsSync } from "node:fs";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PipelineError, UsageError } from "../pipeline/core/errors.js";
import { runCommand } from "../pipeline/core/process.js";
import type { TaskDefinition, TaskPlanContext } from "../pipeline/core/graph.js";
import type { ToolInfo, ToolSpec } from "../pipeline/core/tools.js";
import { CUDA_ARCHITECTURES, type Backend } from "../pipeline/config/engine-config.js";
import {
  compareVersions,
  compatibleToolkits,
  cudaArchitecturesOf,
  cudaLibrariesOf,
  parseNvccRelease,
  probeNvidia,
  suggestCudacxx,
  type NvidiaGpu,
  type NvidiaProbe,
} from "../pipeline/nvidia.js";
import type { EngineSettings, Workspace } from "../pipeline/workspace.js";
import type { UpstreamResult } from "./upstream.js";
import { restoreCachedBuild, storeCachedBuild } from "./engine-cache.js";

export const TOOLS = {
  cmake: { command: "cmake", installHint: "Install CMake >= 3.17: apt-get install cmake (Debian/Ubuntu), brew install cmake (macOS)." },
  cc: { command: "cc", installHint: "Install a C/C++ compiler: apt-get install build-essential (Debian/Ubuntu), xcode-select --install (macOS)." },
  cxx: { command: "c++", installHint: "Install a C/C++ compiler: apt-get install build-essential (Debian/Ubuntu), xcode-select --install (macOS)." },
  nvcc: {
    command: "nvcc",
    installHint: "The cuda backend needs the CUDA toolkit: install it (apt-get install nvidia-cuda-toolkit, or NVIDIA's packages) and put its bin/ on PATH, or build with --backend cpu.",
    versionLine: /release/,
  },
  hipcc: { command: "hipcc", installHint: "The hip backend needs ROCm: install it and put /opt/rocm/bin on PATH, or build with --backend cpu." },
} satisfies Record<string, ToolSpec>;

export interface GpuProbe {
  nvcc: boolean;
  nvidiaGpu: boolean;
  hipcc: boolean;
  amdGpu: boolean;
}

/**
 * auto: CUDA where nvcc and an NVIDIA GPU are both present, HIP likewise, else CPU.
 * A toolkit without a GPU (a CI image, a laptop with leftovers) builds for the CPU:
 * binaries it could not run would be a surprise. --backend cuda builds them anyway.
 */
export function detectBackend(probe: GpuProbe): { backend: Backend; why: string } {
  if (probe.nvcc && probe.nvidiaGpu) return { backend: "cuda", why: "auto: nvcc and an NVIDIA GPU found" };
  if (probe.hipcc && probe.amdGpu) return { backend: "hip", why: "auto: hipcc and an AMD GPU found" };
  if (probe.nvcc) return { backend: "cpu", why: "auto: nvcc found but no NVIDIA GPU visible (pass --backend cuda to build CUDA binaries anyway)" };
  if (probe.hipcc) return { backend: "cpu", why: "auto: hipcc found but no AMD GPU visible (pass --backend hip to build anyway)" };
  return { backend: "cpu", why: "auto: no GPU toolkit found" };
}

async function probeGpus(workspace: Workspace, nvidia: () => Promise<NvidiaProbe>): Promise<GpuProbe> {
  const [nvcc, hipcc] = await Promise.all([workspace.tools.find(TOOLS.nvcc), workspace.tools.find(TOOLS.hipcc)]);
  return {
    nvcc: nvcc !== null,
    // nvidia-smi is asked only where nvcc is there: a CPU-only machine spawns nothing.
    nvidiaGpu: existsSync("/dev/nvidiactl") || existsSync("/proc/driver/nvidia/version") || (nvcc !== null && (await nvidia()).gpus.length > 0),
    hipcc: hipcc !== null,
    amdGpu: existsSync("/dev/kfd"),
  };
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

export interface BuildInfo {
  number: number | null;
  commit: string | null;
  compiler: string | null;
  target: string | null;
}

/** Parses the `main: build = 1590 (d3ebd7c)` / `main: built with ... for ...` lines. */
export function parseBuildInfo(stderr: string): BuildInfo {
  const build = /^main: build = (\d+) \(([^)]*)\)$/m.exec(stderr);
  const built = /^main: built with (.*) for (\S+)$/m.exec(stderr);
  return {
    number: build ? Number(build[1]) : null,
    commit: build ? build[2]! : null,
    compiler: built ? built[1]! : null,
    target: built ? built[2]! : null,
  };
}

/** CMake progress: `[ 45%] Building C object` (Makefiles) or `[12/80] Building` (Ninja). */
export function parseCmakeProgress(line: string): number | undefined {
  const percent = /^\[\s*(\d{1,3})%\]/.exec(line);
  if (percent) return Number(percent[1]);
  const ninja = /^\[(\d+)\/(\d+)\]/.exec(line);
  if (ninja) return Math.floor((100 * Number(ninja[1])) / Math.max(1, Number(ninja[2])));
  return undefined;
}

export interface BuildResult {
  backend: Backend;
  backendReason: string;
  buildDir: string;
  configureArgs: string[];
  targets: string[];
  binaries: Record<string, string>;
  buildInfo: BuildInfo;
  tools: Record<string, { path: string; version: string }>;
  sourceCommit: string;
  jobs: number;
  /** cuda builds only: architectures (and why), nvcc, GPUs, driver, and the binary check. */
  cuda?: CudaBuildInfo;
}

/** Env vars CMake and the compilers read: changing one changes the binaries. */
const BUILD_ENV = ["CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS", "CUDAFLAGS", "CUDACXX", "CMAKE_GENERATOR", "CUDA_PATH", "ROCM_PATH", "HIP_PATH"];

export function buildTask(workspace: Workspace, settings: EngineSettings): TaskDefinition<BuildResult> {
  const { config } = settings;
  const source = join(workspace.root, settings.upstream.path);
  const configName = "configs/engines/powerinfer.yaml";

  /** Everything that decides the binaries, resolved once per run. */
  let resolved:
    | Promise<{
        backend: Backend;
        why: string;
        configureArgs: string[];
        env: NodeJS.ProcessEnv;
        tools: Record<string, ToolInfo>;
        cuda: CudaBuildPlan | undefined;
      }>
    | undefined;
  let nvidia: Promise<NvidiaProbe> | undefined;
  const resolve = () =>
    (resolved ??= (async () => {
      const probeNvidiaOnce = () => (nvidia ??= probeNvidia(workspace.env));
      if (settings.cudaArch !== undefined && !CUDA_ARCHITECTURES.test(settings.cudaArch)) {
        const dotted = /^\d+\.\d+(;\d+\.\d+)*$/.test(settings.cudaArch) ? settings.cudaArch.replaceAll(".", "") : null;
        throw new UsageError(
          `--cuda-arch must be a CMAKE_CUDA_ARCHITECTURES list such as "89" or "80;86;89;90" (or native, all, all-major); got "${settings.cudaArch}"`,
          dotted ? [`Compute capability 8.9 is written 89: --cuda-arch "${dotted}".`] : [],
        );
      }
      const detected =
        settings.backend === "auto"
          ? detectBackend(await probeGpus(workspace, probeNvidiaOnce))
          : { backend: settings.backend, why: "--backend / config" };
      const preset = config.build.presets[detected.backend];
      if (!preset) {
        throw new PipelineError("E_CONFIG_INVALID", `${configName}: build.presets.${detected.backend} is not defined, but the build is for ${detected.backend}.`, {
          details: [`Add a build.presets.${detected.backend} entry, or choose another backend with --backend.`],
        });
      }
      const env = { ...workspace.env, ...preset.env };
      const probe = (spec: ToolSpec) => workspace.tools.require(spec);
      const tools: Record<string, ToolInfo> = {
        cmake: await probe(TOOLS.cmake),
        cc: await probe({ ...TOOLS.cc, command: env.CC || TOOLS.cc.command }),
        cxx: await probe({ ...TOOLS.cxx, command: env.CXX || TOOLS.cxx.command }),
      };
      if (detected.backend === "cuda") tools.nvcc = await probe({ ...TOOLS.nvcc, command: env.CUDACXX || TOOLS.nvcc.command });
      if (detected.backend === "hip") tools.hipcc = await probe(TOOLS.hipcc);
      await workspace.tools.save();

      let cuda: CudaBuildPlan | undefined;
      if (detected.backend === "cuda") {
        const pinned = [...config.build.cmakeFlags, ...preset.cmakeFlags].find((f) => CUDA_PIN.test(f));
        if (pinned) {
          throw new PipelineError("E_CONFIG_INVALID", `${configName}: the cmakeFlags set ${pinned.split("=")[0]!.slice(2)} ("${pinned}"), which the pipeline sets itself.`, {
            details: [
              "Set build.presets.cuda.cudaArchitectures (or pass --cuda-arch) for the architectures, and CUDACXX for the nvcc to use.",
              "Without them, a detected GPU's compute capability and the nvcc on PATH are used.",
            ],
          });
        }
        const gpu = await probeNvidiaOnce();
        const arch = chooseCudaArchitectures({
          flag: settings.cudaArch,
          gpu,
          config: preset.cudaArchitectures,
          configKey: `${configName} build.presets.cuda.cudaArchitectures`,
        });
        cuda = {
          architectures: arch.architectures,
          architecturesSource: arch.source,
          architecturesReason: arch.reason,
          compiler: await realpath(tools.nvcc!.path),
          toolkitVersion: parseNvccRelease(tools.nvcc!.version),
          gpus: gpu.gpus,
          driverVersion: gpu.driverVersion,
          driverCudaVersion: gpu.driverCudaVersion,
        };
      }
      const configureArgs = [
        `-DCMAKE_BUILD_TYPE=${config.build.buildType}`,
        `-DLLAMA_NATIVE=${settings.native ? "ON" : "OFF"}`,
        ...config.build.cmakeFlags,
        ...preset.cmakeFlags,
        ...(cuda ? [`-DCMAKE_CUDA_COMPILER=${cuda.compiler}`] : []),
        ...(cuda?.architectures ? [`-DCMAKE_CUDA_ARCHITECTURES=${cuda.architectures}`] : []),
      ];
      const why = cuda ? `${detected.why}; CUDA architectures ${cuda.architectures ?? "not set"} from ${cuda.architecturesReason}` : detected.why;
      return { ...detected, why, configureArgs, env, tools, cuda };
    })());

  const buildDirOf = (backend: Backend, fingerprint: string) => join("build", "powerinfer", `${backend}-${fingerprint.slice(0, 12)}`);

  return {
    id: "build",
    title: "Build PowerInfer",
    version: 1,
    dependsOn: ["upstream"],

    async inputs(_ctx: TaskPlanContext) {
      const r = await resolve();
      return {
        values: {
          backend: r.backend,
          "cmake flags": r.configureArgs,
          [`${configName}#build.targets`]: config.build.targets,
          // A different GPU or driver rebuilds, and the reason names where the architectures came from.
          ...(r.cuda
            ? {
                "CUDA architectures": `${r.cuda.architectures ?? "engine default"} (${r.cuda.architecturesSource})`,
                "GPU compute capabilities": [...new Set(r.cuda.gpus.map((g) => g.computeCap ?? "unknown"))].sort().join(", ") || "none",
                "NVIDIA driver CUDA version": r.cuda.driverCudaVersion ?? "none",
              }
            : {}),
        },
        env: BUILD_ENV.filter((name) => r.env[name] !== undefined || workspace.env[name] !== undefined),
        tools: Object.fromEntries(Object.entries(r.tools).map(([name, tool]) => [name, `${tool.version} (${tool.path})`])),
      };
    },

    async outputs(fingerprint) {
      const dir = buildDirOf((await resolve()).backend, fingerprint);
      return config.build.targets.map((target) => ({ path: join(dir, "bin", target), hash: true }));
    },

    async run(ctx) {
      const r = await resolve();
      const upstream = ctx.deps.get("upstream")?.result as UpstreamResult | undefined;
      const buildDir = buildDirOf(r.backend, ctx.fingerprint);
      const absBuildDir = join(ctx.root, buildDir);
      const timeoutMs = config.build.timeoutMinutes * 60_000;
      const onLine = (line: string) => {
        const percent = parseCmakeProgress(line);
        ctx.progress(percent === undefined ? { message: line } : { percent, message: line });
      };
      ctx.log(`backend: ${r.backend} (${r.why})`);
      if (r.cuda) {
        const c = r.cuda;
        ctx.log(`CUDA architectures: ${c.architectures ?? "not set (the engine's default, 52;61;70)"} (${c.architecturesReason})`);
        ctx.log(`nvcc: ${c.compiler} (release ${c.toolkitVersion ?? "unknown"})`);
        ctx.log(
          c.gpus.length
            ? `GPUs: ${describeGpus(c.gpus)}; driver ${c.driverVersion ?? "unknown"} supports CUDA up to ${c.driverCudaVersion ?? "unknown"}`
            : "GPUs: none answered (nvidia-smi): building without a GPU, the driver/toolkit check is skipped",
        );
        assertDriverSupportsToolkit(c);
      }

      const cache = settings.buildCache ? { cache: settings.buildCache, backend: r.backend, targets: config.build.targets, buildDir } : undefined;
      if (cache) {
        const restored = await restoreCachedBuild<BuildResult>(workspace, ctx, cache);
        if (restored) return restored;
      }

      ctx.progress({ percent: 0, message: `configuring (${r.backend})` });
      const configureLines: string[] = [];
      await ctx.run([r.tools.cmake!.path, "-S", source, "-B", absBuildDir, ...r.configureArgs], {
        env: r.env,
        timeoutMs,
        onLine: (line) => {
          configureLines.push(line);
          ctx.progress({ message: line });
        },
        installHint: TOOLS.cmake.installHint,
      });
      assertGpuBackendFound(r.backend, configureLines, ctx.logFile);
      await ctx.run(
        [r.tools.cmake!.path, "--build", absBuildDir, "--config", config.build.buildType, "-j", String(settings.jobs), "--target", ...config.build.targets],
        { env: r.env, timeoutMs, onLine },
      );

      const binaries: Record<string, string> = {};
      for (const target of config.build.targets) {
        const path = join(buildDir, "bin", target);
        if (!existsSync(join(ctx.root, path))) {
          throw new PipelineError("E_BUILD_OUTPUT", `the build finished but ${path} is missing`, {
            details: [`Check that target ${target} exists at this commit (${configName} build.targets).`, `Full log: ${ctx.logFile}`],
          });
        }
        binaries[target] = path;
      }
      let cuda: CudaBuildInfo | undefined;
      if (r.cuda) {
        const checked = binaries.main ?? Object.values(binaries)[0]!;
        const libraries = await assertCudaBinary(join(ctx.root, checked), checked);
        ctx.log(`${checked} links ${libraries.join(", ")}`);
        cuda = { ...r.cuda, binary: { path: checked, libraries } };
      }

      const result: BuildResult = {
        backend: r.backend,
        backendReason: r.why,
        buildDir,
        configureArgs: r.configureArgs,
        targets: config.build.targets,
        binaries,
        buildInfo: binaries.main ? await readBuildInfo(join(ctx.root, binaries.main), ctx.env) : parseBuildInfo(""),
        tools: Object.fromEntries(Object.entries(r.tools).map(([name, tool]) => [name, { path: tool.path, version: tool.version }])),
        sourceCommit: upstream?.commit ?? settings.upstream.commit,
        jobs: settings.jobs,
        ...(cuda ? { cuda } : {}),
      };
      if (cache) await storeCachedBuild(workspace, ctx, cache, binaries, result, settings.signingKeyFile);
      return result;
    },
  };
}

/**
 * The engine's CMake only warns when the GPU library is missing and then builds for
 * the CPU: a "cuda" build would silently not be one.
 */
const GPU_NOT_FOUND: Partial<Record<Backend, RegExp>> = {
  cuda: /cuBLAS not found/,
  hip: /hipBLAS or HIP not found/,
};

/**
 * What the engine's CMake prints when it does enable CUDA. Without it (no
 * -DLLAMA_CUBLAS=ON, or llama.cpp's newer -DGGML_CUDA=ON, which this engine ignores) the
 * build would be for the CPU: stop before spending minutes on it.
 */
const GPU_FOUND: Partial<Record<Backend, RegExp>> = {
  cuda: /cuBLAS found/,
};

export function assertGpuBackendFound(backend: Backend, configureOutput: readonly string[], logFile: string): void {
  const pattern = GPU_NOT_FOUND[backend];
  const line = pattern && configureOutput.find((l) => pattern.test(l));
  const found = GPU_FOUND[backend];
  if (!line && found && !configureOutput.some((l) => found.test(l))) {
    throw new PipelineError("E_BUILD_BACKEND", `a ${backend} build was asked for, but CMake never said "cuBLAS found": the binaries would be CPU-only.`, {
      details: [
        "Check that build.presets.cuda.cmakeFlags in configs/engines/powerinfer.yaml has -DLLAMA_CUBLAS=ON (this engine ignores llama.cpp's newer -DGGML_CUDA=ON).",
        `Configure log: ${logFile}`,
      ],
    });
  }
  if (!line) return;
  throw new PipelineError("E_BUILD_BACKEND", `a ${backend} build was asked for, but CMake did not find the GPU libraries ("${line.trim()}"): the binaries would be CPU-only.`, {
    details: [
      backend === "cuda"
        ? "Install the CUDA toolkit with cuBLAS and put nvcc on PATH (or set CUDACXX), or build with --backend cpu."
        : "Install ROCm with hipBLAS and set CMAKE_PREFIX_PATH=/opt/rocm, or build with --backend cpu.",
      `Configure log: ${logFile}`,
    ],
  });
}

/**
 * The build number and commit the binary reports. `main` prints them before it loads
 * a model, so pointing it at a missing file gets them without one. Not with
 * --log-disable, which silences those lines too; instead it runs in a scratch folder,
 * since main writes main.log into its working directory. A shallow checkout makes the
 * number 1 (upstream's full history gives 1590): the commit is what identifies it.
 */
async function readBuildInfo(main: string, env: NodeJS.ProcessEnv): Promise<BuildInfo> {
  const scratch = await mkdtemp(join(tmpdir(), "ai-tools-buildinfo-"));
  try {
    const result = await runCommand([main, "-m", join(scratch, "no-model.gguf")], {
      cwd: scratch,
      env,
      allowFailure: true,
      timeoutMs: 30_000,
      tailLines: 50,
    });
    return parseBuildInfo(result.tail.join("\n"));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
