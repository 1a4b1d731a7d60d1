/**
 * Drift: what a deployment runs against what was signed. The model files against
 * model.sig (and the policy's audit.checksum), the policy against the signed policy.yaml
 * next to the model (by policy hash, with the keys that differ), and the engine build
 * against the build recorded in the model's provenance (commit, backend, binary digest).
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import stringify from "safe-stable-stringify";
import { loadPolicy, policyHash, withDefaults } from "../policy/load.js";
import type { RenderedPolicy } from "../policy/types.js";
import { compareToManifest } from "../signing/verify.js";
import { PROVENANCE_FILE, SIGNATURE_FILE } from "../signing/oms.js";
import { resolvePowerInferBuild } from "../../engines/powerinfer.js";
import { digestFiles, sha256OfFile } from "../core/hash.js";
import { resolvePolicyFile } from "./prepare.js";

export interface DriftRow {
  subject: "model" | "policy" | "engine" | "registry";
  item: string;
  expected: string | null;
  actual: string | null;
  status: "ok" | "drift" | "unknown";
}

export interface DriftReport {
  drift: boolean;
  rows: DriftRow[];
}

export async function detectDrift(
  rendered: RenderedPolicy,
  options: { root: string; env: NodeJS.ProcessEnv; binary?: string; pulled?: import("../registry/transfer.js").PullRecord },
): Promise<DriftReport> {
  const rows: DriftRow[] = [];
  const modelPath = rendered.modelPath;
  const dir = modelPath ? dirname(modelPath) : null;

  // Model files.
  if (dir && existsSync(join(dir, SIGNATURE_FILE))) {
    const comparison = await compareToManifest(dir, undefined, { digestCache: true });
    for (const name of comparison.files.removed) rows.push({ subject: "model", item: name, expected: "present (signed)", actual: "missing", status: "drift" });
    for (const name of comparison.files.added) rows.push({ subject: "model", item: name, expected: "absent (not signed)", actual: "present", status: "drift" });
    for (const m of comparison.files.modified) rows.push({ subject: "model", item: m.name, expected: m.expected, actual: m.actual, status: "drift" });
    if (comparison.matches) rows.push({ subject: "model", item: "files", expected: `root ${comparison.rootDigest}`, actual: "every signed file matches", status: "ok" });
  } else if (dir) {
    rows.push({ subject: "model", item: "signature", expected: SIGNATURE_FILE, actual: "none", status: "unknown" });
  }
  if (modelPath && rendered.audit?.checksum) {
    const actual = existsSync(modelPath) ? (await digestFiles([modelPath]))[0]!.digest : null;
    rows.push({ subject: "model", item: `${basename(modelPath)} (audit.checksum)`, expected: rendered.audit.checksum, actual, status: actual === rendered.audit.checksum ? "ok" : "drift" });
  }

  // Policy: the signed policy.yaml beside the model is the baseline.
  const signedPolicy = dir ? join(dir, "policy.yaml") : null;
  if (signedPolicy && existsSync(signedPolicy)) {
    // Re-reads for comparison: their notes were given when the policy was prepared.
    const quiet = { onNote: () => undefined };
    const baseline = await loadPolicy(signedPolicy, quiet).catch(() => null);
    if (!baseline) rows.push({ subject: "policy", item: "policy.yaml", expected: "a valid policy", actual: "unreadable", status: "drift" });
    else {
      const expected = policyHash(baseline.policy);
      if (expected === rendered.policyHash) rows.push({ subject: "policy", item: "policy hash", expected, actual: rendered.policyHash, status: "ok" });
      else {
        const current = await loadPolicy(resolvePolicyFile(rendered.file, options.root), quiet);
        for (const key of changedKeys(withDefaults(baseline.policy), withDefaults(current.policy))) {
          rows.push({ subject: "policy", item: key.path, expected: key.expected, actual: key.actual, status: "drift" });
        }
        rows.push({ subject: "policy", item: "policy hash", expected, actual: rendered.policyHash, status: "drift" });
      }
    }
  } else rows.push({ subject: "policy", item: "policy hash", expected: null, actual: rendered.policyHash, status: "unknown" });

  // Engine build, as the provenance recorded it.
  if (rendered.engine === "powerinfer" && dir && existsSync(join(dir, PROVENANCE_FILE))) {
    const recorded = provenanceBuild(join(dir, PROVENANCE_FILE));
    const build = resolvePowerInferBuild({ root: options.root, env: options.env, ...(options.binary ? { binary: options.binary } : {}) });
    if ("missing" in build) rows.push({ subject: "engine", item: "main", expected: recorded.commit, actual: build.missing, status: "drift" });
    else {
      const sha = build.sha256 ?? (await sha256OfFile(build.binary)).digest;
      const compare = (item: string, expected: string | null, actual: string | null) =>
        rows.push({ subject: "engine", item, expected, actual, status: expected === null || actual === null ? "unknown" : expected === actual ? "ok" : "drift" });
      compare("source commit", recorded.commit, build.commit);
      compare("backend", recorded.backend, build.backend === "unknown" ? null : build.backend);
      compare("main sha256", recorded.mainSha256, sha);
    }
  }
  // A model pulled by tag: does the tag still name the artifact that was pulled?
  if (options.pulled) {
    const { tagDrift } = await import("../registry/transfer.js");
    const item = options.pulled.reference;
    try {
      const { current } = await tagDrift(options.pulled, { env: options.env });
      rows.push({ subject: "registry", item, expected: options.pulled.digest, actual: current ?? null, status: current === undefined ? "unknown" : current === options.pulled.digest ? "ok" : "drift" });
    } catch (error) {
      rows.push({ subject: "registry", item, expected: options.pulled.digest, actual: `unreachable (${(error as { code?: string }).code ?? (error as Error).message})`, status: "unknown" });
    }
  }
  return { drift: rows.some((r) => r.status === "drift"), rows };
}

function provenanceBuild(file: string): { commit: string | null; backend: string | null; mainSha256: string | null } {
  try {
    const bundle = JSON.parse(readFileSync(file, "utf8")) as { dsseEnvelope: { payload: string } };
    const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8"));
    const build = statement.predicate?.buildDefinition?.internalParameters?.build ?? {};
    return { commit: statement.predicate?.runDetails?.builder?.version?.powerinfer ?? null, backend: build.backend ?? null, mainSha256: build.mainSha256 ?? null };
  } catch {
    return { commit: null, backend: null, mainSha256: null };
  }
}

/** Leaf keys whose values differ, as dotted paths with both values. */
export function changedKeys(expected: unknown, actual: unknown, path = ""): { path: string; expected: string | null; actual: string | null }[] {
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObject(expected) && isObject(actual)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
    return keys.flatMap((k) => changedKeys(expected[k], actual[k], path ? `${path}.${k}` : k));
  }
  const e = expected === undefined ? null : stringify(expected)!;
  const a = actual === undefined ? null : stringify(actual)!;
  return e === a ? [] : [{ path, expected: e, actual: a }];
}
