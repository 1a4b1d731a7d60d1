/**
 * The provenance facts a reader looks for, from the SLSA statement `convert` signs (tasks/sign.ts): the source
 * repository at its resolved commit, the engine commit and build, the converter, the builder and when. Pure: the
 * caller decodes the statement (and says separately whether it verified).
 */
import type { ResourceDescriptor } from "../signing/provenance.js";

export interface ProvenanceFacts {
  modelId: string | null;
  /** e.g. "https://huggingface.co/SparseLLM/ReluLLaMA-7B", or "file:scripts/make-tiny-relu-llama.py" for a generated checkpoint. */
  source: string | null;
  /** The revision asked for (a branch, a commit, "seed 0"). */
  sourceRevision: string | null;
  /** The commit it resolved to (Hub downloads); null for generated checkpoints. */
  sourceCommit: string | null;
  engineCommit: string | null;
  engineBackend: string | null;
  engineBuildNumber: number | null;
  /** "convert.py (sha256 0a1b2c…)", "ready-made GGUF <file>", or null. */
  converter: string | null;
  builderId: string | null;
  finishedOn: string | null;
  /** Signed with the development key (not a release key). */
  developmentKey: boolean | null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);

export function provenanceFacts(statement: Record<string, unknown>): ProvenanceFacts {
  const predicate = isObject(statement.predicate) ? statement.predicate : {};
  const definition = isObject(predicate.buildDefinition) ? predicate.buildDefinition : {};
  const run = isObject(predicate.runDetails) ? predicate.runDetails : {};
  const external = isObject(definition.externalParameters) ? definition.externalParameters : {};
  const internal = isObject(definition.internalParameters) ? definition.internalParameters : {};
  const build = isObject(internal.build) ? internal.build : {};
  const builder = isObject(run.builder) ? run.builder : {};
  const metadata = isObject(run.metadata) ? run.metadata : {};
  const source = isObject(external.source) ? external.source : {};
  const resolved = (Array.isArray(definition.resolvedDependencies) ? definition.resolvedDependencies : []).filter(isObject) as ResourceDescriptor[];

  const sourceUri = str(source.uri);
  // A Hub download records `git+<endpoint>/<repo>@<commit>`; the endpoint may be a mirror, so match on the repo path.
  const repoPath = sourceUri?.replace(/^https?:\/\/[^/]+\//, "/");
  const sourceDependency = repoPath ? resolved.find((d) => d.uri?.startsWith("git+") && d.uri.includes(`${repoPath}@`)) : undefined;
  const engineDependency = resolved.find((d) => d.name === "powerinfer");
  const converterDependency = resolved.find((d) => d.name?.startsWith("converter "));
  const readyMade = isObject(internal.readyMade) ? internal.readyMade : null;
  const signingKey = isObject(internal.signingKey) ? internal.signingKey : null;
  const version = isObject(builder.version) ? builder.version : {};

  let converter: string | null = null;
  if (converterDependency?.name) {
    const sha = converterDependency.digest?.sha256;
    converter = `${converterDependency.name.slice("converter ".length)}${sha ? ` (sha256 ${sha.slice(0, 12)})` : ""}`;
  } else if (readyMade) converter = `none: ready-made GGUF${str(readyMade.file) ? ` ${readyMade.file}` : ""}`;

  return {
    modelId: str(external.modelId),
    source: sourceUri,
    sourceRevision: str(source.revision),
    sourceCommit: str(sourceDependency?.digest?.gitCommit) ?? sourceDependency?.uri?.split("@").at(-1) ?? null,
    engineCommit: str(version.powerinfer) ?? str(engineDependency?.digest?.gitCommit),
    engineBackend: str(build.backend),
    engineBuildNumber: typeof build.buildNumber === "number" ? build.buildNumber : null,
    converter,
    builderId: str(builder.id),
    finishedOn: str(metadata.finishedOn),
    developmentKey: typeof signingKey?.development === "boolean" ? signingKey.development : null,
  };
}
