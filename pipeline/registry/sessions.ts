/**
 * Where an interrupted upload's session is remembered, so a rerun after a killed process
 * continues it (`GET <location>` tells how far the registry got) instead of starting over.
 * Sessions are hints: a stale or unknown one costs one request and a fresh start, never a
 * wrong blob (the registry checks the digest when the upload closes).
 */
import { readFile } from "node:fs/promises";
import { atomicWriteFile } from "../core/files.js";

export interface StoredUploadSession {
  /** The newest `Location` (with its query: the registry's state token). */
  location: string;
  /** Bytes the registry had acknowledged at `location`. */
  offset: number;
  /** ISO time of the last update. */
  updatedAt: string;
}

export interface UploadSessionStore {
  get(key: string): Promise<StoredUploadSession | undefined>;
  set(key: string, session: StoredUploadSession): Promise<void>;
  delete(key: string): Promise<void>;
}

export function uploadSessionKey(registry: string, repository: string, digest: string): string {
  return `${registry}/${repository}@${digest}`;
}

/** Distribution purges upload folders after a week by default; older entries are dropped. */
const MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/**
 * A JSON file (e.g. `build/state/registry-uploads.json`), written atomically with mode 0600
 * (a Location may carry a signed token). Writes within a process are serialised; two
 * processes updating it at once may lose each other's entries, which only costs a restart.
 */
export class FileUploadSessionStore implements UploadSessionStore {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  private async read(): Promise<Record<string, StoredUploadSession>> {
    try {
      const json = JSON.parse(await readFile(this.path, "utf8")) as { sessions?: Record<string, StoredUploadSession> };
      return json.sessions && typeof json.sessions === "object" ? json.sessions : {};
    } catch {
      // Missing or damaged: sessions are hints, start without them.
      return {};
    }
  }

  /** `change` returns false when it changed nothing (no write then). */
  private update(change: (sessions: Record<string, StoredUploadSession>) => boolean): Promise<void> {
    const next = this.queue.then(async () => {
      const sessions = await this.read();
      if (!change(sessions)) return;
      const now = Date.now();
      for (const [key, session] of Object.entries(sessions)) {
        if (!(now - Date.parse(session.updatedAt) < MAX_AGE_MS)) delete sessions[key];
      }
      await atomicWriteFile(this.path, `${JSON.stringify({ version: 1, sessions }, null, 2)}\n`, 0o600);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  async get(key: string): Promise<StoredUploadSession | undefined> {
    await this.queue;
    const session = (await this.read())[key];
    return session && typeof session.location === "string" && Number.isSafeInteger(session.offset) ? session : undefined;
  }

  set(key: string, session: StoredUploadSession): Promise<void> {
    return this.update((sessions) => {
      sessions[key] = session;
      return true;
    });
  }

  delete(key: string): Promise<void> {
    return this.update((sessions) => key in sessions && delete sessions[key]);
  }
}

/** Sessions for one process only (tests, or a caller that keeps them elsewhere). */
export class MemoryUploadSessionStore implements UploadSessionStore {
  readonly sessions = new Map<string, StoredUploadSession>();

  async get(key: string): Promise<StoredUploadSession | undefined> {
    return this.sessions.get(key);
  }

  async set(key: string, session: StoredUploadSession): Promise<void> {
    this.sessions.set(key, session);
  }

  async delete(key: string): Promise<void> {
    this.sessions.delete(key);
  }
}
