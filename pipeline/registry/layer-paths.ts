/**
 * The paths a pulled manifest may place files at. A layer's `org.cncf.model.filepath` and
 * every tar member name come from the registry, so they are untrusted: canonical relative
 * POSIX names only (the same rules as OMS resource names, signing/paths.ts), no control
 * characters, bounded lengths, and no two layers that would land on the same file on any
 * filesystem the model may be copied to (case-insensitive macOS and Windows volumes,
 * Unicode normalisation on macOS) or one inside the other.
 */
import { nameProblem } from "../signing/paths.js";

/** Linux PATH_MAX; no model file comes near it. */
export const MAX_LAYER_PATH_BYTES = 4096;
/** NAME_MAX on every common filesystem. */
export const MAX_SEGMENT_BYTES = 255;

/** Why `name` cannot be a layer path, or null. */
export function layerPathProblem(name: unknown): string | null {
  const problem = nameProblem(name);
  if (problem) return problem;
  const path = name as string;
  // nameProblem covers NUL and line breaks; the rest of C0 and DEL would corrupt logs and terminals.
  if (/[\u0000-\u001f\u007f]/.test(path)) return "contains a control character";
  if (Buffer.byteLength(path) > MAX_LAYER_PATH_BYTES) return `is longer than ${MAX_LAYER_PATH_BYTES} bytes`;
  if (path.split("/").some((segment) => Buffer.byteLength(segment) > MAX_SEGMENT_BYTES)) return `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`;
  return null;
}

/** The form two names share when some filesystem would store them as one file. */
export function collisionKey(name: string): string {
  return name.normalize("NFC").toLowerCase();
}

/**
 * The first pair of paths that would collide: equal after case folding and NFC, or one a
 * folder of the other ("activation" and "activation/x.pt"). Sorted, so one pass finds it.
 */
export function findCollision(paths: readonly string[]): [string, string] | null {
  const keyed = paths.map((p) => ({ path: p, key: collisionKey(p) })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 1; i < keyed.length; i++) {
    const previous = keyed[i - 1]!;
    const current = keyed[i]!;
    if (current.key === previous.key) return [previous.path, current.path];
  }
  // A folder sorts right before its contents only when no sibling sorts between ("a", "a.b", "a/c"): check every prefix.
  const keys = new Map(keyed.map((k) => [k.key, k.path]));
  for (const { path, key } of keyed) {
    const segments = key.split("/");
    for (let n = 1; n < segments.length; n++) {
      const folder = keys.get(segments.slice(0, n).join("/"));
      if (folder !== undefined) return [folder, path];
    }
  }
  return null;
}
