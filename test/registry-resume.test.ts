/**
 * Interrupted uploads against the real registry (Distribution 2.8.2 with `http.secret`, so
 * its upload state tokens survive a restart): an upload interrupted mid-chunk lets that chunk
 * finish and continues its session on the rerun; a registry down for a moment during an upload
 * is ridden out; a chunk cut off in the middle (no grace, or the registry killed) loses the
 * session (2.8.2 cancels a session whose stored size differs from its signed state), and the
 * rerun starts it again cleanly.
 */
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { FileUploadSessionStore, RegistryClient, type StoredUploadSession, type UploadSessionStore } from "../pipeline/registry/index.js";
import { fileBlob, randomBytesFrom } from "./helpers/blobs.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";

const MiB = 1024 * 1024;
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function registryForTest(): Promise<TestRegistry> {
  const registry = await startRegistry();
  cleanup.push(() => registry.close());
  return registry;
}

function clientFor(registry: TestRegistry): RegistryClient {
  const client = new RegistryClient({ registry: registry.host, credentials: null, retry: { attempts: 6, baseDelayMs: 100, maxDelayMs: 1000 } });
  cleanup.push(() => client.close());
  return client;
}

/** A session store that runs `hook` after the n-th recorded chunk (1-based). */
function storeWithHook(inner: UploadSessionStore, afterSet: number, hook: () => Promise<void> | void): UploadSessionStore {
  let sets = 0;
  return {
    get: (key) => inner.get(key),
    delete: (key) => inner.delete(key),
    set: async (key: string, session: StoredUploadSession) => {
      await inner.set(key, session);
      if (++sets === afterSet) await hook();
    },
  };
}

async function pulled(client: RegistryClient, repository: string, digest: string): Promise<Buffer> {
  const file = join(mkdtempSync(join(tmpdir(), "ai-tools-pull-")), "blob");
  await client.getBlob(repository, digest, { file });
  return readFileSync(file);
}

describe("interrupted uploads", () => {
  it("interrupted in the middle of a chunk: that chunk finishes, and the rerun continues the session after a registry restart", async () => {
    const registry = await registryForTest();
    const blob = fileBlob(randomBytesFrom(31, 6 * MiB));
    const storeFile = join(mkdtempSync(join(tmpdir(), "ai-tools-ws-")), "build", "state", "registry-uploads.json");
    const interrupt = new AbortController();
    const first = clientFor(registry);
    const failure = await first
      .uploadBlob("models/resume", blob, {
        chunkSize: MiB,
        monolithicLimit: 0,
        sessions: new FileUploadSessionStore(storeFile),
        signal: interrupt.signal,
        // Ctrl-C while the third chunk is on its way.
        onProgress: (sent) => sent >= 2.5 * MiB && interrupt.abort(),
      })
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: "E_ABORTED" });
    expect(statSync(storeFile).mode & 0o777).toBe(0o600);
    expect(Object.values(JSON.parse(readFileSync(storeFile, "utf8")).sessions)).toMatchObject([{ offset: 3 * MiB }]);
    await registry.kill();
    await registry.restart();
    await registry.clearAccessLog();

    const rerun = clientFor(registry);
    blob.opened.length = 0;
    const result = await rerun.uploadBlob("models/resume", blob, { chunkSize: MiB, monolithicLimit: 0, sessions: new FileUploadSessionStore(storeFile) });
    expect(result).toMatchObject({ outcome: "uploaded", resumedFrom: 3 * MiB, bytesSent: 3 * MiB });
    expect(blob.opened).toEqual([3 * MiB, 4 * MiB, 5 * MiB]);
    expect((await registry.accessLog()).map((r) => `${r.method} ${r.status}`)).toEqual(["HEAD 404", "GET 204", "PATCH 202", "PATCH 202", "PATCH 202", "PUT 201"]);
    expect((await pulled(rerun, "models/resume", blob.digest)).equals(blob.bytes)).toBe(true);
    // Done: the session is forgotten.
    expect(JSON.parse(readFileSync(storeFile, "utf8")).sessions).toEqual({});
  });

  it("with no grace an abort cuts the chunk at once; 2.8.2 then cancels the session and the rerun starts over", async () => {
    const registry = await registryForTest();
    const blob = fileBlob(randomBytesFrom(34, 4 * MiB));
    const storeFile = join(mkdtempSync(join(tmpdir(), "ai-tools-ws-")), "uploads.json");
    const interrupt = new AbortController();
    const failure = await clientFor(registry)
      .uploadBlob("models/cut-now", blob, { chunkSize: 2 * MiB, monolithicLimit: 0, abortGraceMs: 0, sessions: new FileUploadSessionStore(storeFile), signal: interrupt.signal, onProgress: (sent) => sent >= 3 * MiB && interrupt.abort() })
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: "E_ABORTED" });
    const result = await clientFor(registry).uploadBlob("models/cut-now", blob, { chunkSize: 2 * MiB, monolithicLimit: 0, sessions: new FileUploadSessionStore(storeFile) });
    expect(result).toMatchObject({ outcome: "uploaded", resumedFrom: 0, bytesSent: 4 * MiB });
    expect((await pulled(clientFor(registry), "models/cut-now", blob.digest)).equals(blob.bytes)).toBe(true);
  });

  it("a registry down for a moment during the upload is ridden out: the client asks for the offset and goes on", async () => {
    const registry = await registryForTest();
    const blob = fileBlob(randomBytesFrom(32, 5 * MiB));
    const retries: string[] = [];
    const client = new RegistryClient({ registry: registry.host, credentials: null, retry: { attempts: 6, baseDelayMs: 100, maxDelayMs: 1000 }, onEvent: (e) => e.type === "retry" && retries.push(e.reason) });
    cleanup.push(() => client.close());
    let restarted: Promise<void> | undefined;
    // After the second chunk the registry dies and comes back half a second later.
    const store = storeWithHook(new FileUploadSessionStore(join(mkdtempSync(join(tmpdir(), "ai-tools-ws-")), "uploads.json")), 3, async () => {
      await registry.kill();
      restarted = new Promise((resolve) => setTimeout(resolve, 500)).then(() => registry.restart());
    });
    const result = await client.uploadBlob("models/restart", blob, { chunkSize: MiB, monolithicLimit: 0, sessions: store });
    await restarted;
    expect(result.outcome).toBe("uploaded");
    expect(result.bytesSent).toBeLessThanOrEqual(blob.size + MiB);
    expect(retries.length).toBeGreaterThan(0);
    expect((await pulled(client, "models/restart", blob.digest)).equals(blob.bytes)).toBe(true);
  });

  it("a registry killed in the middle of a PATCH: the rerun finds the session cancelled and uploads again from zero", async () => {
    const registry = await registryForTest();
    const bytes = randomBytesFrom(33, 4 * MiB);
    const blob = fileBlob(bytes);
    const storeFile = join(mkdtempSync(join(tmpdir(), "ai-tools-ws-")), "uploads.json");
    let stalled: PassThrough | undefined;
    // The third chunk sends half its bytes, then the registry dies.
    const stalling = {
      ...blob,
      open: (start: number, end: number): Readable => {
        if (start !== 2 * MiB) return blob.open(start, end);
        stalled = new PassThrough();
        stalled.write(bytes.subarray(start, start + MiB / 2));
        setTimeout(() => void registry.kill(), 300);
        return stalled;
      },
    };
    const client = new RegistryClient({ registry: registry.host, credentials: null, retry: { attempts: 2, baseDelayMs: 10 } });
    cleanup.push(() => client.close());
    const failure = await client.uploadBlob("models/cut", stalling, { chunkSize: MiB, monolithicLimit: 0, sessions: new FileUploadSessionStore(storeFile) }).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: "E_REGISTRY_UNREACHABLE" });
    stalled?.destroy();
    await registry.restart();
    await registry.clearAccessLog();

    const rerun = clientFor(registry);
    const result = await rerun.uploadBlob("models/cut", blob, { chunkSize: MiB, monolithicLimit: 0, sessions: new FileUploadSessionStore(storeFile) });
    expect(result).toMatchObject({ outcome: "uploaded", resumedFrom: 0, bytesSent: 4 * MiB });
    const log = (await registry.accessLog()).map((r) => `${r.method} ${r.status}`);
    expect(log.slice(0, 3)).toEqual(["HEAD 404", "GET 404", "POST 202"]);
    expect((await pulled(rerun, "models/cut", blob.digest)).equals(blob.bytes)).toBe(true);
  });
});
