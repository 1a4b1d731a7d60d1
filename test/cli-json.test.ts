/**
 * `--json` is one versioned event union (pipeline/cli/events.ts): the committed JSON Schema
 * is what the zod schema generates, the executor's event types and the schema's agree, and
 * the commands that print results print events that validate against schemas/events.schema.json
 * (the ones that need a converted model are checked where they are tested: bench-cli,
 * runtime-cli, signing-cli, gguf-recipes, convert-cli, doctor-cli).
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import { eventsJsonSchema, type graphEventSchema } from "../pipeline/cli/events.js";
import type { PipelineEvent } from "../pipeline/core/events.js";
import { buildMetricsRecord } from "../pipeline/metrics/record.js";
import { eventsOf, parseEvents } from "./helpers/events.js";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";

describe("the event schema", () => {
  it("schemas/events.schema.json is what the zod schema generates (run `pnpm pipeline schemas` after a change)", () => {
    expect(JSON.parse(readFileSync(join(PROJECT_ROOT, "schemas", "events.schema.json"), "utf8"))).toEqual(eventsJsonSchema());
  });

  it("declares the executor's events exactly as pipeline/core/events.ts types them", () => {
    expectTypeOf<z.infer<typeof graphEventSchema>>().toEqualTypeOf<PipelineEvent>();
  });

  it("refuses what is not an event: no version, an unknown kind, a field it does not declare", () => {
    const ok = { v: 1, time: "2026-01-01T00:00:00Z", event: "task-status", task: "build", state: "fresh", reasons: [] };
    expect(parseEvents(JSON.stringify(ok))).toHaveLength(1);
    for (const bad of [{ ...ok, v: 2 }, { ...ok, event: "task-state" }, { ...ok, state: "gone" }, { ...ok, extra: 1 }]) {
      expect(() => parseEvents(JSON.stringify(bad)), JSON.stringify(bad)).toThrow(/not an event of schemas\/events\.schema\.json/);
    }
  });
});

describe("--json output of the workspace commands validates against the schema", () => {
  let ws: TestWorkspace;
  const json = async (args: string[], status = 0) => {
    const result = await ws.cli([...args, "--json"]);
    expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(status);
    return parseEvents(result.stdout);
  };
  beforeAll(() => {
    ws = makeWorkspace();
  });
  afterAll(() => ws.cleanup());

  it("models, status, plan, engine --dry-run, release --dry-run", async () => {
    const models = eventsOf(await json(["models"]), "model");
    expect(models.map((m) => m.name)).toContain("tiny-relu-llama");
    expect(eventsOf(await json(["status"]), "task-status").map((s) => [s.task, s.state])).toEqual([
      ["upstream", "missing"],
      ["build", "stale"],
    ]);
    expect(eventsOf(await json(["status", "tiny-relu-llama"]), "task-status").map((s) => s.task)).toEqual(["upstream", "build", "generate", "convert", "bench", "sign"]);
    expect(eventsOf(await json(["plan", "convert", "tiny-relu-llama"]), "task-plan")).toHaveLength(6);
    expect(eventsOf(await json(["engine", "--dry-run"]), "graph-end")).toEqual([expect.objectContaining({ status: "success" })]);
    const [release] = eventsOf(await json(["release", "tiny-relu-llama", "--dry-run", "--baseline", "old.json"]), "release");
    expect(release).toMatchObject({ model: "tiny-relu-llama", dryRun: true, manifestDir: "build/manifests/tiny-relu-llama/0", developmentKey: true, baseline: "old.json", gateFailed: null });
  });

  it("keygen, clean, metrics summary, and an error", async () => {
    expect(eventsOf(await json(["keygen", "--out", "keys/a"]), "keygen")).toEqual([expect.objectContaining({ encrypted: false })]);

    mkdirSync(join(ws.root, "build", "bench-logs"), { recursive: true });
    writeFileSync(join(ws.root, "build", "bench-logs", "old.log"), "x".repeat(100));
    const [clean] = eventsOf(await json(["clean", "--dry-run"]), "clean");
    expect(clean!.items).toContainEqual(expect.objectContaining({ path: expect.stringContaining("bench-logs") }));

    const log = join(ws.root, "build", "metrics.jsonl");
    const policy = {
      file: "p.yaml",
      engine: "powerinfer",
      modelPath: "/m/tiny.powerinfer.gguf",
      generation: { temperature: 0.8, top_p: 0.9, top_k: 40, repeat_penalty: 1.1, max_tokens: 16, ctx_size: 256, seed: -1, stop: [] },
      runtime: { threads: 1, vram_budget_gb: null, gpu_layers: null, batch_size: null },
      sources: {},
      warnings: [],
      policyHash: "f".repeat(64),
      host: { name: "detected", source: "detected" as const, physicalCores: 2, memoryBytes: 2 ** 33, gpus: [] },
    };
    const metrics = { timeToFirstTokenMs: 5, totalMs: 20, promptTokens: 4, generatedTokens: 16, promptTokensPerSecond: 800, generationTokensPerSecond: 1000, source: "engine" as const };
    appendFileSync(log, JSON.stringify(buildMetricsRecord({ policy, probe: { name: "powerinfer", version: "b1", commit: "c" }, prompt: "hi", output: "ho", metrics })) + "\nnot json\n");
    const [summary] = eventsOf(await json(["metrics", "summary", "build/metrics.jsonl"]), "metrics-summary");
    expect(summary).toMatchObject({ records: 1, malformed: { count: 1 }, models: [expect.objectContaining({ requests: 1 })] });

    const [error] = eventsOf(await json(["convert", "no-such-model"], 2), "error");
    expect(error).toMatchObject({ code: "E_CONFIG_MISSING" });
  });
});
