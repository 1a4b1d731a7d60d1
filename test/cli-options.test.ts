/**
 * The command line as the parser reads it (pipeline/cli/program.ts, commander): each command
 * takes its own flags, with their choices, conflicts and environment fallbacks; everything
 * else is E_USAGE naming the flag and the help page to read. Pure: nothing runs.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkTaskNames, openGraph } from "../pipeline/cli/graph-run.js";
import { parseCli } from "../pipeline/cli/program.js";
import { CLI } from "./helpers/workspace.js";

/** The parsed command line, flattened: `command` is the command path ("plan convert"). */
function parse(argv: string[]): { command: string; args: string[] } & Record<string, unknown> {
  const parsed = parseCli(argv);
  if (parsed.kind !== "command") throw new Error(`printed instead of parsing: ${parsed.text.slice(0, 80)}`);
  return { ...parsed.invocation.options, command: parsed.invocation.path.join(" "), args: parsed.invocation.args };
}

/** The UsageError parseCli throws for argv. */
function usageError(argv: string[]): { code: string; message: string } {
  try {
    parseCli(argv);
  } catch (error) {
    return error as { code: string; message: string };
  }
  throw new Error(`${argv.join(" ")} parsed`);
}

function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe("parseCli", () => {
  it("reads commands, arguments and typed flags", () => {
    expect(parse(["convert", "tiny-relu-llama", "--backend", "cuda", "--jobs", "8", "--json"])).toMatchObject({
      command: "convert",
      args: ["tiny-relu-llama"],
      backend: "cuda",
      jobs: 8,
      json: true,
    });
    expect(parse(["plan", "convert", "m"])).toMatchObject({ command: "plan convert", args: ["m"] });
    expect(parse(["status"])).toMatchObject({ command: "status", args: [] });
    expect(parse(["metrics", "summary", "log.jsonl", "--json"])).toMatchObject({ command: "metrics summary", args: ["log.jsonl"], json: true });
    expect(parse(["download", "m", "--connections", "2", "--chunk-size", "8"])).toMatchObject({ connections: 2, chunkSize: 8 });
    expect(parse(["engine", "--no-wait"])).toMatchObject({ wait: false });
    expect(parse(["engine"])).toMatchObject({ wait: true });
    expect(parse(["bench", "m"])).toMatchObject({ maxRegression: 10 });
    expect(parse(["verify", "d", "--ignore-path", "a", "--ignore-path", "b", "--max-age-days", "90"])).toMatchObject({ ignorePath: ["a", "b"], maxAgeDays: 90 });
    expect(parse(["verify", "d", "--no-provenance"])).toMatchObject({ provenance: false });
    expect(parse(["verify", "d", "--provenance", "p.json", "--require-provenance"])).toMatchObject({ provenance: "p.json", requireProvenance: true });
  });

  it("prints the overview with no command, the version with --version", () => {
    const overview = parseCli([]);
    expect(overview.kind).toBe("output");
    expect(overview.kind === "output" && overview.text).toMatch(/^Usage: ai-tools \[options\] \[command\]/);
    const version = parseCli(["--version"]);
    expect(version).toEqual({ kind: "output", text: expect.stringMatching(/^ai-tools \d+\.\d+\.\d+\n$/) });
  });

  it("the CLI answers a bare --version or -V before loading the program, with what the program prints", () => {
    const program = parseCli(["--version"]);
    for (const flag of ["--version", "-V"]) {
      expect({ kind: "output", text: execFileSync(process.execPath, [CLI, flag], { encoding: "utf8" }) }).toEqual(program);
    }
  });

  it("tolerates the leading -- that pnpm passes through", () => {
    expect(parse(["--", "engine", "--dry-run"])).toMatchObject({ command: "engine", dryRun: true });
  });

  it("takes --force alone, with a task, with =, or repeated; a word the command needs stays its argument", () => {
    expect(parse(["engine", "--force"]).force).toBe(true);
    expect(parse(["engine", "--force", "build"]).force).toEqual(["build"]);
    expect(parse(["engine", "--force=build", "--force", "upstream"]).force).toEqual(["build", "upstream"]);
    expect(parse(["convert", "--force", "m"])).toMatchObject({ command: "convert", args: ["m"], force: true });
    expect(parse(["convert", "--force", "convert", "m"])).toMatchObject({ command: "convert", args: ["m"], force: ["convert"] });
    expect(parse(["convert", "m", "--force", "convert"])).toMatchObject({ args: ["m"], force: ["convert"] });
    expect(parse(["convert", "--force", "--json", "m"])).toMatchObject({ args: ["m"], force: true, json: true });
    expect(parse(["plan", "convert", "--force", "m"])).toMatchObject({ command: "plan convert", args: ["m"], force: true });
    // keygen's --force replaces a key pair: a plain switch.
    expect(parse(["keygen", "--out", "k", "--force"])).toMatchObject({ out: "k", force: true });
  });

  it("takes any task name: the graph the command builds checks them (gpu-split included)", () => {
    expect(parse(["convert", "m", "--only", "gpu-split"]).only).toBe("gpu-split");
    expect(parse(["convert", "m", "--from", "gpu-split"]).from).toBe("gpu-split");
    expect(parse(["convert", "m", "--force=gpu-split"]).force).toEqual(["gpu-split"]);
    expect(parse(["convert", "--force", "gpu-split", "m"]).force).toEqual(["gpu-split"]);
  });

  it("refuses bad input with E_USAGE: one line naming the flag or argument and the command's help page", () => {
    const cases: [string[], RegExp][] = [
      [["engine", "--frobnicate"], /^engine does not take --frobnicate\. See `ai-tools engine --help`\.$/],
      [["convert", "m", "--prompt", "x"], /^convert does not take --prompt \(run takes it\)\. See `ai-tools convert --help`\.$/],
      [["--force", "convert", "m"], /^unknown option --force \(.*convert.* take it, after the command\)/],
      [["engine", "--backend", "metal"], /--backend <backend>' argument 'metal' is invalid\. Allowed choices are auto, cpu, cuda, hip\. See `ai-tools engine --help`/],
      [["engine", "--jobs", "0"], /--jobs <n>' argument '0' is invalid\. It must be a positive integer/],
      [["download", "m", "--connections", "65"], /--connections <n>' argument '65' is invalid\. It must be an integer from 1 to 64/],
      [["bench", "m", "--max-regression", "150"], /--max-regression <pct>' argument '150' is invalid\. It must be a percentage between 0 and 100/],
      [["verify"], /^verify needs <dir>/],
      [["engine", "extra"], /^engine takes no arguments; got "extra"/],
      [["run", "--prompt", "x"], /^run needs --config <policy\.yaml>/],
      [["keygen"], /^keygen needs --out <prefix>/],
      [["plan"], /^plan needs a command: engine, convert, download, bench\./],
      [["plan", "convert", "m", "--dry-run"], /^plan convert does not take --dry-run/],
      [["deploy"], /^unknown command "deploy"; commands are .*\bconvert\b.*\bverify\b/],
      [["egnine"], /^unknown command "egnine" \(did you mean engine\?\)/],
    ];
    for (const [argv, message] of cases) {
      const error = usageError(argv);
      expect(error.code, argv.join(" ")).toBe("E_USAGE");
      expect(error.message, argv.join(" ")).toMatch(message);
      expect(error.message, argv.join(" ")).not.toContain("\n");
    }
  });

  it("refuses flags that contradict each other", () => {
    const cases: string[][] = [
      ["engine", "--native", "--no-native"],
      ["run", "--config", "p", "--no-verify", "--require-signature"],
      ["run", "--config", "p", "--prompt", "x", "--prompt-file", "f"],
      ["bench", "m", "--compare", "a.json", "--baseline", "b.json"],
      ["verify", "d", "--key", "k.pem", "--trusted-keys", "t.yaml"],
      ["verify", "d", "--require-provenance", "--no-provenance"],
    ];
    for (const argv of cases) {
      const error = usageError(argv);
      expect(error.code, argv.join(" ")).toBe("E_USAGE");
      expect(error.message, argv.join(" ")).toMatch(/cannot be used with|contradict each other/);
    }
    expect(parse(["engine", "--native"]).native).toBe(true);
    expect(parse(["engine", "--no-native"]).native).toBe(false);
    expect(parse(["run", "--config", "p", "--no-verify"])).toMatchObject({ verify: false });
  });

  it("takes an environment fallback the CLI reads itself; leaves one the library reads (and names as the source) to the library", () => {
    withEnv({ AI_TOOLS_METRICS_LOG: "/tmp/m.jsonl", AI_TOOLS_PYTHON: "/opt/py", AI_TOOLS_POWERINFER_URL: "file:///mirror", AI_TOOLS_POWERINFER_BIN: "/opt/main" }, () => {
      expect(parse(["run", "--config", "p"])).toMatchObject({ metricsLog: "/tmp/m.jsonl" });
      expect(parse(["run", "--config", "p", "--metrics-log", "flag.jsonl"])).toMatchObject({ metricsLog: "flag.jsonl" });
      const convert = parse(["convert", "m"]);
      expect(convert.python).toBeUndefined();
      expect(convert.upstreamUrl).toBeUndefined();
      expect(parse(["run", "--config", "p"]).binary).toBeUndefined();
      expect(parse(["convert", "m", "--python", "/usr/bin/python3"]).python).toBe("/usr/bin/python3");
    });
  });
});

describe("task names come from the graph", () => {
  const root = mkdtempSync(join(tmpdir(), "ai-tools-cli-tasks-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  // A recipe with a GPU split: its graph has the gpu-split step.
  mkdirSync(join(root, "configs", "models", "powerinfer"), { recursive: true });
  writeFileSync(
    join(root, "configs", "models", "powerinfer", "tiny-split.yaml"),
    `name: tiny-split\ntitle: tiny-split\nverified: true\nfamily: relu-llama\ngguf:\n  repo: PowerInfer/Tiny-Split-GGUF\n  revision: main\n  file: tiny.powerinfer.gguf\n  type: F16\ngpuSplit:\n  hosts: [gpu-box]\naudit:\n  model_version: "1"\n  source_repo: PowerInfer/Tiny-Split-GGUF\n`,
  );
  const io = { out: () => undefined, err: () => undefined, env: { ...process.env, AI_TOOLS_ROOT: root }, root };

  it("--only, --from and --force name any step of the graph; an unknown one lists the real ones", async () => {
    const { graph } = await openGraph({ graph: "convert", model: "tiny-split", flags: {} }, io);
    expect(graph.tasks.map((t) => t.id)).toEqual(["upstream", "build", "download", "convert", "gpu-split", "bench", "sign"]);
    for (const flags of [{ only: "gpu-split" }, { from: "gpu-split" }, { force: ["gpu-split"] }]) expect(() => checkTaskNames(graph, flags)).not.toThrow();
    expect(() => checkTaskNames(graph, { only: "compile" })).toThrow('--only compile: convert tiny-split has no step "compile"; its steps are upstream, build, download, convert, gpu-split, bench, sign');
    expect(() => checkTaskNames(graph, { force: ["build", "link"] })).toThrowError(expect.objectContaining({ code: "E_USAGE", message: expect.stringContaining("--force link") }));

    const engine = await openGraph({ graph: "engine", flags: {} }, io);
    expect(() => checkTaskNames(engine.graph, { from: "gpu-split" })).toThrow('--from gpu-split: engine has no step "gpu-split"; its steps are upstream, build');
  });
});
