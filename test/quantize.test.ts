/**
 * The `quantize` step and the fixture engine's `quantize` it runs in the other tests.
 *
 * 1. The fixture writes what the real one writes (llama.cpp llama_model_quantize_internal and
 *    get_k_quant_type at the pin, L9017-9131 and L9133-9290): general.file_type set to the ftype,
 *    general.quantization_version 2 appended, 2-D `*weight` tensors in the ftype's type with
 *    upstream's exceptions (output.weight Q8_0 when n_embd is not a multiple of 256, else Q6_K;
 *    predictor fc1/fc2 Q4_0 for Q4_0 and Q5_0 otherwise), 1-D tensors kept, offsets repacked.
 * 2. The step (tasks/quantize.ts) keeps the file only when its general.file_type and FFN weights
 *    are the type it asked for: a quantize that writes Q8_0 when asked for Q4_0 (sparse Q8_0 loads
 *    and gives NaN logits on CPU) fails with E_CONVERT_OUTPUT naming both types.
 *
 * The fixture binary is built once here from test/fixtures/upstream (cmake, a C compiler).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executeGraph } from "../pipeline/core/executor.js";
import type { Graph, TaskDefinition } from "../pipeline/core/graph.js";
import { readGgufHeader, type GgufHeader } from "../pipeline/gguf/reader.js";
import { quantizeTask } from "../tasks/quantize.js";
import { powerInferModelSpec, writeGguf } from "./helpers/gguf-writer.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

const buildTools = ["cmake", "cc"].filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);

/** name -> type name, in file order. */
const typesOf = (header: GgufHeader) => Object.fromEntries(header.tensors.map((t) => [t.name, t.typeName]));

describe.skipIf(buildTools.length > 0)(`quantize${buildTools.length > 0 ? ` (skipped: ${buildTools.join(" and ")} not on PATH, needed to build the fixture engine)` : ""}`, () => {
  let dir: string;
  let quantizeBin: string;
  const demo = () => join(dir, "demo.powerinfer.gguf");

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "ai-tools-quantize-"));
    const src = join(dir, "src");
    cpSync(join(PROJECT_ROOT, "test", "fixtures", "upstream"), src, { recursive: true });
    execFileSync("cmake", ["-S", src, "-B", join(dir, "build")], { stdio: "ignore" });
    execFileSync("cmake", ["--build", join(dir, "build"), "--target", "quantize"], { stdio: "ignore" });
    quantizeBin = join(dir, "build", "bin", "quantize");
    // The demo model's shape and types (reference/powerinfer-samples/main-run.stderr.log): F16 weights, F32 norms.
    writeGguf(demo(), powerInferModelSpec());
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function quantize(args: string[], env: NodeJS.ProcessEnv = {}) {
    return spawnSync(quantizeBin, args, { encoding: "utf8", env: { ...process.env, ...env } });
  }

  describe("the fixture engine's quantize writes the file the real one does", () => {
    it("Q4_0: file type 2, quantization version 2, every 2-D weight Q4_0 but output.weight Q8_0 (n_embd 64 is no multiple of 256), norms F32", async () => {
      const out = join(dir, "q4.gguf");
      const run = quantize([demo(), out, "Q4_0"]);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).toContain(`main: quantizing '${demo()}' to '${out}' as Q4_0`);
      expect(run.stderr).toMatch(/\[ {3}7\/ {2}25\] +blk\.0\.ffn_up\.weight - \[ {3}64, {3}256, {5}1, {5}1\], type = {4}f16, quantizing to q4_0 \.\. size = /);
      expect(run.stdout).toMatch(/^main: quantize time = +[\d.]+ ms$/m);

      const header = await readGgufHeader(out);
      const input = await readGgufHeader(demo());
      expect(header.magic).toBe("PWRI");
      expect(header.kv.get("general.file_type")).toBe(2);
      expect(header.kv.get("general.quantization_version")).toBe(2);
      // Every KV of the input in its order (file_type changed in place), then quantization_version.
      expect([...header.kv.keys()]).toEqual([...input.kv.keys(), "general.quantization_version"]);
      const types = typesOf(header);
      expect(types).toMatchObject({
        "token_embd.weight": "Q4_0",
        "blk.0.attn_q.weight": "Q4_0",
        "blk.1.attn_v.weight": "Q4_0",
        "blk.0.ffn_gate.weight": "Q4_0",
        "blk.0.ffn_up.weight": "Q4_0",
        "blk.1.ffn_down_t.weight": "Q4_0",
        "blk.0.attn_norm.weight": "F32",
        "blk.1.ffn_norm.weight": "F32",
        "output_norm.weight": "F32",
        "output.weight": "Q8_0",
        "blk.0.fc1.weight": "Q4_0",
        "blk.1.fc2.weight": "Q4_0",
      });
      expect(Object.values(types).filter((t) => t === "Q4_0")).toHaveLength(19);
      // Packed again at 32-byte alignment: token_embd 64*512 / 32 * 18 = 18432 bytes, so attn_q starts there;
      // attn_q 64*64 / 32 * 18 = 2304 -> attn_k at 20736.
      expect(header.tensors.slice(0, 3).map((t) => t.offset)).toEqual([0, 18_432, 20_736]);
    });

    it("Q8_0: file type 7, the FFN weights Q8_0 and the predictor Q5_0 (upstream's rule for every ftype but Q4_0)", async () => {
      const out = join(dir, "q8.gguf");
      expect(quantize([demo(), out, "Q8_0"]).status).toBe(0);
      const header = await readGgufHeader(out);
      expect(header.kv.get("general.file_type")).toBe(7);
      expect(typesOf(header)).toMatchObject({ "blk.0.ffn_up.weight": "Q8_0", "output.weight": "Q8_0", "blk.0.fc1.weight": "Q5_0", "blk.0.attn_norm.weight": "F32" });
    });

    it("output.weight is Q6_K where n_embd is a multiple of 256; --leave-output-tensor keeps it; --pure makes it Q4_0", async () => {
      const wide = join(dir, "wide.gguf");
      writeGguf(wide, powerInferModelSpec({ hidden: 256, heads: 4 }));
      const types = async (flags: string[]) => {
        const out = join(dir, `wide-${flags.join("")}.gguf`);
        const run = quantize([...flags, wide, out, "Q4_0"]);
        expect(run.status, run.stderr).toBe(0);
        return typesOf(await readGgufHeader(out));
      };
      expect((await types([]))["output.weight"]).toBe("Q6_K");
      expect((await types(["--leave-output-tensor"]))["output.weight"]).toBe("F16");
      expect((await types(["--pure"]))["output.weight"]).toBe("Q4_0");
    });

    it("refuses to requantize a quantized file without --allow-requantize, as the real one does", () => {
      const q4 = join(dir, "q4-again.gguf");
      expect(quantize([demo(), q4, "Q4_0"]).status).toBe(0);
      const run = quantize([q4, join(dir, "q8-from-q4.gguf"), "Q8_0"]);
      expect(run.status).toBe(1);
      expect(run.stderr).toContain("llama_model_quantize: failed to quantize: requantizing from type q4_0 is disabled");
      expect(run.stderr).toContain(`main: failed to quantize model from '${q4}'`);
    });

    it("COPY keeps every type and the file type", async () => {
      const out = join(dir, "copy.gguf");
      expect(quantize([demo(), out, "COPY"]).status).toBe(0);
      const header = await readGgufHeader(out);
      expect(header.kv.get("general.file_type")).toBe(1);
      expect(typesOf(header)).toEqual(typesOf(await readGgufHeader(demo())));
    });
  });

  describe("the quantize step keeps only the type it asked for", () => {
    let root: string;
    const final = () => join(root, "models", "powerinfer", "tiny-q4", "model.q4_0.powerinfer.gguf");

    beforeAll(() => {
      root = join(dir, "workspace");
      mkdirSync(join(root, "build", "bin"), { recursive: true });
      mkdirSync(join(root, "models", "powerinfer", "tiny-q4"), { recursive: true });
      copyFileSync(quantizeBin, join(root, "build", "bin", "quantize"));
      copyFileSync(demo(), join(root, "models", "powerinfer", "tiny-q4", "model.powerinfer.gguf"));
    });

    async function runStep(env: NodeJS.ProcessEnv = {}) {
      const task = quantizeTask({ model: "tiny-q4", recipeFile: "configs/models/powerinfer/tiny-q4.yaml", type: "Q4_0" });
      const stub = (id: string, result: unknown): TaskDefinition => ({ id, title: id, version: 1, dependsOn: [], inputs: () => ({}), run: async () => result });
      const graph: Graph = {
        name: "quantize test",
        tasks: [
          stub("build", { binaries: { quantize: "build/bin/quantize" } }),
          stub("convert", { output: "models/powerinfer/tiny-q4/model.powerinfer.gguf", gguf: { architecture: "llama" }, checkpoint: { layers: 2 } }),
          task as TaskDefinition,
        ],
      };
      const outcome = await executeGraph(graph, { root, stateDir: join(root, "build", "state"), logDir: join(root, "build", "logs"), env: { ...process.env, ...env }, onEvent: () => undefined, force: ["quantize"] });
      return outcome.tasks.get("quantize")!;
    }

    it("Q4_0 as asked: the file is kept, its summary recorded", async () => {
      const outcome = await runStep();
      expect(outcome.status, outcome.status === "failed" ? String((outcome as { error: unknown }).error) : "").toBe("ran");
      const result = (outcome as { record: { result: { type: string; gguf: { fileType: number; fileTypeName: string; tensorTypes: Record<string, number> } } } }).record.result;
      expect(result.type).toBe("Q4_0");
      expect(result.gguf).toMatchObject({ fileType: 2, fileTypeName: "Q4_0", tensorTypes: { Q4_0: 19, F32: 5, Q8_0: 1 } });
      expect((await readGgufHeader(final())).kv.get("general.file_type")).toBe(2);
    });

    it("a quantize that writes Q8_0 when asked for Q4_0 fails with E_CONVERT_OUTPUT naming both, and keeps nothing", async () => {
      rmSync(final(), { force: true });
      const outcome = await runStep({ FIXTURE_QUANTIZE_AS: "Q8_0" });
      expect(outcome.status).toBe("failed");
      const error = (outcome as { error: { code: string; message: string; details?: string[] } }).error;
      expect(error.code).toBe("E_CONVERT_OUTPUT");
      expect(error.message).toBe("quantize was asked for Q4_0, but the file it wrote is not a valid Q4_0 PowerInfer model: general.file_type is 7 (Q8_0), expected 2 (Q4_0)");
      expect(error.details).toContain("blk.0.ffn_gate.weight is Q8_0, expected Q4_0");
      expect(existsSync(final())).toBe(false);
      expect(readdirSync(join(root, "models", "powerinfer", "tiny-q4")).filter((n) => n.includes(".tmp-"))).toEqual([]);
    });
  });
});
