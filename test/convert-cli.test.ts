/**
 * `pnpm pipeline convert tiny-relu-llama` end to end on the fixture engine: the real
 * generator script makes the tiny checkpoint (numpy + sentencepiece under
 * /usr/bin/python3), the fixture converter (the real converter's CLI and output
 * format, with its silent-failure modes on demand) converts it, and the step decides
 * success by validating the file.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe.skipIf(!pythonReady)("convert tiny-relu-llama (needs /usr/bin/python3 with numpy<2 and sentencepiece: apt-get install python3-numpy python3-sentencepiece)", () => {
  let ws: TestWorkspace;
  const modelDir = () => join(ws.root, "models", "powerinfer", "tiny-relu-llama");
  const gguf = () => join(modelDir(), "model.powerinfer.gguf");
  beforeAll(() => {
    ws = makeWorkspace();
  });
  afterAll(() => ws.cleanup());

  it("generates, converts and validates the offline demo model", async () => {
    const result = await ws.cli(["convert", "tiny-relu-llama"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("running convert tiny-relu-llama: upstream -> build -> generate -> convert");
    expect(readFileSync(gguf()).subarray(0, 4).toString()).toBe("PWRI");
    const record = ws.record("convert--tiny-relu-llama")!;
    const converted = record.result as { gguf: { architecture: string; blockCount: number; tensorCount: number; predictorLayers: number }; python: { path: string } };
    expect(converted.gguf).toMatchObject({ architecture: "llama", blockCount: 2, tensorCount: 25, predictorLayers: 2 });
    expect(record.outputs["models/powerinfer/tiny-relu-llama/model.powerinfer.gguf"]!.sha256).toBe(sha256(gguf()));
    const policy = readFileSync(join(modelDir(), "policy.yaml"), "utf8");
    expect(policy).toContain("model_path: powerinfer/tiny-relu-llama/model.powerinfer.gguf");
    expect(policy).toContain("max_tokens: 16");
    const generated = ws.record("generate--tiny-relu-llama")!;
    expect((generated.result as { files: { path: string }[] }).files.map((f) => f.path)).toEqual([
      "model/config.json",
      "model/model.safetensors",
      "model/tokenizer.model",
      "predictor/config.json",
      "predictor/model_0.pt",
      "predictor/model_1.pt",
    ]);
  });

  it("is fresh on the next run", async () => {
    const again = await ws.cli(["convert", "tiny-relu-llama"]);
    expect(again.code).toBe(0);
    for (const step of ["upstream", "build", "generate", "convert"]) expect(again.stdout).toContain(`[${step}] fresh, skipped`);
  });

  it("inspect prints the summary of the converted file", async () => {
    const text = await ws.cli(["inspect", gguf()]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/PWRI/);
    expect(text.stdout).toMatch(/llama/);
    const json = await ws.cli(["inspect", gguf(), "--json"]);
    expect(parseEvents(json.stdout)).toMatchObject([{ event: "gguf-summary", magic: "PWRI", architecture: "llama", blockCount: 2 }]);
  });

  describe("a converter that fails, loudly or silently, never replaces the good file", () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ["exits 1 with a traceback", { FIXTURE_CONVERT_FAIL: "1" }, /\[convert\] convert failed \[E_COMMAND_FAILED\]: \S*python3\S* exited with code 1/],
      ["exits 0 without writing", { FIXTURE_CONVERT_NO_OUTPUT: "1" }, /\[E_CONVERT_OUTPUT\]: the converter exited 0 but wrote no file/],
      ["exits 0 with an empty file", { FIXTURE_CONVERT_EMPTY: "1" }, /\[E_CONVERT_OUTPUT\]: the converter exited 0 but wrote an empty file/],
      ["drops the last predictor layer", { FIXTURE_CONVERT_DROP_LAYER: "1" }, /\[E_CONVERT_OUTPUT\]: the converted file is not a valid PowerInfer model for tiny-relu-llama: .*blk\.1\.fc1/],
    ];
    for (const [what, env, message] of cases) {
      it(what, async () => {
        const before = sha256(gguf());
        const result = await ws.cli(["convert", "tiny-relu-llama", "--force", "convert"], env);
        expect(result.code).toBe(1);
        expect(result.stdout).toMatch(message);
        expect(sha256(gguf())).toBe(before);
        expect(readdirSync(modelDir()).filter((n) => n.includes(".tmp-"))).toEqual([]);
        expect(ws.record("convert--tiny-relu-llama")).toBeNull();
      });
    }

    it("the next good run converts again", async () => {
      const result = await ws.cli(["convert", "tiny-relu-llama"]);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain("[convert] run: no record of a successful run");
      expect(existsSync(gguf())).toBe(true);
    });
  });
});

/** A workspace whose only recipe is the demo recipe under another name, changed by `patch`. */
function workspaceWithDemoVariant(name: string, patch: (yaml: string) => string): TestWorkspace {
  const ws = makeWorkspace();
  const recipes = join(ws.root, "configs", "models", "powerinfer");
  mkdirSync(recipes, { recursive: true });
  const tiny = readFileSync(join(PROJECT_ROOT, "configs", "models", "powerinfer", "tiny-relu-llama.yaml"), "utf8");
  writeFileSync(join(recipes, `${name}.yaml`), patch(tiny.replace("name: tiny-relu-llama", `name: ${name}`)));
  return ws;
}

describe.skipIf(!pythonReady)("a recipe that asks for quantize (needs /usr/bin/python3 with numpy<2 and sentencepiece)", () => {
  it("gets a Q4_0 file from the engine's quantize binary as its own step", async () => {
    const ws = workspaceWithDemoVariant("tiny-q4", (y) => y.replace("  vocabtype: spm", "  vocabtype: spm\n  quantize: Q4_0"));
    try {
      const result = await ws.cli(["convert", "tiny-q4"]);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toContain("running convert tiny-q4: upstream -> build -> generate -> convert -> quantize");
      const q4 = join(ws.root, "models", "powerinfer", "tiny-q4", "model.q4_0.powerinfer.gguf");
      expect(readFileSync(q4).subarray(0, 4).toString()).toBe("PWRI");
      const record = ws.record("quantize--tiny-q4")!;
      expect(record.outputs["models/powerinfer/tiny-q4/model.q4_0.powerinfer.gguf"]!.sha256).toBe(sha256(q4));
      // What the engine's quantize wrote (the fixture's follows the real one): Q4_0 weights, output.weight Q8_0
      // (n_embd 64 is no multiple of 256), the 5 norms F32.
      expect((record.result as { gguf: unknown }).gguf).toMatchObject({ fileType: 2, fileTypeName: "Q4_0", tensorTypes: { Q4_0: 19, Q8_0: 1, F32: 5 }, predictorLayers: 2 });
    } finally {
      ws.cleanup();
    }
  });
});

describe.skipIf(!pythonReady)("output types that give NaN logits for sparse models on CPU (needs /usr/bin/python3 with numpy<2 and sentencepiece)", () => {
  it("are refused with the reason, unless --allow-unsafe-outtype", async () => {
    const ws = workspaceWithDemoVariant("tiny-f32", (y) => y.replace("outtype: f16", "outtype: f32"));
    try {
      const refused = await ws.cli(["convert", "tiny-f32"]);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toContain("[E_UNSAFE_OUTTYPE]: refusing --outtype f32 for tiny-f32: sparse F32 models load and run but produce NaN logits on CPU builds");
      expect(refused.stdout).toContain("--allow-unsafe-outtype");
      const forced = await ws.cli(["convert", "tiny-f32", "--allow-unsafe-outtype"]);
      expect(forced.code, forced.stdout).toBe(0);
      const result = ws.record("convert--tiny-f32")!.result as { gguf: { fileType: number } };
      expect(result.gguf.fileType).toBe(0);
    } finally {
      ws.cleanup();
    }
  });
});
