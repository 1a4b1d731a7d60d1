/**
 * `ai-tools run` on a model named by registry reference: the converted demo model is pushed
 * from one workspace; another (which trusts the publisher's key) runs it by `--model
 * oci://…` and by `model_path: oci://…`, pulling and verifying once; `drift` reports when the
 * tag is moved to another artifact.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTrustedKeys } from "../pipeline/signing/trust.js";
import { pushWorkspaceModel } from "../pipeline/registry/transfer.js";
import { makeSignedModel } from "./helpers/signed-model.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;

describe.skipIf(!pythonReady)("run oci:// (needs /usr/bin/python3 with numpy<2 and sentencepiece for the demo conversion)", () => {
  let registry: TestRegistry;
  let publisher: TestWorkspace;
  let fleet: TestWorkspace;
  let ref: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    registry = await startRegistry();
    publisher = makeWorkspace();
    const converted = await publisher.cli(["convert", "tiny-relu-llama"]);
    expect(converted.code, converted.stdout + converted.stderr).toBe(0);
    const devKey = readFileSync(join(publisher.root, "build", "keys", "development.pub"), "utf8");
    ref = `oci://${registry.host}/demo/tiny-relu-llama:v1`;
    await pushWorkspaceModel({
      root: publisher.root,
      dir: join(publisher.root, "models", "powerinfer", "tiny-relu-llama"),
      reference: ref,
      trustedKeys: await parseTrustedKeys([{ id: "publisher", publicKey: devKey }], "test"),
      env: { ...process.env, AI_TOOLS_OCI_STORE: join(publisher.root, "store") },
    });

    fleet = makeWorkspace();
    mkdirSync(join(fleet.root, "configs"), { recursive: true });
    writeFileSync(join(fleet.root, "configs", "trusted-keys.yaml"), `keys:\n  - id: publisher\n    publicKey: |\n${devKey.trim().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
    const main = join(publisher.root, (publisher.record("build")!.result as { binaries: { main: string } }).binaries.main);
    env = { AI_TOOLS_OCI_STORE: join(fleet.root, "store"), AI_TOOLS_POWERINFER_BIN: main };
  }, 240_000);

  afterAll(async () => {
    await registry?.close();
    publisher?.cleanup();
    fleet?.cleanup();
  });

  it("--model oci://… pulls and verifies once, then runs from the local copy", async () => {
    writeFileSync(join(fleet.root, "policy.yaml"), "engine: powerinfer\nmodel_path: powerinfer/unused/model.powerinfer.gguf\ngeneration: { n_predict: 8 }\n");
    const first = await fleet.cli(["run", "--config", "policy.yaml", "--model", ref, "--prompt", "Once upon a time"], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/note: pulled oci:\/\/127\.0\.0\.1:\d+\/demo\/tiny-relu-llama:v1@sha256:[0-9a-f]{64} into .*models\/powerinfer\/tiny-relu-llama/);
    expect(first.stdout.length).toBeGreaterThan(0);

    const second = await fleet.cli(["run", "--config", "policy.yaml", "--model", ref, "--prompt", "Once upon a time"], env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toContain("note: pulled");
  });

  it("model_path: oci://… in a policy works the same, and drift reports a tag moved to another artifact", async () => {
    writeFileSync(join(fleet.root, "oci-policy.yaml"), `engine: powerinfer\nmodel_path: ${ref}\ngeneration: { n_predict: 8 }\n`);
    const run = await fleet.cli(["run", "--config", "oci-policy.yaml", "--prompt", "Once upon a time"], env);
    expect(run.code, run.stderr).toBe(0);
    const clean = await fleet.cli(["drift", "--config", "oci-policy.yaml"], env);
    expect(clean.stdout).toMatch(/registry oci:\/\/.*tiny-relu-llama:v1 +ok/);

    // The publisher moves the tag to another signed artifact.
    const other = join(publisher.root, "other-model");
    mkdirSync(other, { recursive: true });
    const signed = await makeSignedModel(other);
    const { publicKey } = signed;
    await pushWorkspaceModel({
      root: publisher.root,
      dir: other,
      reference: ref,
      trustedKeys: await parseTrustedKeys([{ id: "other", publicKey: publicKey.export({ type: "spki", format: "pem" }).toString() }], "test"),
      env: { ...process.env, AI_TOOLS_OCI_STORE: join(publisher.root, "store") },
    });
    const moved = await fleet.cli(["drift", "--config", "oci-policy.yaml"], env);
    expect(moved.code, moved.stderr).toBe(3);
    expect(moved.stdout).toMatch(/registry oci:\/\/.*tiny-relu-llama:v1 +drift +sha256:[0-9a-f]{64} -> sha256:[0-9a-f]{64}/);
  });
});
