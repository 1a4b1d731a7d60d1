/**
 * Everything `--json` prints, as one versioned union: the executor's graph events
 * (pipeline/core/events.ts, mirrored here and held equal to those types by a test) and the
 * events of the commands that print results (models, doctor, clean, bench, status, verify,
 * render, ...). This zod schema is the single source of the command events' types and of
 * schemas/events.schema.json (`pnpm pipeline schemas`); the CLI imports it as types only,
 * so zod does not load at start-up. Fields are only ever added; a breaking change bumps `v`.
 */
import * as z from "zod";
import { benchResultSchema } from "../model-bench/result.js";

const envelope = {
  v: z.literal(1).describe("the event schema version (EVENT_SCHEMA_VERSION)"),
  time: z.string().describe("ISO 8601 time of the event"),
};
const event = <Name extends string, Shape extends z.ZodRawShape>(name: Name, description: string, shape: Shape) =>
  z.object({ ...envelope, event: z.literal(name), ...shape }).describe(description);

// ---------------------------------------------------------------------------------------
// The executor's events (pipeline/core/events.ts).

const graphStart = event("graph-start", "a graph starts (or is planned)", {
  graph: z.string(),
  dryRun: z.boolean(),
  tasks: z.array(z.object({ id: z.string(), title: z.string(), dependsOn: z.array(z.string()) })),
});
const taskPlan = event("task-plan", "plan / --dry-run: what a step would do and why", {
  task: z.string(),
  action: z.enum(["run", "skip"]),
  reasons: z.array(z.string()),
});
const taskWait = event("task-wait", "another run holds the step; waiting for it", {
  task: z.string(),
  holder: z.object({ pid: z.number(), host: z.string(), command: z.string(), since: z.string() }),
});
const taskStart = event("task-start", "a step starts", { task: z.string(), reasons: z.array(z.string()), logPath: z.string() });
const taskProgress = event("task-progress", "a step's progress", { task: z.string(), percent: z.number().optional(), message: z.string().optional() });
const taskSkip = event("task-skip", "a step does not run: fresh, or blocked by a failed dependency", {
  task: z.string(),
  reason: z.enum(["fresh", "blocked"]),
  detail: z.string(),
});
const taskEnd = event("task-end", "a step finished", { task: z.string(), durationMs: z.number(), fingerprint: z.string() });
const taskError = event("task-error", "a step failed", {
  task: z.string(),
  code: z.string(),
  message: z.string(),
  details: z.array(z.string()),
  durationMs: z.number(),
  command: z.array(z.string()).optional(),
  exitCode: z.number().nullable().optional(),
  tail: z.array(z.string()).optional().describe("the last lines of the tool's output"),
  errorLines: z.array(z.string()).optional().describe("the first lines of its output that look like errors"),
  logPath: z.string().optional(),
});
const graphEnd = event("graph-end", "a graph finished", {
  graph: z.string(),
  status: z.enum(["success", "failed", "aborted"]),
  durationMs: z.number(),
  counts: z.object({ ran: z.number(), fresh: z.number(), failed: z.number(), blocked: z.number(), planned: z.number() }),
});

export const graphEventSchema = z.discriminatedUnion("event", [graphStart, taskPlan, taskWait, taskStart, taskProgress, taskSkip, taskEnd, taskError, graphEnd]);

// ---------------------------------------------------------------------------------------
// The commands' events.

const error = event("error", "a usage, configuration or run error outside a step (exit 1 or 2)", {
  code: z.string().describe("a stable error code, e.g. E_USAGE (README: Troubleshooting)"),
  message: z.string(),
  details: z.array(z.string()),
});

const taskStatus = event("task-status", "status: one step", {
  task: z.string(),
  state: z.enum(["fresh", "stale", "missing"]),
  reasons: z.array(z.string()),
});

const model = z
  .union([
    event("model", "models: a recipe", {
      ok: z.literal(true),
      name: z.string(),
      title: z.string(),
      family: z.string(),
      kind: z.string(),
      modelRepo: z.string(),
      predictorRepo: z.string(),
      ggufFile: z.string().optional(),
      ggufType: z.string().optional(),
      activationRepo: z.string().optional(),
      gated: z.literal(true).optional(),
      verified: z.boolean(),
      sizeBytes: z.number().optional(),
      unsupported: z.string().optional(),
      origin: z.enum(["workspace", "built-in"]).describe("the workspace's own recipe (it wins over a built-in one of the same name), or a built-in one"),
      overrides: z.literal(true).optional(),
    }),
    event("model", "models: a recipe that does not load", { ok: z.literal(false), name: z.string(), error: z.string() }),
  ])
  .describe("models: one recipe");

const doctor = event("doctor", "doctor: one tool", {
  name: z.string(),
  status: z.enum(["ok", "missing", "optional-missing"]),
  detail: z.string(),
  hint: z.string().optional(),
});

const clean = event("clean", "clean: what was (or would be) removed", {
  dryRun: z.boolean(),
  items: z.array(z.object({ path: z.string(), bytes: z.number(), why: z.string() })),
  kept: z.array(z.string()),
  bytes: z.number(),
});

const ggufSummary = event("gguf-summary", "inspect: a GGUF header", {
  magic: z.enum(["GGUF", "PWRI"]),
  version: z.number(),
  sparse: z.boolean(),
  architecture: z.string().nullable(),
  name: z.string().nullable(),
  blockCount: z.number().nullable(),
  fileType: z.number().nullable(),
  fileTypeName: z.string().nullable(),
  kvCount: z.number(),
  tensorCount: z.number(),
  tensorTypes: z.record(z.string(), z.number()),
  predictorLayers: z.number(),
  sparseThreshold: z.number().nullable(),
  vocabSize: z.number().nullable(),
  tensorBytes: z.number(),
  fileSize: z.number(),
});

const benchResult = event("bench-result", "bench: the fresh result (bench.json)", { result: benchResultSchema });

const comparedSide = z.object({ createdAt: z.string(), buildCommit: z.string(), buildNumber: z.number(), hostClass: z.string(), backend: z.string(), runs: z.number() });
const benchComparison = event("bench-comparison", "bench --compare: the gate's verdict", {
  comparable: z.boolean(),
  reason: z.string().optional(),
  forced: z.boolean(),
  maxRegressionPercent: z.number(),
  rows: z.array(
    z.object({
      metric: z.string(),
      label: z.string(),
      old: z.number(),
      new: z.number(),
      ratio: z.number().nullable(),
      changePercent: z.number().nullable(),
      oldRange: z.tuple([z.number(), z.number()]),
      newRange: z.tuple([z.number(), z.number()]),
      verdict: z.enum(["ok", "regression", "improvement", "noise"]),
      gating: z.boolean(),
    }),
  ),
  failed: z.boolean(),
  summary: z.string(),
  notes: z.array(z.string()),
  old: comparedSide,
  new: comparedSide,
});

const release = event("release", "release: the manifest folder to publish and the bench gate", {
  model: z.string(),
  dryRun: z.boolean(),
  manifestDir: z.string(),
  developmentKey: z.boolean().describe("no signing key configured: a real release refuses to run"),
  baseline: z.string().nullable(),
  maxRegressionPercent: z.number(),
  gateFailed: z.boolean().nullable().describe("null: not run (--dry-run, or the graph failed)"),
});

const keygen = event("keygen", "keygen: the key pair written", {
  keyFile: z.string(),
  publicKeyFile: z.string(),
  hint: z.string(),
  sshFingerprint: z.string().nullable(),
  encrypted: z.boolean(),
});

const signResult = event("sign-result", "sign: a directory signed as it is", {
  dir: z.string(),
  rootDigest: z.string(),
  keyHint: z.string(),
  files: z.number(),
  written: z.array(z.string()),
});

const verifyResult = z
  .union([
    event("verify-result", "verify: verified", {
      ok: z.literal(true),
      dir: z.string(),
      rootDigest: z.string(),
      subjectName: z.string(),
      key: z.object({ id: z.string(), hint: z.string(), certificateSubject: z.string().optional() }),
      files: z.array(z.object({ name: z.string(), size: z.number(), digest: z.string() })),
      skipped: z.array(z.object({ name: z.string(), why: z.enum(["ignored", "unsigned"]) })),
      provenance: z
        .object({
          builderId: z.string(),
          buildType: z.string(),
          invocationId: z.string().optional(),
          startedOn: z.string().optional(),
          finishedOn: z.string().optional(),
          modelId: z.string().optional(),
          source: z.string().optional(),
          externalParameters: z.record(z.string(), z.unknown()),
          resolvedDependencies: z.array(
            z.object({ name: z.string().optional(), uri: z.string().optional(), digest: z.record(z.string(), z.string()).optional(), annotations: z.record(z.string(), z.unknown()).optional() }),
          ),
        })
        .optional(),
      cachedFiles: z.number(),
    }),
    event("verify-result", "verify: not verified (exit 1), or a usage or I/O error (exit 2)", {
      ok: z.literal(false),
      dir: z.string(),
      code: z.string(),
      message: z.string(),
      files: z.array(z.string()).describe("the files the failure is about"),
      details: z.array(z.string()),
    }),
  ])
  .describe("verify: the outcome");

const valueSource = z.enum(["policy", "default", "host clamp", "host", "flag"]);
const renderedPolicy = event("rendered-policy", "render: the policy as it would run on this host", {
  file: z.string(),
  engine: z.string(),
  modelPath: z.string().nullable(),
  generation: z.object({
    temperature: z.number(),
    top_p: z.number(),
    top_k: z.number(),
    repeat_penalty: z.number(),
    max_tokens: z.number().describe("tokens to generate; -1: until end of text"),
    ctx_size: z.number(),
    seed: z.number().describe("-1: random"),
    stop: z.array(z.string()),
  }),
  runtime: z
    .object({ threads: z.number(), vram_budget_gb: z.number().nullable().describe("GiB (2^30 bytes), as the engine's --vram-budget"), gpu_layers: z.number().nullable(), batch_size: z.number().nullable() })
    .describe("after host rendering; null: not set"),
  openai: z.object({ base_url: z.string(), model: z.string(), api_key_env: z.string(), timeout_seconds: z.number() }).optional(),
  audit: z.object({ model_version: z.string(), source_repo: z.string().optional(), checksum: z.string().optional() }).optional(),
  sources: z.record(z.string(), z.object({ source: valueSource, note: z.string().optional() })),
  warnings: z.array(z.string()),
  policyHash: z.string(),
  host: z.object({
    name: z.string(),
    source: z.enum(["detected", "file"]),
    physicalCores: z.number(),
    memoryBytes: z.number(),
    gpus: z.array(z.object({ name: z.string(), memoryTotalBytes: z.number(), memoryFreeBytes: z.number().nullable() })),
  }),
});

const drift = event("drift", "drift: what runs against what was signed (exit 3 on drift)", {
  drift: z.boolean(),
  rows: z.array(
    z.object({
      subject: z.enum(["model", "policy", "engine", "registry"]),
      item: z.string(),
      expected: z.string().nullable(),
      actual: z.string().nullable(),
      status: z.enum(["ok", "drift", "unknown"]),
    }),
  ),
});

const engine = event("engine", "engines: one registered engine", {
  name: z.string(),
  description: z.string(),
  formats: z.array(z.string()),
  available: z.boolean(),
  version: z.string().nullable(),
  commit: z.string().nullable(),
  via: z.string().nullable(),
  detail: z.string(),
});

const metricStats = z.object({ count: z.number(), mean: z.number(), min: z.number(), max: z.number(), p50: z.number(), p95: z.number(), p99: z.number() });
const metricsSummary = event("metrics-summary", "metrics summary: p50/p95/p99 per model", {
  lines: z.number(),
  records: z.number(),
  malformed: z.object({ count: z.number(), first: z.array(z.object({ line: z.number(), reason: z.string() })) }),
  models: z.array(
    z.object({
      model: z.string(),
      engine: z.string(),
      requests: z.number(),
      errors: z.number(),
      errorCodes: z.record(z.string(), z.number()),
      metrics: z.record(z.string(), metricStats.nullable()),
    }),
  ),
});

const report = event("report", "report: the page written, and what it holds", {
  file: z.string(),
  bytes: z.number(),
  charts: z.number(),
  bench: z.object({ results: z.number(), groups: z.array(z.object({ model: z.string(), hostClass: z.string(), results: z.number() })), gateFailures: z.array(z.unknown()) }),
  metrics: z.object({ file: z.string(), lines: z.number(), records: z.number(), malformed: z.number(), bucketMs: z.number(), series: z.number() }).nullable(),
  models: z.array(z.object({ name: z.string(), verification: z.string(), code: z.string().optional(), keyId: z.string().optional(), drift: z.boolean().nullable() })),
  problems: z.array(z.object({ path: z.string(), code: z.string(), message: z.string() }).passthrough()),
});

const serveReady = event("serve-ready", "serve: the endpoint answers", {
  url: z.string().describe("the OpenAI-compatible base URL (…/v1)"),
  model: z.string(),
  engine: z.string().describe("the engine server's own URL"),
  enginePid: z.number(),
});

const blobOutcome = z.enum(["exists", "mounted", "uploaded"]);
const push = event("push", "push: a signed model directory in a registry", {
  reference: z.string().describe("oci://HOST/REPO:TAG@sha256:… (the manifest digest)"),
  digest: z.string(),
  tag: z.string().nullable(),
  dir: z.string(),
  blobs: z.array(z.object({ name: z.string(), digest: z.string(), size: z.number(), outcome: blobOutcome, bytesSent: z.number(), resumedFrom: z.number() })),
  bytesSent: z.number(),
  referrers: z.array(z.object({ file: z.string(), digest: z.string(), via: z.enum(["api", "tag-schema"]) })),
});
const pull = event("pull", "pull: a model from a registry, verified into a directory", {
  reference: z.string().describe("oci://HOST/REPO[:TAG]@sha256:… (the digest it resolved to)"),
  digest: z.string(),
  tag: z.string().nullable(),
  dir: z.string(),
  blobs: z.array(z.object({ name: z.string(), digest: z.string(), size: z.number(), fetched: z.boolean(), resumedFrom: z.number() })),
  bytesFetched: z.number(),
  key: z.string().describe("the trusted key that signed it"),
});

export const commandEventSchema = z.union([
  error,
  taskStatus,
  model,
  doctor,
  clean,
  ggufSummary,
  benchResult,
  benchComparison,
  release,
  keygen,
  signResult,
  verifyResult,
  renderedPolicy,
  drift,
  engine,
  metricsSummary,
  report,
  serveReady,
  push,
  pull,
]);

/** Every line `--json` prints. */
export const outputEventSchema = z.union([graphEventSchema, commandEventSchema]).describe("ai-tools --json output: one of these objects per line");

export type CommandEvent = z.infer<typeof commandEventSchema>;
export type OutputEvent = z.infer<typeof outputEventSchema>;
/** Distributes Omit over the union, so each event keeps its own fields. */
export type CommandEventPayload = CommandEvent extends infer E ? (E extends CommandEvent ? Omit<E, "v" | "time"> : never) : never;

/** schemas/events.schema.json. */
export function eventsJsonSchema(): Record<string, unknown> {
  return { title: "ai-tools --json events (one object per line)", ...z.toJSONSchema(outputEventSchema, { unrepresentable: "any" }) };
}
