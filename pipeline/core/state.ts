/**
 * The record of a task's last successful run (DVC's dvc.lock, one file per task
 * instance so that graphs share steps and concurrent runs of different targets never
 * write the same file). Human-readable JSON, written atomically, and removed before a
 * task runs: a crash mid-task leaves no record, so the task is never taken as fresh.
 */
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { atomicWriteFile, type OutputSnapshot } from "./files.js";
import type { InputRecord, Sha256Hex } from "./fingerprint.js";

export const RECORD_SCHEMA = 1;

export interface TaskRecord {
  schema: typeof RECORD_SCHEMA;
  task: string;
  instance: string;
  fingerprint: Sha256Hex;
  inputs: InputRecord;
  /** Declared outputs, keyed by path relative to the workspace root. */
  outputs: Record<string, OutputSnapshot>;
  /** Facts the task reported (commit, binaries, build info...). */
  result: unknown;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

export class StateStore {
  constructor(readonly dir: string) {}

  recordPath(instance: string): string {
    return join(this.dir, `${instance}.lock.json`);
  }

  /** The record, or null when there is none or it cannot be read (then the task reruns). */
  async read(instance: string): Promise<TaskRecord | null> {
    const text = await readFile(this.recordPath(instance), "utf8").catch(() => null);
    if (text === null) return null;
    try {
      const record = JSON.parse(text) as TaskRecord;
      return record.schema === RECORD_SCHEMA && record.instance === instance ? record : null;
    } catch {
      return null;
    }
  }

  async write(record: TaskRecord): Promise<void> {
    await atomicWriteFile(this.recordPath(record.instance), JSON.stringify(record, null, 2) + "\n");
  }

  async remove(instance: string): Promise<void> {
    await rm(this.recordPath(instance), { force: true });
  }
}
