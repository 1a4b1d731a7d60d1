/**
 * Which repositories of a registry are known to hold a blob: recorded after every push and
 * pull, so the next push of a model sharing files with one pushed elsewhere mounts them
 * (`POST ?mount=&from=`, no bytes move) instead of uploading. A hint only: a stale entry
 * costs one mount request answered 202, which the upload then uses.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { atomicWriteFile } from "../core/files.js";

/** Repositories remembered per blob: enough for mounts, bounded so the file stays small. */
const MAX_REPOSITORIES_PER_BLOB = 8;

export interface BlobLocations {
  repositoriesWith(registry: string, digest: string): Promise<string[]>;
  record(registry: string, repository: string, digests: readonly string[]): Promise<void>;
}

type Known = Record<string, Record<string, string[]>>;

export class FileBlobLocations implements BlobLocations {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  static inStore(storeDir: string): FileBlobLocations {
    return new FileBlobLocations(join(storeDir, ".ai-tools", "locations.json"));
  }

  private async read(): Promise<Known> {
    try {
      const json = JSON.parse(await readFile(this.path, "utf8")) as { registries?: Known };
      return json.registries && typeof json.registries === "object" ? json.registries : {};
    } catch {
      // Missing or damaged: locations are hints.
      return {};
    }
  }

  async repositoriesWith(registry: string, digest: string): Promise<string[]> {
    await this.queue;
    const list = (await this.read())[registry]?.[digest];
    return Array.isArray(list) ? list.filter((r) => typeof r === "string") : [];
  }

  record(registry: string, repository: string, digests: readonly string[]): Promise<void> {
    const next = this.queue.then(async () => {
      const known = await this.read();
      const blobs = (known[registry] ??= {});
      for (const digest of digests) {
        const list = (blobs[digest] ?? []).filter((r) => r !== repository);
        blobs[digest] = [repository, ...list].slice(0, MAX_REPOSITORIES_PER_BLOB);
      }
      await atomicWriteFile(this.path, `${JSON.stringify({ version: 1, registries: known })}\n`);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }
}
