/**
 * configs/engines/powerinfer.yaml: where the engine's source comes from and how it is
 * built. Strict: an unknown key is an error (a typo must not silently do nothing).
 */
import * as z from "zod";
import { BACKENDS } from "./backends.js";

export { BACKENDS, type Backend } from "./backends.js";

const cmakeFlag = z
  .string()
  .regex(/^-D[A-Za-z_][A-Za-z0-9_]*(:[A-Z]+)?=.*$/, 'a CMake cache entry such as "-DLLAMA_CUBLAS=ON"');

/** A CMAKE_CUDA_ARCHITECTURES value: "89", "80;86;89;90", "90a", "89-real", native, all, all-major. */
export const CUDA_ARCHITECTURES = /^(native|all|all-major|\d+[a-z]?(-(real|virtual))?(;\d+[a-z]?(-(real|virtual))?)*)$/;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name");

export const buildPresetSchema = z.strictObject({
  cmakeFlags: z.array(cmakeFlag).default([]),
  /** Environment for configure and build, e.g. CC/CXX for ROCm's clang. */
  env: z.record(envName, z.string()).default({}),
  /**
   * CMAKE_CUDA_ARCHITECTURES where no GPU is detected (a CI image cross-compiling).
   * Precedence: `--cuda-arch` > the detected GPUs' compute capabilities > this.
   */
  cudaArchitectures: z
    .string()
    .regex(CUDA_ARCHITECTURES, 'e.g. "80;86;89;90" or "native"')
    .optional(),
});

export const engineConfigSchema = z.strictObject({
  upstream: z.strictObject({
    url: z.string().min(1),
    commit: z.string().regex(/^[0-9a-f]{40}$/, "a full 40-character commit hash (the engine has no tags)"),
    /** Where the checkout lives, relative to the workspace root (the git submodule path). */
    path: z.string().min(1).default("external/powerinfer"),
    /** Sparse-checkout patterns (git's non-cone syntax). */
    sparseCheckout: z.array(z.string().min(1)).default(["/*", "!/smallthinker/", "!/models/*.gguf"]),
  }),
  build: z.strictObject({
    backend: z.enum(["auto", ...BACKENDS]).default("auto"),
    buildType: z.enum(["Release", "RelWithDebInfo", "Debug", "MinSizeRel"]).default("Release"),
    /** LLAMA_NATIVE: ON bakes the build host's instruction set into the binaries. */
    native: z.boolean().default(false),
    /** CMake targets to build; each becomes bin/<target>. */
    targets: z.array(z.string().regex(/^[A-Za-z0-9_.-]+$/)).min(1),
    /** Flags every preset gets. */
    cmakeFlags: z.array(cmakeFlag).default([]),
    timeoutMinutes: z.number().positive().default(180),
    /** oci://HOST/REPO: an engine build cache shared between machines (also --build-cache, AI_TOOLS_BUILD_CACHE). */
    cache: z.string().regex(/^oci:\/\/[^/]+\/.+/, "an oci://HOST/REPOSITORY reference").optional(),
    presets: z.partialRecord(z.enum(BACKENDS), buildPresetSchema),
  }),
});

export type EngineConfig = z.infer<typeof engineConfigSchema>;
export type BuildPreset = z.infer<typeof buildPresetSchema>;
