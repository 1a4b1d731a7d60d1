/**
 * Cache sharing with Python's huggingface_hub, both ways, offline. Runs where python3
 * can import huggingface_hub; skipped (and reported as skipped) elsewhere.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hubSettings } from "../pipeline/hub/env.js";
import { downloadSnapshot } from "../pipeline/hub/snapshot.js";
import { seededBytes, startHubServer, type HubServer } from "./helpers/hub-server.js";

const python = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "import huggingface_hub"]).status === 0);

describe.skipIf(!python)("cache shared with Python huggingface_hub (needs python3 -m pip install huggingface_hub)", () => {
  let server: HubServer;
  let cacheDir: string;
  const weights = seededBytes("interop", 300_000);
  beforeAll(async () => {
    server = await startHubServer();
    server.addRepo({ id: "org/ours", files: [{ path: "model.safetensors", content: weights, lfs: true }, { path: "config.json", content: "{}\n" }] });
    server.addRepo({ id: "org/theirs", files: [{ path: "model.safetensors", content: weights, lfs: true }, { path: "config.json", content: "{}\n" }] });
    cacheDir = mkdtempSync(join(tmpdir(), "ai-tools-interop-"));
  });
  afterAll(() => {
    server.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  const py = (code: string, env: NodeJS.ProcessEnv) => execFileSync(python!, ["-c", code], { env: { ...process.env, HF_HUB_CACHE: cacheDir, ...env }, encoding: "utf8" }).trim();

  it("Python reads offline what we downloaded", async () => {
    const ours = await downloadSnapshot({ repo: "org/ours", revision: "main" }, { settings: hubSettings({ HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: cacheDir }) });
    const path = py("from huggingface_hub import snapshot_download; print(snapshot_download('org/ours'))", { HF_HUB_OFFLINE: "1" });
    expect(path).toBe(ours.dir);
  });

  it("we read offline what Python downloaded", async () => {
    py("from huggingface_hub import snapshot_download; snapshot_download('org/theirs')", { HF_ENDPOINT: server.endpoint });
    const theirs = await downloadSnapshot({ repo: "org/theirs", revision: "main" }, { settings: hubSettings({ HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: "1" }) });
    expect(readFileSync(join(theirs.dir, "model.safetensors")).equals(weights)).toBe(true);
  });
});
