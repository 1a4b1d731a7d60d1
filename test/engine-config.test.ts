/**
 * configs/engines/powerinfer.yaml: the shipped file is valid and agrees with the
 * submodule gitlink; bad files get errors with file:line:col and the key path.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { engineConfigSchema } from "../pipeline/config/engine-config.js";
import { ConfigError, loadYamlConfig, parseYamlConfig } from "../pipeline/config/load-yaml.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

const CONFIG = join(PROJECT_ROOT, "configs", "engines", "powerinfer.yaml");

function problems(text: string): string[] {
  try {
    parseYamlConfig(text, engineConfigSchema, "powerinfer.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`);
  }
  throw new Error("expected the config to be rejected");
}

describe("the shipped engine config", () => {
  it("is valid and pins the reference commit", async () => {
    const config = await loadYamlConfig(CONFIG, engineConfigSchema);
    expect(config.upstream.commit).toBe("d3ebd7c5666348cf43c22f0d62dfbc9a763cffb8");
    expect(config.build.presets.cpu).toBeDefined();
    expect(config.build.presets.cuda?.cmakeFlags).toContain("-DLLAMA_CUBLAS=ON");
  });

  it("agrees with the gitlink of the external/powerinfer submodule", async () => {
    const config = await loadYamlConfig(CONFIG, engineConfigSchema);
    const stage = execFileSync("git", ["ls-files", "--stage", "--", config.upstream.path], { cwd: PROJECT_ROOT, encoding: "utf8" });
    expect(stage).toMatch(/^160000 [0-9a-f]{40} 0\texternal\/powerinfer\n$/);
    expect(stage.split(" ")[1]).toBe(config.upstream.commit);
    expect(readFileSync(join(PROJECT_ROOT, ".gitmodules"), "utf8")).toContain("path = external/powerinfer");
  });
});

describe("config errors", () => {
  const valid = readFileSync(CONFIG, "utf8");

  it("names the line, column and key path of an unknown key and lists the known ones", () => {
    const text = valid.replace("  native: false", "  nativ: false");
    const [problem] = problems(text);
    const line = text.split("\n").findIndex((l) => l.includes("nativ:")) + 1;
    expect(problem).toBe(`${line}:3 build.nativ: unknown key "nativ"; expected one of: backend, buildType, native, targets, cmakeFlags, timeoutMinutes, cache, presets`);
  });

  it("reports every wrong type at once", () => {
    const text = valid.replace("timeoutMinutes: 180", "timeoutMinutes: soon").replace("backend: auto", "backend: metal");
    const found = problems(text);
    expect(found).toHaveLength(2);
    expect(found.some((p) => /^\d+:12 build\.backend: /.test(p))).toBe(true);
    expect(found.some((p) => /^\d+:19 build\.timeoutMinutes: .*number/.test(p))).toBe(true);
  });

  it("points a missing required key at its parent", () => {
    const text = valid.replace(/^ {2}commit: .*\n/m, "");
    expect(problems(text)).toEqual([expect.stringMatching(/^\d+:3 upstream\.commit: required key is missing \(/)]);
  });

  it("reports YAML syntax errors with their position", () => {
    expect(problems("upstream:\n  url: [unclosed\n")[0]).toMatch(/^\d+:\d+ : YAML syntax error/);
  });

  it("refuses alias bombs", () => {
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]", ...Array.from({ length: 12 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`)].join("\n");
    expect(() => parseYamlConfig(bomb, engineConfigSchema, "bomb.yaml")).toThrow();
  });
});
