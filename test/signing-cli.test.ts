/**
 * Signing as a user meets it: `convert` ends with a signed model directory (development
 * key when nothing is configured), `keygen`/`sign`/`verify` work from the command line,
 * other repositories import `ai-tools/verify`, and no key or passphrase ever reaches
 * output, logs or records.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";

const pythonReady = spawnSync("/usr/bin/python3", ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Every file under `dir` that contains `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && statSync(p).size < 32 << 20 && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

function payloadOf(bundleFile: string): Record<string, any> {
  const bundle = JSON.parse(readFileSync(bundleFile, "utf8")) as { dsseEnvelope: { payload: string } };
  return JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
}

describe.skipIf(!pythonReady)("signing from the command line (needs /usr/bin/python3 with numpy<2 and sentencepiece)", () => {
  let ws: TestWorkspace;
  const modelDir = () => join(ws.root, "models", "powerinfer", "tiny-relu-llama");
  const rel = "models/powerinfer/tiny-relu-llama";
  beforeAll(() => {
    ws = makeWorkspace();
  });
  afterAll(() => ws.cleanup());

  it("convert ends with a signed directory, using a development key it says it generated", async () => {
    const plan = await ws.cli(["plan", "convert", "tiny-relu-llama"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(existsSync(join(ws.root, "build", "keys")), "planning creates no key").toBe(false);
    const result = await ws.cli(["convert", "tiny-relu-llama"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("-> bench -> sign");
    expect(result.stdout).toMatch(/\[sign\] note: signing with the development key build\/keys\/development\.key/);
    expect(statSync(join(ws.root, "build", "keys", "development.key")).mode & 0o777).toBe(0o600);
    for (const f of ["SHA256SUMS", "model.sig", "provenance.sigstore.json"]) expect(existsSync(join(modelDir(), f)), f).toBe(true);

    // The audit block of the rendered policy carries the converted file's checksum.
    expect(readFileSync(join(modelDir(), "policy.yaml"), "utf8")).toContain(`checksum: sha256:${sha256(join(modelDir(), "model.powerinfer.gguf"))}`);

    // The published copy: signatures and small signed files, no weights.
    const manifest = join(ws.root, "build", "manifests", "tiny-relu-llama", "0");
    expect(existsSync(join(ws.root, "manifests")), "development signatures stay out of manifests/").toBe(false);
    expect(readdirSync(manifest).sort()).toEqual(["SHA256SUMS", "bench.json", "model.sig", "policy.yaml", "provenance.sigstore.json"]);

    const verified = await ws.cli(["verify", rel]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/verified models\/powerinfer\/tiny-relu-llama: 4 files/);
    expect(verified.stderr).toContain("also trusting this machine's development key");
    const fromManifest = await ws.cli(["verify", rel, "--signature", "build/manifests/tiny-relu-llama/0/model.sig", "--require-provenance"]);
    expect(fromManifest.code, fromManifest.stderr).toBe(0);
  });

  it("the provenance records what was built from what, bound to the signed root", async () => {
    const oms = payloadOf(join(modelDir(), "model.sig"));
    const slsa = payloadOf(join(modelDir(), "provenance.sigstore.json"));
    expect(slsa.predicateType).toBe("https://slsa.dev/provenance/v1");
    expect(slsa.subject[0].digest.sha256).toBe(oms.subject[0].digest.sha256);
    expect(slsa.subject).toContainEqual({ name: "model.powerinfer.gguf", digest: { sha256: sha256(join(modelDir(), "model.powerinfer.gguf")) } });
    const def = slsa.predicate.buildDefinition;
    expect(def.externalParameters).toMatchObject({ recipe: "tiny-relu-llama", modelId: "tiny-relu-llama", options: { outtype: "f16", vocabtype: "spm" } });
    expect(def.resolvedDependencies).toContainEqual(expect.objectContaining({ name: "powerinfer", digest: { gitCommit: ws.commit } }));
    expect(def.resolvedDependencies).toContainEqual(
      expect.objectContaining({ name: "checkpoint generator", digest: { sha256: sha256(join(PROJECT_ROOT, "scripts", "make-tiny-relu-llama.py")) } }),
    );
    expect(def.internalParameters.signingKey.development).toBe(true);
    expect(def.internalParameters.python.modules.numpy).toMatch(/^1\./);
    const run = slsa.predicate.runDetails;
    expect(run.builder.id).toMatch(/^urn:ai-tools:builder:local:/);
    expect(run.builder.version.powerinfer).toBe(ws.commit);
    expect(Date.parse(run.metadata.finishedOn)).toBeGreaterThanOrEqual(Date.parse(run.metadata.startedOn));
    const bench = run.byproducts.find((b: { name: string }) => b.name === "bench.json");
    expect(bench.digest.sha256).toBe(sha256(join(modelDir(), "bench.json")));
    expect(bench.annotations.evalTokensPerSecondMedian).toBeGreaterThan(0);
  });

  it("is fresh on the next run, and stale once a file in the directory changes", async () => {
    const again = await ws.cli(["convert", "tiny-relu-llama"]);
    expect(again.stdout).toContain("[sign] fresh, skipped");
    writeFileSync(join(modelDir(), "notes.txt"), "added after signing\n");
    const status = await ws.cli(["status", "tiny-relu-llama"]);
    expect(status.stdout).toMatch(/sign\s+stale \(models\/powerinfer\/tiny-relu-llama\/notes\.txt was added since signing\)/);
    const failed = await ws.cli(["verify", rel, "--json"]);
    expect(failed.code).toBe(1);
    expect(parseEvents(failed.stdout)).toMatchObject([{ event: "verify-result", ok: false, code: "E_EXTRA_FILE", files: ["notes.txt"] }]);
    expect((await ws.cli(["verify", rel, "--ignore-unsigned-files"])).code).toBe(0);
    const resigned = await ws.cli(["convert", "tiny-relu-llama"]);
    expect(resigned.stdout).toContain("[sign] run: models/powerinfer/tiny-relu-llama/notes.txt was added since signing");
    expect((await ws.cli(["verify", rel])).code).toBe(0);
  });

  it("keygen writes a P-256 pair (private key 0600) and refuses to overwrite it", async () => {
    const made = await ws.cli(["keygen", "--out", "keys/release"]);
    expect(made.code, made.stderr).toBe(0);
    expect(statSync(join(ws.root, "keys", "release.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(ws.root, "keys", "release.pub"), "utf8")).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(made.stdout).toMatch(/key hint [0-9a-f]{64}/);
    expect(made.stdout).toMatch(/ssh fingerprint SHA256:[A-Za-z0-9+/]{43}/);
    const again = await ws.cli(["keygen", "--out", "keys/release"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("refusing to overwrite");
  });

  it("sign --key re-signs a converted model with provenance; only keys in the trust file verify it", async () => {
    writeFileSync(join(ws.root, "keys", "trusted.yaml"), "keys:\n  - id: release\n    publicKeyFile: release.pub\n");
    writeFileSync(join(ws.root, "keys", "dev-only.yaml"), `keys:\n  - id: dev\n    publicKeyFile: ../build/keys/development.pub\n`);
    const signed = await ws.cli(["sign", rel, "--key", "keys/release.key"]);
    expect(signed.code, signed.stdout + signed.stderr).toBe(0);
    expect(signed.stdout).toContain("[sign] run: forced");
    const published = readdirSync(join(ws.root, "manifests", "tiny-relu-llama", "0"));
    expect(published).toEqual(expect.arrayContaining(["SHA256SUMS", "bench.json", "model.sig", "policy.yaml", "provenance.sigstore.json", "notes.txt"]));
    expect(published).not.toContain("model.powerinfer.gguf");
    const ok = await ws.cli(["verify", rel, "--trusted-keys", "keys/trusted.yaml", "--require-provenance"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("signed by release");
    expect(payloadOf(join(modelDir(), "provenance.sigstore.json")).predicate.buildDefinition.internalParameters.signingKey.development).toBe(false);
    const unknown = await ws.cli(["verify", rel, "--trusted-keys", "keys/dev-only.yaml"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("verification failed [E_UNKNOWN_KEY]");
    writeFileSync(join(ws.root, "keys", "revoked.yaml"), "keys:\n  - id: release\n    publicKeyFile: release.pub\n    revoked: true\n");
    const revoked = await ws.cli(["verify", rel, "--trusted-keys", "keys/revoked.yaml"]);
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toContain("[E_KEY_REVOKED]");
    const policy = await ws.cli(["verify", rel, "--trusted-keys", "keys/trusted.yaml", "--allowed-builder", "https://github.com/acme/ci"]);
    expect(policy.code).toBe(1);
    expect(policy.stderr).toContain("[E_POLICY]");
    const noTrust = await ws.cli(["verify", rel, "--trusted-keys", "keys/missing.yaml"]);
    expect(noTrust.code).toBe(2);
    expect(noTrust.stderr).toContain("keys/missing.yaml");
  });

  it("release: refuses the development key, shows the job with --dry-run, and gates on the baseline", async () => {
    writeFileSync(join(ws.root, "baseline-bench.json"), readFileSync(join(modelDir(), "bench.json")));
    const refused = await ws.cli(["release", "tiny-relu-llama"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("[E_SIGNING_KEY]: a release is signed with a configured key");
    const dry = await ws.cli(["release", "tiny-relu-llama", "--dry-run", "--key", "keys/release.key", "--baseline", "baseline-bench.json"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("plan for convert tiny-relu-llama");
    expect(dry.stdout).toContain("then: bench gate: compare models/powerinfer/tiny-relu-llama/bench.json with baseline-bench.json");
    expect(dry.stdout).toContain("then: publish manifests/tiny-relu-llama/0/");
    const real = await ws.cli(["release", "tiny-relu-llama", "--key", "keys/release.key", "--baseline", "baseline-bench.json"]);
    expect(real.code, real.stdout + real.stderr).toBe(0);
    expect(real.stdout).toContain("release tiny-relu-llama: signed files in manifests/tiny-relu-llama/0/");
    expect(real.stdout).toMatch(/\| eval tokens\/s/);
  });

  it("refuses a key file others can read, unless told to", async () => {
    chmodSync(join(ws.root, "keys", "release.key"), 0o644);
    const refused = await ws.cli(["sign", rel, "--key", "keys/release.key"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/keys\/release\.key is readable by group or others \(mode 0644\)/);
    expect(refused.stdout + refused.stderr).toContain("chmod 600");
    const allowed = await ws.cli(["sign", rel, "--key", "keys/release.key", "--allow-insecure-key-permissions"]);
    expect(allowed.code, allowed.stdout + allowed.stderr).toBe(0);
    chmodSync(join(ws.root, "keys", "release.key"), 0o600);
  });

  it("takes the key from AI_TOOLS_SIGNING_KEY, and an encrypted key with its passphrase, without ever printing either", async () => {
    const pem = readFileSync(join(ws.root, "keys", "release.key"), "utf8");
    const body = pem.split("\n")[1]!; // a line of the key's base64
    const fromEnv = await ws.cli(["convert", "tiny-relu-llama", "--force", "sign"], { AI_TOOLS_SIGNING_KEY: pem });
    expect(fromEnv.code, fromEnv.stdout + fromEnv.stderr).toBe(0);
    expect((await ws.cli(["verify", rel, "--trusted-keys", "keys/trusted.yaml"])).code).toBe(0);

    const passphrase = "correct horse battery staple";
    const made = await ws.cli(["keygen", "--out", "keys/locked"], { AI_TOOLS_SIGNING_KEY_PASSPHRASE: passphrase });
    expect(made.code).toBe(0);
    expect(readFileSync(join(ws.root, "keys", "locked.key"), "utf8")).toContain("BEGIN ENCRYPTED PRIVATE KEY");
    const missing = await ws.cli(["sign", rel, "--key", "keys/locked.key"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stdout + missing.stderr).toContain("it is encrypted: set AI_TOOLS_SIGNING_KEY_PASSPHRASE");
    const wrong = await ws.cli(["sign", rel, "--key", "keys/locked.key"], { AI_TOOLS_SIGNING_KEY_PASSPHRASE: "wrong" });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout + wrong.stderr).toContain("does not decrypt it");
    const right = await ws.cli(["sign", rel, "--key", "keys/locked.key"], { AI_TOOLS_SIGNING_KEY_PASSPHRASE: passphrase });
    expect(right.code, right.stdout + right.stderr).toBe(0);

    for (const out of [fromEnv, missing, wrong, right]) {
      expect(out.stdout + out.stderr).not.toContain(body);
      expect(out.stdout + out.stderr).not.toContain(passphrase);
    }
    // Logs, records and the signed files hold neither.
    expect(filesContaining(join(ws.root, "build", "logs"), body)).toEqual([]);
    expect(filesContaining(join(ws.root, "build", "state"), body)).toEqual([]);
    expect(filesContaining(join(ws.root, "build"), passphrase)).toEqual([]);
    expect(filesContaining(join(ws.root, "models"), body)).toEqual([]);
  });

  it("signs any directory with `sign <dir>` (no provenance), and other repositories verify with `ai-tools/verify`", async () => {
    const dir = join(ws.root, "elsewhere", "my-model");
    mkdirSync(join(dir, "tokenizer"), { recursive: true });
    writeFileSync(join(dir, "weights.gguf"), Buffer.alloc(4096, 7));
    writeFileSync(join(dir, "tokenizer", "vocab.txt"), "a\nb\n");
    const signed = await ws.cli(["sign", "elsewhere/my-model", "--key", "keys/release.key"]);
    expect(signed.code, signed.stderr).toBe(0);
    expect(signed.stdout).toContain("no provenance");
    expect(existsSync(join(dir, "provenance.sigstore.json"))).toBe(false);

    // The package entry point, resolved through package.json "exports" as a dependent repository would.
    const script = `
      import { verifyModel, loadTrustedKeys } from "ai-tools/verify";
      const result = await verifyModel(${JSON.stringify(dir)}, { trustedKeys: await loadTrustedKeys(${JSON.stringify(join(ws.root, "keys", "trusted.yaml"))}) });
      console.log(JSON.stringify({ root: result.rootDigest, files: result.files.map((f) => f.name), key: result.key.id }));
      try { await verifyModel(${JSON.stringify(dir)}, { trustedKeys: [] }); } catch (e) { console.log(e.code); }
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: PROJECT_ROOT, encoding: "utf8" }).trim().split("\n");
    expect(JSON.parse(out[0]!)).toMatchObject({ files: ["SHA256SUMS", "tokenizer/vocab.txt", "weights.gguf"], key: "release" });
    expect(out[1]).toBe("E_TRUST_CONFIG"); // trusting nothing is a configuration error
  });
});
