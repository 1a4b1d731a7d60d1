/**
 * The engine build cache through the real registry: a build is stored signed; a fresh
 * workspace with the same build fingerprint restores it instead of compiling (no CMake
 * configure at all) after checking the signature and every binary; an entry signed by a
 * key the workspace does not trust, and an unreachable cache, each cost one note line and
 * a compile.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyFiles } from "../pipeline/signing/signing-key.js";
import { buildCacheReference, pushBuild } from "../pipeline/registry/build-cache.js";
import { registryClient } from "../pipeline/registry/transfer.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";

let registry: TestRegistry;
let publisher: TestWorkspace;
let keyFile: string;
let publicPem: string;
const workspaces: TestWorkspace[] = [];

function consumer(): { ws: TestWorkspace; configures: string } {
  const ws = makeWorkspace();
  workspaces.push(ws);
  mkdirSync(join(ws.root, "configs"), { recursive: true });
  writeFileSync(join(ws.root, "configs", "trusted-keys.yaml"), `keys:\n  - id: ci-release\n    publicKey: |\n${publicPem.trim().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
  return { ws, configures: join(ws.root, "configures.log") };
}

beforeAll(async () => {
  registry = await startRegistry();
  publisher = makeWorkspace();
  workspaces.push(publisher);
  const generated = await generateKeyFiles(join(publisher.root, "keys", "release"), {});
  keyFile = generated.keyFile;
  publicPem = generated.publicKeyPem;
}, 120_000);

afterAll(async () => {
  await registry?.close();
  for (const ws of workspaces) ws.cleanup();
});

const cacheRef = () => `oci://${registry.host}/cache/powerinfer`;

describe("engine build cache", () => {
  it("stores a fresh build, signed, and a new machine restores it instead of compiling", async () => {
    const stored = await publisher.cli(["engine"], { AI_TOOLS_BUILD_CACHE: cacheRef(), AI_TOOLS_SIGNING_KEY_FILE: keyFile });
    expect(stored.code, stored.stderr + stored.stdout).toBe(0);
    expect(stored.stdout).toMatch(/note: stored in the build cache as oci:\/\/127\.0\.0\.1:\d+\/cache\/powerinfer:cpu-[0-9a-f]{64}@sha256:/);

    const { ws, configures } = consumer();
    const restored = await ws.cli(["engine"], { AI_TOOLS_BUILD_CACHE: cacheRef(), FIXTURE_CONFIGURE_COUNTER: configures });
    expect(restored.code, restored.stderr + restored.stdout).toBe(0);
    expect(restored.stdout).toContain("note: restored from the build cache");
    expect(existsSync(configures)).toBe(false);
    const main = join(ws.root, ws.record("build")!.result ? (ws.record("build")!.result as { binaries: { main: string } }).binaries.main : "");
    expect(statSync(main).mode & 0o111).not.toBe(0);
    // Fresh on the next run: the restored binaries are the recorded outputs.
    const again = await ws.cli(["engine"], { AI_TOOLS_BUILD_CACHE: cacheRef(), FIXTURE_CONFIGURE_COUNTER: configures });
    expect(again.stdout).toContain("[build] fresh, skipped");
  });

  it("refuses an entry signed by a key it does not trust, and compiles", async () => {
    // Poison the tag: same fingerprint, binaries replaced, signed by a stranger.
    const { ws: donor } = consumer();
    const built = await donor.cli(["engine"], {});
    expect(built.code, built.stderr).toBe(0);
    const record = donor.record("build")!;
    const result = record.result as { buildDir: string; binaries: Record<string, string>; backend: string };
    writeFileSync(join(donor.root, result.buildDir, "bin", "main"), "#!/bin/sh\necho poisoned\n");
    const reference = buildCacheReference(cacheRef(), result.backend, record.fingerprint);
    const client = await registryClient(reference, { env: process.env });
    try {
      const binaries = Object.fromEntries(Object.entries(result.binaries).map(([t, p]) => [t, p.slice(result.buildDir.length + 1)]));
      await pushBuild({ client, reference, buildDir: join(donor.root, result.buildDir), backend: result.backend, fingerprint: record.fingerprint, binaries, result, privateKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, scratchDir: join(donor.root, "build", "tmp") });
    } finally {
      await client.close();
    }

    const { ws, configures } = consumer();
    const run = await ws.cli(["engine"], { AI_TOOLS_BUILD_CACHE: cacheRef(), FIXTURE_CONFIGURE_COUNTER: configures });
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(run.stdout).toMatch(/note: build cache not used \(E_UNKNOWN_KEY: .*\): compiling/);
    expect(readFileSync(configures, "utf8").trim().split("\n")).toHaveLength(1);
    const main = (ws.record("build")!.result as { binaries: { main: string } }).binaries.main;
    expect(readFileSync(join(ws.root, main), "utf8")).not.toContain("poisoned");
  });

  it("falls back to compiling with one line when the cache cannot be reached", async () => {
    const { ws, configures } = consumer();
    const run = await ws.cli(["engine"], { AI_TOOLS_BUILD_CACHE: "oci://127.0.0.1:9/nowhere/powerinfer", FIXTURE_CONFIGURE_COUNTER: configures });
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(run.stdout.match(/note: build cache not used \(E_REGISTRY_UNREACHABLE/g)).toHaveLength(1);
    expect(existsSync(configures)).toBe(true);
  });
});
