/**
 * `verify`'s trust root from the command line, as a user meets it: `--key PUB.pem` trusts
 * that key alone for the call (cosign's model), `--trusted-keys` takes a PEM public key as
 * well as a YAML trust file, and a directory that is not there is a usage error (exit 2)
 * with one clear line. The keys come from `keygen`, the signature from `sign`: no Python,
 * no engine.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventsOf, parseEvents } from "./helpers/events.js";
import { makeWorkspace, type TestWorkspace } from "./helpers/workspace.js";

describe("verify: the trust root from the command line", () => {
  let ws: TestWorkspace;
  beforeAll(async () => {
    ws = makeWorkspace();
    for (const name of ["release", "other"]) expect((await ws.cli(["keygen", "--out", `keys/${name}`])).code).toBe(0);
    mkdirSync(join(ws.root, "shipped", "tokenizer"), { recursive: true });
    writeFileSync(join(ws.root, "shipped", "weights.gguf"), Buffer.alloc(4096, 3));
    writeFileSync(join(ws.root, "shipped", "tokenizer", "vocab.txt"), "a\nb\n");
    const signed = await ws.cli(["sign", "shipped", "--key", "keys/release.key", "--json"]);
    expect(signed.code, signed.stderr).toBe(0);
    expect(eventsOf(parseEvents(signed.stdout), "sign-result")).toEqual([expect.objectContaining({ dir: "shipped", files: 3 })]);
    const pem = readFileSync(join(ws.root, "keys", "release.pub"), "utf8");
    writeFileSync(join(ws.root, "keys", "trusted.yaml"), `keys:\n  - id: release\n    publicKey: |\n${pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
  }, 60_000);
  afterAll(() => ws.cleanup());

  it("--key PUB.pem: that key is the trust root for this call", async () => {
    const ok = await ws.cli(["verify", "shipped", "--key", "keys/release.pub", "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    const [result] = eventsOf(parseEvents(ok.stdout), "verify-result");
    expect(result).toMatchObject({ ok: true, dir: "shipped", key: { id: "release.pub" } });
    // No note about the workspace's trust file or development key: they are not consulted.
    expect(ok.stderr).toBe("");

    const text = await ws.cli(["verify", "shipped", "--key", "keys/release.pub"]);
    expect(text.stdout).toMatch(/^verified shipped: 3 files .*\n {2}signed by release\.pub \(key [0-9a-f]{16}…\)/);

    // Another key is not trusted, even though it is a valid key of this workspace.
    const other = await ws.cli(["verify", "shipped", "--key", "keys/other.pub"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("verification failed [E_UNKNOWN_KEY]");
  });

  it("--key refuses a private key without showing it, and anything that is not a PEM public key", async () => {
    const privateKey = await ws.cli(["verify", "shipped", "--key", "keys/release.key", "--json"]);
    expect(privateKey.code).toBe(2);
    expect(privateKey.stderr.trim()).toBe("error [E_TRUST_CONFIG]: --key keys/release.key is a private key; give the public key (keygen wrote it as <prefix>.pub)");
    expect(eventsOf(parseEvents(privateKey.stdout), "verify-result")).toEqual([expect.objectContaining({ ok: false, code: "E_TRUST_CONFIG" })]);
    const secret = readFileSync(join(ws.root, "keys", "release.key"), "utf8").split("\n")[1]!;
    expect(privateKey.stdout + privateKey.stderr).not.toContain(secret);

    const yaml = await ws.cli(["verify", "shipped", "--key", "keys/trusted.yaml"]);
    expect(yaml.code).toBe(2);
    expect(yaml.stderr).toContain("--key keys/trusted.yaml is not a PEM public key (-----BEGIN PUBLIC KEY-----); a trust file with several keys goes in --trusted-keys");

    const missing = await ws.cli(["verify", "shipped", "--key", "keys/nope.pub"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read --key keys/nope.pub: ENOENT");

    const both = await ws.cli(["verify", "shipped", "--key", "keys/release.pub", "--trusted-keys", "keys/trusted.yaml"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("[E_USAGE]");
  });

  it("--trusted-keys takes a PEM public key as well as a YAML trust file", async () => {
    const pem = await ws.cli(["verify", "shipped", "--trusted-keys", "keys/release.pub"]);
    expect(pem.code, pem.stderr).toBe(0);
    expect(pem.stdout).toContain("signed by release.pub");
    const yaml = await ws.cli(["verify", "shipped", "--trusted-keys", "keys/trusted.yaml"]);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(yaml.stdout).toContain("signed by release (key");
    const wrong = await ws.cli(["verify", "shipped", "--trusted-keys", "keys/other.pub"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("[E_UNKNOWN_KEY]");
  });

  it("a directory that is not there (or is a file) is exit 2 with one clear line", async () => {
    for (const [dir, what] of [
      ["models/powerinfer/nope", "does not exist"],
      ["shipped/weights.gguf", "is not a directory"],
    ] as const) {
      const text = await ws.cli(["verify", dir, "--key", "keys/release.pub"]);
      expect(text.code).toBe(2);
      expect(text.stderr.trim().split("\n")).toEqual([`error [E_USAGE]: verify: ${dir} ${what}; give the model directory (the one holding model.sig, or pass --signature)`]);
      const json = await ws.cli(["verify", dir, "--json"]);
      expect(json.code).toBe(2);
      expect(eventsOf(parseEvents(json.stdout), "verify-result")).toEqual([expect.objectContaining({ ok: false, dir, code: "E_USAGE" })]);
    }
  });
});
