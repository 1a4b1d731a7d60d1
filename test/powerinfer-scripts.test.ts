/**
 * The integration blueprint's helpers: scripts/powerinfer/{build,convert,validate}.mjs (zx
 * scripts that call the CLI) run as executables through their shebang, and the VS Code
 * tasks it names ("Build PowerInfer", "Run PowerInfer (demo prompt)") run their commands,
 * all in a throwaway workspace on the fixture engine.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseJsonc } from "jsonc-parser";
import { CLI, makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const SCRIPTS = ["build", "convert", "validate"].map((name) => join(PROJECT_ROOT, "scripts", "powerinfer", `${name}.mjs`));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function run(argv: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("scripts/powerinfer/", () => {
  it.each(SCRIPTS)("%s is an executable zx script that calls the CLI", (script) => {
    expect(statSync(script).mode & 0o111, "executable bits").toBe(0o111);
    const text = readFileSync(script, "utf8");
    expect(text.startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(text).toMatch(/from "\.\/ai-tools\.mjs"/);
    expect(readFileSync(join(PROJECT_ROOT, "scripts", "powerinfer", "ai-tools.mjs"), "utf8")).toMatch(/import \{ \$ \} from "zx"/);
  });

  it("without the arguments they need, they print their usage and exit 2; --help exits 0", async () => {
    for (const script of SCRIPTS.filter((s) => !s.endsWith("build.mjs"))) {
      const bare = await run([script], PROJECT_ROOT, process.env);
      expect(bare.code, script).toBe(2);
      expect(bare.stderr).toMatch(/^Usage: \.\/scripts\/powerinfer\//);
    }
    const help = await run([SCRIPTS[0]!, "--help"], PROJECT_ROOT, process.env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: \.\/scripts\/powerinfer\/build\.mjs/);
  });
});

describe.skipIf(!pythonReady)("the blueprint's helpers in a workspace (needs /usr/bin/python3 with numpy<2 and sentencepiece)", () => {
  let ws: TestWorkspace;
  beforeAll(() => {
    ws = makeWorkspace();
  });
  afterAll(() => ws.cleanup());

  it("build.mjs builds the engine, passing flags through", async () => {
    const dry = await run([SCRIPTS[0]!, "--dry-run"], ws.root, ws.env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/plan for engine: upstream -> build/);
    expect(ws.record("build")).toBeNull();
    const built = await run([SCRIPTS[0]!], ws.root, ws.env);
    expect(built.code, built.stdout + built.stderr).toBe(0);
    expect(ws.record("build")).not.toBeNull();
  });

  it("convert.mjs converts a recipe; validate.mjs checks signature, header and drift from any folder", async () => {
    const converted = await run([SCRIPTS[1]!, "tiny-relu-llama"], ws.root, ws.env);
    expect(converted.code, converted.stdout + converted.stderr).toBe(0);
    expect(converted.stdout).toContain("running convert tiny-relu-llama");

    const sub = join(ws.root, "notes", "today");
    mkdirSync(sub, { recursive: true });
    const env = { ...ws.env };
    delete env.AI_TOOLS_ROOT;
    const valid = await run([SCRIPTS[2]!, "tiny-relu-llama"], sub, env);
    expect(valid.code, valid.stdout + valid.stderr).toBe(0);
    expect(valid.stdout).toContain("== tiny-relu-llama: signature (ai-tools verify)");
    expect(valid.stdout).toMatch(/PWRI/);
    expect(valid.stdout).toContain("no drift");
    expect(valid.stdout.trim().split("\n").at(-1)).toBe("validate: tiny-relu-llama is signed, well-formed and as signed");

    // A policy that differs from the signed one: drift's exit code (3), and the step named.
    const hot = join(ws.root, "hot.yaml");
    writeFileSync(hot, readFileSync(join(ws.root, "models", "powerinfer", "tiny-relu-llama", "policy.yaml"), "utf8").replace("temperature: 0.8", "temperature: 1.3"));
    const drifted = await run([SCRIPTS[2]!, "tiny-relu-llama", "--config", hot], ws.root, ws.env);
    expect(drifted.code).toBe(3);
    expect(drifted.stderr).toContain("validate: tiny-relu-llama: policy and engine against the signed ones failed (ai-tools drift exited 3)");

    // A tampered model fails at the signature.
    const model = join(ws.root, "models", "powerinfer", "tiny-relu-llama", "model.powerinfer.gguf");
    const original = readFileSync(model);
    appendFileSync(model, "x");
    try {
      const tampered = await run([SCRIPTS[2]!, "tiny-relu-llama"], ws.root, ws.env);
      expect(tampered.code).toBe(1);
      expect(tampered.stderr).toContain("signature failed");
    } finally {
      writeFileSync(model, original);
    }
  });

  describe("the VS Code tasks the blueprint names", () => {
    type Arg = string | { value: string };
    interface Task {
      label: string;
      command: string;
      args?: Arg[];
      dependsOn?: string | string[];
    }
    const tasks = (parseJsonc(readFileSync(join(PROJECT_ROOT, ".vscode", "tasks.json"), "utf8")) as { tasks: Task[] }).tasks;

    /** Runs a task as VS Code would (dependencies first); `pnpm pipeline` is package.json's `node bin/ai-tools.mjs`. */
    async function runTask(label: string): Promise<Run> {
      const task = tasks.find((t) => t.label === label);
      expect(task, `a task labelled "${label}"`).toBeDefined();
      for (const dep of [task!.dependsOn ?? []].flat()) expect((await runTask(dep)).code, dep).toBe(0);
      const words = [task!.command, ...(task!.args ?? []).map((a) => (typeof a === "string" ? a : a.value))];
      expect(words.slice(0, 2)).toEqual(["pnpm", "pipeline"]);
      return run([process.execPath, CLI, ...words.slice(2)], ws.root, ws.env);
    }

    it('"Build PowerInfer" runs', async () => {
      const result = await runTask("Build PowerInfer");
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toMatch(/\[build\] (fresh, skipped|done)/);
    });

    it('"Run PowerInfer (demo prompt)" runs, after converting the demo model', async () => {
      const result = await runTask("Run PowerInfer (demo prompt)");
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.trim().length).toBeGreaterThan(0);
      expect(result.stderr).toMatch(/powerinfer: 16 tokens/);
    });
  });
});
