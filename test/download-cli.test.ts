/**
 * `pnpm pipeline download <model>` and `convert <model>` as users run them, against
 * the local Hub imitation (HF_ENDPOINT) with a throwaway HF_HUB_CACHE.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineEvent } from "../pipeline/core/events.js";
import { seededBytes, startHubServer, type HubServer } from "./helpers/hub-server.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";
import { waitFor } from "./helpers/wait.js";

const WEIGHTS = seededBytes("cli-weights", 600_000);
const PREDICTOR = [seededBytes("p0", 5000), seededBytes("p1", 5000)];
const TOKEN = "hf_cli_secret_token_42";
/** A ReLU-LLaMA's config.json: the download checks it against the architecture allow-list first. */
const RELU_CONFIG = JSON.stringify({ model_type: "llama", hidden_act: "relu", num_hidden_layers: 2, hidden_size: 64, intermediate_size: 256, vocab_size: 512 });

let server: HubServer;
let ws: TestWorkspace;
let env: NodeJS.ProcessEnv;

const RECIPE = `name: tiny-test
title: Tiny test model
verified: true
family: relu-llama
model:
  repo: SparseLLM/Tiny-Test
  revision: main
predictor:
  repo: PowerInfer/Tiny-Test-Predictor
  revision: main
  allowPatterns: ["model_*.pt", "config.json", "activation/*"]
convert:
  script: convert.py
  outtype: f16
audit:
  model_version: "0"
  source_repo: SparseLLM/Tiny-Test
`;

beforeAll(async () => {
  server = await startHubServer();
  server.addRepo({
    id: "SparseLLM/Tiny-Test",
    gated: "auto",
    token: TOKEN,
    files: [
      { path: "model.safetensors", content: WEIGHTS, lfs: true },
      { path: "config.json", content: RELU_CONFIG },
      { path: "tokenizer.model", content: seededBytes("tok", 2000), lfs: true },
      { path: "pytorch_model.bin", content: seededBytes("bin", 9000), lfs: true },
    ],
  });
  server.addRepo({
    id: "PowerInfer/Tiny-Test-Predictor",
    files: [
      { path: "model_0.pt", content: PREDICTOR[0]!, lfs: true },
      { path: "model_1.pt", content: PREDICTOR[1]!, lfs: true },
      { path: "config.json", content: '{"sparse_threshold": 0.0}\n' },
      { path: "activation/activation_0.pt", content: seededBytes("act0", 1024), lfs: true },
      { path: "activation/activation_1.pt", content: seededBytes("act1", 1024), lfs: true },
    ],
  });
  ws = makeWorkspace();
  mkdirSync(join(ws.root, "configs", "models", "powerinfer"), { recursive: true });
  writeFileSync(join(ws.root, "configs", "models", "powerinfer", "tiny-test.yaml"), RECIPE);
  env = { HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: join(ws.root, "hf-cache"), HF_TOKEN: TOKEN };
});
afterAll(() => {
  server.close();
  ws.cleanup();
});

describe("pnpm pipeline download", () => {
  it("downloads the checkpoint and the predictor into the shared cache and records them", async () => {
    server.resetLog();
    const result = await ws.cli(["download", "tiny-test"], env);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // The checkpoint's revision was resolved once: the architecture check and the download saw one commit.
    expect(server.requests.filter((r) => r.path.startsWith("/api/models/SparseLLM/Tiny-Test/revision/"))).toHaveLength(1);
    expect(result.stderr).toBe("");
    expect(result.stdout).toContain("running download tiny-test: download");
    expect(result.stdout).toContain("[download] done in");
    const record = ws.record("download--tiny-test")!;
    const downloaded = record.result as { model: { dir: string; commit: string; files: { path: string }[] }; predictor: { dir: string } };
    expect(downloaded.model.files.map((f) => f.path).sort()).toEqual(["config.json", "model.safetensors", "tokenizer.model"]);
    expect(readFileSync(join(downloaded.model.dir, "model.safetensors")).equals(WEIGHTS)).toBe(true);
    expect(readFileSync(join(downloaded.predictor.dir, "model_1.pt")).equals(PREDICTOR[1]!)).toBe(true);
    expect(existsSync(join(downloaded.predictor.dir, "activation", "activation_0.pt"))).toBe(true);
    expect(downloaded.model.dir).toBe(join(ws.root, "hf-cache", "models--SparseLLM--Tiny-Test", "snapshots", downloaded.model.commit));
    // The token reached neither the output, the log nor the record.
    const log = readFileSync(join(ws.root, "build", "logs", "download--tiny-test.log"), "utf8");
    for (const text of [result.stdout, result.stderr, log, JSON.stringify(record)]) expect(text).not.toContain(TOKEN);
  });

  it("is fresh on the next run, and reruns when a cached file disappears", async () => {
    server.resetLog();
    const again = await ws.cli(["download", "tiny-test"], env);
    expect(again.stdout).toContain("[download] fresh, skipped");
    expect(server.requests).toEqual([]);

    const record = ws.record("download--tiny-test")!;
    const dir = (record.result as { predictor: { dir: string } }).predictor.dir;
    rmSync(join(dir, "model_0.pt"));
    const status = await ws.cli(["status", "tiny-test"], env);
    expect(status.stdout).toMatch(/download\s+stale \(checkpoint file PowerInfer\/Tiny-Test-Predictor\/model_0.pt missing from the cache\)/);
    server.resetLog();
    const repaired = await ws.cli(["download", "tiny-test", "--json"], env);
    expect(repaired.code).toBe(0);
    const events = repaired.stdout.trim().split("\n").map((l) => JSON.parse(l) as PipelineEvent);
    expect(events.some((e) => e.event === "task-progress" && e.message?.includes("MiB"))).toBe(true);
    // The blob was still there: relinking needed no file transfer.
    expect(server.requests.filter((r) => r.method === "GET" && r.file)).toEqual([]);
    expect(existsSync(join(dir, "model_0.pt"))).toBe(true);
  });

  it("a bit flipped in a cached blob makes the download stale, naming the file, and it is fetched again", async () => {
    const record = ws.record("download--tiny-test")!;
    const weights = join((record.result as { model: { dir: string } }).model.dir, "model.safetensors");
    const bytes = readFileSync(weights);
    bytes[4321] = bytes[4321]! ^ 0x10;
    writeFileSync(weights, bytes); // through the snapshot link, into the blob: same size, other bytes
    const status = await ws.cli(["status", "tiny-test"], env);
    expect(status.stdout).toMatch(/download\s+stale \(checkpoint file SparseLLM\/Tiny-Test\/model.safetensors in the cache is corrupt \(sha256 [0-9a-f]{64}, the Hub lists [0-9a-f]{64}\)\)/);
    server.resetLog();
    const repaired = await ws.cli(["download", "tiny-test"], env);
    expect(repaired.code, repaired.stdout).toBe(0);
    expect(repaired.stdout, repaired.stdout).toContain("SparseLLM/Tiny-Test/model.safetensors: the cached blob is corrupt");
    expect(readFileSync(weights).equals(WEIGHTS)).toBe(true);
    expect(server.requests.filter((r) => r.method === "GET" && r.file === "model.safetensors").length).toBeGreaterThan(0);
    expect((await ws.cli(["download", "tiny-test"], env)).stdout).toContain("[download] fresh, skipped");
  });

  it("a gated repository without a token fails with what to do", async () => {
    const noToken = { ...env, HF_TOKEN: "", HF_HOME: join(ws.root, "empty-hf-home"), HF_HUB_CACHE: join(ws.root, "other-cache") };
    const result = await ws.cli(["download", "tiny-test"], noToken);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("[E_HUB_GATED]: SparseLLM/Tiny-Test is a gated repository: set HF_TOKEN");
    // The predictor download was stopped with it: nothing is printed after the summary.
    expect(result.stdout.trim().split("\n").at(-1)).toMatch(/^download tiny-test: failed in /);
  });

  it("Ctrl-C mid-download exits 130; the next run asks only for the missing ranges", async () => {
    const big = seededBytes("big-weights", 4 << 20);
    server.addRepo({
      id: "SparseLLM/Big-Test",
      files: [
        { path: "model.safetensors", content: big, lfs: true },
        { path: "config.json", content: RELU_CONFIG },
        { path: "tokenizer.model", content: seededBytes("big-tok", 100), lfs: true },
      ],
    });
    writeFileSync(join(ws.root, "configs", "models", "powerinfer", "big-test.yaml"), RECIPE.replace(/tiny-test/g, "big-test").replace("SparseLLM/Tiny-Test\n  revision", "SparseLLM/Big-Test\n  revision"));
    const cacheEnv = { ...env, HF_HUB_CACHE: join(ws.root, "resume-cache") };
    server.settings.bytesPerSecondPerConnection = 2 << 20; // 2 MiB/s: one 1 MiB range every half second
    try {
      const run = ws.spawnCli(["download", "big-test", "--connections", "1", "--chunk-size", "1"], cacheEnv);
      const sidecar = join(ws.root, "resume-cache", "models--SparseLLM--Big-Test", "blobs", `${createHash("sha256").update(big).digest("hex")}.ai-tools.incomplete.json`);
      await waitFor(() => existsSync(sidecar), "the first range to be recorded", 20_000).catch(async (error: Error) => {
        run.child.kill("SIGKILL");
        const r = await run.done;
        throw new Error(`${error.message}\n${r.stdout}\n${r.stderr}`);
      });
      run.child.kill("SIGINT");
      const interrupted = await run.done;
      expect(interrupted.code).toBe(130);
      expect(ws.record("download--big-test")).toBeNull();
      const done = (JSON.parse(readFileSync(sidecar, "utf8")) as { done: number[] }).done;
      expect(done.length).toBeGreaterThan(0);
      expect(done.length).toBeLessThan(4);

      server.resetLog();
      const resumed = await ws.cli(["download", "big-test", "--connections", "1", "--chunk-size", "1"], cacheEnv);
      expect(resumed.code, resumed.stdout).toBe(0);
      const ranges = server.requests.filter((r) => r.host === "cdn" && r.file === "model.safetensors").map((r) => r.range);
      expect(ranges).toHaveLength(4 - done.length);
      for (const index of done) expect(ranges).not.toContain(`bytes=${index << 20}-${((index + 1) << 20) - 1}`);
      const record = ws.record("download--big-test")!.result as { model: { dir: string } };
      expect(readFileSync(join(record.model.dir, "model.safetensors")).equals(big)).toBe(true);
    } finally {
      server.settings.bytesPerSecondPerConnection = undefined;
    }
  });

  // The (fixture) converter runs under a Python that has what the real one needs.
  const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece"]).status === 0;
  it.skipIf(!pythonReady)("convert runs the download alongside the engine build, then converts the snapshot (needs /usr/bin/python3 with numpy and sentencepiece)", async () => {
    const result = await ws.cli(["convert", "tiny-test", "--json"], env);
    expect(result.code, result.stdout).toBe(0);
    const events = result.stdout.trim().split("\n").map((l) => JSON.parse(l) as PipelineEvent);
    const start = events[0] as Extract<PipelineEvent, { event: "graph-start" }>;
    expect(start.tasks.map((t) => t.id)).toEqual(["upstream", "build", "download", "convert", "bench", "sign"]);
    // The download did not wait for the build: it started before the build ended.
    const at = (event: string, task: string) => events.findIndex((e) => e.event === event && "task" in e && e.task === task);
    expect(at("task-start", "build")).toBeGreaterThan(-1);
    expect(at("task-start", "download")).toBeLessThan(at("task-end", "build"));
    const converted = ws.record("convert--tiny-test")!.result as { checkpoint: { modelDir: string } };
    expect(converted.checkpoint.modelDir).toContain(join("hf-cache", "models--SparseLLM--Tiny-Test", "snapshots"));
    expect(existsSync(join(ws.root, "models", "powerinfer", "tiny-test", "model.powerinfer.gguf"))).toBe(true);
    // The predictor's activation statistics travel next to the model (the GPU split reads them there).
    expect(readFileSync(join(ws.root, "models", "powerinfer", "tiny-test", "activation", "activation_1.pt")).equals(seededBytes("act1", 1024))).toBe(true);
    expect(events.at(-1)).toMatchObject({ event: "graph-end", status: "success" });
    expect(ws.record("build")).not.toBeNull();
  });
});
