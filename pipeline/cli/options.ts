/**
 * argv -> typed options. Pure: no I/O, so every rule here is unit-tested directly.
 */
import { parseArgs } from "node:util";
import { UsageError } from "../core/errors.js";
import { BACKENDS, type Backend } from "../config/backends.js";

export const COMMANDS = ["engine", "convert", "download", "bench", "models", "inspect", "doctor", "setup-python", "plan", "status", "keygen", "sign", "verify", "run", "render", "drift", "engines", "schemas", "metrics", "clean", "release", "report"] as const;
export type CommandName = (typeof COMMANDS)[number];
/** Task ids that `--force <task>` accepts without `=`. */
export const TASK_IDS = ["upstream", "build", "download", "generate", "convert", "quantize", "bench", "sign"] as const;

export interface CliOptions {
  command: CommandName | "help" | "version";
  /** For `plan`: the command being planned. */
  target?: "engine" | "convert" | "download" | "bench";
  model?: string;
  dryRun: boolean;
  json: boolean;
  noWait: boolean;
  force: boolean | string[];
  only?: string;
  from?: string;
  backend?: Backend | "auto";
  jobs?: number;
  native?: boolean;
  cudaArch?: string;
  upstreamUrl?: string;
  resetUpstream: boolean;
  connections?: number;
  /** Bytes. */
  chunkSize?: number;
  python?: string;
  allowUnsafeOuttype: boolean;
  /** For `inspect`. */
  file?: string;
  /** For `bench`: the earlier result to compare with. */
  compare?: string;
  maxRegressionPercent: number;
  forceCompare: boolean;
  markdown: boolean;
  /** For `sign` and `verify`: the model directory. */
  dir?: string;
  /** For `keygen`: the output prefix (<out>.key, <out>.pub). */
  out?: string;
  /** --key: the signing key file. */
  key?: string;
  allowInsecureKeyPermissions: boolean;
  trustedKeys?: string;
  signature?: string;
  provenanceFile?: string;
  provenance: "auto" | "require" | "skip";
  ignoreUnsignedFiles: boolean;
  ignorePaths: string[];
  allowedBuilders: string[];
  allowedSources: string[];
  maxAgeDays?: number;
  modelId?: string;
  certificateRoots: string[];
  digestCache: boolean;
  /** Runtime (run, render, drift). */
  config?: string;
  engine?: string;
  /** --model for run/render/drift: a model file or a converted model's name. */
  runModel?: string;
  prompt?: string;
  promptFile?: string;
  modelRoot?: string;
  host?: string;
  strict: boolean;
  verifyModel: "auto" | "require" | "skip";
  binary?: string;
  metricsLog?: string;
  promTextfile?: string;
  logPrompts: boolean;
  /** For `metrics summary <log>`. */
  metricsFile?: string;
  /** clean --cache: the Hugging Face cache too. */
  cache: boolean;
  /** report --models (each may be comma-separated) and the --baseline files/folders (report takes several). */
  models: string[];
  baselines: string[];
}

export const USAGE = `Usage: pnpm pipeline <command> [options]

Commands:
  engine                  fetch and build PowerInfer as configured; fresh steps are skipped
  convert <model>         the model pipeline: engine, checkpoint (download, or generate for
                          tiny-relu-llama), conversion [, quantize], bench; fresh steps skipped
  download <model>        only the model's checkpoint and predictor, into the Hugging Face cache
  bench <model>           measure the converted model again (bench.json); --compare old.json gates
  models                  the model recipes (configs/models/powerinfer/)
  inspect <file.gguf>     a GGUF / .powerinfer.gguf header summary (--json for machines)
  doctor                  every tool the pipeline needs: found, or how to install it
  setup-python            a venv in build/python-venv with numpy<2 and sentencepiece (needs a package index)
  plan <command> [args]   what <command> would run and why, without side effects
  status [model]          each step: fresh, stale (why) or missing
  run --config <policy>   generate with an engine: text streams to stdout, diagnostics to stderr
      [--engine e] [--model m] [--prompt text | --prompt-file f | stdin]
  render --config <policy> [--host h]   the policy as it would run here: every value and its source
  drift --config <policy> the model, policy and engine build against what was signed (exit 3 on drift)
  engines                 registered engines: available, version, how they run
  metrics summary <log>   p50/p95/p99 per model from a metrics log
  schemas                 write the JSON Schemas of the YAML files to schemas/
  report                  one offline HTML page: bench results per model and host class with the gate,
                          runtime metrics over time (--metrics-log), verification, drift, provenance
  release <model>         what a CI release job runs: convert (signed with a configured key, not the
                          development one), the bench gate against --baseline, the manifest to publish;
                          --dry-run shows exactly that without running it
  clean [model]           remove temporaries, stale engine builds and bench logs [and the model's
                          outputs]; --cache: partial Hub downloads [and the model's Hub repos]; --dry-run
  keygen --out <prefix>   an ECDSA P-256 signing key: <prefix>.key (mode 0600) and <prefix>.pub
  sign <dir>              sign a model directory: SHA256SUMS, model.sig (OpenSSF Model Signing
                          v1.0) and, for a converted model, provenance.sigstore.json (SLSA v1)
  verify <dir>            check a signed model directory against trusted keys, offline
                          (exit 0 verified, 1 verification failed, 2 usage or I/O error)

Options:
  --dry-run               same as plan: print each task's run/skip and the reason
  --force [task]          rerun every task, or only <task> (repeatable)
  --only <task>           run only <task>; its dependencies must be fresh
  --from <task>           rerun <task> and every task after it
  --json                  one JSON event per line on stdout, nothing else there
  --no-wait               fail at once if another run holds a step, instead of waiting
  --backend <b>           auto | cpu | cuda | hip (default: configs/engines/powerinfer.yaml)
  --jobs <n>              parallel compile jobs (default: number of CPUs)
  --native / --no-native  LLAMA_NATIVE: tune binaries to this CPU (default off: portable)
  --cuda-arch <list>      CMAKE_CUDA_ARCHITECTURES, e.g. "89;90" or native
  --upstream-url <url>    fetch the engine from a mirror (env AI_TOOLS_POWERINFER_URL)
  --reset-upstream        discard local changes in external/powerinfer
  --connections <n>       range requests in flight per large file (default 4)
  --chunk-size <MiB>      bytes per range request (default 16)
  --python <path>         the interpreter for the converter (env AI_TOOLS_PYTHON)
  --allow-unsafe-outtype  convert to f32/q8_0 although sparse CPU inference gives NaN with them
  --compare <bench.json>  (bench) compare with an earlier result; exit 1 on a real regression
  --baseline <bench.json> same as --compare; (report) more results, files or folders (repeatable)
  --max-regression <pct>  (bench) eval tokens/s drop that fails the gate (default 10)
  --force-compare         (bench) compare results from another host class or backend anyway
  --markdown              (bench) the comparison as Markdown (also to $GITHUB_STEP_SUMMARY)
  --key <file>            (convert, sign) the signing key (else env AI_TOOLS_SIGNING_KEY (PEM) or
                          AI_TOOLS_SIGNING_KEY_FILE; convert falls back to build/keys/development.key)
  --allow-insecure-key-permissions  use a key file that group or others can read
  --out <prefix>          (keygen) where to write the key pair; (report) the HTML file
                          (default build/report/index.html)
  --models <a,b>          (report) only these models (repeatable)
  --trusted-keys <file>   (verify) the trust store (default configs/trusted-keys.yaml, plus the
                          local development key when it exists)
  --signature <file>      (verify) model.sig from elsewhere, e.g. manifests/<model>/<version>/
  --provenance <file>     (verify) provenance.sigstore.json from elsewhere
  --require-provenance / --no-provenance   (verify) default: checked when present
  --ignore-unsigned-files (verify) accept files the signature does not list
  --ignore-path <path>    (sign, verify) leave a path out (repeatable)
  --allowed-builder <id>  (verify) accept provenance from this builder only (repeatable)
  --allowed-source <repo> (verify) accept models built from this source only (repeatable)
  --max-age-days <n>      (verify) reject builds older than this
  --model-id <name>       (verify) the model the provenance must be for
  --certificate-root <pem>  (verify) a root certificate for certificate-signed bundles (repeatable)
  --digest-cache          (verify) reuse digests of unchanged files (device, inode, size, times)
  --config <file>         (run, render, drift) a policy YAML or a model recipe
  --engine <name>         (run, render) override the policy's engine (powerinfer, llama.cpp, openai)
  --model <name|file>     (run, render, drift) a converted model's name or a model file
  --prompt <text> / --prompt-file <file>   (run) else the prompt is read from stdin
  --model-root <dir>      where model_path is resolved (env AI_TOOLS_MODEL_ROOT; default models/)
  --host <name|file>      (run, render) render for configs/hosts/<name>.yaml instead of this machine
  --strict                refuse a policy the host cannot honour instead of clamping it
  --no-verify / --require-signature   (run) skip the model's signature check / refuse unsigned models
  --binary <path>         (run) the engine executable (env AI_TOOLS_POWERINFER_BIN)
  --metrics-log <file>    (run) append one JSON line per request (env AI_TOOLS_METRICS_LOG);
                          (report) the log to chart
  --prom-textfile <file>  (run) also write the metrics as a node_exporter textfile
  --log-prompts           (run) store prompt and output in the metrics log (off: only their lengths)
  -h, --help              this text
  -V, --version           the version

Environment: AI_TOOLS_ROOT (workspace folder), AI_TOOLS_POWERINFER_URL, CI=true (plain output),
  HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE (as huggingface_hub reads them).
  AI_TOOLS_SIGNING_KEY, AI_TOOLS_SIGNING_KEY_FILE, AI_TOOLS_SIGNING_KEY_PASSPHRASE, AI_TOOLS_BUILDER_ID.
  AI_TOOLS_MODEL_ROOT, AI_TOOLS_POWERINFER_BIN, AI_TOOLS_METRICS_LOG.
Exit codes: 0 ok, 1 a task failed, 2 bad usage or config, 3 drift (drift), 75 busy (--no-wait), 130 interrupted.`;

export function parseCli(argv: readonly string[]): CliOptions {
  // pnpm passes a literal "--" first for `pnpm pipeline -- x`; npm needs it.
  const args = argv[0] === "--" ? argv.slice(1) : [...argv];
  const forced: string[] = [];
  let forceAll = false;
  // `--force` takes an optional task: `--force build` / `--force=build` / `--force`.
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--force") {
      const next = args[i + 1];
      if (next !== undefined && (TASK_IDS as readonly string[]).includes(next) && !isCommandPosition(rest, next)) {
        forced.push(next);
        i++;
      } else forceAll = true;
    } else if (arg.startsWith("--force=")) forced.push(arg.slice("--force=".length));
    else rest.push(arg);
  }

  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        "dry-run": { type: "boolean" },
        json: { type: "boolean" },
        "no-wait": { type: "boolean" },
        only: { type: "string" },
        from: { type: "string" },
        backend: { type: "string" },
        jobs: { type: "string" },
        native: { type: "boolean" },
        "no-native": { type: "boolean" },
        "cuda-arch": { type: "string" },
        "upstream-url": { type: "string" },
        "reset-upstream": { type: "boolean" },
        connections: { type: "string" },
        python: { type: "string" },
        compare: { type: "string" },
        baseline: { type: "string", multiple: true },
        models: { type: "string", multiple: true },
        "max-regression": { type: "string" },
        "force-compare": { type: "boolean" },
        markdown: { type: "boolean" },
        "allow-unsafe-outtype": { type: "boolean" },
        "chunk-size": { type: "string" },
        key: { type: "string" },
        out: { type: "string" },
        "allow-insecure-key-permissions": { type: "boolean" },
        "trusted-keys": { type: "string" },
        signature: { type: "string" },
        provenance: { type: "string" },
        "require-provenance": { type: "boolean" },
        "no-provenance": { type: "boolean" },
        "ignore-unsigned-files": { type: "boolean" },
        "ignore-path": { type: "string", multiple: true },
        "allowed-builder": { type: "string", multiple: true },
        "allowed-source": { type: "string", multiple: true },
        "max-age-days": { type: "string" },
        "model-id": { type: "string" },
        "certificate-root": { type: "string", multiple: true },
        "digest-cache": { type: "boolean" },
        config: { type: "string" },
        engine: { type: "string" },
        model: { type: "string" },
        prompt: { type: "string" },
        "prompt-file": { type: "string" },
        "model-root": { type: "string" },
        host: { type: "string" },
        strict: { type: "boolean" },
        "no-verify": { type: "boolean" },
        "require-signature": { type: "boolean" },
        binary: { type: "string" },
        "metrics-log": { type: "string" },
        "prom-textfile": { type: "string" },
        "log-prompts": { type: "boolean" },
        cache: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    });
  } catch (error) {
    // node's text goes on about "--" positionals; the first sentence is the point.
    const first = (error as Error).message.split("\n")[0]!.split(". To specify")[0]!.replace(/\.$/, "");
    throw new UsageError(`${first}. See pnpm pipeline --help.`);
  }
  const { values, positionals } = parsed;

  const options: CliOptions = {
    command: "help",
    dryRun: values["dry-run"] ?? false,
    json: values.json ?? false,
    noWait: values["no-wait"] ?? false,
    force: forceAll ? true : forced,
    resetUpstream: values["reset-upstream"] ?? false,
    allowUnsafeOuttype: values["allow-unsafe-outtype"] ?? false,
    maxRegressionPercent: 10,
    forceCompare: values["force-compare"] ?? false,
    markdown: values.markdown ?? false,
    allowInsecureKeyPermissions: values["allow-insecure-key-permissions"] ?? false,
    provenance: "auto",
    ignoreUnsignedFiles: values["ignore-unsigned-files"] ?? false,
    ignorePaths: values["ignore-path"] ?? [],
    allowedBuilders: values["allowed-builder"] ?? [],
    allowedSources: values["allowed-source"] ?? [],
    certificateRoots: values["certificate-root"] ?? [],
    digestCache: values["digest-cache"] ?? false,
    strict: values.strict ?? false,
    verifyModel: "auto",
    logPrompts: values["log-prompts"] ?? false,
    cache: values.cache ?? false,
    models: values.models ?? [],
    baselines: values.baseline ?? [],
  };
  if (values["no-verify"] && values["require-signature"]) throw new UsageError("--no-verify and --require-signature contradict each other");
  if (values["no-verify"]) options.verifyModel = "skip";
  if (values["require-signature"]) options.verifyModel = "require";
  if (values.prompt !== undefined && values["prompt-file"] !== undefined) throw new UsageError("--prompt and --prompt-file are two sources of one prompt: give one");
  for (const [flag, key] of [
    ["config", "config"],
    ["engine", "engine"],
    ["model", "runModel"],
    ["prompt", "prompt"],
    ["prompt-file", "promptFile"],
    ["model-root", "modelRoot"],
    ["host", "host"],
    ["binary", "binary"],
    ["metrics-log", "metricsLog"],
    ["prom-textfile", "promTextfile"],
  ] as const) {
    const value = values[flag];
    if (value !== undefined) options[key] = value;
  }
  if (values["require-provenance"] && values["no-provenance"]) throw new UsageError("--require-provenance and --no-provenance contradict each other");
  if (values["require-provenance"]) options.provenance = "require";
  if (values["no-provenance"]) options.provenance = "skip";
  if (values.key !== undefined) options.key = values.key;
  if (values.out !== undefined) options.out = values.out;
  if (values["trusted-keys"] !== undefined) options.trustedKeys = values["trusted-keys"];
  if (values.signature !== undefined) options.signature = values.signature;
  if (values.provenance !== undefined) options.provenanceFile = values.provenance;
  if (values["model-id"] !== undefined) options.modelId = values["model-id"];
  if (values["max-age-days"] !== undefined) options.maxAgeDays = positiveInteger("--max-age-days", values["max-age-days"], 36500);
  if (values.compare && values.baseline) throw new UsageError("--compare and --baseline are the same option: give one");
  if (values.compare ?? values.baseline?.[0]) options.compare = (values.compare ?? values.baseline?.[0])!;
  if (values["max-regression"] !== undefined) {
    const pct = Number(values["max-regression"]);
    if (!Number.isFinite(pct) || pct <= 0 || pct >= 100) throw new UsageError(`--max-regression must be a percentage between 0 and 100; got "${values["max-regression"]}"`);
    options.maxRegressionPercent = pct;
  }
  if (values.python) options.python = values.python;
  if (values.only) options.only = values.only;
  if (values.from) options.from = values.from;
  if (values["cuda-arch"]) options.cudaArch = values["cuda-arch"];
  if (values["upstream-url"]) options.upstreamUrl = values["upstream-url"];
  if (values.native && values["no-native"]) throw new UsageError("--native and --no-native contradict each other");
  if (values.native) options.native = true;
  if (values["no-native"]) options.native = false;
  if (values.backend !== undefined) {
    if (!["auto", ...BACKENDS].includes(values.backend)) {
      throw new UsageError(`--backend must be one of auto, ${BACKENDS.join(", ")}; got "${values.backend}"`);
    }
    options.backend = values.backend as Backend | "auto";
  }
  if (values.jobs !== undefined) {
    const jobs = Number(values.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs must be a positive integer; got "${values.jobs}"`);
    options.jobs = jobs;
  }
  if (values.connections !== undefined) options.connections = positiveInteger("--connections", values.connections, 64);
  if (values["chunk-size"] !== undefined) options.chunkSize = positiveInteger("--chunk-size", values["chunk-size"], 1024) * 2 ** 20;
  for (const name of [options.only, options.from, ...(Array.isArray(options.force) ? options.force : [])]) {
    if (name !== undefined && !(TASK_IDS as readonly string[]).includes(name)) {
      throw new UsageError(`unknown task "${name}"; tasks are ${TASK_IDS.join(", ")}`);
    }
  }

  if (values.version) return { ...options, command: "version" };
  if (values.help) return { ...options, command: "help" };
  const [command, ...params] = positionals;
  if (command === undefined) return options;
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command "${command}"; commands are ${COMMANDS.join(", ")}. See pnpm pipeline --help.`);
  }
  options.command = command as CommandName;
  if (options.baselines.length > 1 && options.command !== "report") throw new UsageError("--baseline takes one bench.json here (only report takes several)");

  let target = options.command;
  let targetParams = params;
  if (options.command === "plan") {
    const [planned, ...plannedParams] = params;
    if (planned !== "engine" && planned !== "convert" && planned !== "download" && planned !== "bench") {
      throw new UsageError("plan needs a command to plan: plan engine, plan convert <model> or plan download <model>");
    }
    options.target = planned;
    target = planned;
    targetParams = plannedParams;
  }
  if (target === "convert" || target === "download" || target === "bench" || target === "release") {
    if (targetParams.length !== 1) throw new UsageError(`${target} needs exactly one model name: pnpm pipeline ${target} <model> (see pnpm pipeline models)`);
    options.model = targetParams[0]!;
  } else if (target === "inspect") {
    if (targetParams.length !== 1) throw new UsageError("inspect needs one file: pnpm pipeline inspect <file.gguf>");
    options.file = targetParams[0]!;
  } else if (target === "sign" || target === "verify") {
    if (targetParams.length !== 1) throw new UsageError(`${target} needs one model directory: pnpm pipeline ${target} models/powerinfer/<model>`);
    options.dir = targetParams[0]!;
  } else if (target === "keygen") {
    if (targetParams.length > 0) throw new UsageError(`keygen takes no arguments; got "${targetParams.join(" ")}"`);
    if (!options.out) throw new UsageError("keygen needs --out <prefix>: pnpm pipeline keygen --out keys/release");
  } else if (target === "run" || target === "render" || target === "drift") {
    if (targetParams.length > 0) throw new UsageError(`${target} takes options only (the prompt goes in --prompt); got "${targetParams.join(" ")}"`);
    if (!options.config) throw new UsageError(`${target} needs --config <policy.yaml> (a policy, or a model recipe)`);
  } else if (target === "metrics") {
    if (targetParams[0] !== "summary" || targetParams.length !== 2) throw new UsageError("metrics needs a subcommand: metrics summary <metrics.jsonl>");
    options.metricsFile = targetParams[1]!;
  } else if (target === "clean") {
    if (targetParams.length > 1) throw new UsageError("clean takes at most one model name");
    if (targetParams[0] !== undefined) options.model = targetParams[0];
  } else if (target === "status") {
    if (targetParams.length > 1) throw new UsageError("status takes at most one model name");
    if (targetParams[0] !== undefined) options.model = targetParams[0];
  } else if (targetParams.length > 0) {
    throw new UsageError(`${target} takes no arguments; got "${targetParams.join(" ")}"`);
  }
  return options;
}

function positiveInteger(flag: string, text: string, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new UsageError(`${flag} must be an integer from 1 to ${max}; got "${text}"`);
  return value;
}

/** `convert --force convert m`: the first "convert" is the command, not a task. */
function isCommandPosition(before: readonly string[], next: string): boolean {
  return !before.some((a) => !a.startsWith("-")) && (COMMANDS as readonly string[]).includes(next);
}
