/**
 * The floors of the source tree and the check that holds them (issue 15, "Ground floor"):
 * every area of pipeline/, tasks/ and engines/ sits on a floor, and a module may import
 * only modules of its own area or of a lower floor; and no module imports itself round a
 * circle. Every import counts: static, `import type`, `export ... from`, dynamic import()
 * and type-position import("...") alike, read with TypeScript's own pre-processor (no
 * hand-written parsing of import syntax).
 *
 * This file is the only place the floors are written down. test/structure.test.ts runs the
 * check on the real tree (and on small synthetic trees, to show that each rule can fail);
 * `pnpm structure` prints the same findings. Product code never imports this file.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

/** The checked source roots, relative to the repository root. */
export const SOURCE_ROOTS = ["pipeline", "tasks", "engines"] as const;

/**
 * Floors, bottom to top. An area is a folder of pipeline/ (`pipeline/core`), a single
 * module directly in pipeline/ (`pipeline/root`), or the top-level `tasks` and `engines`.
 * A new area must be added here, on the lowest floor above everything it imports.
 */
export const FLOORS: readonly (readonly string[])[] = [
  // 0: the ground: errors, processes, files, hashing, the graph executor; where the package lives.
  ["pipeline/core", "pipeline/root"],
  // 1: formats and services that need only the ground.
  ["pipeline/config", "pipeline/gguf", "pipeline/hub", "pipeline/signing", "pipeline/python", "pipeline/clean"],
  // 2: built on a format: OCI transport and packing, the workspace, CUDA build planning, the bench library.
  ["pipeline/registry", "pipeline/workspace", "pipeline/engine-build", "pipeline/model-bench"],
  // 3: runtime policies (recipes' generation settings + a host).
  ["pipeline/policy"],
  // 4: what runs a policy: the engines; the GPU index maths, validation and placement.
  ["engines", "pipeline/gpu-index"],
  // 5: the steps (one module per task), the runtime (prepare, verify, place, drift), metrics.
  ["tasks", "pipeline/runtime", "pipeline/metrics"],
  // 6: what composes steps and runs: the graphs, doctor, the report.
  ["pipeline/graphs", "pipeline/doctor", "pipeline/report"],
  // 7: the OpenAI-compatible server (builds the engine server through the graphs).
  ["pipeline/serve"],
  // 8: entry points: the CLI, and the `ai-tools/verify` library entry.
  ["pipeline/cli", "pipeline/verify"],
];

/**
 * Imports allowed to break the rules, each with its reason; the lead removes an entry once
 * its reason is gone. Nothing else may be added here.
 */
export const ALLOWED_EDGES: readonly { from: string; to: string; why: string }[] = [];

export interface ImportEdge {
  /** Repository-relative paths with forward slashes. */
  from: string;
  to: string;
  /** The specifier as written. */
  spec: string;
}

export interface StructureProblem {
  rule: "cycle" | "climb" | "no-floor" | "stale-allowance";
  message: string;
}

const posix = (path: string) => path.split(sep).join("/");

/** The area a repository-relative source file belongs to (see FLOORS). */
export function areaOf(file: string): string {
  const parts = file.split("/");
  if (parts[0] !== "pipeline") return parts[0]!;
  return parts.length > 2 ? `pipeline/${parts[1]}` : file.replace(/\.ts$/, "");
}

/** The TypeScript sources under `dir` (relative to `root`), as repository-relative paths; the structure tests share it. */
export function sourceFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(posix(relative(root, path)));
    }
  };
  if (existsSync(join(root, dir))) walk(join(root, dir));
  return out;
}

/** A relative specifier's target file (`.js` written for `.ts`, a folder's index.ts), or null outside the checked roots. */
function resolveSpec(root: string, from: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  const absolute = resolve(root, dirname(from), spec);
  const candidates = [absolute.replace(/\.js$/, ".ts"), absolute, `${absolute}.ts`, join(absolute, "index.ts")];
  const found = candidates.find((c) => c.endsWith(".ts") && existsSync(c) && statSync(c).isFile());
  if (!found) return null;
  const rel = posix(relative(root, found));
  return SOURCE_ROOTS.some((r) => rel.startsWith(`${r}/`)) ? rel : null;
}

/** Every relative import between the source files under `root` (a repository, or a synthetic tree in a test). */
export function readImportGraph(root: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const from of SOURCE_ROOTS.flatMap((dir) => sourceFiles(root, dir))) {
    const info = ts.preProcessFile(readFileSync(join(root, from), "utf8"), true, true);
    for (const { fileName: spec } of info.importedFiles) {
      const to = resolveSpec(root, from, spec);
      if (to && to !== from) edges.push({ from, to, spec });
    }
  }
  return edges;
}

/** One circle per strongly connected group of modules, as a path a -> b -> ... -> a. */
function findCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  // Tarjan's strongly connected components, iteratively (deep import chains would overflow the stack).
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const groups: string[][] = [];
  let counter = 0;
  for (const start of [...next.keys()].sort()) {
    if (index.has(start)) continue;
    const work: { node: string; i: number }[] = [{ node: start, i: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const targets = next.get(top.node) ?? [];
      if (top.i < targets.length) {
        const target = targets[top.i++]!;
        if (!index.has(target)) {
          index.set(target, counter);
          low.set(target, counter++);
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, i: 0 });
        } else if (onStack.has(target)) low.set(top.node, Math.min(low.get(top.node)!, index.get(target)!));
        continue;
      }
      work.pop();
      if (work.length > 0) low.set(work[work.length - 1]!.node, Math.min(low.get(work[work.length - 1]!.node)!, low.get(top.node)!));
      if (low.get(top.node) === index.get(top.node)) {
        const group: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          group.push(member);
        } while (member !== top.node);
        if (group.length > 1) groups.push(group);
      }
    }
  }
  // A shortest way back to the group's first module, through the group only.
  return groups.map((group) => {
    const members = new Set(group);
    const first = [...group].sort()[0]!;
    const previous = new Map<string, string>();
    const queue = [first];
    for (let k = 0; k < queue.length; k++) {
      for (const target of next.get(queue[k]!) ?? []) {
        if (!members.has(target)) continue;
        if (target === first) {
          const path = [first];
          for (let at = queue[k]!; at !== first; at = previous.get(at)!) path.splice(1, 0, at);
          return [...path, first];
        }
        if (!previous.has(target)) {
          previous.set(target, queue[k]!);
          queue.push(target);
        }
      }
    }
    return [...group, group[0]!];
  });
}

/** What breaks the rules in `edges`, under `floors` and `allowed`. Empty when the structure holds. */
export function checkStructure(edges: readonly ImportEdge[], floors: readonly (readonly string[])[] = FLOORS, allowed = ALLOWED_EDGES): StructureProblem[] {
  const problems: StructureProblem[] = [];
  const floorOf = new Map(floors.flatMap((areas, floor) => areas.map((area) => [area, floor] as const)));
  const kept = edges.filter((e) => !allowed.some((a) => a.from === e.from && a.to === e.to));

  const files = [...new Set(edges.flatMap((e) => [e.from, e.to]))];
  for (const area of [...new Set(files.map(areaOf))].sort()) {
    if (floorOf.has(area)) continue;
    const example = files.find((f) => areaOf(f) === area);
    problems.push({ rule: "no-floor", message: `${area} (${example}) is on no floor: add it to FLOORS in scripts/check-structure.ts, on the lowest floor above every area it imports` });
  }
  for (const e of kept) {
    const [a, b] = [areaOf(e.from), areaOf(e.to)];
    const [fa, fb] = [floorOf.get(a), floorOf.get(b)];
    if (a === b || fa === undefined || fb === undefined || fb < fa) continue;
    problems.push({ rule: "climb", message: `${e.from} -> ${e.spec} (${e.to}): ${a} (floor ${fa}) imports ${b} (floor ${fb}); an area imports only its own area or lower floors` });
  }
  for (const cycle of findCycles(kept)) problems.push({ rule: "cycle", message: `import circle: ${cycle.join(" -> ")}` });
  for (const a of allowed) {
    if (!edges.some((e) => e.from === a.from && e.to === a.to)) problems.push({ rule: "stale-allowance", message: `${a.from} no longer imports ${a.to}: remove its entry from ALLOWED_EDGES in scripts/check-structure.ts (${a.why})` });
  }
  return problems;
}

// `pnpm structure` (tsx scripts/check-structure.ts): the findings on this checkout, exit 1 when any.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  const problems = checkStructure(readImportGraph(root));
  for (const p of problems) console.log(`${p.rule}: ${p.message}`);
  console.log(problems.length === 0 ? `structure holds: ${FLOORS.length} floors, no climb, no circle` : `${problems.length} problem(s)`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
