/**
 * A policy is input: it may come from elsewhere. Hostile YAML (alias bombs, deep nesting,
 * tags, other encodings, oversized files) ends in E_CONFIG_SYNTAX / E_CONFIG_INVALID within
 * a second, never a crash, both from the library and from the CLI (exit 2, no stack
 * trace); model_path must name a GGUF file inside the model root or workspace; the API
 * key variable cannot be one of this tool's own secrets.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPolicy } from "../pipeline/policy/load.js";
import { renderPolicy, type RenderOptions } from "../pipeline/policy/render.js";
import { MAX_CONFIG_BYTES } from "../pipeline/config/load-yaml.js";
import { isPipelineError } from "../pipeline/core/errors.js";
import { CLI } from "./helpers/workspace.js";

let dir: string;
let outside: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ai-tools-policy-input-"));
  outside = mkdtempSync(join(tmpdir(), "ai-tools-outside-"));
  mkdirSync(join(dir, "models", "powerinfer", "m"), { recursive: true });
  writeFileSync(join(dir, "models", "powerinfer", "m", "model.powerinfer.gguf"), "PWRI\x03\x00\x00\x00");
  writeFileSync(join(dir, "models", "notes.txt"), "just some text, not a model\n");
  writeFileSync(join(outside, "elsewhere.gguf"), "GGUF\x03\x00\x00\x00");
  symlinkSync(join(outside, "elsewhere.gguf"), join(dir, "models", "linked.gguf"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const GOOD = "engine: powerinfer\nmodel_path: powerinfer/m/model.powerinfer.gguf\n";
const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]", ...["b", "c", "d", "e", "f"].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${"abcde"[i]}`).join(", ")}]`)].join("\n") + "\n";
const utf16 = (text: string, bom: boolean) => Buffer.concat([bom ? Buffer.from([0xff, 0xfe]) : Buffer.alloc(0), Buffer.from(text, "utf16le")]);

/** [what, file content, code, what the message says]. */
const HOSTILE: [string, string | Buffer, "E_CONFIG_SYNTAX" | "E_CONFIG_INVALID", RegExp][] = [
  ["an alias bomb (billion laughs)", bomb, "E_CONFIG_SYNTAX", /aliases expand to more than 100 copies/],
  ["a recursive alias", "engine: powerinfer\nmodel_path: &p [*p]\n", "E_CONFIG_SYNTAX", /recursive|alias/],
  ["flow nesting as deep as the size limit allows", "engine: powerinfer\nmodel_path: " + "[".repeat(MAX_CONFIG_BYTES / 2 - 20) + "]".repeat(MAX_CONFIG_BYTES / 2 - 20) + "\n", "E_CONFIG_SYNTAX", /:2:77: YAML syntax error: flow collections nested deeper than 64 levels/],
  ["block nesting 240 levels deep (as deep as the size limit allows)", Array.from({ length: 240 }, (_, i) => `${" ".repeat(i)}k:`).join("\n") + " 1\n", "E_CONFIG_INVALID", /unknown key "k"/],
  ["a language tag (!!python/object)", "engine: !!python/object:os.system powerinfer\nmodel_path: m.gguf\n", "E_CONFIG_SYNTAX", /Unresolved tag.*plain YAML values only/],
  ["a local tag", GOOD.replace("engine: powerinfer", "engine: !shell powerinfer"), "E_CONFIG_SYNTAX", /Unresolved tag: !shell/],
  ["a !!binary value", GOOD.replace("engine: powerinfer", "engine: !!binary cG93ZXJpbmZlcg=="), "E_CONFIG_SYNTAX", /not plain data/],
  ["UTF-16 with a byte-order mark", utf16(GOOD, true), "E_CONFIG_SYNTAX", /encoded as UTF-16 \(little-endian\): save it as UTF-8/],
  ["UTF-16 without a byte-order mark", utf16(GOOD, false), "E_CONFIG_SYNTAX", /UTF-16 or UTF-32: save it as UTF-8/],
  ["bytes that are not UTF-8", Buffer.concat([Buffer.from("engine: power"), Buffer.from([0xc3, 0x28]), Buffer.from("infer\n")]), "E_CONFIG_SYNTAX", /not valid UTF-8/],
  ["a NUL byte", GOOD.replace("powerinfer\n", "power\0infer\n"), "E_CONFIG_SYNTAX", /control character U\+0000/],
  ["two documents", GOOD + "---\n" + GOOD, "E_CONFIG_SYNTAX", /multiple documents/],
  ["a duplicate key", GOOD + "engine: openai\n", "E_CONFIG_SYNTAX", /unique/],
  ["a merge key", "base: &b {engine: powerinfer}\n<<: *b\n", "E_CONFIG_INVALID", /unknown key/],
  ["as many unknown keys as fit", Array.from({ length: 2700 }, (_, i) => `k${i}: ${i}`).join("\n").slice(0, MAX_CONFIG_BYTES - 20) + "\n", "E_CONFIG_INVALID", /problems \(the first 20 listed\)/],
  ["an empty file", "", "E_CONFIG_INVALID", /object/],
  ["a bare scalar", "just text\n", "E_CONFIG_INVALID", /object/],
  ["a number too large for a double", GOOD + "generation:\n  temperature: 1e400\n", "E_CONFIG_INVALID", /generation\.temperature/],
  ["a file over the size limit", "# " + "x".repeat(MAX_CONFIG_BYTES) + "\n" + GOOD, "E_CONFIG_SYNTAX", new RegExp(`larger than the ${MAX_CONFIG_BYTES}-byte limit`)],
];

describe("hostile YAML is a config error, fast", () => {
  const files = new Map<string, string>();
  beforeAll(() => {
    HOSTILE.forEach(([what, content], i) => {
      const file = join(dir, `hostile-${i}.yaml`);
      writeFileSync(file, content);
      files.set(what, file);
    });
  });

  it.each(HOSTILE.map(([what, , code, message]) => ({ what, code, message })))("$what: $code from the library within 1 s", async ({ what, code, message }) => {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const error = await loadPolicy(files.get(what)!, { onNote: () => {} }).then(
      () => null,
      (e: unknown) => e,
    );
    // The bound is on work: CPU time. Wall time on a shared 2-core machine also counts other processes' turns.
    const used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000;
    const elapsed = performance.now() - started;
    expect(isPipelineError(error), String((error as Error | null)?.stack)).toBe(true);
    const { code: got, message: text, details } = error as { code: string; message: string; details: readonly string[] };
    expect(got).toBe(code);
    expect([text, ...details].join("\n")).toMatch(message);
    expect([text, ...details].join("\n")).toContain(files.get(what)!.split("/").at(-1));
    expect(cpuMs).toBeLessThan(1000);
    expect(elapsed).toBeLessThan(5000);
  });

  it("a refused oversized file is not read: a 50 MB policy is refused as fast as a small one", async () => {
    const huge = join(dir, "huge.yaml");
    writeFileSync(huge, Buffer.alloc(50 * 2 ** 20, "a: [1]\n"));
    const started = performance.now();
    await expect(loadPolicy(huge)).rejects.toMatchObject({ code: "E_CONFIG_SYNTAX", message: expect.stringMatching(/52428800 bytes: larger than/) });
    expect(performance.now() - started).toBeLessThan(100);
  });

  it("a UTF-8 byte-order mark is fine", async () => {
    const file = join(dir, "bom.yaml");
    writeFileSync(file, "\uFEFF" + GOOD);
    expect((await loadPolicy(file)).policy.engine).toBe("powerinfer");
  });

  it("the CLI: exit 2, one error line with the code and the file, no stack trace", async () => {
    const run = (file: string) =>
      new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, "render", "--config", file], { cwd: dir, env: { ...process.env, CI: "true", AI_TOOLS_ROOT: dir }, stdio: ["ignore", "pipe", "pipe"] });
        let stderr = "";
        let stdout = "";
        child.stderr.on("data", (d) => (stderr += d));
        child.stdout.on("data", (d) => (stdout += d));
        child.on("close", (code) => resolve({ code, stderr, stdout }));
      });
    // Two at a time: the machine has two cores.
    const results: [string, Awaited<ReturnType<typeof run>>][] = [];
    for (let i = 0; i < HOSTILE.length; i += 2) {
      const batch = HOSTILE.slice(i, i + 2).map(async ([what, , code]) => [what, await run(files.get(what)!), code] as const);
      for (const [what, result, code] of await Promise.all(batch)) {
        expect(result.code, `${what}: ${result.stderr}`).toBe(2);
        expect(result.stderr, what).toMatch(new RegExp(`^error \\[${code}\\]: `));
        expect(result.stderr, what).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
        expect(result.stderr, what).not.toContain("E_INTERNAL");
        expect(result.stdout, what).toBe("");
        results.push([what, result]);
      }
    }
    expect(results).toHaveLength(HOSTILE.length);
  }, 120_000);
});

describe("model_path is checked before any engine starts", () => {
  const host = { name: "box", source: "file" as const, physicalCores: 4, memoryBytes: 2 ** 34, gpus: [] };
  const options = (over: Partial<RenderOptions> = {}): RenderOptions => ({ file: "policy.yaml", host, modelRoot: join(dir, "models"), workspaceRoot: dir, gpuBuild: false, ...over });
  const policy = (model_path: string) => ({ engine: "powerinfer", model_path, generation: {}, runtime: {} });

  it("must be a GGUF file: its first bytes say so, not its name", () => {
    expect(() => renderPolicy(policy("notes.txt"), options())).toThrow(/policy.yaml: model_path: .*notes.txt is not a GGUF model \(it starts with "just", not "GGUF" or "PWRI"\)/);
    expect(() => renderPolicy(policy("notes.txt"), options({ model: join(dir, "models", "notes.txt") }))).toThrow(/--model: .*not a GGUF model/);
    const error = (() => {
      try {
        renderPolicy(policy("notes.txt"), options());
      } catch (e) {
        return e;
      }
    })();
    expect(error).toMatchObject({ code: "E_CONFIG_INVALID" });
  });

  it("must lie inside the model root or the workspace, unless --allow-outside-root", () => {
    const elsewhere = join(outside, "elsewhere.gguf");
    expect(() => renderPolicy(policy(elsewhere), options())).toThrow(/model_path: .*elsewhere.gguf is outside the model root .* and the workspace/);
    expect(() => renderPolicy(policy("linked.gguf"), options())).toThrow(/linked.gguf \(really .*elsewhere.gguf\) is outside/);
    expect(renderPolicy(policy(elsewhere), options({ allowOutsideRoot: true })).modelPath).toBe(elsewhere);
    // A file named on the command line is the operator's own choice.
    expect(renderPolicy(policy("powerinfer/m/model.powerinfer.gguf"), options({ model: elsewhere })).modelPath).toBe(elsewhere);
  });

  it("a path from the workspace root (the blueprint's form) and one from the model root name the same file", () => {
    const viaModelRoot = renderPolicy(policy("powerinfer/m/model.powerinfer.gguf"), options()).modelPath;
    const viaWorkspace = renderPolicy(policy("models/powerinfer/m/model.powerinfer.gguf"), options()).modelPath;
    expect(viaWorkspace).toBe(join(dir, "models", "powerinfer", "m", "model.powerinfer.gguf"));
    expect(viaModelRoot).toBe(viaWorkspace);
  });
});

describe("openai.api_key_env", () => {
  const openai = (name: string) => `engine: openai\nopenai:\n  base_url: http://127.0.0.1:9/v1\n  model: m\n  api_key_env: ${name}\n`;
  it.each(["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AI_TOOLS_SIGNING_KEY", "AI_TOOLS_SIGNING_KEY_FILE", "AI_TOOLS_SIGNING_KEY_PASSPHRASE", "MY_KEY_PASSPHRASE", "AI_TOOLS_REGISTRY_PASSWORD"])(
    "cannot name this tool's own secret %s",
    async (name) => {
      const file = join(dir, `key-${name}.yaml`);
      writeFileSync(file, openai(name));
      const error = await loadPolicy(file).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "E_CONFIG_INVALID" });
      expect((error as Error).message).toMatch(new RegExp(`:5:16: openai.api_key_env: ${name} holds one of ai-tools' own secrets`));
    },
  );

  it("names any other variable", async () => {
    const file = join(dir, "key-ok.yaml");
    writeFileSync(file, openai("VLLM_API_KEY"));
    expect((await loadPolicy(file)).policy.openai?.api_key_env).toBe("VLLM_API_KEY");
  });
});
