/**
 * The task-graph engine, driven directly with in-process tasks the test controls
 * (Wireit's rig style): each test counts how often a task really ran.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { executeGraph, type ExecuteOptions } from "../pipeline/core/executor.js";
import type { PipelineEvent } from "../pipeline/core/events.js";
import type { Graph, TaskDefinition, TaskInputs } from "../pipeline/core/graph.js";
import { StateStore } from "../pipeline/core/state.js";
import { isAlive, waitFor } from "./helpers/wait.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "ai-tools-graph-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

interface FakeTask {
  def: TaskDefinition;
  runs: number;
}

function fakeTask(
  id: string,
  options: {
    dependsOn?: string[];
    inputs?: () => TaskInputs;
    output?: string;
    run?: (task: FakeTask) => Promise<void>;
  } = {},
): FakeTask {
  const fake: FakeTask = { runs: 0, def: undefined as unknown as TaskDefinition };
  fake.def = {
    id,
    title: `task ${id}`,
    version: 1,
    dependsOn: options.dependsOn ?? [],
    inputs: options.inputs ?? (() => ({})),
    outputs: () => (options.output ? [{ path: options.output, hash: true }] : []),
    async run() {
      fake.runs++;
      await options.run?.(fake);
      if (options.output) await writeFile(join(root, options.output), `${id} output ${fake.runs}\n`);
      return { ran: fake.runs };
    },
  };
  return fake;
}

async function execute(tasks: FakeTask[], extra: Partial<ExecuteOptions> = {}) {
  const events: PipelineEvent[] = [];
  const graph: Graph = { name: "test", tasks: tasks.map((t) => t.def) };
  const outcome = await executeGraph(graph, {
    root,
    stateDir: join(root, "state"),
    logDir: join(root, "logs"),
    onEvent: (e) => events.push(e),
    ...extra,
  });
  const of = <E extends PipelineEvent["event"]>(name: E) => events.filter((e) => e.event === name) as Extract<PipelineEvent, { event: E }>[];
  return { outcome, events, of };
}

describe("freshness", () => {
  it("skips a task whose inputs and outputs are unchanged", async () => {
    const a = fakeTask("a", { output: "a.txt", inputs: () => ({ values: { level: 3 } }) });
    const first = await execute([a]);
    expect(first.outcome.status).toBe("success");
    const second = await execute([a]);
    expect(a.runs).toBe(1);
    expect(second.of("task-skip")).toMatchObject([{ task: "a", reason: "fresh" }]);
  });

  it("reruns when a config value changes and says which one", async () => {
    let level = 3;
    const a = fakeTask("a", { inputs: () => ({ values: { "configs/x.yaml#level": level } }) });
    await execute([a]);
    level = 4;
    const plan = await execute([a], { dryRun: true });
    expect(plan.of("task-plan")[0]).toMatchObject({ action: "run", reasons: ["input configs/x.yaml#level changed: 3 -> 4"] });
    expect(a.runs).toBe(1); // a plan runs nothing
    await execute([a]);
    expect(a.runs).toBe(2);
  });

  it("reruns when a tool version changes (a swapped compiler must rebuild)", async () => {
    let cmake = "cmake version 3.25.1";
    const a = fakeTask("a", { inputs: () => ({ tools: { cmake } }) });
    await execute([a]);
    cmake = "cmake version 3.27.0";
    const { of } = await execute([a]);
    expect(a.runs).toBe(2);
    expect(of("task-start")[0]!.reasons).toEqual(["tool cmake changed: cmake version 3.25.1 -> cmake version 3.27.0"]);
  });

  it("reruns when a declared env var changes, without revealing its value", async () => {
    const env = { ...process.env, CFLAGS: "-O2 secret-looking-value" };
    const a = fakeTask("a", { inputs: () => ({ env: ["CFLAGS"] }) });
    await execute([a], { env });
    const { of } = await execute([a], { env: { ...env, CFLAGS: "-O3" } });
    expect(of("task-start")[0]!.reasons).toEqual(["env CFLAGS changed"]);
    const record = await readFile(join(root, "state", "a.lock.json"), "utf8");
    expect(record).not.toContain("secret-looking-value");
    expect(record).not.toContain("-O3");
  });

  it("reruns when an input file's content changes", async () => {
    await writeFile(join(root, "recipe.yaml"), "a: 1\n");
    const a = fakeTask("a", { inputs: () => ({ files: ["recipe.yaml"] }) });
    await execute([a]);
    await execute([a]);
    expect(a.runs).toBe(1);
    await writeFile(join(root, "recipe.yaml"), "a: 2\n");
    const { of } = await execute([a]);
    expect(a.runs).toBe(2);
    expect(of("task-start")[0]!.reasons[0]).toMatch(/^input recipe.yaml changed: [0-9a-f]{64} -> [0-9a-f]{64}$/);
  });

  it("reruns when an output was deleted or modified, and keeps a merely touched one", async () => {
    const a = fakeTask("a", { output: "a.txt" });
    await execute([a]);
    await rm(join(root, "a.txt"));
    expect((await execute([a], { dryRun: true })).of("task-plan")[0]!.reasons).toEqual(["output a.txt missing"]);
    await execute([a]);
    expect(a.runs).toBe(2);

    await writeFile(join(root, "a.txt"), "edited by hand\n");
    expect((await execute([a], { dryRun: true })).of("task-plan")[0]!.reasons).toEqual(["output a.txt modified"]);
    await execute([a]);
    expect(a.runs).toBe(3);

    const later = new Date(Date.now() + 60_000);
    await utimes(join(root, "a.txt"), later, later); // same bytes, new mtime: the digest says fresh
    await execute([a]);
    expect(a.runs).toBe(3);
  });

  it("never leaves a task that crashed mid-run marked fresh", async () => {
    let crash = false;
    const a = fakeTask("a", {
      output: "a.txt",
      run: async () => {
        if (crash) {
          await writeFile(join(root, "a.txt"), "half");
          throw new Error("killed mid-write");
        }
      },
    });
    await execute([a]);
    crash = true;
    const failed = await execute([a], { force: ["a"] });
    expect(failed.outcome.status).toBe("failed");
    expect(await new StateStore(join(root, "state")).read("a")).toBeNull();
    crash = false;
    const rerun = await execute([a]);
    expect(rerun.of("task-start")[0]!.reasons).toEqual(["no record of a successful run"]);
    expect(a.runs).toBe(3);
  });

  it("reruns a dependent when its dependency's result changes", async () => {
    let level = 1;
    const a = fakeTask("a", { output: "a.txt", inputs: () => ({ values: { level } }) });
    const b = fakeTask("b", { dependsOn: ["a"] });
    await execute([a, b]);
    await execute([a, b]);
    expect([a.runs, b.runs]).toEqual([1, 1]);
    level = 2;
    const plan = await execute([a, b], { dryRun: true });
    expect(plan.of("task-plan").map((p) => [p.task, p.action, p.reasons[0]])).toEqual([
      ["a", "run", "input level changed: 1 -> 2"],
      ["b", "run", "dependency a will run first"],
    ]);
    const { of } = await execute([a, b]);
    expect(of("task-start").map((e) => [e.task, e.reasons])).toEqual([
      ["a", ["input level changed: 1 -> 2"]],
      ["b", ["dependency a changed"]],
    ]);
  });
});

describe("scheduling", () => {
  it("runs independent tasks at the same time", async () => {
    const spans: Record<string, [number, number]> = {};
    const timed = (id: string) =>
      fakeTask(id, {
        run: async () => {
          const start = performance.now();
          await new Promise((r) => setTimeout(r, 300));
          spans[id] = [start, performance.now()];
        },
      });
    const { outcome } = await execute([timed("download"), timed("build")]);
    expect(outcome.status).toBe("success");
    const [d, b] = [spans.download!, spans.build!];
    expect(Math.max(d[0], b[0])).toBeLessThan(Math.min(d[1], b[1])); // the spans overlap
  });

  it("skips dependents of a failed task with the reason, and still runs independent tasks", async () => {
    const build = fakeTask("build", { run: async () => Promise.reject(new Error("compiler exploded")) });
    const bench = fakeTask("bench", { dependsOn: ["build"] });
    const download = fakeTask("download");
    const { outcome, of } = await execute([build, bench, download]);
    expect(outcome.status).toBe("failed");
    expect(download.runs).toBe(1);
    expect(bench.runs).toBe(0);
    expect(of("task-error")[0]).toMatchObject({ task: "build", message: "compiler exploded" });
    expect(of("task-skip")).toMatchObject([{ task: "bench", reason: "blocked", detail: "not run: dependency build failed" }]);
    expect(of("graph-end")[0]!.counts).toMatchObject({ ran: 1, failed: 1, blocked: 1 });
  });

  it("detects a cycle before running anything", async () => {
    const a = fakeTask("a", { dependsOn: ["b"] });
    const b = fakeTask("b", { dependsOn: ["a"] });
    await expect(execute([a, b])).rejects.toMatchObject({ code: "E_GRAPH_CYCLE" });
    expect(a.runs + b.runs).toBe(0);
  });
});

describe("selection", () => {
  // build's output differs on every run (it embeds the run count), like a real rebuild might.
  const chain = () => [
    fakeTask("upstream"),
    fakeTask("build", { dependsOn: ["upstream"], output: "build.bin" }),
    fakeTask("bench", { dependsOn: ["build"] }),
  ];

  it("--force <task> reruns that task and what depends on its changed result", async () => {
    const tasks = chain();
    await execute(tasks);
    const { of } = await execute(tasks, { force: ["build"] });
    expect(of("task-start").map((e) => [e.task, e.reasons[0]])).toEqual([
      ["build", "forced (--force)"],
      ["bench", "dependency build changed"],
    ]);
    expect(tasks.map((t) => t.runs)).toEqual([1, 2, 2]);
  });

  it("does not rerun dependents when a forced rerun reproduces the same result", async () => {
    const upstream = fakeTask("upstream", { output: "same.txt", run: async () => undefined });
    upstream.def.run = async () => {
      upstream.runs++;
      await writeFile(join(root, "same.txt"), "identical\n");
      return {};
    };
    const build = fakeTask("build", { dependsOn: ["upstream"] });
    await execute([upstream, build]);
    const { of } = await execute([upstream, build], { force: ["upstream"] });
    expect(of("task-start").map((e) => e.task)).toEqual(["upstream"]);
    expect(of("task-skip").map((e) => e.task)).toEqual(["build"]);
  });

  it("--from <task> reruns it and everything downstream", async () => {
    const tasks = chain();
    await execute(tasks);
    const { of } = await execute(tasks, { from: "build" });
    expect(of("task-start").map((e) => e.task)).toEqual(["build", "bench"]);
    expect(of("task-skip").map((e) => e.task)).toEqual(["upstream"]);
  });

  it("--only <task> runs just that task and refuses when a dependency is not fresh", async () => {
    const tasks = chain();
    const refused = await execute(tasks, { only: "build" });
    expect(refused.outcome.status).toBe("failed");
    expect(refused.of("task-error")[0]).toMatchObject({ code: "E_DEPENDENCY_NOT_READY" });
    expect(tasks.map((t) => t.runs)).toEqual([0, 0, 0]);

    await execute(tasks);
    const only = await execute(tasks, { only: "build", force: ["build"] });
    expect(only.of("graph-start")[0]!.tasks.map((t) => t.id)).toEqual(["build"]);
    expect(tasks.map((t) => t.runs)).toEqual([1, 2, 1]);
  });

  it("rejects an unknown task name", async () => {
    await expect(execute(chain(), { only: "nope" })).rejects.toMatchObject({ code: "E_GRAPH_UNKNOWN_TASK" });
  });
});

describe("interruption", () => {
  it("the step's run lock names the process group of every command it is running", async () => {
    const pidFile = join(root, "child.pid");
    const lockFile = join(root, "state", "a.running");
    // A record temporary that a killed writer left: removed once the step holds its lock.
    await mkdir(join(root, "state"), { recursive: true });
    await writeFile(join(root, "state", "a.lock.json.tmp-999999-0123abcd"), "{");
    let seenInLock: { children?: { pgid: number }[] } | undefined;
    const a: TaskDefinition = {
      id: "a",
      title: "a",
      version: 1,
      dependsOn: [],
      inputs: () => ({}),
      async run(ctx) {
        const running = ctx.run(["sh", "-c", `echo $$ > ${pidFile}; sleep 0.3`]);
        await waitFor(() => existsSync(pidFile), "the command to start");
        seenInLock = JSON.parse(await readFile(lockFile, "utf8")) as typeof seenInLock;
        await running;
        return {};
      },
    };
    const { outcome } = await execute([{ def: a, runs: 0 }]);
    expect(outcome.status).toBe("success");
    const pgid = Number((await readFile(pidFile, "utf8")).trim());
    expect(seenInLock?.children?.map((c) => c.pgid)).toEqual([pgid]);
    expect(existsSync(lockFile)).toBe(false);
    expect(existsSync(join(root, "state", "a.lock.json.tmp-999999-0123abcd"))).toBe(false);
  });

  it("kills the running command's process tree, records nothing, reports aborted", async () => {
    const pidFile = join(root, "grandchild.pid");
    const controller = new AbortController();
    const a: TaskDefinition = {
      id: "a",
      title: "a",
      version: 1,
      dependsOn: [],
      inputs: () => ({}),
      run: (ctx) => ctx.run(["sh", "-c", `sleep 30 & echo $! > ${pidFile}; wait`]),
    };
    const b = fakeTask("b", { dependsOn: ["a"] });
    const running = execute([{ def: a, runs: 0 }, b], { signal: controller.signal });
    await waitFor(() => existsSync(pidFile), "the command to start");
    const grandchild = Number((await readFile(pidFile, "utf8")).trim());
    controller.abort();
    const { outcome, of } = await running;
    expect(outcome.status).toBe("aborted");
    expect(of("graph-end")[0]!.status).toBe("aborted");
    expect(b.runs).toBe(0);
    expect(await new StateStore(join(root, "state")).read("a")).toBeNull();
    await waitFor(() => !isAlive(grandchild), "the grandchild to be killed");
  });
});
