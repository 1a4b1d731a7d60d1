/**
 * Per model folder (models/powerinfer/<model>/): does it verify (by which key, or the error code), has it drifted
 * from what was signed (model files, policy, engine build: pipeline/runtime/drift.ts), and what does its provenance
 * say. The I/O side of the report's tables; every check is the library the `verify` and `drift` commands use.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { isPipelineError } from "../core/errors.js";
import { parseBundle } from "../signing/bundle.js";
import { defaultDigestCacheDir } from "../core/digest-cache.js";
import { parseJsonObject, PROVENANCE_FILE, SIGNATURE_FILE } from "../signing/oms.js";
import type { TrustedKey } from "../signing/trust.js";
import { workspaceTrustStore } from "../signing/trust-store.js";
import { verifyModel } from "../signing/verify.js";
import { provenanceFacts, type ProvenanceFacts } from "./provenance-summary.js";

export type Verification =
  | { status: "verified"; keyId: string; rootDigest: string; files: number; provenanceVerified: boolean }
  | { status: "failed"; code: string; message: string; files: string[] }
  | { status: "unsigned" }
  /** No trust store to check against (E_TRUST_CONFIG): said once per model, not guessed. */
  | { status: "not-checked"; code: string; message: string };

export const DRIFT_SUBJECTS = ["model", "policy", "engine"] as const;
export type DriftSubject = (typeof DRIFT_SUBJECTS)[number];

export interface DriftCell {
  status: "ok" | "drift" | "unknown";
  /** The rows that are not ok, as `drift` prints them. */
  differences: { item: string; expected: string | null; actual: string | null; status: "drift" | "unknown" }[];
}

export type DriftSummary = { checked: true; drift: boolean; subjects: Record<DriftSubject, DriftCell> } | { checked: false; code: string; message: string };

export interface ModelDirectory {
  name: string;
  /** Relative to the workspace. */
  dir: string;
  verification: Verification;
  drift: DriftSummary;
  /** Read from provenance.sigstore.json whether or not it verified (verification says that). */
  provenance: ProvenanceFacts | null;
}

export interface InspectOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  /** Only these models (all when empty). */
  models?: readonly string[];
  /** --trusted-keys; default configs/trusted-keys.yaml plus this machine's development key. */
  trustedKeys?: string;
}

export async function listModelDirectories(root: string, models?: readonly string[]): Promise<string[]> {
  const entries = await readdir(join(root, "models", "powerinfer"), { withFileTypes: true }).catch(() => []);
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name);
  return names.filter((n) => !models || models.length === 0 || models.includes(n)).sort();
}

export async function inspectModelDirectories(options: InspectOptions): Promise<{ models: ModelDirectory[]; trustNotes: string[] }> {
  const names = await listModelDirectories(options.root, options.models);
  if (names.length === 0) return { models: [], trustNotes: [] };
  let trust: { keys: TrustedKey[]; notes: string[] } | { code: string; message: string };
  try {
    trust = await workspaceTrustStore(options.root, options.trustedKeys);
  } catch (error) {
    if (!isPipelineError(error)) throw error;
    trust = { code: error.code, message: error.message };
  }
  const models: ModelDirectory[] = [];
  for (const name of names) {
    const dir = join(options.root, "models", "powerinfer", name);
    const verification = "keys" in trust ? await verify(dir, trust.keys, options.env) : ({ status: "not-checked", ...trust } as const);
    models.push({ name, dir: join("models", "powerinfer", name), verification, drift: await drift(dir, options), provenance: await readProvenance(dir) });
  }
  return { models, trustNotes: "keys" in trust ? trust.notes : [] };
}

async function verify(dir: string, trustedKeys: TrustedKey[], env: NodeJS.ProcessEnv): Promise<Verification> {
  if (!existsSync(join(dir, SIGNATURE_FILE))) return { status: "unsigned" };
  try {
    // The digest cache: an unchanged model costs stat calls, and `drift` below then reads no file twice.
    const result = await verifyModel(dir, { trustedKeys, digestCache: { dir: defaultDigestCacheDir(env) } });
    return { status: "verified", keyId: result.key.id, rootDigest: result.rootDigest, files: result.files.length, provenanceVerified: result.provenance !== undefined };
  } catch (error) {
    const { code, message } = failure(error);
    return { status: "failed", code, message, files: [...((error as { files?: readonly string[] }).files ?? [])] };
  }
}

async function drift(dir: string, options: InspectOptions): Promise<DriftSummary> {
  const policyFile = join(dir, "policy.yaml");
  if (!existsSync(policyFile)) return { checked: false, code: "E_CONFIG_MISSING", message: "no policy.yaml in the model folder: nothing says how it runs" };
  try {
    // Loaded on demand: the policy renderer and the engine registry are only needed here.
    const [{ preparePolicy }, { detectDrift }] = await Promise.all([import("../runtime/prepare.js"), import("../runtime/drift.js")]);
    const { rendered } = await preparePolicy({ root: options.root, env: options.env, policyFile });
    const report = await detectDrift(rendered, { root: options.root, env: options.env });
    const subjects = Object.fromEntries(
      DRIFT_SUBJECTS.map((subject): [DriftSubject, DriftCell] => {
        const rows = report.rows.filter((r) => r.subject === subject);
        const differences = rows.flatMap((r) => (r.status === "ok" ? [] : [{ item: r.item, expected: r.expected, actual: r.actual, status: r.status }]));
        const status = differences.some((d) => d.status === "drift") ? "drift" : rows.length === 0 || differences.length > 0 ? "unknown" : "ok";
        return [subject, { status, differences: rows.length === 0 ? [{ item: subjectWithoutRows(subject), expected: null, actual: null, status: "unknown" }] : differences }];
      }),
    ) as Record<DriftSubject, DriftCell>;
    return { checked: true, drift: report.drift, subjects };
  } catch (error) {
    return { checked: false, ...failure(error) };
  }
}

/** A typed error's code, E_IO for a file system error (one odd folder must not end the report); anything else is a bug. */
function failure(error: unknown): { code: string; message: string } {
  if (isPipelineError(error)) return { code: error.code, message: error.message };
  const errno = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof errno === "string" && /^E[A-Z]+$/.test(errno)) return { code: "E_IO", message: (error as Error).message };
  throw error;
}

function subjectWithoutRows(subject: DriftSubject): string {
  return subject === "engine" ? "no engine build recorded in a provenance for a powerinfer policy" : `nothing to compare the ${subject} with`;
}

/** The statement inside provenance.sigstore.json, decoded but not verified; null when absent or unreadable. */
async function readProvenance(dir: string): Promise<ProvenanceFacts | null> {
  const file = join(dir, PROVENANCE_FILE);
  if (!existsSync(file)) return null;
  try {
    const bundle = parseBundle(await readFile(file), file);
    return provenanceFacts(parseJsonObject(bundle.payload, `${file}: the statement`));
  } catch {
    return null;
  }
}
