/**
 * Fingerprints: the SHA-256 of a canonical JSON document over everything a task
 * reads. The recorded inputs are kept next to the fingerprint so that "why is this
 * stale" has an answer naming the input, not just "hash changed".
 */
import { createHash } from "node:crypto";
import stringify from "safe-stable-stringify";

export type Sha256Hex = string & { readonly __brand: "Sha256Hex" };

/** Bump when the way inputs are recorded changes: every task then reruns once. */
export const FINGERPRINT_SCHEME = 1;

export function sha256Hex(data: string | Uint8Array): Sha256Hex {
  return createHash("sha256").update(data).digest("hex") as Sha256Hex;
}

/** Sorted-key JSON, so that object key order never changes a digest. */
export function canonicalJson(value: unknown): string {
  return stringify(value) ?? "null";
}

/**
 * Flat map from input key to its recorded form. Keys are namespaced:
 * `value:<name>`, `env:<NAME>`, `tool:<name>`, `file:<path>`, `dep:<task>`.
 */
export type InputRecord = Record<string, string>;

export function fingerprintOf(taskId: string, taskVersion: number, inputs: InputRecord): Sha256Hex {
  return sha256Hex(canonicalJson({ scheme: FINGERPRINT_SCHEME, task: taskId, version: taskVersion, inputs }));
}

const SHOWN_VALUE_LIMIT = 80;

function describe(key: string, value: string | undefined): string {
  if (value === undefined) return "(absent)";
  if (key.startsWith("env:") || value.length > SHOWN_VALUE_LIMIT) return `${value.slice(0, 19)}…`;
  return value;
}

const LABELS: Record<string, string> = { dep: "dependency", tool: "tool", env: "env", file: "input", value: "input" };

/** For two JSON string lists (flags, targets): "-DLLAMA_NATIVE=OFF -> -DLLAMA_NATIVE=ON" or "added X". */
function listChange(before: string | undefined, after: string | undefined): string | null {
  const parse = (text: string | undefined) => {
    try {
      const value: unknown = JSON.parse(text ?? "");
      return Array.isArray(value) && value.every((v) => typeof v === "string") ? (value as string[]) : null;
    } catch {
      return null;
    }
  };
  const [a, b] = [parse(before), parse(after)];
  if (!a || !b) return null;
  const removed = a.filter((v) => !b.includes(v));
  const added = b.filter((v) => !a.includes(v));
  if (removed.length && added.length) return `${removed.join(" ")} -> ${added.join(" ")}`;
  if (added.length) return `added ${added.join(" ")}`;
  if (removed.length) return `removed ${removed.join(" ")}`;
  return "reordered";
}

/** Human reasons for a fingerprint change, one per differing input. */
export function diffInputs(recorded: InputRecord, current: InputRecord): string[] {
  const keys = [...new Set([...Object.keys(recorded), ...Object.keys(current)])].sort();
  const reasons: string[] = [];
  for (const key of keys) {
    const before = recorded[key];
    const after = current[key];
    if (before === after) continue;
    const [kind, ...rest] = key.split(":");
    const name = rest.join(":");
    const label = `${LABELS[kind ?? ""] ?? "input"} ${name}`;
    // Dependencies and env values are shown without values: env may hold secrets.
    if (kind === "dep" || kind === "env") reasons.push(`${label} changed`);
    else reasons.push(`${label} changed: ${listChange(before, after) ?? `${describe(key, before)} -> ${describe(key, after)}`}`);
  }
  return reasons;
}
