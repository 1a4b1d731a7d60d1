/**
 * The editor setup stays true to the CLI: every JSON(C) file in .vscode/ and .devcontainer/
 * parses; each task runs a package.json script or a `pnpm pipeline` command the CLI accepts
 * (flags through the CLI's parser, with each input replaced by the values it can take); inputs are
 * declared, used and real recipe names; the problem matchers match the CLI's real output for
 * config errors and a failed build; launch configurations start files that exist; the YAML
 * schema associations name schemas that exist and cover the configs. No network, ~2 s.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { commandNames, parseCli } from "../pipeline/cli/program.js";
import { CommandFailedError } from "../pipeline/core/errors.js";
import { EVENT_SCHEMA_VERSION, type TaskErrorEvent } from "../pipeline/core/events.js";
import { runCommand } from "../pipeline/core/process.js";
import { plainReporter } from "../pipeline/cli/reporters/plain.js";
import { CLI, PROJECT_ROOT } from "./helpers/workspace.js";
import { parse, printParseErrorCode, type ParseError } from "jsonc-parser";

// ---------------------------------------------------------------------------------------
// JSONC as VS Code reads it (comments, trailing commas): Microsoft's jsonc-parser, strict about everything else.

export function parseJsonc(text: string): unknown {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) throw new SyntaxError(`JSONC: ${errors.map((e) => `${printParseErrorCode(e.error)} at offset ${e.offset}`).join(", ")}`);
  return value;
}

// ---------------------------------------------------------------------------------------

type Arg = string | { value: string | string[]; quoting?: string };
interface Matcher {
  owner?: string;
  base?: string;
  fileLocation?: string | string[];
  pattern: Pattern | Pattern[];
}
interface Pattern {
  regexp: string;
  file?: number;
  line?: number;
  column?: number;
  severity?: number;
  message?: number;
}
interface Task {
  label: string;
  type?: string;
  command: string;
  args?: Arg[];
  dependsOn?: string | string[];
  problemMatcher?: string | Matcher | (string | Matcher)[];
  group?: string | { kind: string; isDefault?: boolean };
}
interface Input {
  id: string;
  type: "pickString" | "promptString" | "command";
  options?: (string | { label?: string; value: string })[];
  default?: string;
}
interface LaunchConfig {
  name: string;
  type: string;
  request: string;
  program?: string;
  runtimeExecutable?: string;
  runtimeArgs?: string[];
  args?: string[] | string;
  cwd?: string;
}

const at = (...parts: string[]) => join(PROJECT_ROOT, ...parts);
const readJsonc = <T>(...parts: string[]) => parseJsonc(readFileSync(at(...parts), "utf8")) as T;
const jsonFiles = (dir: string) =>
  existsSync(at(dir))
    ? readdirSync(at(dir))
        .filter((f) => f.endsWith(".json"))
        .map((f) => join(dir, f))
    : [];
const workspaceVars = (text: string) => text.replaceAll("${workspaceFolder}", PROJECT_ROOT).replaceAll("${workspaceRoot}", PROJECT_ROOT);
const inputRefs = (value: unknown): string[] => [...JSON.stringify(value).matchAll(/\$\{input:([^}]+)\}/g)].map((m) => m[1]!);
const recipes = readdirSync(at("configs", "models", "powerinfer"))
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => f.slice(0, -".yaml".length))
  .sort();
const pkg = JSON.parse(readFileSync(at("package.json"), "utf8")) as { scripts: Record<string, string>; packageManager?: string; dependencies?: object; devDependencies?: object };

/** The words of a shell command line: enough for what tasks.json holds (quotes, no expansions). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] ?? m[3]!));
  return words;
}

/** Each value an input can take: every pickString option, a promptString's default. */
function inputValues(input: Input): string[] {
  if (input.type === "pickString") return (input.options ?? []).map((o) => (typeof o === "string" ? o : o.value));
  return input.default !== undefined ? [input.default] : [];
}

/** Every argv a task can run: one per combination of its inputs' values. */
function expand(words: string[], inputs: Map<string, Input>): string[][] {
  const used = [...new Set(words.flatMap((w) => inputRefs(w)))];
  let variants: Record<string, string>[] = [{}];
  for (const id of used) {
    const values = inputValues(inputs.get(id)!);
    variants = variants.flatMap((v) => values.map((value) => ({ ...v, [id]: value })));
  }
  return variants.map((v) => words.map((w) => workspaceVars(w.replace(/\$\{input:([^}]+)\}/g, (_, id: string) => v[id]!))));
}

function taskWords(task: Task): string[] {
  const args = (task.args ?? []).flatMap((a) => (typeof a === "string" ? [a] : Array.isArray(a.value) ? a.value : [a.value]));
  return task.args === undefined ? shellWords(task.command) : [task.command, ...args];
}

const tasksFile = readJsonc<{ version: string; options?: { env?: Record<string, string> }; tasks: Task[]; inputs?: Input[] }>(".vscode", "tasks.json");
const taskInputs = new Map((tasksFile.inputs ?? []).map((i) => [i.id, i]));
const matchersOf = (task: Task): Matcher[] => [task.problemMatcher ?? []].flat().filter((m): m is Matcher => typeof m === "object");
const matcherNamed = (owner: string): Matcher => {
  const found = tasksFile.tasks.flatMap(matchersOf).find((m) => m.owner === owner);
  if (!found) throw new Error(`no problem matcher with owner ${owner} in .vscode/tasks.json`);
  return found;
};

interface Problem {
  file?: string;
  line?: string;
  column?: string;
  severity?: string;
  message?: string;
}

/** What VS Code's line matcher reports for these lines: single- and multi-line patterns. */
function problems(matcher: Matcher, lines: readonly string[]): Problem[] {
  const patterns = [matcher.pattern].flat();
  const found: Problem[] = [];
  for (let i = 0; i + patterns.length <= lines.length; i++) {
    const problem: Problem = {};
    const ok = patterns.every((p, k) => {
      const m = new RegExp(p.regexp).exec(lines[i + k]!);
      if (!m) return false;
      for (const key of ["file", "line", "column", "severity", "message"] as const) if (p[key] !== undefined) problem[key] = m[p[key]];
      return true;
    });
    if (ok) found.push(problem);
  }
  return found;
}

const scratch = mkdtempSync(join(tmpdir(), "ai-tools-vscode-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------

describe("JSONC", () => {
  it("strips comments and trailing commas outside strings only", () => {
    const text = `{
      // a comment with "quotes" and a , before }
      "url": "https://example.org/a//b", /* block
      comment */ "glob": "**/*.yaml",
      "escaped": "say \\"hi\\" // not a comment",
      "list": [1, 2, /* three */ ],
      "nested": { "a": "/*", "b": "*/", },
    }`;
    expect(parseJsonc(text)).toEqual({ url: "https://example.org/a//b", glob: "**/*.yaml", escaped: 'say "hi" // not a comment', list: [1, 2], nested: { a: "/*", b: "*/" } });
    expect(() => parseJsonc("{ /* open")).toThrow(/UnexpectedEndOfComment/);
  });

  it.each([...jsonFiles(".vscode"), ...jsonFiles(".devcontainer")])("%s parses", (file) => {
    expect(parseJsonc(readFileSync(at(file), "utf8"))).toBeTypeOf("object");
  });
});

describe(".vscode/tasks.json", () => {
  it("runs tasks with plain CLI output", () => {
    expect(tasksFile.version).toBe("2.0.0");
    expect(tasksFile.options?.env?.CI).toBe("true");
    const labels = tasksFile.tasks.map((t) => t.label);
    expect(new Set(labels).size, "task labels are unique").toBe(labels.length);
    // "Build PowerInfer" and "Run PowerInfer (demo prompt)" are the integration blueprint's labels (test/powerinfer-scripts.test.ts runs them).
    expect(labels).toEqual(expect.arrayContaining(["Build PowerInfer", "Convert model", "Benchmark", "Verify", "Run PowerInfer (demo prompt)"]));
    for (const task of tasksFile.tasks) {
      for (const dep of [task.dependsOn ?? []].flat()) expect(labels, `${task.label} depends on ${dep}`).toContain(dep);
    }
  });

  it.each(tasksFile.tasks.map((t) => [t.label, t] as const))("%s: runs a package.json script or a pnpm pipeline command the CLI accepts", (_label, task) => {
    const words = taskWords(task);
    expect(words[0], "tasks run pnpm (the pinned packageManager)").toBe("pnpm");
    for (const ref of inputRefs(words)) expect(taskInputs.has(ref), `\${input:${ref}} is declared in inputs`).toBe(true);
    const argvs = expand(words, taskInputs);
    expect(argvs.length).toBeGreaterThan(0);
    for (const argv of argvs) {
      const script = argv[1] === "run" ? argv[2] : argv[1];
      expect(Object.keys(pkg.scripts), argv.join(" ")).toContain(script);
      if (script !== "pipeline") continue;
      const cliArgs = argv.slice(argv[1] === "run" ? 3 : 2);
      expect(commandNames(), argv.join(" ")).toContain(cliArgs[0]);
      const parsed = (() => {
        try {
          return parseCli(cliArgs);
        } catch (error) {
          throw new Error(`${argv.join(" ")}: ${(error as Error).message}`);
        }
      })();
      expect(parsed.kind === "command" && parsed.invocation.path[0]).toBe(cliArgs[0]);
    }
  });

  it("declares each input it uses and uses each it declares; the model picker lists every recipe", () => {
    const used = new Set(inputRefs(tasksFile.tasks));
    expect([...taskInputs.keys()].sort()).toEqual([...used].sort());
    const model = taskInputs.get("model")!;
    expect(model.type).toBe("pickString");
    // A recipe added to configs/models/powerinfer/ belongs in the picker too.
    expect(inputValues(model).sort()).toEqual(recipes);
    expect(recipes).toContain(model.default);
  });

  it("keeps the copies of each inline problem matcher identical, with patterns that compile", () => {
    const byOwner = new Map<string, Matcher>();
    for (const task of tasksFile.tasks) {
      for (const matcher of matchersOf(task)) {
        expect(matcher.owner, `${task.label}: matchers have an owner`).toBeTruthy();
        for (const p of [matcher.pattern].flat()) expect(() => new RegExp(p.regexp)).not.toThrow();
        const first = byOwner.get(matcher.owner!);
        if (first) expect(matcher, `${task.label}: the ${matcher.owner} matcher differs from the first copy`).toEqual(first);
        else byOwner.set(matcher.owner!, matcher);
      }
    }
    expect([...byOwner.keys()].sort()).toEqual(["ai-tools-config", "cmake", "powerinfer-build"]);
  });

  it("matches config errors as the CLI prints them (file:line:col: key: message), one or several", () => {
    const config = matcherNamed("ai-tools-config");
    const gcc = matcherNamed("powerinfer-build");
    const two = join(scratch, "two-problems.yaml");
    writeFileSync(two, "engine: powerinfer\nmodel_path: m.gguf\ngeneration:\n  temperature: -3\n  bogus: 1\n");
    const one = join(scratch, "one-problem.yaml");
    writeFileSync(one, "engine: powerinfer\nmodel_path: m.gguf\ngeneration:\n  top_k: many\n");
    const stderrOf = (file: string) => {
      const r = spawnSync(process.execPath, [CLI, "render", "--config", file], { cwd: PROJECT_ROOT, env: { ...process.env, CI: "true" }, encoding: "utf8" });
      expect(r.status, r.stderr).toBe(2);
      return r.stderr.split("\n");
    };

    const several = stderrOf(two);
    expect(problems(config, several)).toEqual([
      { file: two, line: "4", column: "16", message: expect.stringMatching(/^generation\.temperature: /) },
      { file: two, line: "5", column: "3", message: expect.stringMatching(/^generation\.bogus: /) },
    ]);
    const single = stderrOf(one);
    expect(single[0]).toMatch(/^error \[E_CONFIG_\w+\]: /);
    expect(problems(config, single)).toEqual([{ file: one, line: "4", column: "10", message: expect.stringMatching(/^generation\.top_k: /) }]);
    expect(problems(gcc, [...several, ...single])).toEqual([]);
  });

  const hasTool = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

  /** A failed build step as the plain reporter prints it (what `CI=true pnpm pipeline engine` shows). */
  async function failedBuildOutput(argv: string[]): Promise<string[]> {
    const error = await runCommand(argv, { cwd: scratch }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CommandFailedError);
    const failed = error as CommandFailedError;
    const event: TaskErrorEvent = {
      v: EVENT_SCHEMA_VERSION,
      time: new Date().toISOString(),
      event: "task-error",
      task: "build",
      code: failed.code,
      message: failed.message,
      details: [...failed.details],
      durationMs: 1,
      command: failed.displayArgv,
      exitCode: failed.exitCode,
      tail: [...failed.tail],
      errorLines: [...failed.errorLines],
      logPath: join(scratch, "build.log"),
    };
    const lines: string[] = [];
    plainReporter((line) => lines.push(line), { showPlan: false })(event);
    return lines;
  }

  it.skipIf(!hasTool("cc"))("matches the compiler's errors in a failed build's report, base $gcc (needs cc)", async () => {
    const source = join(scratch, "broken.c");
    writeFileSync(source, "int main(void) {\n  return undeclared_thing;\n}\n");
    const lines = await failedBuildOutput(["cc", "-c", source, "-o", join(scratch, "broken.o")]);
    const found = problems(matcherNamed("powerinfer-build"), lines);
    expect(found[0]).toEqual({ file: source, line: "2", column: expect.stringMatching(/^\d+$/), severity: "error", message: expect.stringContaining("undeclared_thing") });
    expect(problems(matcherNamed("ai-tools-config"), lines)).toEqual([]);
    expect(matcherNamed("powerinfer-build").base).toBe("$gcc");
  });

  it.skipIf(!hasTool("cmake"))("matches CMake's configure errors with their message (needs cmake)", async () => {
    const dir = join(scratch, "cmake-src");
    rmSync(dir, { recursive: true, force: true });
    spawnSync("mkdir", ["-p", dir]);
    writeFileSync(join(dir, "CMakeLists.txt"), 'cmake_minimum_required(VERSION 3.13)\nproject(broken NONE)\nmessage(FATAL_ERROR "no CUDA toolkit found")\n');
    const lines = await failedBuildOutput(["cmake", "-S", dir, "-B", join(scratch, "cmake-build")]);
    expect(problems(matcherNamed("cmake"), lines)).toEqual([{ severity: "Error", file: "CMakeLists.txt", line: "3", message: "no CUDA toolkit found" }]);
  });
});

describe(".vscode/launch.json", () => {
  const launch = readJsonc<{ version: string; configurations: LaunchConfig[]; inputs?: Input[] }>(".vscode", "launch.json");
  const inputs = new Map((launch.inputs ?? []).map((i) => [i.id, i]));

  it("has the configurations, each starting a file that exists", () => {
    expect(launch.configurations.map((c) => c.name)).toEqual(
      expect.arrayContaining(["pipeline: convert tiny-relu-llama", "pipeline: current args (prompt)", "ai-tools run demo", "vitest: current test file"]),
    );
    for (const config of launch.configurations) {
      expect(config.type, config.name).toBe("node");
      expect(config.program, `${config.name}: program`).toBeDefined();
      const program = workspaceVars(config.program!);
      expect(existsSync(program) && statSync(program).isFile(), `${config.name}: ${config.program} exists`).toBe(true);
      for (const ref of inputRefs(config)) expect(inputs.has(ref), `${config.name}: \${input:${ref}} is declared`).toBe(true);
    }
    expect(inputRefs(launch.configurations).sort()).toEqual([...inputs.keys()].sort());
  });

  it("debugs the CLI on its TypeScript sources through tsx, with arguments the CLI accepts", () => {
    const cliConfigs = launch.configurations.filter((c) => c.name.startsWith("pipeline:") || c.name.startsWith("ai-tools"));
    expect(cliConfigs.length).toBe(3);
    for (const config of cliConfigs) {
      expect(config.runtimeExecutable).toBe("node");
      expect(config.runtimeArgs).toEqual(["--import", "tsx"]);
      expect(relative(PROJECT_ROOT, workspaceVars(config.program!)).split(sep).join("/")).toBe("scripts/dev-cli.ts");
      // A single string goes through the terminal's shell: the words it would split into.
      const argvs = typeof config.args === "string" ? expand([config.args], inputs).map(([line]) => shellWords(line!)) : expand(config.args ?? [], inputs);
      expect(argvs.length).toBeGreaterThan(0);
      for (const argv of argvs) {
        expect(() => parseCli(argv), `${config.name}: ${argv.join(" ")}`).not.toThrow();
        const parsed = parseCli(argv);
        expect(parsed.kind === "command" && commandNames().includes(parsed.invocation.path[0]!), argv.join(" ")).toBe(true);
      }
    }
    expect(existsSync(at("node_modules", "tsx", "package.json")), "tsx is installed").toBe(true);
  });

  it("starts: scripts/dev-cli.ts runs main() from the sources and passes its exit code on", async () => {
    const run = (args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", at("scripts", "dev-cli.ts"), ...args], { cwd: PROJECT_ROOT, env: { ...process.env, CI: "true" }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("error", reject);
        child.on("close", (status) => resolve({ status, stdout, stderr }));
      });
    const [version, usage] = await Promise.all([run(["--version"]), run(["no-such-command"])]);
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toBe(`ai-tools ${(JSON.parse(readFileSync(at("package.json"), "utf8")) as { version: string }).version}\n`);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/unknown command "no-such-command"/);
  });
});

describe(".vscode/settings.json and extensions.json", () => {
  const settings = readJsonc<Record<string, unknown>>(".vscode", "settings.json");

  /** A yaml.schemas glob (relative to the workspace folder) as a regular expression. */
  const globToRegExp = (glob: string) =>
    new RegExp(
      "^" +
        glob
          .split(/(\*\*\/|\*)/)
          .map((part) => (part === "**/" ? "(?:[^/]+/)*" : part === "*" ? "[^/]*" : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")))
          .join("") +
        "$",
    );
  const yamlFilesUnder = (dir: string): string[] =>
    readdirSync(at(dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? yamlFilesUnder(`${dir}/${e.name}`) : e.name.endsWith(".yaml") ? [`${dir}/${e.name}`] : []));

  it("associates existing JSON Schemas with the YAML files, and covers each config", () => {
    const schemas = settings["yaml.schemas"] as Record<string, string | string[]>;
    expect(Object.keys(schemas).sort()).toEqual(["schemas/engine.schema.json", "schemas/host.schema.json", "schemas/policy.schema.json", "schemas/recipe.schema.json"]);
    for (const [schema, globs] of Object.entries(schemas)) {
      expect(existsSync(at(schema)), `${schema} exists`).toBe(true);
      expect(JSON.parse(readFileSync(at(schema), "utf8"))).toHaveProperty("type", "object");
      expect([globs].flat().length).toBeGreaterThan(0);
    }
    const schemaFor = (file: string) => Object.entries(schemas).filter(([, globs]) => [globs].flat().some((g) => globToRegExp(g).test(file))).map(([schema]) => schema);
    const kinds: Record<string, string> = { "configs/models": "schemas/recipe.schema.json", "configs/hosts": "schemas/host.schema.json", "configs/engines": "schemas/engine.schema.json" };
    for (const [dir, schema] of Object.entries(kinds)) {
      const files = yamlFilesUnder(dir);
      expect(files.length).toBeGreaterThan(0);
      for (const file of files) expect(schemaFor(file), file).toEqual([schema]);
    }
    expect(schemaFor("models/powerinfer/tiny-relu-llama/policy.yaml")).toEqual(["schemas/policy.schema.json"]);
    expect(schemaFor("policies/team/chat.yaml")).toEqual(["schemas/policy.schema.json"]);
    expect(schemaFor("configs/trusted-keys.yaml")).toEqual([]);
  });

  it("uses the workspace's TypeScript", () => {
    expect(existsSync(join(at(settings["typescript.tsdk"] as string), "tsserverlibrary.js"))).toBe(true);
  });

  it("recommends extensions by id, eslint only where eslint is used", () => {
    const { recommendations } = readJsonc<{ recommendations: string[] }>(".vscode", "extensions.json");
    for (const id of recommendations) expect(id).toMatch(/^[a-z0-9-]+\.[a-z0-9-]+$/i);
    expect(recommendations).toEqual(expect.arrayContaining(["redhat.vscode-yaml", "vitest.explorer", "ms-vscode.cmake-tools", "ms-python.python"]));
    const usesEslint = "eslint" in { ...pkg.dependencies, ...pkg.devDependencies };
    expect(recommendations.includes("dbaeumer.vscode-eslint")).toBe(usesEslint);
  });
});

describe(".devcontainer", () => {
  const container = readJsonc<{
    build?: { dockerfile: string };
    image?: string;
    features: Record<string, Record<string, string>>;
    hostRequirements?: { gpu?: unknown };
    postCreateCommand?: string;
    customizations?: { vscode?: { extensions?: string[] } };
  }>(".devcontainer", "devcontainer.json");

  it("builds on a CUDA devel image with CMake, a compiler, git and python3 with numpy<2 and sentencepiece", () => {
    expect(container.build?.dockerfile).toBeDefined();
    const dockerfile = readFileSync(at(".devcontainer", container.build!.dockerfile), "utf8");
    expect(dockerfile).toMatch(/^FROM nvidia\/cuda:12\.\d+\.\d+-devel-ubuntu\d+\.\d+$/m);
    for (const pkgName of ["build-essential", "cmake", "git", "python3-numpy", "python3-sentencepiece"]) expect(dockerfile).toMatch(new RegExp(`^\\s+${pkgName} \\\\$`, "m"));
    expect(container.hostRequirements?.gpu).toBe("optional");
  });

  it("installs Node 20 and the pnpm that package.json pins, then the dependencies", () => {
    const node = container.features["ghcr.io/devcontainers/features/node:1"];
    expect(node?.version).toBe("20");
    expect(`pnpm@${node?.pnpmVersion}`).toBe(pkg.packageManager);
    expect(container.postCreateCommand).toMatch(/^pnpm install --frozen-lockfile\b/);
    const recommended = readJsonc<{ recommendations: string[] }>(".vscode", "extensions.json").recommendations;
    expect(container.customizations?.vscode?.extensions?.sort()).toEqual([...recommended].sort());
  });
});
