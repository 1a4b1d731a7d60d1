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
 * rebuilds. The CUDA plan itself is pipeline/engine-build/cuda-plan.ts.
 */
import { existsSync } from "node:fs";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PipelineError } from "../pipeline/core/errors.js";
import { runCommand } from "../pipeline/core/process.js";
import type { TaskDefinition, TaskPlanContext } from "../pipeline/core/graph.js";
import type { ToolInfo, ToolSpec } from "../pipeline/core/tools.js";
import type { Backend } from "../pipeline/config/engine-config.js";
import { probeNvidia, type NvidiaProbe } from "../pipeline/engine-build/nvidia.js";
import {
  assertCudaArchFlag,
  assertCudaBinary,
  assertDriverSupportsToolkit,
  assertNoPinnedCudaFlags,
  cudaBuildInputs,
  cudaConfigureArgs,
  describeCudaPlan,
  planCudaBuild,
  type CudaBuildInfo,
  type CudaBuildPlan,
} from "../pipeline/engine-build/cuda-plan.js";
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
      assertCudaArchFlag(settings.cudaArch);
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
        assertNoPinnedCudaFlags([...config.build.cmakeFlags, ...preset.cmakeFlags], configName);
        cuda = planCudaBuild({
          flag: settings.cudaArch,
          gpu: await probeNvidiaOnce(),
          config: preset.cudaArchitectures,
          configKey: `${configName} build.presets.cuda.cudaArchitectures`,
          compiler: await realpath(tools.nvcc!.path),
          nvccVersion: tools.nvcc!.version,
        });
      }
      const configureArgs = [
        `-DCMAKE_BUILD_TYPE=${config.build.buildType}`,
        `-DLLAMA_NATIVE=${settings.native ? "ON" : "OFF"}`,
        ...config.build.cmakeFlags,
        ...preset.cmakeFlags,
        ...(cuda ? cudaConfigureArgs(cuda) : []),
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
          ...(r.cuda ? cudaBuildInputs(r.cuda) : {}),
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
        for (const line of describeCudaPlan(r.cuda)) ctx.log(line);
        assertDriverSupportsToolkit(r.cuda);
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
