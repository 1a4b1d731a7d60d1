/**
 * An unsigned `<model>.generated.gpuidx` beside a signed model (left by an earlier run, or
 * put there by someone else: signatures leave the runtime file out) is never what a GPU
 * build of the engine loads: with no signed index to place for the host, main runs from a
 * private folder without it, and the run says so. A stand-in GPU `main` reports whether
 * an index sits beside the model path it was given.
 */
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPowerInferEngine } from "../engines/powerinfer.js";
import { policyForBuild } from "../pipeline/runtime/prepare.js";
import { loadHostProfile } from "../pipeline/policy/host.js";
import { renderPolicy } from "../pipeline/policy/render.js";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { powerInferModelSpec, writeGguf } from "./helpers/gguf-writer.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

let root: string;
let fakeMain: string;
const argvLog = () => join(root, "main-argv.log");
const modelDir = (name: string) => join(root, "models", "powerinfer", name);
const modelFile = (name: string) => join(modelDir(name), "model.powerinfer.gguf");

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "ai-tools-gpuidx-stray-"));
  for (const name of ["signed", "unsigned"]) {
    mkdirSync(join(modelDir(name), "activation"), { recursive: true });
    writeGguf(modelFile(name), powerInferModelSpec({ layers: 2, ffn: 256, hidden: 64 }));
    writeFileSync(join(modelDir(name), "activation", "activation_0.pt"), "0 1 2");
  }
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await signModelDirectory(modelDir("signed"), { privateKey });
  // Written after signing, as a stale or planted runtime index would be.
  for (const name of ["signed", "unsigned"]) writeFileSync(modelFile(name) + ".generated.gpuidx", "UNSIGNED INDEX");

  // A GPU build (it names the CUDA libraries) that reports the index beside -m, and writes its own when there is none.
  fakeMain = join(root, "bin", "main");
  mkdirSync(join(root, "bin"), { recursive: true });
  writeFileSync(
    fakeMain,
    `#!/bin/sh\n# NEEDED libcudart.so.12 libcublas.so.12\nif [ "$1" = "--help" ]; then echo "usage: main -m -p -n -c -s -t -b --temp --top-p --top-k --repeat-penalty --vram-budget --log-disable"; exit 0; fi\n` +
      `printf '%s\\n' "$@" > "${argvLog()}"\nm=""; while [ $# -gt 0 ]; do [ "$1" = "-m" ] && m="$2"; shift; done\n` +
      `if [ -f "$m.generated.gpuidx" ]; then echo "INDEX: $(cat "$m.generated.gpuidx")"; else echo "NO-INDEX"; echo "ENGINE INDEX" > "$m.generated.gpuidx"; fi\n` +
      `for k in load sample "prompt eval" eval total; do echo "llama_print_timings: $k time = 1.00 ms / 4 runs ( 0.25 ms per token, 4000.00 tokens per second)" >&2; done\n`,
  );
  chmodSync(fakeMain, 0o755);
  mkdirSync(join(root, "runtime"), { recursive: true, mode: 0o700 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function run(name: string): Promise<{ m: string; text: string; warnings: string[] }> {
  const host = await loadHostProfile(join(PROJECT_ROOT, "configs", "hosts", "gpu-box.yaml"));
  const rendered = renderPolicy({ engine: "powerinfer", model_path: modelFile(name), generation: { max_tokens: 4 }, runtime: { threads: 1 } }, { file: "policy.yaml", host, modelRoot: join(root, "models"), gpuBuild: true });
  const env = { ...process.env, XDG_CACHE_HOME: join(root, "cache"), XDG_RUNTIME_DIR: join(root, "runtime") };
  // As `ai-tools run` does: the runtime places (or avoids) the index for this GPU build, then the engine runs the policy it got.
  const placed = await policyForBuild(rendered, true, env);
  const result = await createPowerInferEngine({ binary: fakeMain, env }).generate("hi", placed.policy);
  const argv = readFileSync(argvLog(), "utf8").trim().split("\n");
  return { m: argv[argv.indexOf("-m") + 1]!, text: result.text, warnings: [...placed.notes, ...(result.warnings ?? [])] };
}

describe("an unsigned .generated.gpuidx beside a signed model", () => {
  it("is not loaded: main runs on a link in a private folder without it, and the run says so", async () => {
    const first = await run("signed");
    expect(first.text).toContain("NO-INDEX");
    expect(first.text).not.toContain("UNSIGNED INDEX");
    expect(first.m).not.toBe(modelFile("signed"));
    expect(first.m.startsWith(join(root, "runtime", "ai-tools"))).toBe(true);
    expect(lstatSync(first.m).isSymbolicLink()).toBe(true);
    expect(realpathSync(first.m)).toBe(realpathSync(modelFile("signed")));
    expect(realpathSync(join(first.m, "..", "activation"))).toBe(realpathSync(join(modelDir("signed"), "activation")));
    expect(statSync(join(first.m, "..")).mode & 0o077).toBe(0);
    expect(first.warnings.join("\n")).toMatch(/model\.powerinfer\.gguf\.generated\.gpuidx beside the signed model is not signed .*: not loaded; main runs on .*runtime\/ai-tools\/run-[0-9a-f]{16}\/model\.powerinfer\.gguf/);
    // The user's file is left where it is; the signed folder is not written.
    expect(readFileSync(modelFile("signed") + ".generated.gpuidx", "utf8")).toBe("UNSIGNED INDEX");
  });

  it("the engine's own split, computed in the private folder, is what the next run finds there", async () => {
    const second = await run("signed");
    expect(second.text).toContain("INDEX: ENGINE INDEX");
    expect(existsSync(second.m + ".generated.gpuidx")).toBe(true);
  });

  it("an unsigned model keeps the engine's own behaviour: the index beside it is its cache", async () => {
    const result = await run("unsigned");
    expect(result.m).toBe(modelFile("unsigned"));
    expect(result.text).toContain("INDEX: UNSIGNED INDEX");
    expect(result.warnings).toEqual([]);
  });
});
