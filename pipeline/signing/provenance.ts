/**
 * SLSA Provenance v1 for a converted model (signing.md §5): what was built from what, by
 * whom and when, bound to the same OMS root digest as model.sig, so a provenance file
 * cannot be moved onto another model.
 */
import { VerifyError } from "./errors.js";
import { parseJsonObject, STATEMENT_TYPE } from "./oms.js";

export const SLSA_PREDICATE_TYPE = "https://slsa.dev/provenance/v1";
/** Ours: the major version is the last segment; verifiers accept the majors they know. */
export const BUILD_TYPE = "https://github.com/ai-tools/ai-tools/build-types/powerinfer-convert/v1";
const KNOWN_BUILD_TYPES = [BUILD_TYPE];

/** in-toto ResourceDescriptor (the fields used here). */
export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, unknown>;
}

export interface ProvenanceInput {
  modelId: string;
  externalParameters: Record<string, unknown>;
  internalParameters?: Record<string, unknown>;
  resolvedDependencies: ResourceDescriptor[];
  builder: { id: string; version?: Record<string, string> };
  invocationId: string;
  startedOn: string;
  finishedOn: string;
  byproducts?: ResourceDescriptor[];
}

/** Subjects: the OMS root (annotated) and each GGUF by its sha256. */
export function serializeProvenance(input: ProvenanceInput, root: string, ggufs: readonly { name: string; digest: string }[]): Buffer {
  const statement = {
    _type: STATEMENT_TYPE,
    subject: [{ name: input.modelId, digest: { sha256: root }, annotations: { powerinfer_role: "oms-root" } }, ...ggufs.map((g) => ({ name: g.name, digest: { sha256: g.digest } }))],
    predicateType: SLSA_PREDICATE_TYPE,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: input.externalParameters,
        ...(input.internalParameters ? { internalParameters: input.internalParameters } : {}),
        resolvedDependencies: input.resolvedDependencies,
      },
      runDetails: {
        builder: { id: input.builder.id, ...(input.builder.version ? { version: input.builder.version } : {}) },
        metadata: { invocationId: input.invocationId, startedOn: input.startedOn, finishedOn: input.finishedOn },
        byproducts: input.byproducts ?? [],
      },
    },
  };
  return Buffer.from(JSON.stringify(statement), "utf8");
}

export interface ProvenancePolicy {
  /** Builder ids accepted (any when absent). */
  allowedBuilders?: readonly string[];
  /** Source repositories accepted: Hub repo ids or source URIs (any when absent). */
  allowedSources?: readonly string[];
  /** The model id the consumer asked for. */
  modelId?: string;
  /** Reject provenance whose build finished longer ago than this. */
  maxAgeMs?: number;
}

export interface ProvenanceSummary {
  builderId: string;
  buildType: string;
  invocationId?: string;
  startedOn?: string;
  finishedOn?: string;
  modelId?: string;
  source?: string;
  externalParameters: Record<string, unknown>;
  resolvedDependencies: ResourceDescriptor[];
}

/** Check verified provenance bytes against the model's root digest and the consumer's policy. */
export function checkProvenance(statementBytes: Buffer, root: string, policy: ProvenancePolicy, now: Date, file: string): ProvenanceSummary {
  const statement = parseJsonObject(statementBytes, `${file}: the signed statement`);
  if (statement._type !== STATEMENT_TYPE) throw new VerifyError("E_UNSUPPORTED", `${file}: statement type ${JSON.stringify(statement._type)} is not in-toto ${STATEMENT_TYPE}`);
  if (statement.predicateType !== SLSA_PREDICATE_TYPE) throw new VerifyError("E_UNSUPPORTED", `${file}: predicate type ${JSON.stringify(statement.predicateType)}; expected ${SLSA_PREDICATE_TYPE}`);
  const subjects = Array.isArray(statement.subject) ? (statement.subject as { digest?: { sha256?: unknown } }[]) : [];
  if (!subjects.some((s) => s?.digest?.sha256 === root)) {
    throw new VerifyError("E_PROVENANCE_MISMATCH", `${file} describes a different model: none of its subjects has the model's root digest ${root}`, {
      details: ["The provenance belongs to another build (or another model): it does not vouch for these files."],
    });
  }
  const predicate = (statement.predicate ?? {}) as { buildDefinition?: Record<string, unknown>; runDetails?: Record<string, unknown> };
  const definition = predicate.buildDefinition ?? {};
  const run = predicate.runDetails ?? {};
  const builderId = (run.builder as { id?: unknown } | undefined)?.id;
  const buildType = definition.buildType;
  if (typeof builderId !== "string" || typeof buildType !== "string" || !definition.externalParameters || typeof definition.externalParameters !== "object") {
    throw new VerifyError("E_MALFORMED", `${file}: SLSA provenance needs buildDefinition.buildType, buildDefinition.externalParameters and runDetails.builder.id`);
  }
  const external = definition.externalParameters as Record<string, unknown>;
  const metadata = (run.metadata ?? {}) as { invocationId?: string; startedOn?: string; finishedOn?: string };
  const source = (external.source as { uri?: unknown } | undefined)?.uri;
  const summary: ProvenanceSummary = {
    builderId,
    buildType,
    externalParameters: external,
    resolvedDependencies: Array.isArray(definition.resolvedDependencies) ? (definition.resolvedDependencies as ResourceDescriptor[]) : [],
    ...(typeof metadata.invocationId === "string" ? { invocationId: metadata.invocationId } : {}),
    ...(typeof metadata.startedOn === "string" ? { startedOn: metadata.startedOn } : {}),
    ...(typeof metadata.finishedOn === "string" ? { finishedOn: metadata.finishedOn } : {}),
    ...(typeof external.modelId === "string" ? { modelId: external.modelId } : {}),
    ...(typeof source === "string" ? { source } : {}),
  };

  if (!KNOWN_BUILD_TYPES.includes(buildType)) throw new VerifyError("E_POLICY", `${file}: build type ${buildType} is not one this verifier knows (${KNOWN_BUILD_TYPES.join(", ")})`);
  if (policy.allowedBuilders && !policy.allowedBuilders.includes(builderId)) {
    throw new VerifyError("E_POLICY", `${file}: built by "${builderId}", which is not an allowed builder (${policy.allowedBuilders.join(", ")})`);
  }
  if (policy.allowedSources) {
    const repo = summary.source?.replace(/^https:\/\/huggingface\.co\//, "");
    if (!summary.source || !policy.allowedSources.some((s) => s === summary.source || s === repo)) {
      throw new VerifyError("E_POLICY", `${file}: built from ${summary.source ?? "an unnamed source"}, which is not an allowed source (${policy.allowedSources.join(", ")})`);
    }
  }
  if (policy.modelId !== undefined && summary.modelId !== policy.modelId) {
    throw new VerifyError("E_POLICY", `${file}: this is model "${summary.modelId ?? "?"}", not the requested "${policy.modelId}"`);
  }
  if (policy.maxAgeMs !== undefined) {
    const finished = summary.finishedOn ? new Date(summary.finishedOn) : null;
    if (!finished || Number.isNaN(finished.getTime())) throw new VerifyError("E_POLICY", `${file}: no build time (runDetails.metadata.finishedOn) to check the maximum age against`);
    if (now.getTime() - finished.getTime() > policy.maxAgeMs) {
      throw new VerifyError("E_POLICY", `${file}: built ${summary.finishedOn}, older than the allowed ${Math.round(policy.maxAgeMs / 86_400_000)} days`);
    }
  }
  return summary;
}
