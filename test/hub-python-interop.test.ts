/**
 * Cache sharing with Python's huggingface_hub, both ways, offline. Runs where a Python can import
 * huggingface_hub: $AI_TOOLS_TEST_HF_PYTHON, the venv .ci/run makes (build/ci/hf-venv, pip from the
 * machine's package sources: Debian 12 has no python3-huggingface-hub), python3 or /usr/bin/python3;
 * skipped elsewhere, with the reason in the title.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hubSettings } from "../pipeline/hub/env.js";
import { downloadSnapshot } from "../pipeline/hub/snapshot.js";
import { seededBytes, startHubServer, type HubServer } from "./helpers/hub-server.js";
import { PROJECT_ROOT } from "./helpers/workspace.js";

const HF_VENV_PYTHON = join(PROJECT_ROOT, "build", "ci", "hf-venv", "bin", "python");
const candidates = [process.env.AI_TOOLS_TEST_HF_PYTHON, HF_VENV_PYTHON, "python3", "/usr/bin/python3"].filter((p): p is string => Boolean(p));
const python = candidates.find((p) => spawnSync(p, ["-c", "import huggingface_hub"]).status === 0);
const skipped = `skipped: none of ${candidates.join(", ")} can import huggingface_hub; .ci/run makes ${join("build", "ci", "hf-venv")} with pip from the machine's package sources (Debian 12 has no python3-huggingface-hub)`;

describe.skipIf(!python)(`cache shared with Python huggingface_hub (${python ? `with ${python}` : skipped})`, () => {
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

  // Asynchronous: the Hub imitation answers from this process, so a synchronous child would wait on it forever.
  const py = async (code: string, env: NodeJS.ProcessEnv) =>
    (await promisify(execFile)(python!, ["-c", code], { env: { ...process.env, HF_HUB_CACHE: cacheDir, HF_HUB_DISABLE_TELEMETRY: "1", ...env }, encoding: "utf8" })).stdout.trim();

  it("Python reads offline what we downloaded", async () => {
    const ours = await downloadSnapshot({ repo: "org/ours", revision: "main" }, { settings: hubSettings({ HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: cacheDir }) });
    const path = await py("from huggingface_hub import snapshot_download; print(snapshot_download('org/ours'))", { HF_HUB_OFFLINE: "1" });
    expect(path).toBe(ours.dir);
  });

  it("we read offline what Python downloaded", async () => {
    await py("from huggingface_hub import snapshot_download; snapshot_download('org/theirs')", { HF_ENDPOINT: server.endpoint });
    const theirs = await downloadSnapshot({ repo: "org/theirs", revision: "main" }, { settings: hubSettings({ HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: "1" }) });
    expect(readFileSync(join(theirs.dir, "model.safetensors")).equals(weights)).toBe(true);
  });
});
