/**
 * `clean`: removes what interrupted runs left and what no record uses, never what a
 * running step holds, and says how much it freed.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { executeClean, planClean } from "../pipeline/clean.js";
import { CLI } from "./helpers/workspace.js";
import { spawnSync } from "node:child_process";

let root: string;
const file = (path: string, bytes = 100) => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), Buffer.alloc(bytes));
};
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "ai-tools-clean-"));
  file("build/state/build.lock.json", 0);
  writeFileSync(join(root, "build/state/build.lock.json"), JSON.stringify({ result: { buildDir: "build/powerinfer/cpu-current" } }));
  file("build/powerinfer/cpu-current/bin/main", 1000);
  file("build/powerinfer/cpu-old/bin/main", 5000);
  file("models/powerinfer/m/model.powerinfer.gguf", 2000);
  // A writer that is gone: Linux pids never exceed 2^22 (PID_MAX_LIMIT), so no process has pid 4194305 (a small one, 4242, was alive in a CI run).
  file("models/powerinfer/m/.model.powerinfer.gguf.tmp-4194305", 700);
  file("models/powerinfer/m/SHA256SUMS.tmp-4194305-0a1b2c3d", 10);
  file("models/powerinfer/other/model.powerinfer.gguf", 3000);
  file("build/bench-logs/m/run-0/rusage.txt", 20);
  file("build/state/convert--m.lock.json", 30);
  file("hub/models--org--m/blobs/abc.ai-tools.incomplete", 400);
  file("hub/models--org--m/blobs/def", 900);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const paths = (items: { path: string }[]) => items.map((i) => i.path.slice(root.length + 1)).sort();

describe("clean", () => {
  it("without a model: temporaries, stale engine builds and bench logs only", () => {
    const { items } = planClean({ root });
    expect(paths(items)).toEqual(["build/bench-logs", "build/powerinfer/cpu-old", "models/powerinfer/m/.model.powerinfer.gguf.tmp-4194305", "models/powerinfer/m/SHA256SUMS.tmp-4194305-0a1b2c3d"]);
    expect(items.reduce((s, i) => s + i.bytes, 0)).toBe(5000 + 20 + 700 + 10);
  });

  it("with a model: its outputs and records, not another model's; --cache adds partial downloads and its Hub repos", () => {
    const { items } = planClean({ root, model: "m", cache: true, hubCacheDir: join(root, "hub"), modelRepos: ["org/m"] });
    const listed = paths(items);
    expect(listed).toContain("models/powerinfer/m");
    expect(listed).toContain("build/state/convert--m.lock.json");
    expect(listed).toContain("hub/models--org--m");
    expect(listed.some((p) => p.includes("other"))).toBe(false);
    expect(listed.some((p) => p.startsWith("build/powerinfer/cpu-current"))).toBe(false);
  });

  it("leaves a model whose step is running", () => {
    writeFileSync(join(root, "build/state/convert--m.running"), JSON.stringify({ pid: process.pid }));
    file(`models/powerinfer/m/.model.powerinfer.gguf.tmp-${process.pid}`, 50);
    const { items, kept } = planClean({ root, model: "m" });
    expect(paths(items)).not.toContain("models/powerinfer/m");
    expect(paths(items)).not.toContain(`models/powerinfer/m/.model.powerinfer.gguf.tmp-${process.pid}`);
    expect(kept).toEqual([`models/powerinfer/m/.model.powerinfer.gguf.tmp-${process.pid} (pid ${process.pid} is writing it)`, "m: convert--m running"]);
  });

  it("leaves a step another host holds (its pid cannot be checked from here)", () => {
    writeFileSync(join(root, "build/state/convert--m.running"), JSON.stringify({ pid: 999_999, host: "another-host.example" }));
    expect(planClean({ root, model: "m" }).kept).toEqual(["m: convert--m running"]);
  });

  it("deletes what it planned and reports the bytes", async () => {
    const { items } = planClean({ root });
    expect(await executeClean(items)).toBe(5730);
    expect(existsSync(join(root, "build/powerinfer/cpu-old"))).toBe(false);
    expect(existsSync(join(root, "build/powerinfer/cpu-current/bin/main"))).toBe(true);
    expect(existsSync(join(root, "models/powerinfer/m/model.powerinfer.gguf"))).toBe(true);
  });

  it("the CLI: --dry-run removes nothing; a real run says what it freed", () => {
    const env = { ...process.env, AI_TOOLS_ROOT: root, CI: "true", HF_HUB_CACHE: join(root, "hub") };
    const dry = spawnSync(process.execPath, [CLI, "clean", "--dry-run", "--cache"], { env, encoding: "utf8" });
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("would remove build/powerinfer/cpu-old (5.0 kB): engine build the build record no longer uses");
    expect(dry.stdout).toContain("would free 6.1 kB in 5 paths");
    expect(existsSync(join(root, "build/powerinfer/cpu-old"))).toBe(true);
    const real = spawnSync(process.execPath, [CLI, "clean", "--cache"], { env, encoding: "utf8" });
    expect(real.stdout).toContain("freed 6.1 kB in 5 paths");
    expect(existsSync(join(root, "hub/models--org--m/blobs/abc.ai-tools.incomplete"))).toBe(false);
    expect(existsSync(join(root, "hub/models--org--m/blobs/def"))).toBe(true);
  });
});
