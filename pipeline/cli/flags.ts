/**
 * Flags that several commands share, declared once as groups (each a heading on the help
 * page), with their value checks. A command adds the groups it takes; a flag no group of
 * the command declares is an unknown option there.
 */
import { InvalidArgumentError, Option, type Command } from "commander";
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
    .addOption(new Option("--reset-upstream", "discard local changes in external/powerinfer").helpGroup(group));
  return contradicting(command, "--native", "--no-native");
}

/** How a checkpoint is downloaded. */
export interface TransferFlags {
  connections?: number;
  /** MiB. */
  chunkSize?: number;
}

export function transferFlags(command: Command): Command {
  const group = "Download:";
  return command
    .addOption(new Option("--connections <n>", "range requests in flight per large file (default 4)").argParser(integerIn(1, 64)).helpGroup(group))
    .addOption(new Option("--chunk-size <MiB>", "size of each range request (default 16)").argParser(integerIn(1, 1024)).helpGroup(group));
}

/** How a checkpoint is converted. */
export interface ConversionFlags {
  python?: string;
  allowUnsafeOuttype?: boolean;
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
    .addOption(binaryFlag().helpGroup(group));
}

/** The engine executable; its variable depends on the engine (AI_TOOLS_POWERINFER_BIN, AI_TOOLS_LLAMA_CLI). */
export function binaryFlag(): Option {
  return envReadByLibrary(new Option("--binary <path>", "the engine executable (llama.cpp: else env AI_TOOLS_LLAMA_CLI)"), "AI_TOOLS_POWERINFER_BIN");
}

/** The library's options for preparing a policy, from the flags. */
export function prepareOptionsOf(flags: PolicyFlags, root: string, env: NodeJS.ProcessEnv) {
  return {
    root,
    env,
    policyFile: flags.config,
    ...(flags.engine ? { engine: flags.engine } : {}),
    ...(flags.model ? { model: flags.model } : {}),
    ...(flags.modelRoot ? { modelRoot: flags.modelRoot } : {}),
    ...(flags.host ? { host: flags.host } : {}),
    ...(flags.binary ? { binary: flags.binary } : {}),
    strict: flags.strict ?? false,
  };
}
