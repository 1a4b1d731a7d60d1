/**
 * Authentication against the real registry: htpasswd Basic auth and the Bearer token flow
 * (a Node ES256 token server the registry trusts through its rootcertbundle), credentials
 * from every source docker and skopeo use, TLS with a private CA, and the plain-HTTP rule.
 * Wrong credentials must cost a bounded number of requests (counted in the registry's access
 * log and the token server's log), and no secret may appear in any error or event.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, type RegistryClientOptions, type RegistryEvent } from "../pipeline/registry/index.js";
import { OCI_EMPTY, OCI_MANIFEST } from "../pipeline/registry/types.js";
import { fileBlob, randomBytesFrom } from "./helpers/blobs.js";
import { digestOf, startRegistry, type TestRegistry } from "./helpers/registry.js";

const USER = "alice";
const PASSWORD = "pa55-W0rd-that-must-not-leak";
const WRONG = "wrong-pa55-that-must-not-leak";
const IDENTITY_TOKEN = "refresh-token-that-must-not-leak";
const secrets = [PASSWORD, WRONG, IDENTITY_TOKEN, Buffer.from(`${USER}:${PASSWORD}`).toString("base64"), Buffer.from(`${USER}:${WRONG}`).toString("base64")];

/** Everything a user or a log could ever see: messages, details, causes, events. */
const seen: string[] = [];
function record(error: unknown): unknown {
  let e = error as { message?: string; details?: readonly string[]; cause?: unknown; stack?: string } | undefined;
  for (let depth = 0; e && depth < 5; depth++, e = e.cause as typeof e) seen.push(String(e.message), ...(e.details ?? []), String(e.stack));
  return error;
}

/** A bare environment: nothing of the machine's own docker or containers config leaks in. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const home = mkdtempSync(join(tmpdir(), "ai-tools-home-"));
  return { PATH: process.env.PATH, HOME: home, XDG_RUNTIME_DIR: join(home, "run"), XDG_CONFIG_HOME: join(home, "config"), ...extra };
}

function clientFor(registry: TestRegistry, options: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({ registry: registry.host, env: cleanEnv(), ...options, onEvent: (e: RegistryEvent) => seen.push(JSON.stringify(e)) });
}

async function pushSomething(client: RegistryClient, repository: string, seed: number) {
  const blob = fileBlob(randomBytesFrom(seed, 50_000));
  await client.uploadBlob(repository, blob);
  await client.uploadBlob(repository, fileBlob(Buffer.from("{}")));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_EMPTY, digest: digestOf("{}"), size: 2 }, layers: [{ mediaType: "application/octet-stream", digest: blob.digest, size: blob.size }] }));
  await client.putManifest(repository, "v1", manifest, OCI_MANIFEST);
  return { blob, manifest };
}

afterAll(() => {
  const text = seen.join("\n");
  for (const secret of secrets) expect(text).not.toContain(secret);
  expect(seen.length).toBeGreaterThan(20);
});

describe("htpasswd Basic auth", () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: "htpasswd", users: { [USER]: PASSWORD } });
  });
  afterAll(() => registry?.close());

  it("pushes and pulls with the right password; only the first request is challenged", async () => {
    const client = clientFor(registry, { credentials: { username: USER, password: PASSWORD } });
    await registry.clearAccessLog();
    const { blob, manifest } = await pushSomething(client, "auth/basic", 1);
    expect((await client.getManifest("auth/basic", "v1")).bytes.equals(manifest)).toBe(true);
    const file = join(mkdtempSync(join(tmpdir(), "ai-tools-pull-")), "blob");
    await client.getBlob("auth/basic", blob.digest, { file });
    expect(readFileSync(file).equals(blob.bytes)).toBe(true);
    const statuses = (await registry.accessLog()).map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(1);
    expect(statuses[0]).toBe(401);
    await client.close();
  });

  it("a wrong password is one E_REGISTRY_AUTH after two requests, naming the source, not the secret", async () => {
    const client = clientFor(registry, { env: cleanEnv({ AI_TOOLS_REGISTRY_USERNAME: USER, AI_TOOLS_REGISTRY_PASSWORD: WRONG }) });
    await registry.clearAccessLog();
    const error = record(await client.getManifest("auth/basic", "v1").catch((e: unknown) => e));
    expect(error).toMatchObject({ code: "E_REGISTRY_AUTH", status: 401 });
    expect((error as Error).message).toContain("AI_TOOLS_REGISTRY_USERNAME");
    expect((await registry.accessLog()).map((r) => r.status)).toEqual([401, 401]);
    await client.close();
  });

  it("no credentials anywhere: E_REGISTRY_AUTH saying how to log in, after one request", async () => {
    const client = clientFor(registry);
    await registry.clearAccessLog();
    const error = record(await client.statBlob("auth/basic", digestOf("x")).catch((e: unknown) => e));
    expect(error).toMatchObject({ code: "E_REGISTRY_AUTH" });
    expect((error as Error).message).toMatch(/none were found.*docker login/);
    expect(await registry.accessLog()).toHaveLength(1);
  });

  describe("credential sources", () => {
    const auth = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString("base64");

    it("~/.docker/config.json auths (exact host; a key that merely contains the host is ignored)", async () => {
      const env = cleanEnv();
      mkdirSync(join(env.HOME!, ".docker"));
      const prefix = registry.host.slice(0, -1); // 127.0.0.1:5000 -> 127.0.0.1:500
      writeFileSync(join(env.HOME!, ".docker", "config.json"), JSON.stringify({ auths: { [prefix]: { auth: auth(USER, WRONG) }, [`https://${registry.host}/v1/`]: { auth: auth(USER, PASSWORD) } } }));
      const client = clientFor(registry, { env });
      await pushSomething(client, "auth/docker-config", 2);
      await client.close();
    });

    it("$DOCKER_CONFIG/config.json, and $REGISTRY_AUTH_FILE before it", async () => {
      const dockerDir = mkdtempSync(join(tmpdir(), "ai-tools-docker-"));
      writeFileSync(join(dockerDir, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: auth(USER, WRONG) } } }));
      const authFile = join(mkdtempSync(join(tmpdir(), "ai-tools-auth-")), "auth.json");
      writeFileSync(authFile, JSON.stringify({ auths: { [registry.host]: { auth: auth(USER, PASSWORD) } } }));
      await pushSomething(clientFor(registry, { env: cleanEnv({ DOCKER_CONFIG: dockerDir, REGISTRY_AUTH_FILE: authFile }) }), "auth/auth-file", 3);
      const wrong = record(await clientFor(registry, { env: cleanEnv({ DOCKER_CONFIG: dockerDir }) }).statBlob("auth/auth-file", digestOf("x")).catch((e: unknown) => e));
      expect(wrong).toMatchObject({ code: "E_REGISTRY_AUTH" });
      expect((wrong as Error).message).toContain(join(dockerDir, "config.json"));
    });

    it("${XDG_RUNTIME_DIR}/containers/auth.json as skopeo login writes it, with a namespace key", async () => {
      const env = cleanEnv();
      mkdirSync(join(env.XDG_RUNTIME_DIR!, "containers"), { recursive: true });
      writeFileSync(join(env.XDG_RUNTIME_DIR!, "containers", "auth.json"), JSON.stringify({ auths: { [`${registry.host}/auth`]: { auth: auth(USER, PASSWORD) }, [registry.host]: { auth: auth(USER, WRONG) } } }));
      await pushSomething(clientFor(registry, { env }), "auth/containers", 4);
    });

    it("credHelpers[host], then credsStore, run as docker-credential-<name> get with the server on stdin", async () => {
      const env = cleanEnv();
      const bin = join(env.HOME!, "bin");
      mkdirSync(bin);
      const asked = join(env.HOME!, "asked");
      const helper = (name: string, password: string) => {
        const path = join(bin, `docker-credential-${name}`);
        writeFileSync(path, `#!/bin/sh\n[ "$1" = get ] || exit 2\nread server\necho "${name} $server" >> "${asked}"\nprintf '{"ServerURL":"%s","Username":"${USER}","Secret":"${password}"}\\n' "$server"\n`);
        chmodSync(path, 0o755);
      };
      helper("per-host", PASSWORD);
      helper("default", WRONG);
      env.PATH = `${bin}:${env.PATH}`;
      mkdirSync(join(env.HOME!, ".docker"));
      writeFileSync(join(env.HOME!, ".docker", "config.json"), JSON.stringify({ credsStore: "default", credHelpers: { [registry.host]: "per-host" }, auths: { [registry.host]: {} } }));
      await pushSomething(clientFor(registry, { env }), "auth/helper", 5);
      expect(readFileSync(asked, "utf8")).toBe(`per-host ${registry.host}\n`);

      // Without the per-host entry the default store answers (with the wrong password here).
      writeFileSync(join(env.HOME!, ".docker", "config.json"), JSON.stringify({ credsStore: "default", auths: { [registry.host]: { auth: auth(USER, PASSWORD) } } }));
      const error = record(await clientFor(registry, { env }).statBlob("auth/helper", digestOf("x")).catch((e: unknown) => e));
      expect(error).toMatchObject({ code: "E_REGISTRY_AUTH" });
      expect((error as Error).message).toContain("docker-credential-default");
    });

    it("a credsStore whose helper is not installed is E_REGISTRY_AUTH naming the file and the helper", async () => {
      const env = cleanEnv();
      mkdirSync(join(env.HOME!, ".docker"));
      writeFileSync(join(env.HOME!, ".docker", "config.json"), JSON.stringify({ credsStore: "desktop" }));
      const error = record(await clientFor(registry, { env }).statBlob("auth/helper", digestOf("x")).catch((e: unknown) => e));
      expect(error).toMatchObject({ code: "E_REGISTRY_AUTH" });
      expect((error as Error).message).toMatch(/config\.json credsStore names the credential helper "desktop", but docker-credential-desktop is not on PATH/);
    });

    it("AI_TOOLS_REGISTRY_HOST keeps the CI variables for that registry only", async () => {
      const env = cleanEnv({ AI_TOOLS_REGISTRY_USERNAME: USER, AI_TOOLS_REGISTRY_PASSWORD: PASSWORD, AI_TOOLS_REGISTRY_HOST: "ghcr.io" });
      const error = record(await clientFor(registry, { env }).statBlob("auth/env", digestOf("x")).catch((e: unknown) => e));
      expect(error).toMatchObject({ code: "E_REGISTRY_AUTH" });
      expect((error as Error).message).toContain("none were found");
      await pushSomething(clientFor(registry, { env: { ...env, AI_TOOLS_REGISTRY_HOST: registry.host } }), "auth/env", 6);
    });
  });
});

describe("token auth (Bearer, ES256 token server)", () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: "token", users: { [USER]: PASSWORD }, refreshTokens: { [IDENTITY_TOKEN]: USER } });
  });
  afterAll(() => registry?.close());

  it("pushes and pulls; tokens are asked per scope set and reused", async () => {
    const client = clientFor(registry, { credentials: { username: USER, password: PASSWORD } });
    await registry.clearAccessLog();
    const { blob, manifest } = await pushSomething(client, "token/model", 7);
    expect((await client.getManifest("token/model", "v1")).bytes.equals(manifest)).toBe(true);
    expect(await client.statBlob("token/model", blob.digest)).toBe(blob.size);
    const scopes = registry.tokenRequests.map((r) => r.scopes.join(" "));
    // One token for pull (the first HEAD), one for pull,push: then cached for every later request.
    expect(scopes).toEqual(["repository:token/model:pull", "repository:token/model:pull,push"]);
    expect(registry.tokenRequests.every((r) => r.user === USER && r.account === USER)).toBe(true);
    expect((await registry.accessLog()).filter((r) => r.status === 401)).toHaveLength(1);
    await client.close();
  });

  it("parallel requests for the same scopes share one token request", async () => {
    const client = clientFor(registry, { credentials: { username: USER, password: PASSWORD } });
    await registry.clearAccessLog();
    const digests = ["a", "b", "c", "d", "e", "f"].map((x) => digestOf(x));
    expect(await Promise.all(digests.map((d) => client.statBlob("token/parallel", d)))).toEqual(digests.map(() => null));
    expect(registry.tokenRequests).toHaveLength(1);
    await client.close();
  });

  it("a mount asks one token for both repositories' scopes", async () => {
    const client = clientFor(registry, { credentials: { username: USER, password: PASSWORD } });
    const { blob } = await pushSomething(client, "token/source", 8);
    await registry.clearAccessLog();
    expect(await client.mountBlob("token/target", blob.digest, "token/source")).toEqual({ mounted: true });
    expect(registry.tokenRequests.map((r) => r.scopes)).toEqual([["repository:token/source:pull", "repository:token/target:pull,push"]]);
  });

  it("a wrong password is one E_REGISTRY_AUTH: one token request, one registry request", async () => {
    const client = clientFor(registry, { credentials: { username: USER, password: WRONG } });
    await registry.clearAccessLog();
    const error = record(await client.getManifest("token/model", "v1").catch((e: unknown) => e));
    expect(error).toMatchObject({ code: "E_REGISTRY_AUTH", status: 401 });
    expect((error as Error).message).toMatch(/token service 127\.0\.0\.1:\d+ .* refused the credentials from the credentials given/);
    expect(registry.tokenRequests).toHaveLength(1);
    expect(await registry.accessLog()).toHaveLength(1);
  });

  it("anonymous access to a private repository is E_REGISTRY_AUTH after a bounded exchange", async () => {
    const client = clientFor(registry);
    await registry.clearAccessLog();
    const error = record(await client.getManifest("token/model", "v1").catch((e: unknown) => e));
    expect(error).toMatchObject({ code: "E_REGISTRY_AUTH" });
    expect(registry.tokenRequests.length).toBeLessThanOrEqual(1);
    expect((await registry.accessLog()).length).toBeLessThanOrEqual(2);
  });

  it("an identity token from config.json goes through the OAuth2 refresh-token POST", async () => {
    const env = cleanEnv();
    mkdirSync(join(env.HOME!, ".docker"));
    writeFileSync(join(env.HOME!, ".docker", "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${USER}:`).toString("base64"), identitytoken: IDENTITY_TOKEN } } }));
    await registry.clearAccessLog();
    await pushSomething(clientFor(registry, { env }), "token/identity", 9);
    expect(new Set(registry.tokenRequests.map((r) => `${r.method} ${r.user}`))).toEqual(new Set([`POST ${USER}`]));
  });
});

describe("transport security", () => {
  it("TLS with a private CA: trusted with the CA option, E_REGISTRY_UNREACHABLE without it", async () => {
    const registry = await startRegistry({ tls: true });
    try {
      const caFile = join(mkdtempSync(join(tmpdir(), "ai-tools-ca-")), "ca.crt");
      writeFileSync(caFile, registry.caPem!);
      const trusted = clientFor(registry, { plainHttp: false, caFile, credentials: null });
      await pushSomething(trusted, "tls/model", 10);
      await trusted.close();
      const untrusted = clientFor(registry, { plainHttp: false, credentials: null });
      const error = record(await untrusted.ping().catch((e: unknown) => e));
      expect(error).toMatchObject({ code: "E_REGISTRY_UNREACHABLE" });
      expect((error as Error).message).toMatch(/TLS failed/);
      await untrusted.close();
      expect(() => clientFor(registry, { plainHttp: false, caFile: "/nonexistent/ca.crt" })).toThrow(expect.objectContaining({ code: "E_CONFIG_MISSING", message: expect.stringContaining("/nonexistent/ca.crt") }));
    } finally {
      await registry.close();
    }
  });

  it("plain HTTP to a host that is not loopback is refused unless insecure is set", async () => {
    expect(() => new RegistryClient({ registry: "registry.invalid:5000", plainHttp: true })).toThrow(expect.objectContaining({ code: "E_REGISTRY_INSECURE" }));
    const forced = new RegistryClient({ registry: "registry.invalid:5000", plainHttp: true, insecure: true, credentials: null, retry: { attempts: 1 } });
    await expect(forced.ping()).rejects.toMatchObject({ code: "E_REGISTRY_UNREACHABLE" });
    // The default for a non-loopback host is HTTPS.
    expect(new RegistryClient({ registry: "registry.invalid:5000" }).transport.baseUrl).toBe("https://registry.invalid:5000");
    expect(new RegistryClient({ registry: "localhost:5000" }).transport.baseUrl).toBe("http://localhost:5000");
  });
});
