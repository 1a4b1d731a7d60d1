/**
 * Verified GPU builds, without a GPU: fake `nvidia-smi` and `nvcc` scripts on PATH
 * (printing the real formats) drive the fixture engine's build with --backend cuda.
 * Architectures follow the detected GPU unless --cuda-arch is given, a driver older
 * than the toolkit stops the build before it starts, a "cuda" build whose `main` is a
 * CPU binary is refused, and `doctor` reports all of it.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertGpuBackendFound, type BuildResult } from "../tasks/build.js";
import {
  assertCudaArchFlag,
  assertCudaBinary,
  assertDriverSupportsToolkit,
  assertNoPinnedCudaFlags,
  chooseCudaArchitectures,
  cudaBuildInputs,
  cudaConfigureArgs,
  describeCudaPlan,
  planCudaBuild,
  type CudaBuildPlan,
} from "../pipeline/engine-build/cuda-plan.js";
import {
  archSupport,
  compareVersions,
  cudaArchitecturesOf,
  cudaLibrariesOf,
  parseGpuQuery,
  parseNvccRelease,
  parseSmiHeader,
  probeNvidia,
  type NvidiaProbe,
} from "../pipeline/engine-build/nvidia.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";

const SMI_HEADER = (cuda: string) => `Tue Nov 26 18:00:00 2025
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: ${cuda}     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|=========================================+========================+======================|
|   0  NVIDIA GeForce RTX 4090        Off |   00000000:01:00.0 Off |                  Off |
|  0%   34C    P8             21W /  450W |       2MiB /  24564MiB |      0%      Default |
+-----------------------------------------+------------------------+----------------------+
`;

/**
 * nvidia-smi as a 550 driver prints it. FAKE_SMI_CAPS: one GPU per compute capability
 * (default 8.9); FAKE_SMI_CUDA: the driver's CUDA (default 12.4); FAKE_SMI_FAIL=1: no
 * driver; FAKE_SMI_OLD=1: a driver that does not know the compute_cap field.
 */
const FAKE_SMI = `#!/bin/sh
if [ -n "\${FAKE_SMI_FAIL:-}" ]; then
  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
  exit 9
fi
caps="\${FAKE_SMI_CAPS:-8.9}"
cuda="\${FAKE_SMI_CUDA:-12.4}"
case "\${1:-}" in
  "")
    cat <<EOF
${SMI_HEADER("$cuda")}EOF
    ;;
  --query-gpu=*)
    fields=\${1#--query-gpu=}
    for cap in $(echo "$caps" | tr , ' '); do
      case $cap in 9.0) name="NVIDIA H100 80GB HBM3" ;; 8.6) name="NVIDIA GeForce RTX 3090" ;; *) name="NVIDIA GeForce RTX 4090" ;; esac
      line=""
      for f in $(echo "$fields" | tr , ' '); do
        case $f in
          name) v=$name ;;
          driver_version) v=550.54.15 ;;
          compute_cap)
            if [ -n "\${FAKE_SMI_OLD:-}" ]; then echo "Field \\"compute_cap\\" is not a valid field to query."; exit 2; fi
            v=$cap ;;
          *) echo "Field \\"$f\\" is not a valid field to query."; exit 2 ;;
        esac
        line="\${line:+$line, }$v"
      done
      echo "$line"
    done
    ;;
  *) exit 2 ;;
esac
`;

const fakeNvcc = (release: string, build: string) => `#!/bin/sh
echo "nvcc: NVIDIA (R) Cuda compiler driver"
echo "Copyright (c) 2005-2024 NVIDIA Corporation"
echo "Built on Thu_Mar_28_02:18:24_PDT_2024"
echo "Cuda compilation tools, release ${release}, V${build}"
echo "Build cuda_${release}.r${release}/compiler.34097967_0"
`;

function writeScript(path: string, text: string): string {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

describe("nvidia-smi and nvcc output", () => {
  it("reads the driver and its CUDA version from the header, GPUs and compute capabilities from --query-gpu", () => {
    expect(parseSmiHeader(SMI_HEADER("12.4"))).toEqual({ driverVersion: "550.54.15", cudaVersion: "12.4" });
    expect(parseSmiHeader("garbage")).toEqual({ driverVersion: null, cudaVersion: null });
    expect(parseGpuQuery("NVIDIA GeForce RTX 4090, 8.9\nNVIDIA H100 80GB HBM3, 9.0\n", true)).toEqual([
      { name: "NVIDIA GeForce RTX 4090", computeCap: "8.9" },
      { name: "NVIDIA H100 80GB HBM3", computeCap: "9.0" },
    ]);
    expect(parseGpuQuery("Tesla K80, [N/A]\n", true)).toEqual([{ name: "Tesla K80", computeCap: null }]);
    expect(parseGpuQuery("Tesla K80\n", false)).toEqual([{ name: "Tesla K80", computeCap: null }]);
    expect(parseNvccRelease("Cuda compilation tools, release 12.4, V12.4.131")).toBe("12.4");
    expect(parseNvccRelease("unknown")).toBeNull();
  });

  it("turns compute capabilities into CMAKE_CUDA_ARCHITECTURES: distinct, ascending", () => {
    const gpus = (...caps: (string | null)[]) => caps.map((computeCap) => ({ name: "g", computeCap }));
    expect(cudaArchitecturesOf(gpus("8.9"))).toBe("89");
    expect(cudaArchitecturesOf(gpus("9.0", "8.9", "8.9"))).toBe("89;90");
    expect(cudaArchitecturesOf(gpus("12.0", "8.6"))).toBe("86;120");
    expect(cudaArchitecturesOf(gpus(null))).toBeNull();
    expect(cudaArchitecturesOf([])).toBeNull();
  });

  it("compares versions numerically", () => {
    expect(compareVersions("12.4", "13.0")).toBe(-1);
    expect(compareVersions("12.10", "12.4")).toBe(1);
    expect(compareVersions("12.4", "12.4")).toBe(0);
  });

  it("says whether code for some architectures runs on a card", () => {
    expect(archSupport("89", "8.9")).toBe("native");
    expect(archSupport("75;80;86;89;90", "8.9")).toBe("native");
    expect(archSupport("80", "8.6")).toBe("compatible");
    expect(archSupport("89", "9.0")).toBe("ptx");
    expect(archSupport("89-real", "9.0")).toBe("none");
    expect(archSupport("90", "8.9")).toBe("none");
    expect(archSupport("native", "8.9")).toBe("unknown");
  });
});

describe("probeNvidia (fake nvidia-smi)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ai-tools-smi-"));
    writeScript(join(dir, "nvidia-smi"), FAKE_SMI);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const env = (extra: NodeJS.ProcessEnv = {}) => ({ PATH: `${dir}:/usr/bin:/bin`, ...extra });

  it("lists the GPUs, the driver and the CUDA it supports", async () => {
    expect(await probeNvidia(env({ FAKE_SMI_CAPS: "8.9,9.0" }))).toEqual({
      gpus: [
        { name: "NVIDIA GeForce RTX 4090", computeCap: "8.9" },
        { name: "NVIDIA H100 80GB HBM3", computeCap: "9.0" },
      ],
      driverVersion: "550.54.15",
      driverCudaVersion: "12.4",
      problem: null,
    });
  });

  it("answers 'no GPU' without nvidia-smi, or when it cannot reach a driver", async () => {
    expect(await probeNvidia({ PATH: "/nonexistent" })).toMatchObject({ gpus: [], driverCudaVersion: null, problem: "nvidia-smi is not on PATH" });
    const failed = await probeNvidia(env({ FAKE_SMI_FAIL: "1" }));
    expect(failed.gpus).toEqual([]);
    expect(failed.problem).toContain("nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver");
  });

  it("a driver too old for the compute_cap field still lists the GPUs, without capabilities", async () => {
    const old = await probeNvidia(env({ FAKE_SMI_OLD: "1" }));
    expect(old.gpus).toEqual([{ name: "NVIDIA GeForce RTX 4090", computeCap: null }]);
    expect(old.problem).toContain("does not report compute capabilities");
  });
});

describe("chooseCudaArchitectures: --cuda-arch > detected GPU > config > engine default", () => {
  const configKey = "configs/engines/powerinfer.yaml build.presets.cuda.cudaArchitectures";
  const gpu = (caps: string[], problem: string | null = null): NvidiaProbe => ({
    gpus: caps.map((c) => ({ name: `GPU ${c}`, computeCap: c })),
    driverVersion: caps.length ? "550.54.15" : null,
    driverCudaVersion: caps.length ? "12.4" : null,
    problem,
  });

  it("picks in that order and says why", () => {
    expect(chooseCudaArchitectures({ flag: "86", gpu: gpu(["8.9"]), config: "75;80", configKey })).toEqual({
      architectures: "86",
      source: "--cuda-arch",
      reason: "--cuda-arch 86 (the detected GPU would give 89)",
    });
    expect(chooseCudaArchitectures({ gpu: gpu(["8.9", "9.0"]), config: "75;80", configKey })).toEqual({
      architectures: "89;90",
      source: "detected GPU",
      reason: "detected GPU: GPU 8.9 (compute capability 8.9), GPU 9.0 (compute capability 9.0)",
    });
    const ci = chooseCudaArchitectures({ gpu: gpu([], "nvidia-smi is not on PATH"), config: "75;80", configKey });
    expect(ci).toMatchObject({ architectures: "75;80", source: "config" });
    expect(ci.reason).toBe(`${configKey}: no GPU detected (nvidia-smi is not on PATH), so the configured architectures are kept`);
    const bare = chooseCudaArchitectures({ gpu: gpu([], "nvidia-smi is not on PATH"), configKey });
    expect(bare).toMatchObject({ architectures: null, source: "engine default" });
    expect(bare.reason).toContain("the engine's default (52;61;70)");
  });

  it("plans a build from what was probed: the flags CMake gets, the inputs that rebuild on another GPU", () => {
    const plan = planCudaBuild({ gpu: gpu(["8.9", "8.9"]), configKey, compiler: "/usr/local/cuda-12.4/bin/nvcc", nvccVersion: "Cuda compilation tools, release 12.4, V12.4.131" });
    expect(plan).toMatchObject({ architectures: "89", architecturesSource: "detected GPU", compiler: "/usr/local/cuda-12.4/bin/nvcc", toolkitVersion: "12.4", driverCudaVersion: "12.4" });
    expect(cudaConfigureArgs(plan)).toEqual(["-DCMAKE_CUDA_COMPILER=/usr/local/cuda-12.4/bin/nvcc", "-DCMAKE_CUDA_ARCHITECTURES=89"]);
    expect(cudaBuildInputs(plan)).toEqual({ "CUDA architectures": "89 (detected GPU)", "GPU compute capabilities": "8.9", "NVIDIA driver CUDA version": "12.4" });
    const bare = planCudaBuild({ gpu: gpu([], "nvidia-smi is not on PATH"), configKey, compiler: "/usr/bin/nvcc", nvccVersion: "" });
    expect(cudaConfigureArgs(bare)).toEqual(["-DCMAKE_CUDA_COMPILER=/usr/bin/nvcc"]);
    expect(cudaBuildInputs(bare)).toEqual({ "CUDA architectures": "engine default (engine default)", "GPU compute capabilities": "none", "NVIDIA driver CUDA version": "none" });
    expect(describeCudaPlan(bare).at(-1)).toBe("GPUs: none answered (nvidia-smi): building without a GPU, the driver/toolkit check is skipped");
  });

  it("refuses flags the plan sets itself, and a dotted --cuda-arch with its fix", () => {
    expect(() => assertNoPinnedCudaFlags(["-DLLAMA_CUBLAS=ON", "-DCMAKE_CUDA_ARCHITECTURES:STRING=80"], "powerinfer.yaml")).toThrow(
      'powerinfer.yaml: the cmakeFlags set CMAKE_CUDA_ARCHITECTURES:STRING ("-DCMAKE_CUDA_ARCHITECTURES:STRING=80"), which the pipeline sets itself.',
    );
    expect(() => assertNoPinnedCudaFlags(["-DLLAMA_CUBLAS=ON"], "powerinfer.yaml")).not.toThrow();
    expect(() => assertCudaArchFlag("8.9")).toThrow(expect.objectContaining({ code: "E_USAGE", details: ['Compute capability 8.9 is written 89: --cuda-arch "89".'] }));
    expect(() => assertCudaArchFlag("80;86")).not.toThrow();
  });
});

describe("build checks", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ai-tools-cuda-checks-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("finds the CUDA libraries a binary names, also across the read chunks", async () => {
    const cpu = join(dir, "cpu");
    writeFileSync(cpu, Buffer.concat([Buffer.from("\x7fELF"), Buffer.alloc(3 << 20, 1), Buffer.from("libc.so.6\0libm.so.6\0")]));
    expect(await cudaLibrariesOf(cpu)).toEqual([]);
    const straddling = join(dir, "straddling");
    const name = Buffer.from("libcudart.so.12\0");
    writeFileSync(straddling, Buffer.concat([Buffer.alloc((1 << 20) - 5, 0), name, Buffer.from("libcublas.so.12\0")]));
    expect(await cudaLibrariesOf(straddling)).toEqual(["libcudart.so.12", "libcublas.so.12"]);
    const statics = join(dir, "static");
    writeFileSync(statics, Buffer.concat([Buffer.alloc(100, 0), Buffer.from("libcuda.so.1\0")]));
    expect(await cudaLibrariesOf(statics)).toEqual(["libcuda.so.1"]);
    await expect(assertCudaBinary(cpu, "build/x/bin/main")).rejects.toMatchObject({
      code: "E_BUILD_BACKEND",
      message: "build/x/bin/main is a CPU binary from a cuda build: it links neither libcudart nor libcublas.",
    });
  });

  it("a cuda configure must say cuBLAS found (a missing -DLLAMA_CUBLAS=ON stops before the build)", () => {
    expect(() => assertGpuBackendFound("cuda", ["-- Configuring done"], "log")).toThrowError(
      expect.objectContaining({ code: "E_BUILD_BACKEND", message: expect.stringContaining('CMake never said "cuBLAS found"') }),
    );
    expect(() => assertGpuBackendFound("cuda", ["-- cuBLAS found"], "log")).not.toThrow();
    expect(() => assertGpuBackendFound("cpu", ["-- Configuring done"], "log")).not.toThrow();
  });

  it("refuses a toolkit newer than the driver, and names an older one installed beside it", () => {
    const plan: CudaBuildPlan = {
      architectures: "89",
      architecturesSource: "detected GPU",
      architecturesReason: "detected GPU",
      compiler: "/usr/local/cuda-13.0/bin/nvcc",
      toolkitVersion: "13.0",
      gpus: [{ name: "NVIDIA GeForce RTX 4090", computeCap: "8.9" }],
      driverVersion: "550.54.15",
      driverCudaVersion: "12.4",
    };
    for (const v of ["12.2", "12.8", "11.8"]) writeScript(join(dir, "local", `cuda-${v}`, "bin", "nvcc"), "#!/bin/sh\n");
    let error: unknown;
    try {
      assertDriverSupportsToolkit(plan, [join(dir, "local")]);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      code: "E_BUILD_BACKEND",
      message: `the NVIDIA driver supports CUDA up to 12.4; nvcc is 13.0: install a newer driver or an older toolkit (CUDACXX=${join(dir, "local", "cuda-12.2", "bin", "nvcc")})`,
    });
    expect(() => assertDriverSupportsToolkit({ ...plan, toolkitVersion: "12.4" })).not.toThrow();
    // Without a GPU there is no driver here to run on: nothing to check.
    expect(() => assertDriverSupportsToolkit({ ...plan, gpus: [], driverCudaVersion: null })).not.toThrow();
  });
});

describe("cuda builds of the fixture engine with fake nvidia-smi and nvcc", () => {
  let ws: TestWorkspace;
  let smiDir: string;
  let nvcc124: string;
  let nvcc130: string;
  const configures = () => join(ws.root, "configures.count");
  const configureCount = () => (existsSync(configures()) ? readFileSync(configures(), "utf8").split("\n").filter(Boolean).length : 0);
  /** A machine with an RTX 4090 (driver 550, CUDA 12.4) and the CUDA 12.4 toolkit on PATH. */
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: `${smiDir}:${join(nvcc124, "..")}:${process.env.PATH}`,
    FIXTURE_CUBLAS: "found",
    FIXTURE_CONFIGURE_COUNTER: configures(),
    ...extra,
  });
  const result = () => ws.record("build")!.result as BuildResult;

  beforeAll(() => {
    ws = makeWorkspace();
    ws.writeConfig((y) => y.replace("presets:\n", 'presets:\n    cuda:\n      cmakeFlags: ["-DLLAMA_CUBLAS=ON"]\n      cudaArchitectures: "75;80;86;89;90"\n'));
    smiDir = join(ws.root, "fake-driver");
    writeScript(join(smiDir, "nvidia-smi"), FAKE_SMI);
    nvcc124 = realpathSync(writeScript(join(ws.root, "fake-cuda-12.4", "bin", "nvcc"), fakeNvcc("12.4", "12.4.131")));
    nvcc130 = realpathSync(writeScript(join(ws.root, "fake-cuda-13.0", "bin", "nvcc"), fakeNvcc("13.0", "13.0.88")));
  });
  afterAll(() => ws.cleanup());

  it("builds for the detected GPU with the nvcc found, and checks the binary", async () => {
    const run = await ws.cli(["engine", "--backend", "cuda"], env());
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const r = result();
    expect(r.backend).toBe("cuda");
    expect(r.configureArgs).toContain("-DCMAKE_CUDA_ARCHITECTURES=89");
    expect(r.configureArgs).toContain(`-DCMAKE_CUDA_COMPILER=${nvcc124}`);
    expect(r.backendReason).toContain("CUDA architectures 89 from detected GPU: NVIDIA GeForce RTX 4090 (compute capability 8.9)");
    expect(r.cuda).toMatchObject({
      architectures: "89",
      architecturesSource: "detected GPU",
      compiler: nvcc124,
      toolkitVersion: "12.4",
      gpus: [{ name: "NVIDIA GeForce RTX 4090", computeCap: "8.9" }],
      driverVersion: "550.54.15",
      driverCudaVersion: "12.4",
      binary: { path: `${r.buildDir}/bin/main`, libraries: ["libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12"] },
    });
    // The engine's configure saw both.
    const log = readFileSync(join(ws.root, "build", "logs", "build.log"), "utf8");
    expect(log).toContain(`-- fixture: CUDA compiler ${nvcc124}, architectures 89`);
    expect(log).toContain("CUDA architectures: 89 (detected GPU: NVIDIA GeForce RTX 4090 (compute capability 8.9))");
    expect((await ws.cli(["status", "--backend", "cuda"], env())).stdout).toMatch(/^build\s+fresh$/m);
  });

  it("another GPU rebuilds, and the reason says where the architectures come from", async () => {
    const twoGpus = env({ FAKE_SMI_CAPS: "8.9,9.0" });
    const plan = await ws.cli(["plan", "engine", "--backend", "cuda"], twoGpus);
    expect(plan.stdout).toContain('input CUDA architectures changed: "89 (detected GPU)" -> "89;90 (detected GPU)"');
    expect(plan.stdout).toContain('input GPU compute capabilities changed: "8.9" -> "8.9, 9.0"');
    const run = await ws.cli(["engine", "--backend", "cuda"], twoGpus);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(result().configureArgs).toContain("-DCMAKE_CUDA_ARCHITECTURES=89;90");
  });

  it("an explicit --cuda-arch wins over the detected GPU; a dotted one is a usage error", async () => {
    const run = await ws.cli(["engine", "--backend", "cuda", "--cuda-arch", "86"], env());
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const r = result();
    expect(r.configureArgs).toContain("-DCMAKE_CUDA_ARCHITECTURES=86");
    expect(r.configureArgs.filter((a) => a.startsWith("-DCMAKE_CUDA_ARCHITECTURES="))).toHaveLength(1);
    expect(r.cuda).toMatchObject({ architectures: "86", architecturesSource: "--cuda-arch", architecturesReason: "--cuda-arch 86 (the detected GPU would give 89)" });

    const dotted = await ws.cli(["engine", "--backend", "cuda", "--cuda-arch", "8.9"], env());
    expect(dotted.code).toBe(1);
    expect(dotted.stdout + dotted.stderr).toContain('--cuda-arch must be a CMAKE_CUDA_ARCHITECTURES list such as "89" or "80;86;89;90"');
    expect(dotted.stdout + dotted.stderr).toContain('--cuda-arch "89"');
  });

  it("a driver older than the toolkit fails before configuring, with what to do", async () => {
    const before = configureCount();
    const run = await ws.cli(["engine", "--backend", "cuda"], env({ CUDACXX: nvcc130 }));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(
      "[E_BUILD_BACKEND]: the NVIDIA driver supports CUDA up to 12.4; nvcc is 13.0: install a newer driver or an older toolkit (CUDACXX=",
    );
    expect(run.stdout).toContain("CUDA error 222");
    expect(configureCount()).toBe(before);
  });

  it("without a GPU (CI), keeps the configured architectures, says so, and skips the driver check", async () => {
    const run = await ws.cli(["engine", "--backend", "cuda"], env({ FAKE_SMI_FAIL: "1", CUDACXX: nvcc130 }));
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const r = result();
    expect(r.configureArgs).toContain("-DCMAKE_CUDA_ARCHITECTURES=75;80;86;89;90");
    expect(r.configureArgs).toContain(`-DCMAKE_CUDA_COMPILER=${nvcc130}`);
    expect(r.cuda).toMatchObject({ architecturesSource: "config", gpus: [], driverCudaVersion: null, toolkitVersion: "13.0" });
    expect(r.cuda!.architecturesReason).toContain("no GPU detected (nvidia-smi failed: NVIDIA-SMI has failed");
    expect(r.backendReason).toContain("so the configured architectures are kept");
  });

  it("refuses a cuda build whose main is a CPU binary", async () => {
    const run = await ws.cli(["engine", "--backend", "cuda", "--force", "build"], env({ FIXTURE_CUBLAS: "found-cpu" }));
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/\[E_BUILD_BACKEND\]: build\/powerinfer\/cuda-[0-9a-f]{12}\/bin\/main is a CPU binary from a cuda build: it links neither libcudart nor libcublas/);
    expect(ws.record("build")).toBeNull();
  });

  it("doctor reports the GPU, driver, toolkit and whether the built engine uses them", async () => {
    expect((await ws.cli(["engine", "--backend", "cuda"], env())).code).toBe(0);
    const doctor = await ws.cli(["doctor"], env());
    expect(doctor.stdout).toMatch(/^ok {6}NVIDIA GPU 0\s+NVIDIA GeForce RTX 4090, compute capability 8\.9 \(CMAKE_CUDA_ARCHITECTURES 89\)$/m);
    expect(doctor.stdout).toMatch(/^ok {6}NVIDIA driver\s+550\.54\.15, supports CUDA up to 12\.4$/m);
    expect(doctor.stdout).toMatch(/^ok {6}nvcc\s+Cuda compilation tools, release 12\.4, V12\.4\.131 \(/m);
    expect(doctor.stdout).toMatch(/^ok {6}nvcc vs driver\s+nvcc 12\.4 <= CUDA 12\.4 of the driver/m);
    expect(doctor.stdout).toMatch(
      /^ok {6}built engine\s+cuda build \(build\/powerinfer\/cuda-\w+\); \S+\/bin\/main links libcudart\.so\.12, libcublas\.so\.12, libcublasLt\.so\.12; architectures 89 \(detected GPU\), nvcc 12\.4; GPU 0 \(8\.9\): native code$/m,
    );

    // An H100 and nvcc 13: the engine only has PTX for it, and the toolkit is too new.
    const other = await ws.cli(["doctor", "--json"], env({ FAKE_SMI_CAPS: "9.0", CUDACXX: nvcc130 }));
    const rows = other.stdout.trim().split("\n").map((l) => JSON.parse(l) as { name: string; status: string; detail: string; hint?: string });
    const row = (name: string) => rows.find((r) => r.name === name)!;
    expect(row("NVIDIA GPU 0")).toMatchObject({ status: "ok", detail: "NVIDIA H100 80GB HBM3, compute capability 9.0 (CMAKE_CUDA_ARCHITECTURES 90)" });
    expect(row("nvcc vs driver")).toMatchObject({ status: "optional-missing", hint: expect.stringContaining("install a newer driver or an older toolkit") });
    expect(row("built engine").status).toBe("optional-missing");
    expect(row("built engine").detail).toContain("GPU 0 (9.0): only PTX");

    // No GPU: "absent" rows, never a failure because of them.
    const none = await ws.cli(["doctor"], env({ FAKE_SMI_FAIL: "1" }));
    expect(none.stdout).toMatch(/^absent  NVIDIA GPU\s+none \(nvidia-smi failed: NVIDIA-SMI has failed .* is installed and running; only for --backend cuda\)$/m);
    expect(none.stdout).toMatch(/^absent  NVIDIA driver\s+none \(only for --backend cuda\)$/m);
    expect(none.stdout).toMatch(/^absent  built engine\s+cuda build .*no NVIDIA GPU here to run it$/m);
    expect(none.stdout).not.toMatch(/^MISSING (NVIDIA|nvcc|built engine)/m);
  });

  it("--backend auto builds for CUDA where nvcc and a GPU (nvidia-smi) are both there", async () => {
    // The last build was `--backend cuda` on this "machine": auto picks the same, so it is fresh.
    expect((await ws.cli(["status", "--backend", "auto"], env())).stdout).toMatch(/^build\s+fresh$/m);
    const noGpu = await ws.cli(["status", "--backend", "auto"], env({ FAKE_SMI_FAIL: "1" }));
    expect(noGpu.stdout).toContain('input backend changed: "cuda" -> "cpu"');
  });
});
