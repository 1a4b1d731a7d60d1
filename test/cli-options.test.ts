import { describe, expect, it } from "vitest";
import { parseCli } from "../pipeline/cli/options.js";

describe("parseCli", () => {
  it("reads commands, models and flags", () => {
    expect(parseCli(["convert", "tiny-relu-llama", "--backend", "cuda", "--jobs", "8", "--json"])).toMatchObject({
      command: "convert",
      model: "tiny-relu-llama",
      backend: "cuda",
      jobs: 8,
      json: true,
    });
    expect(parseCli(["plan", "convert", "m"])).toMatchObject({ command: "plan", target: "convert", model: "m" });
    expect(parseCli(["status"])).toMatchObject({ command: "status" });
    expect(parseCli([])).toMatchObject({ command: "help" });
    expect(parseCli(["--version"])).toMatchObject({ command: "version" });
  });

  it("tolerates the leading -- that pnpm passes through", () => {
    expect(parseCli(["--", "engine", "--dry-run"])).toMatchObject({ command: "engine", dryRun: true });
  });

  it("takes --force alone, with a task, or repeated", () => {
    expect(parseCli(["engine", "--force"]).force).toBe(true);
    expect(parseCli(["engine", "--force", "build"]).force).toEqual(["build"]);
    expect(parseCli(["engine", "--force=build", "--force", "upstream"]).force).toEqual(["build", "upstream"]);
    expect(parseCli(["--force", "convert", "m"])).toMatchObject({ command: "convert", model: "m", force: true });
    expect(parseCli(["convert", "--force", "convert", "m"])).toMatchObject({ command: "convert", model: "m", force: ["convert"] });
  });

  it("rejects bad input with a message that names the flag", () => {
    expect(() => parseCli(["engine", "--frobnicate"])).toThrow(/Unknown option '--frobnicate'/);
    expect(() => parseCli(["engine", "--backend", "metal"])).toThrow('--backend must be one of auto, cpu, cuda, hip; got "metal"');
    expect(() => parseCli(["engine", "--jobs", "0"])).toThrow('--jobs must be a positive integer; got "0"');
    expect(() => parseCli(["engine", "--only", "compile"])).toThrow('unknown task "compile"');
    expect(() => parseCli(["convert"])).toThrow("convert needs exactly one model name");
    expect(() => parseCli(["engine", "extra"])).toThrow('engine takes no arguments; got "extra"');
    expect(() => parseCli(["deploy"])).toThrow('unknown command "deploy"');
    expect(() => parseCli(["engine", "--native", "--no-native"])).toThrow("contradict");
    for (const bad of [["engine", "--frobnicate"], ["deploy"]]) {
      expect(() => parseCli(bad)).toThrowError(expect.objectContaining({ code: "E_USAGE" }));
    }
  });
});
