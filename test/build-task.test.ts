import { describe, expect, it } from "vitest";
import { assertGpuBackendFound, detectBackend, parseBuildInfo, parseCmakeProgress } from "../tasks/build.js";
import { haveSamples, sample } from "./helpers/samples.js";


describe("detectBackend", () => {
  const none = { nvcc: false, nvidiaGpu: false, hipcc: false, amdGpu: false };
  it("picks a GPU backend only where its toolkit and a GPU are both present", () => {
    expect(detectBackend({ ...none, nvcc: true, nvidiaGpu: true }).backend).toBe("cuda");
    expect(detectBackend({ ...none, hipcc: true, amdGpu: true }).backend).toBe("hip");
    expect(detectBackend(none)).toEqual({ backend: "cpu", why: "auto: no GPU toolkit found" });
    const toolkitOnly = detectBackend({ ...none, nvcc: true });
    expect(toolkitOnly.backend).toBe("cpu");
    expect(toolkitOnly.why).toContain("--backend cuda");
  });
});

describe("parseBuildInfo", () => {
  it.skipIf(!haveSamples)("reads the real engine's build lines (needs the ../shared samples)", () => {
    const stderr = sample("main-run.stderr.log");
    expect(parseBuildInfo(stderr)).toEqual({
      number: 1590,
      commit: "d3ebd7c",
      compiler: "cc (Debian 12.2.0-14+deb12u1) 12.2.0",
      target: "x86_64-linux-gnu",
    });
  });

  it("returns nulls when the lines are absent (e.g. --log-disable)", () => {
    expect(parseBuildInfo("error loading model: failed to open x\n")).toEqual({ number: null, commit: null, compiler: null, target: null });
  });
});

describe("parseCmakeProgress", () => {
  it("reads Makefile and Ninja progress", () => {
    expect(parseCmakeProgress("[ 45%] Building C object CMakeFiles/ggml.dir/ggml.c.o")).toBe(45);
    expect(parseCmakeProgress("[100%] Built target main")).toBe(100);
    expect(parseCmakeProgress("[12/80] Building CXX object common/CMakeFiles/common.dir/common.cpp.o")).toBe(15);
    expect(parseCmakeProgress("-- Configuring done")).toBeUndefined();
  });
});

describe("assertGpuBackendFound", () => {
  it("catches upstream's warning-only fallback to the CPU", () => {
    expect(() => assertGpuBackendFound("cuda", ["CMake Warning at CMakeLists.txt:305 (message):", "  cuBLAS not found"], "log")).toThrowError(
      expect.objectContaining({ code: "E_BUILD_BACKEND" }),
    );
    expect(() => assertGpuBackendFound("cuda", ["-- cuBLAS found"], "log")).not.toThrow();
    expect(() => assertGpuBackendFound("cpu", ["cuBLAS not found"], "log")).not.toThrow();
  });
});
