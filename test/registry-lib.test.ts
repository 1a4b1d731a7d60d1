/**
 * The registry layer's pure parts: references, challenges, Retry-After and backoff, ranges,
 * Link headers, token answers, and which credential an auth file gives for a host.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseChallenges, parseTokenResponse, scopesFor } from "../pipeline/registry/auth.js";
import { authFilePaths, canonicalRegistryHost, credentialsFromEnv, lookupInAuthFile, parseAuthFile, parseHelperOutput } from "../pipeline/registry/credentials.js";
import { parseContentRange, parseRetryAfter, parseUploadRange, retryDelayMs } from "../pipeline/registry/http.js";
import { formatReference, isLoopbackHost, manifestReference, parseReference } from "../pipeline/registry/reference.js";
import { nextLink, referrersTagFor } from "../pipeline/registry/referrers.js";
import { FileUploadSessionStore } from "../pipeline/registry/sessions.js";

const DIGEST = `sha256:${"a".repeat(64)}`;

describe("oci:// references", () => {
  it.each([
    ["oci://ghcr.io/acme/model:v1", { registry: "ghcr.io", repository: "acme/model", tag: "v1" }],
    ["oci://127.0.0.1:5000/m", { registry: "127.0.0.1:5000", repository: "m" }],
    ["oci://Registry.Example.COM:443/a/b/c@" + DIGEST, { registry: "registry.example.com:443", repository: "a/b/c", digest: DIGEST }],
    ["oci://[::1]:5000/a.b_c__d-e--f:V1.2_x@" + DIGEST, { registry: "[::1]:5000", repository: "a.b_c__d-e--f", tag: "V1.2_x", digest: DIGEST }],
  ])("parses %s", (text, expected) => {
    expect(parseReference(text)).toEqual(expected);
    expect(parseReference(formatReference(parseReference(text)))).toEqual(expected);
  });

  it.each([
    ["ghcr.io/acme/model:v1", /starts with oci:\/\//],
    ["oci://model:v1", /no repository after the registry host/],
    ["oci:///acme/model", /registry host is missing/],
    ["oci://ghcr.io/Acme/Model:v1", /repository "Acme\/Model" is not a valid name \(repository names are lower case\)/],
    ["oci://ghcr.io/acme//model", /empty path component/],
    ["oci://ghcr.io/acme/model:-bad", /tag "-bad" is not valid/],
    ["oci://ghcr.io/acme/model:" + "t".repeat(129), /tag "t+" is not valid/],
    ["oci://ghcr.io/acme/model@sha256:abc", /digest "sha256:abc" is not sha256/],
    ["oci://ghcr.io:99999/acme/model", /port "99999"/],
    ["oci://bad_host/acme/model", /registry host "bad_host"/],
    ["oci://ghcr.io/", /repository is missing/],
  ])("refuses %s, naming the bad part", (text, message) => {
    expect(() => parseReference(text)).toThrow(expect.objectContaining({ code: "E_REGISTRY_REFERENCE", message: expect.stringMatching(message) }));
  });

  it("what a manifest request names: digest, else tag, else latest", () => {
    expect(manifestReference(parseReference(`oci://h/r:v1@${DIGEST}`))).toBe(DIGEST);
    expect(manifestReference(parseReference("oci://h/r:v1"))).toBe("v1");
    expect(manifestReference(parseReference("oci://h/r"))).toBe("latest");
  });

  it("loopback hosts", () => {
    for (const host of ["localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000", "registry.localhost"]) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ["127.0.0.1.example.com", "localhost.example.com", "10.0.0.1:5000", "[::2]:5000", "ghcr.io"]) expect(isLoopbackHost(host)).toBe(false);
  });
});

describe("WWW-Authenticate", () => {
  it("parses Bearer with quoted commas and several scopes, Basic, and two challenges in one header", () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"')).toEqual([
      { scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:a/b:pull,push repository:c:pull", error: "insufficient_scope" } },
    ]);
    expect(parseChallenges('Basic realm="Registry Realm"')).toEqual([{ scheme: "basic", params: { realm: "Registry Realm" } }]);
    expect(parseChallenges('Basic realm="a", Bearer realm="b" , service=svc\nNegotiate')).toEqual([
      { scheme: "basic", params: { realm: "a" } },
      { scheme: "bearer", params: { realm: "b", service: "svc" } },
      { scheme: "negotiate", params: {} },
    ]);
    expect(parseChallenges('Bearer realm="with \\"quote\\""')[0]?.params.realm).toBe('with "quote"');
    expect(parseChallenges(undefined)).toEqual([]);
  });

  it("scopes: the repository's actions plus extra scopes, sorted", () => {
    expect(scopesFor({ repository: "dst", actions: ["pull", "push"], extraScopes: ["repository:src:pull"] })).toEqual(["repository:dst:pull,push", "repository:src:pull"]);
    expect(scopesFor({})).toEqual([]);
  });

  it("token answers: token or access_token, expires_in defaulting to 60", () => {
    expect(parseTokenResponse({ token: "t", expires_in: 300 })).toEqual({ token: "t", expiresInS: 300 });
    expect(parseTokenResponse({ access_token: "a" })).toEqual({ token: "a", expiresInS: 60 });
    expect(parseTokenResponse({ token: "" })).toBeUndefined();
    expect(parseTokenResponse("nope")).toBeUndefined();
  });
});

describe("retries and ranges", () => {
  it("Retry-After in seconds or as an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:10 GMT", now)).toBe(10_000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it("backoff doubles with ±25 % jitter; Retry-After wins; both capped", () => {
    const policy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(retryDelayMs(policy, 0, undefined, () => 0)).toBe(75);
    expect(retryDelayMs(policy, 2, undefined, () => 1)).toBe(500);
    expect(retryDelayMs(policy, 10, undefined, () => 0.5)).toBe(1000);
    expect(retryDelayMs(policy, 0, 700)).toBe(700);
    expect(retryDelayMs(policy, 0, 60_000)).toBe(1000);
  });

  it("upload Range and Content-Range", () => {
    expect(parseUploadRange("0-1048575", 0)).toBe(1048576);
    expect(parseUploadRange("0-0", 0)).toBe(0);
    expect(parseUploadRange("0-0", 1)).toBe(1);
    expect(parseUploadRange("bytes=0-99", 0)).toBe(100);
    expect(parseUploadRange("5-9", 0)).toBeUndefined();
    expect(parseContentRange("bytes 100-199/3145728")).toEqual({ start: 100, end: 199, total: 3145728 });
    expect(parseContentRange("bytes */3145728")).toEqual({ total: 3145728 });
    expect(parseContentRange("100-199")).toBeUndefined();
  });

  it("Link rel=next, relative or absolute", () => {
    expect(nextLink('</v2/a/referrers/x?n=2&last=b>; rel="next"', "http://h:1/v2/a/referrers/x")).toBe("http://h:1/v2/a/referrers/x?n=2&last=b");
    expect(nextLink('<http://other/p>; rel="prev", <http://h/next>; rel=next', "http://h/")).toBe("http://h/next");
    expect(nextLink(undefined, "http://h/")).toBeUndefined();
  });

  it("the referrers tag of a digest", () => {
    expect(referrersTagFor(DIGEST)).toBe(`sha256-${"a".repeat(64)}`);
  });
});

describe("credentials", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  it("auths: exact host, Docker Hub aliases, namespace keys most specific first, never a substring", () => {
    const file = parseAuthFile(
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: b64("hub:h") },
          "registry.example.com:5000": { auth: b64("exact:e") },
          "registry.example.com:50001": { auth: b64("longer-port:x") },
          "evil-registry.example.com": { auth: b64("evil:x") },
          "quay.io/team": { auth: b64("team:t") },
          "quay.io/team/model": { auth: b64("model:m") },
        },
      }),
      "/cfg.json",
    );
    const userFor = (host: string, repository?: string) => {
      const answer = lookupInAuthFile(file, host, repository);
      return answer?.kind === "stored" ? answer.credential.username : undefined;
    };
    expect(userFor("registry-1.docker.io")).toBe("hub");
    expect(userFor("docker.io")).toBe("hub");
    expect(userFor("registry.example.com:5000")).toBe("exact");
    expect(userFor("registry.example.com")).toBeUndefined();
    expect(userFor("example.com")).toBeUndefined();
    expect(userFor("quay.io", "team/model")).toBe("model");
    expect(userFor("quay.io", "team/other")).toBe("team");
    expect(userFor("quay.io", "teams/x")).toBeUndefined();
    expect(canonicalRegistryHost("Index.Docker.IO")).toBe("docker.io");
  });

  it("credHelpers[host] before credsStore before auths; Docker Hub's helper gets its server URL", () => {
    const file = parseAuthFile(JSON.stringify({ credsStore: "desktop", credHelpers: { "ghcr.io": "gh" }, auths: { "ghcr.io": { auth: b64("u:p") } } }), "/cfg.json");
    expect(lookupInAuthFile(file, "ghcr.io")).toMatchObject({ kind: "helper", helper: "gh", serverUrl: "ghcr.io" });
    expect(lookupInAuthFile(file, "docker.io")).toMatchObject({ kind: "helper", helper: "desktop", serverUrl: "https://index.docker.io/v1/" });
  });

  it("identity tokens and helper answers", () => {
    const file = parseAuthFile(JSON.stringify({ auths: { "r.io": { auth: b64("u:"), identitytoken: "idt" } } }), "/cfg.json");
    expect(lookupInAuthFile(file, "r.io")).toMatchObject({ kind: "stored", credential: { username: "u", password: "", identityToken: "idt" } });
    expect(parseHelperOutput('{"ServerURL":"r.io","Username":"<token>","Secret":"idt"}', "x")).toEqual({ identityToken: "idt" });
    expect(parseHelperOutput('{"Username":"u","Secret":"s"}', "x")).toEqual({ username: "u", password: "s" });
    expect(() => parseHelperOutput("Secret=s3cr3t", "x")).toThrow(expect.objectContaining({ code: "E_REGISTRY_AUTH", message: expect.not.stringContaining("s3cr3t") }));
  });

  it("malformed files name the file and the key", () => {
    expect(() => parseAuthFile("{", "/x/config.json")).toThrow(expect.objectContaining({ code: "E_CONFIG_SYNTAX", message: expect.stringContaining("/x/config.json") }));
    expect(() => parseAuthFile('{"auths":[]}', "/x/config.json")).toThrow(/"auths" must be an object/);
    expect(() => parseAuthFile('{"credHelpers":{"a":1}}', "/x/config.json")).toThrow(/"credHelpers" entry "a"/);
    const file = parseAuthFile(JSON.stringify({ auths: { "r.io": { auth: b64("no-colon") } } }), "/x/config.json");
    expect(() => lookupInAuthFile(file, "r.io")).toThrow(/auths\["r.io"\]: "auth" is not base64/);
  });

  it("the environment for CI, and the order of files", () => {
    expect(credentialsFromEnv({ AI_TOOLS_REGISTRY_USERNAME: "u", AI_TOOLS_REGISTRY_PASSWORD: "p" }, "ghcr.io")?.credential).toEqual({ username: "u", password: "p" });
    expect(credentialsFromEnv({ AI_TOOLS_REGISTRY_TOKEN: "t" }, "ghcr.io")?.credential).toEqual({ registryToken: "t" });
    expect(credentialsFromEnv({ AI_TOOLS_REGISTRY_TOKEN: "t", AI_TOOLS_REGISTRY_HOST: "quay.io" }, "ghcr.io")).toBeUndefined();
    expect(() => credentialsFromEnv({ AI_TOOLS_REGISTRY_USERNAME: "u" }, "ghcr.io")).toThrow(/AI_TOOLS_REGISTRY_PASSWORD is not/);
    expect(authFilePaths({ REGISTRY_AUTH_FILE: "/a.json", XDG_RUNTIME_DIR: "/run/user/1", DOCKER_CONFIG: "/d" }, 1, "/home/u")).toEqual([
      "/a.json",
      "/run/user/1/containers/auth.json",
      "/home/u/.config/containers/auth.json",
      "/d/config.json",
    ]);
    expect(authFilePaths({}, 0, "/root")).toEqual(["/run/containers/0/auth.json", "/root/.config/containers/auth.json", "/root/.docker/config.json"]);
  });
});

describe("upload session store", () => {
  it("remembers, forgets, and survives a damaged file", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "ai-tools-sessions-")), "state", "uploads.json");
    const store = new FileUploadSessionStore(path);
    const session = { location: "http://r/v2/a/blobs/uploads/1?_state=x", offset: 5, updatedAt: new Date().toISOString() };
    await Promise.all([store.set("a", session), store.set("b", { ...session, offset: 7 })]);
    expect(await store.get("a")).toEqual(session);
    expect((await new FileUploadSessionStore(path).get("b"))?.offset).toBe(7);
    await store.delete("a");
    expect(await store.get("a")).toBeUndefined();
    expect(Object.keys(JSON.parse(readFileSync(path, "utf8")).sessions)).toEqual(["b"]);
    await store.set("old", { ...session, updatedAt: "2000-01-01T00:00:00Z" });
    expect(await store.get("old")).toBeUndefined();
  });
});
