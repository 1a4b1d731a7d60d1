/**
 * Flags that several commands share, declared once as groups (each a heading on the help
 * page), with their value checks. A command adds the groups it takes; a flag no group of
 * the command declares is an unknown option there.
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import { UsageError } from "../core/errors.js";
import { BACKENDS, type Backend } from "../config/backends.js";

/** Options whose environment variable the library reads itself (see envReadByLibrary). */
const LIBRARY_ENV = new WeakSet<Option>();

/**
 * `(env: VAR)` on the help page, but the value is taken from the command line only: the
 * library reads VAR itself and names it as the source in messages and records (and where
 * several variables compete, as for keys and binaries, keeps their order).
 */
export function envReadByLibrary(option: Option, variable: string): Option {
  LIBRARY_ENV.add(option.env(variable));
  return option;
}

export function isEnvReadByLibrary(option: Option): boolean {
  return LIBRARY_ENV.has(option);
}

/**
 * Commander lets the last of two opposite flags win (`--native --no-native`); naming both
 * is a mistake the user should hear about.
 */
export function contradicting(command: Command, a: string, b: string): Command {
  const seen = new Set<string>();
  for (const flag of [a, b]) {
    command.on(`option:${flag.slice(2)}`, () => {
      seen.add(flag);
      if (seen.size === 2) command.error(`error: ${a} and ${b} contradict each other: give one`, { code: "commander.conflictingOption" });
    });
  }
  return command;
}

/** A parser for an integer flag within [min, max]. */
export function integerIn(min: number, max: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) throw new InvalidArgumentError(`It must be an integer from ${min} to ${max}.`);
    return value;
  };
}

const positiveInteger = (text: string): number => {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError("It must be a positive integer.");
  return value;
};

const percentage = (text: string): number => {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value >= 100) throw new InvalidArgumentError("It must be a percentage between 0 and 100.");
  return value;
};

/** Repeatable: every value, in order. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** `--force` alone (true: every task) or `--force <task>` repeated (those tasks). */
const forceTask = (value: string, previous: true | string[] | undefined): true | string[] => (previous === true ? true : collect(value, previous));

export function jsonFlag(command: Command, what = "one JSON event per line on stdout, nothing else there"): Command {
  return command.option("--json", what);
}

/** Running a graph: what to rerun, planning, waiting for another run. */
export interface GraphFlags {
  dryRun?: boolean;
  force?: true | string[];
  only?: string;
  from?: string;
  json?: boolean;
  /** false with --no-wait. */
  wait: boolean;
}

export function graphFlags(command: Command, options: { planning?: boolean } = {}): Command {
  const group = "Steps:";
  if (!options.planning) command.addOption(new Option("--dry-run", "same as plan: print each step's run/skip and the reason").helpGroup(group));
  return command
    .addOption(new Option("--force [task]", "rerun every step, or only <task> (repeatable; --force=<task> works too)").argParser(forceTask).helpGroup(group))
    .addOption(new Option("--only <task>", "run only <task>; its dependencies must be fresh").helpGroup(group))
    .addOption(new Option("--from <task>", "rerun <task> and every step after it").helpGroup(group))
    .addOption(new Option("--no-wait", "fail at once (exit 75) if another run holds a step, instead of waiting").helpGroup(group))
    .addOption(new Option("--json", "one JSON event per line on stdout, nothing else there").helpGroup(group));
}

/** How the engine is fetched and built. */
export interface BuildFlags {
  buildCache?: string;
  backend?: Backend | "auto";
  jobs?: number;
  native?: boolean;
  cudaArch?: string;
  upstreamUrl?: string;
  resetUpstream?: boolean;
}

export function buildFlags(command: Command): Command {
  const group = "Engine build:";
  command
    .addOption(new Option("--backend <backend>", "build backend (default: configs/engines/powerinfer.yaml)").choices(["auto", ...BACKENDS]).helpGroup(group))
    .addOption(new Option("--jobs <n>", "parallel compile jobs (default: number of CPUs)").argParser(positiveInteger).helpGroup(group))
    .addOption(new Option("--native", "LLAMA_NATIVE: tune binaries to this CPU (default off: portable)").helpGroup(group))
    .addOption(new Option("--no-native", "portable binaries, whatever the config says").helpGroup(group))
    .addOption(new Option("--cuda-arch <list>", 'CMAKE_CUDA_ARCHITECTURES, e.g. "89;90" or native').helpGroup(group))
    .addOption(envReadByLibrary(new Option("--upstream-url <url>", "fetch the engine from a mirror").helpGroup(group), "AI_TOOLS_POWERINFER_URL"))
    .addOption(new Option("--reset-upstream", "discard local changes in external/powerinfer").helpGroup(group))
    .addOption(envReadByLibrary(new Option("--build-cache <oci://HOST/REPO>", "share engine builds through a registry: restore a signed build of the same fingerprint, store fresh ones").helpGroup(group), "AI_TOOLS_BUILD_CACHE"));
  return contradicting(command, "--native", "--no-native");
}

/** How a checkpoint is downloaded. */
export interface TransferFlags {
  connections?: number;
  /** MiB. */
  chunkSize?: number;
  verifyCache?: boolean;
}

export function transferFlags(command: Command): Command {
  const group = "Download:";
  return command
    .addOption(new Option("--connections <n>", "range requests in flight per large file (default 4)").argParser(integerIn(1, 64)).helpGroup(group))
    .addOption(new Option("--chunk-size <MiB>", "size of each range request (default 16)").argParser(integerIn(1, 1024)).helpGroup(group))
    .addOption(new Option("--verify-cache", "rehash every cached file of the checkpoint (default: the digest cache vouches for unchanged ones)").helpGroup(group));
}

/** How a checkpoint is converted. */
export interface ConversionFlags {
  python?: string;
  allowUnsafeOuttype?: boolean;
}

/** A checkpoint on disk instead of a recipe (convert, download): all three together. */
export interface CheckpointFlags {
  checkpoint?: string;
  predictor?: string;
  name?: string;
}

export function checkpointFlags(command: Command): Command {
  const group = "Checkpoint on disk (instead of <model>):";
  return command
    .addOption(new Option("--checkpoint <dir>", "a Hugging Face checkpoint folder (config.json, weights, tokenizer)").helpGroup(group))
    .addOption(new Option("--predictor <dir>", "its activation predictor folder").helpGroup(group))
    .addOption(new Option("--name <model>", "the model's name (models/powerinfer/<name>/)").helpGroup(group));
}

/** `<model>` or --checkpoint/--predictor/--name, not both, not half. */
export function modelOrCheckpoint(command: string, model: string | undefined, flags: CheckpointFlags): string | undefined {
  const given = [flags.checkpoint, flags.predictor, flags.name].filter((v) => v !== undefined).length;
  if (given === 0) {
    if (model === undefined) throw new UsageError(`${command} needs a model: ${command} <model> (see \`models\`), a recipe file, or --checkpoint DIR --predictor DIR --name NAME`);
    return model;
  }
  if (model !== undefined) throw new UsageError(`${command}: give <model> or --checkpoint/--predictor/--name, not both`);
  if (given < 3) throw new UsageError(`${command} of a checkpoint on disk needs all three: --checkpoint <dir> --predictor <dir> --name <model>`);
  return undefined;
}

export function conversionFlags(command: Command): Command {
  const group = "Conversion:";
  return command
    .addOption(envReadByLibrary(new Option("--python <path>", "the interpreter for the generator and the converter").helpGroup(group), "AI_TOOLS_PYTHON"))
    .addOption(new Option("--allow-unsafe-outtype", "convert to f32/q8_0 although sparse CPU inference gives NaN with them").helpGroup(group));
}

/** The signing key of convert, sign and release. */
export interface KeyFlags {
  key?: string;
  allowInsecureKeyPermissions?: boolean;
}

export function keyFlags(command: Command, fallback: string): Command {
  const group = "Signing:";
  return command
    .addOption(new Option("--key <file>", `the signing key (else env AI_TOOLS_SIGNING_KEY (PEM) or AI_TOOLS_SIGNING_KEY_FILE${fallback})`).helpGroup(group))
    .addOption(new Option("--allow-insecure-key-permissions", "use a key file that group or others can read").helpGroup(group));
}

/** The bench gate of bench and release. */
export interface GateFlags {
  compare?: string;
  baseline?: string;
  maxRegression: number;
  forceCompare?: boolean;
  markdown?: boolean;
}

export function gateFlags(command: Command): Command {
  const group = "Bench gate:";
  return command
    .addOption(new Option("--compare <bench.json>", "compare with an earlier result; exit 1 on a real regression").helpGroup(group))
    .addOption(new Option("--baseline <bench.json>", "same as --compare").conflicts("compare").helpGroup(group))
    .addOption(new Option("--max-regression <pct>", "eval tokens/s drop that fails the gate").argParser(percentage).default(10).helpGroup(group))
    .addOption(new Option("--force-compare", "compare results from another host class or backend anyway").helpGroup(group))
    .addOption(new Option("--markdown", "the table as Markdown (also to $GITHUB_STEP_SUMMARY)").helpGroup(group));
}

/** Rendering a runtime policy (run, render, drift). */
export interface PolicyFlags {
  config: string;
  engine?: string;
  model?: string;
  modelRoot?: string;
  host?: string;
  strict?: boolean;
  binary?: string;
  allowOutsideRoot?: boolean;
  /** run, drift: the trust store for a model's signature (and a model pulled from a registry). */
  trustedKeys?: string;
}

export function policyFlags(command: Command): Command {
  const group = "Policy:";
  return command
    .addOption(new Option("--config <policy.yaml>", "a policy YAML, or a model recipe").makeOptionMandatory().helpGroup(group))
    .addOption(new Option("--engine <name>", "override the policy's engine (see `engines`)").helpGroup(group))
    .addOption(new Option("--model <name|file>", "a converted model's name or a model file").helpGroup(group))
    .addOption(envReadByLibrary(new Option("--model-root <dir>", "where model_path is resolved (default models/)").helpGroup(group), "AI_TOOLS_MODEL_ROOT"))
    .addOption(new Option("--host <name|file>", "render for configs/hosts/<name>.yaml instead of this machine").helpGroup(group))
    .addOption(new Option("--strict", "refuse a policy the host cannot honour instead of clamping it").helpGroup(group))
    .addOption(new Option("--allow-outside-root", "let model_path name a file outside the model root and the workspace").helpGroup(group))
    .addOption(binaryFlag().helpGroup(group));
}

/** The engine executable; its variable depends on the engine (AI_TOOLS_POWERINFER_BIN, AI_TOOLS_LLAMA_CLI). */
export function binaryFlag(): Option {
  return envReadByLibrary(new Option("--binary <path>", "the engine executable (llama.cpp: else env AI_TOOLS_LLAMA_CLI)"), "AI_TOOLS_POWERINFER_BIN");
}

/** The library's options for preparing a policy, from the flags; notes go to `note` once each (a policy can be prepared twice). */
export function prepareOptionsOf(flags: PolicyFlags, root: string, env: NodeJS.ProcessEnv, note?: (line: string) => void) {
  const seen = new Set<string>();
  return {
    ...(note ? { onNote: (line: string) => void (seen.has(line) || (seen.add(line), note(`note: ${line}`))) } : {}),
    root,
    env,
    policyFile: flags.config,
    ...(flags.engine ? { engine: flags.engine } : {}),
    ...(flags.model ? { model: flags.model } : {}),
    ...(flags.modelRoot ? { modelRoot: flags.modelRoot } : {}),
    ...(flags.host ? { host: flags.host } : {}),
    ...(flags.binary ? { binary: flags.binary } : {}),
    ...(flags.allowOutsideRoot ? { allowOutsideRoot: true } : {}),
    ...(flags.trustedKeys ? { trustedKeys: flags.trustedKeys } : {}),
    strict: flags.strict ?? false,
  };
}

/** Whose signatures a command trusts (push, pull; verify has its own wording). */
export interface TrustFlags {
  key?: string;
  trustedKeys?: string;
  certificateRoot?: string[];
}

export function trustFlags(command: Command, what: string): Command {
  const group = "Trust:";
  return command
    .addOption(new Option("--key <public.pem>", `trust only this public key (PEM); ${what}`).conflicts("trustedKeys").helpGroup(group))
    .addOption(new Option("--trusted-keys <file>", "the trust store: YAML (format: configs/trusted-keys.yaml) or one PEM public key (default: configs/trusted-keys.yaml plus this machine's development key)").helpGroup(group))
    .addOption(new Option("--certificate-root <pem>", "a root certificate for certificate-signed models (repeatable; the trust file's certificateRoots count too)").argParser(collect).helpGroup(group));
}

/** How a registry is reached (push, pull). Credentials come from the environment and auth files, never flags. */
export interface RegistryFlags {
  insecure?: boolean;
  registryCa?: string;
  concurrency?: number;
}

export function registryFlags(command: Command): Command {
  const group = "Registry:";
  return command
    .addOption(envReadByLibrary(new Option("--insecure", "allow plain HTTP to a registry that is not on this machine").helpGroup(group), "AI_TOOLS_REGISTRY_INSECURE"))
    .addOption(envReadByLibrary(new Option("--registry-ca <pem>", "also trust this CA for the registry's TLS certificate").helpGroup(group), "AI_TOOLS_REGISTRY_CA"))
    .addOption(new Option("--concurrency <n>", "blobs transferred at once (default 4)").argParser(integerIn(1, 32)).helpGroup(group))
    .addOption(new Option("--json", "one event on stdout with the digest and every blob").helpGroup(group));
}
