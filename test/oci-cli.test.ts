/**
 * `pnpm pipeline push` and `pull` as a user runs them, against the real registry: the text a
 * person reads, the `--json` event (validated against schemas/events.schema.json), exit
 * codes and one-line errors for bad references, an untrusted key and wrong credentials,
 * and no credential anywhere in the output.
 */
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeSignedModel, MODEL_ID, writeModelFiles } from "./helpers/signed-model.js";
import { signWithCertificate, TestCa } from "./helpers/certificates.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";
import { parseEvents } from "./helpers/events.js";

let registry: TestRegistry;
let secured: TestRegistry;
let ws: TestWorkspace;
let pubFile: string;
const env = () => ({ AI_TOOLS_OCI_STORE: join(ws.root, "store") });

beforeAll(async () => {
  [registry, secured] = await Promise.all([startRegistry(), startRegistry({ auth: "htpasswd", users: { ci: "s3cret-pass" } })]);
  ws = makeWorkspace();
  const key = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await makeSignedModel(join(ws.root, "models", "powerinfer", MODEL_ID), { key });
  pubFile = join(ws.root, "publisher.pub");
  writeFileSync(pubFile, key.publicKey.export({ type: "spki", format: "pem" }).toString());
}, 120_000);

afterAll(async () => {
  await Promise.all([registry?.close(), secured?.close()]);
  ws?.cleanup();
});

describe("push and pull from the command line", () => {
  it("push prints the digest and what moved; pull prints where it went and how to pin it", async () => {
    const ref = `oci://${registry.host}/cli/tiny:v1`;
    const pushed = await ws.cli(["push", MODEL_ID, ref, "--key", pubFile], env());
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toMatch(new RegExp(`^pushed models/powerinfer/${MODEL_ID} to oci://127\\.0\\.0\\.1:\\d+/cli/tiny:v1@sha256:[0-9a-f]{64}\\n`));
    expect(pushed.stdout).toMatch(/blobs: \d+ uploaded \(.+\), 0 already there, 0 mounted/);

    const again = await ws.cli(["push", MODEL_ID, ref, "--key", pubFile, "--json"], env());
    expect(again.code, again.stderr).toBe(0);
    const [event] = parseEvents(again.stdout);
    expect(event).toMatchObject({ event: "push", bytesSent: 0, tag: "v1" });

    const pulled = await ws.cli(["pull", ref, "--key", pubFile, "--to", "pulled/tiny"], env());
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stdout).toContain(`into pulled/tiny`);
    expect(pulled.stdout).toMatch(/verified: signed by publisher\.pub/);
    expect(pulled.stdout).toMatch(/pin it: oci:\/\/127\.0\.0\.1:\d+\/cli\/tiny@sha256:[0-9a-f]{64}/);
    expect(existsSync(join(ws.root, "pulled", "tiny", "model.sig"))).toBe(true);
  });

  it("bad references and --require-digest are usage errors (exit 2), one line each", async () => {
    const bad = await ws.cli(["pull", "ghcr.io/acme/tiny:v1"], env());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error \[E_REGISTRY_REFERENCE\]: ghcr\.io\/acme\/tiny:v1: a registry reference starts with oci:\/\//);
    const tag = await ws.cli(["pull", `oci://${registry.host}/cli/tiny:v1`, "--require-digest", "--key", pubFile, "--json"], env());
    expect(tag.code).toBe(2);
    const [event] = parseEvents(tag.stdout);
    expect(event).toMatchObject({ event: "error", code: "E_REGISTRY_REFERENCE" });
  });

  it("a model signed by another key is refused (exit 1) and nothing is left under the target", async () => {
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const otherPub = join(ws.root, "other.pub");
    writeFileSync(otherPub, other.publicKey.export({ type: "spki", format: "pem" }).toString());
    const result = await ws.cli(["pull", `oci://${registry.host}/cli/tiny:v1`, "--key", otherPub, "--to", "untrusted/tiny"], env());
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/E_UNKNOWN_KEY/);
    expect(existsSync(join(ws.root, "untrusted", "tiny"))).toBe(false);
  });

  it("credentials come from the environment; wrong ones are one E_REGISTRY_AUTH line, and no secret is printed", async () => {
    const ref = `oci://${secured.host}/private/tiny:v1`;
    const good = { ...env(), AI_TOOLS_REGISTRY_USERNAME: "ci", AI_TOOLS_REGISTRY_PASSWORD: "s3cret-pass", AI_TOOLS_REGISTRY_HOST: secured.host };
    const pushed = await ws.cli(["push", MODEL_ID, ref, "--key", pubFile], good);
    expect(pushed.code, pushed.stderr).toBe(0);
    await secured.clearAccessLog();
    const wrong = await ws.cli(["pull", ref, "--key", pubFile, "--to", "wrong/tiny"], { ...good, AI_TOOLS_REGISTRY_PASSWORD: "not-the-password" });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.split("\n").filter((l) => l.startsWith("error"))).toHaveLength(1);
    expect(wrong.stderr).toMatch(/error \[E_REGISTRY_AUTH\]/);
    expect((await secured.accessLog()).length).toBeLessThanOrEqual(3);
    for (const out of [pushed.stdout, pushed.stderr, wrong.stdout, wrong.stderr]) {
      expect(out).not.toContain("s3cret-pass");
      expect(out).not.toContain("not-the-password");
      expect(out).not.toContain(Buffer.from("ci:s3cret-pass").toString("base64"));
    }
  });

  it("a certificate-signed model travels on the trust file's roots: pinned signers pull, others are refused before any weight moves", async () => {
    const ca = new TestCa(ws.root);
    const dir = join(ws.root, "models", "powerinfer", "cert-tiny");
    mkdirSync(dir, { recursive: true });
    writeModelFiles(dir);
    await signWithCertificate(dir, ca.issue("/CN=release-signer/O=Acme", ["keyUsage=critical,digitalSignature", "extendedKeyUsage=codeSigning"]));
    const ref = `oci://${registry.host}/cli/cert-tiny:v1`;
    const caFile = join(ws.root, "acme-ca.pem");
    writeFileSync(caFile, ca.pem);
    const pushed = await ws.cli(["push", "cert-tiny", ref, "--certificate-root", caFile], env());
    expect(pushed.code, pushed.stderr).toBe(0);

    const pinned = ca.trustFile(join(ws.root, "release-trust.yaml"), "acme-release-ca", ["CN=release-signer, O=Acme"]);
    const pulled = await ws.cli(["pull", ref, "--trusted-keys", pinned, "--to", "cert/ok", "--json"], { ...env(), AI_TOOLS_OCI_STORE: join(ws.root, "cert-store-ok") });
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(existsSync(join(ws.root, "cert", "ok", "model.sig"))).toBe(true);

    const other = ca.trustFile(join(ws.root, "other-trust.yaml"), "acme-release-ca", ["CN=someone-else, O=Acme"]);
    const store = join(ws.root, "cert-store-refused");
    const refused = await ws.cli(["pull", ref, "--trusted-keys", other, "--to", "cert/refused"], { ...env(), AI_TOOLS_OCI_STORE: store });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/E_POLICY.*"CN=release-signer, O=Acme" is not among the subjects root "acme-release-ca" may vouch for/);
    expect(existsSync(join(ws.root, "cert", "refused"))).toBe(false);
    // Only model.sig came down (and the manifest): no weight was fetched for an unpinned signer.
    expect(readdirSync(join(store, "blobs", "sha256")).length).toBeLessThanOrEqual(2);
  });
});
