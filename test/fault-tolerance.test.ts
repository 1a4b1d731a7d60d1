/**
 * Fault tolerance end to end: `convert tiny-hub` killed with SIGKILL in the middle of each
 * step, as a crash or an OOM kill would, then run again.
 *
 * The model: the tiny demo checkpoint (scripts/make-tiny-relu-llama.py, seed 0) served by
 * the local Hub imitation as two Hub repositories (checkpoint + predictor), with every
 * response throttled so the download takes about 1.5 s. The engine is the fixture engine.
 *
 * 1. An uninterrupted run gives the reference: a signed directory that verifies, its root
 *    digest (the subject of model.sig) and each signed file's digest. Its workspace is the
 *    template every case copies (`cp -a`: records, build folder, mtimes and all), so the
 *    engine is built from scratch only where a case is about the build. The Hugging Face
 *    cache is one folder outside the workspaces (HF_HUB_CACHE is an input of the download
 *    step: a per-workspace path would make every copy download again); the download case
 *    starts with an empty one of its own.
 * 2. For each step T (upstream, build, download, convert, bench, sign) the copy is put in the
 *    state a first run has when T starts: T's dependencies done, T and everything downstream
 *    of it not (their records and outputs removed: the engine checkout, the build folder, the
 *    model directory or parts of it, as the step requires). `convert tiny-hub --json` is
 *    started in its own process group and the group is SIGKILLed shortly after T's
 *    `task-start` (the FIXTURE_* knobs and the Hub throttle make T last long enough: the
 *    build hook sleeps, the converter sleeps halfway through its tensors, `main` waits
 *    between tokens; sign is fast and is killed right at its start). The CLI's children run
 *    in process groups of their own, so they survive that kill, as they would a crash.
 * 3. The rerun, without knobs, must exit 0 and redo only what was not finished: every task
 *    that was done before the kill (in the earlier run, or ended or found fresh in the killed
 *    one) is `task-skip` fresh; T and every task after it that had not ended run.
 *    Afterwards no process of the killed run is left, no temporary (`*.tmp-*`,
 *    `*.incomplete`, lock asides) and no step lock remains, and the directory verifies.
 *    The orphans are the point of the build, convert and bench cases: the killed step's
 *    `cmake --build` (make, the hook, its sleep), converter or `main` outlive the CLI, and
 *    used to go on writing into the build folder, the model folder and the bench logs while
 *    the rerun redid the step there. The rerun now stops them when it takes over the dead
 *    run's step lock, which records their process groups (pipeline/core/run-lock.ts).
 *
 * Digests. The engine, the download and the conversion are deterministic, so every signed
 * file except bench.json and SHA256SUMS has exactly the reference's digest. bench.json holds
 * measured timings (and its creation time): a bench that ran again legitimately changes it,
 * and with it SHA256SUMS (which lists it) and the root digest (computed over every signed
 * file). So: when bench ran neither in the killed run nor in the rerun, the root digest
 * equals the reference's; otherwise only the per-file rule applies.
 *
 * 4. Two models converted at once by two CLI processes in a fresh workspace share the engine
 *    build (exactly one of them builds, the other waits and finds it fresh; one build folder)
 *    and a fresh Hub cache (the same blobs, downloaded once under the blob locks), and both
 *    results verify.
 *
 * Needs /usr/bin/python3 with numpy<2 and sentencepiece (the generator and the converter
 * probe); skipped with the reason otherwise. Orphan checks read /proc (Linux).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineEvent } from "../pipeline/core/events.js";
import { startHubServer, type HubServer } from "./helpers/hub-server.js";
import { CLI, makeWorkspace, PROJECT_ROOT, type TestWorkspace } from "./helpers/workspace.js";

const PYTHON = "/usr/bin/python3";
const pythonReady =
  spawnSync(PYTHON, ["-c", "import numpy, sentencepiece; assert int(numpy.__version__.split('.')[0]) < 2"]).status === 0;
const hasProc = existsSync("/proc/self/stat");

const MODEL = "tiny-hub";
const MODEL_B = "tiny-hub-b";
const MODEL_REPO = "SparseLLM/Tiny-ReLU-LLaMA";
const PREDICTOR_REPO = "PowerInfer/Tiny-ReLU-LLaMA-Predictor";
/** Bytes per second per response: model.safetensors (790 KB) takes about 1.5 s. */
const THROTTLE = 520_000;

const recipe = (name: string) => `name: ${name}
title: Tiny ReLU-LLaMA from the Hub imitation
verified: true
family: relu-llama
model:
  repo: ${MODEL_REPO}
  revision: main
predictor:
  repo: ${PREDICTOR_REPO}
  revision: main
convert:
  script: convert.py
  outtype: f16
  vocabtype: spm
generation:
  max_tokens: 16
  ctx_size: 256
bench:
  prompt: Once upon a time
  nPredict: 16
  ctxSize: 256
  runs: 2
  warmup: 1
audit:
  model_version: "0"
  source_repo: ${MODEL_REPO}
`;

const TASKS = ["upstream", "build", "download", "convert", "bench", "sign"] as const;
type Task = (typeof TASKS)[number];
const INSTANCE: Record<Task, string> = {
  upstream: "upstream",
  build: "build",
  download: `download--${MODEL}`,
  convert: `convert--${MODEL}`,
  bench: `bench--${MODEL}`,
  sign: `sign--${MODEL}`,
};
/** The convert graph's edges, as dependents: T and these are what a first run has not finished when T starts. */
const DOWNSTREAM: Record<Task, Task[]> = {
  upstream: ["build", "convert", "bench", "sign"],
  build: ["bench", "sign"],
  download: ["convert", "bench", "sign"],
  convert: ["bench", "sign"],
  bench: ["sign"],
  sign: [],
};

// ---------------------------------------------------------------- CLI runs

interface CliRun {
  child: ChildProcess;
  events: PipelineEvent[];
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** The CLI as a user starts it, in a process group of its own (so the whole group can be killed). */
function startCli(root: string, args: string[], env: NodeJS.ProcessEnv, onEvent?: (event: PipelineEvent) => void): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const events: PipelineEvent[] = [];
  let stdout = "";
  let stderr = "";
  let pending = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk;
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!line.startsWith("{")) continue;
      const event = JSON.parse(line) as PipelineEvent;
      events.push(event);
      onEvent?.(event);
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, events, done };
}

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, "SIGKILL");
  } catch {
    // already gone
  }
}

const ran = (events: PipelineEvent[]) => new Set(events.filter((e) => e.event === "task-end").map((e) => (e as { task: string }).task));
const started = (events: PipelineEvent[]) => new Set(events.filter((e) => e.event === "task-start").map((e) => (e as { task: string }).task));
const fresh = (events: PipelineEvent[]) =>
  new Set(events.filter((e) => e.event === "task-skip" && e.reason === "fresh").map((e) => (e as { task: string }).task));

// ---------------------------------------------------------------- inspection

interface Signed {
  root: string;
  files: Record<string, string>;
}

/** The root digest and per-file digests model.sig signs (its DSSE payload). */
function signedManifest(dir: string): Signed {
  const bundle = JSON.parse(readFileSync(join(dir, "model.sig"), "utf8")) as { dsseEnvelope: { payload: string } };
  const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, "base64").toString("utf8")) as {
    subject: { digest: { sha256: string } }[];
    predicate: { resources: { name: string; digest: string }[] };
  };
  return { root: statement.subject[0]!.digest.sha256, files: Object.fromEntries(statement.predicate.resources.map((r) => [r.name, r.digest])) };
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Processes (not zombies) whose environment names this workspace: the CLI's children and theirs, as "pid: command line". */
function processesOf(root: string): string[] {
  if (!hasProc) return [];
  const marker = `AI_TOOLS_ROOT=${root}\0`;
  const found: string[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const environ = readFileSync(`/proc/${name}/environ`, "utf8");
      if (!environ.startsWith(marker) && !environ.includes(`\0${marker}`)) continue;
      found.push(`${name}: ${readFileSync(`/proc/${name}/cmdline`, "utf8").replace(/\0/g, " ").trim()}`);
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

const LEFTOVER = /\.tmp-\d+|\.incomplete$|\.stale-\d+-|\.running$|\.ai-tools\.lock$/;

/** Temporaries and locks under `dir` (the engine checkout and CMake's build folders are not ours to judge). */
function leftovers(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const rel = relative(base, path);
    if (rel === "external" || rel === join("build", "powerinfer")) continue;
    if (LEFTOVER.test(entry.name)) found.push(rel);
    if (entry.isDirectory()) found.push(...leftovers(path, base));
  }
  return found;
}

// ---------------------------------------------------------------- suite

describe.skipIf(!pythonReady)(
  "fault tolerance: convert killed in every step, rerun, identical result (needs /usr/bin/python3 with numpy<2 and sentencepiece: apt-get install python3-numpy python3-sentencepiece)",
  () => {
    let server: HubServer;
    let scratch: string;
    let hfCache: string;
    let golden: TestWorkspace;
    let reference: Signed;
    const workspaces: string[] = [];

    /** The CLI's environment for a workspace root: the Hub imitation, the shared cache, no token. */
    const envFor = (root: string, cache = hfCache, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
      const env: NodeJS.ProcessEnv = { ...golden.env };
      for (const name of Object.keys(env)) if (name.startsWith("HF_") || name.startsWith("HUGGING")) delete env[name];
      return { ...env, AI_TOOLS_ROOT: root, HF_ENDPOINT: server.endpoint, HF_HUB_CACHE: cache, HF_HOME: join(scratch, "hf-home"), ...extra };
    };
    const modelDir = (root: string, model = MODEL) => join(root, "models", "powerinfer", model);

    const verify = async (root: string, model = MODEL) => {
      const run = startCli(root, ["verify", join("models", "powerinfer", model), "--json"], envFor(root));
      const result = await run.done;
      expect(result.code, result.stdout + result.stderr).toBe(0);
      return JSON.parse(result.stdout.trim().split("\n").at(-1)!) as { ok: boolean; rootDigest: string };
    };

    beforeAll(async () => {
      scratch = mkdtempSync(join(tmpdir(), "ai-tools-fault-"));
      hfCache = join(scratch, "hf-cache");
      // The tiny demo checkpoint, once, published as two Hub repositories.
      const generated = join(scratch, "generated");
      execFileSync(PYTHON, [join(PROJECT_ROOT, "scripts", "make-tiny-relu-llama.py"), "--out", generated, "--seed", "0"], { stdio: "ignore" });
      server = await startHubServer({ bytesPerSecondPerConnection: THROTTLE });
      const filesOf = (dir: string) => readdirSync(dir).sort().map((name) => ({ path: name, content: readFileSync(join(dir, name)) }));
      server.addRepo({ id: MODEL_REPO, files: filesOf(join(generated, "model")) });
      server.addRepo({ id: PREDICTOR_REPO, files: filesOf(join(generated, "predictor")) });

      golden = makeWorkspace();
      const recipes = join(golden.root, "configs", "models", "powerinfer");
      mkdirSync(recipes, { recursive: true });
      writeFileSync(join(recipes, `${MODEL}.yaml`), recipe(MODEL));
    });

    afterAll(async () => {
      // After a failure, what a killed run left may still run: stop it before its folder goes.
      for (const root of workspaces) {
        for (const line of processesOf(root)) {
          try {
            process.kill(Number(line.split(":")[0]), "SIGKILL");
          } catch {
            // gone
          }
        }
      }
      await server?.close();
      for (const root of workspaces) rmSync(root, { recursive: true, force: true });
      golden?.cleanup();
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    });

    it("an uninterrupted run: the reference signed directory", async () => {
      const t0 = Date.now();
      const run = startCli(golden.root, ["convert", MODEL, "--json"], envFor(golden.root));
      const result = await run.done;
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect([...ran(run.events)].sort()).toEqual([...TASKS].sort());
      const download = golden.record(INSTANCE.download)!.result as { downloadedBytes: number };
      expect(download.downloadedBytes).toBeGreaterThan(800_000);
      const verified = await verify(golden.root);
      reference = signedManifest(modelDir(golden.root));
      expect(verified.rootDigest).toBe(reference.root);
      expect(Object.keys(reference.files).sort()).toEqual(["SHA256SUMS", "bench.json", "model.powerinfer.gguf", "policy.yaml"]);
      for (const [name, digest] of Object.entries(reference.files)) expect(sha256(join(modelDir(golden.root), name)), name).toBe(digest);
      expect(leftovers(golden.root)).toEqual([]);
      const durations = run.events.flatMap((e) => (e.event === "task-end" ? [`${e.task} ${e.durationMs} ms`] : []));
      console.log(`uninterrupted run: ${Date.now() - t0} ms (${durations.join(", ")})`);
    });

    /** The download case starts from an empty cache of its own (the download reruns anyway: it has no record). */
    const cacheFor = (task: Task) => (task === "download" ? join(scratch, "hf-cache-download-case") : hfCache);

    /** A copy of the reference workspace in the state a first run has when `task` starts. */
    function prepare(task: Task): string {
      const root = mkdtempSync(join(tmpdir(), `ai-tools-fault-${task}-`));
      workspaces.push(root);
      execFileSync("cp", ["-a", `${golden.root}/.`, root]);
      const unfinished = [task, ...DOWNSTREAM[task]];
      for (const t of unfinished) rmSync(join(root, "build", "state", `${INSTANCE[t]}.lock.json`), { force: true });
      rmSync(join(root, "build", "logs"), { recursive: true, force: true });
      if (task === "upstream") rmSync(join(root, "external"), { recursive: true, force: true });
      // CMake's cache names its folder: a copied build folder cannot be reconfigured.
      if (unfinished.includes("build")) rmSync(join(root, "build", "powerinfer"), { recursive: true, force: true });
      const dir = modelDir(root);
      if (unfinished.includes("convert")) rmSync(dir, { recursive: true, force: true });
      if (unfinished.includes("bench")) {
        rmSync(join(dir, "bench.json"), { force: true });
        rmSync(join(root, "build", "bench-logs"), { recursive: true, force: true });
      }
      for (const f of ["SHA256SUMS", "model.sig", "provenance.sigstore.json"]) rmSync(join(dir, f), { force: true });
      rmSync(join(root, "build", "manifests"), { recursive: true, force: true });
      return root;
    }

    /** When to kill, and the knobs that make the step last long enough to be killed in its middle. */
    const KILL: Record<Task, { env: NodeJS.ProcessEnv; when: (e: PipelineEvent) => boolean; delayMs?: number; orphans?: true; sleepingHook?: true }> = {
      // The fetch from the local bare repository is quick: killed as it starts.
      upstream: { env: {}, when: (e) => e.event === "task-progress" && e.task === "upstream" && /fetching/.test(e.message ?? "") },
      // The build hook (part of building `main`) sleeps: make, the hook and its sleep are running.
      // Its "sleeping" line may be thinned out of the progress events under load: the pid file the hook writes
      // once it sleeps is the signal (polled), the event only a shortcut.
      build: { env: { FIXTURE_BUILD_SLEEP_S: "30" }, when: (e) => e.event === "task-progress" && e.task === "build" && /fixture: sleeping/.test(e.message ?? ""), orphans: true, sleepingHook: true },
      // Some bytes of the throttled checkpoint are in, most are not.
      download: { env: {}, when: (e) => e.event === "task-progress" && e.task === "download" && (e.percent ?? 0) > 5 },
      // The converter sleeps with half its tensors written into its temporary file.
      convert: { env: { FIXTURE_CONVERT_SLEEP_S: "30" }, when: (e) => e.event === "task-progress" && e.task === "convert" && (e.percent ?? 0) >= 40, orphans: true },
      // `main` generates a token every 300 ms: the warm-up run is in its middle.
      bench: { env: { FIXTURE_MAIN_TOKEN_DELAY_MS: "300" }, when: (e) => e.event === "task-progress" && e.task === "bench" && /warm-up run/.test(e.message ?? ""), delayMs: 500, orphans: true },
      // In-process and quick: killed right at its start.
      sign: { env: {}, when: (e) => e.event === "task-start" && e.task === "sign" },
    };

    for (const task of TASKS) {
      it(`killed during ${task}: the rerun redoes only what was not finished`, async () => {
        const t0 = Date.now();
        const kill = KILL[task];
        const cache = cacheFor(task);
        let root: string;
        let killed: CliRun;
        let killedAt: string | undefined;
        let first: Awaited<CliRun["done"]>;
        // Sign may finish before the kill lands (it takes some 50 ms): then again, from the start.
        for (let attempt = 1; ; attempt++) {
          root = prepare(task);
          killedAt = undefined;
          const pidFile = join(root, "build-hook.pid");
          const env = kill.sleepingHook ? { ...kill.env, FIXTURE_BUILD_PIDFILE: pidFile } : kill.env;
          const run = startCli(root, ["convert", MODEL, "--json"], envFor(root, cache, env), (event) => {
            if (killedAt !== undefined || !kill.when(event)) return;
            killedAt = `${event.event} ${event.event === "task-progress" ? (event.message ?? event.percent) : ""}`;
            if (kill.delayMs) setTimeout(() => killGroup(run.child), kill.delayMs);
            else killGroup(run.child);
          });
          const poll = kill.sleepingHook
            ? setInterval(() => {
                if (killedAt !== undefined || !existsSync(pidFile)) return;
                killedAt = "build hook sleeping (pid file)";
                killGroup(run.child);
              }, 50)
            : undefined;
          void run.done.finally(() => clearInterval(poll));
          killed = run;
          first = await run.done;
          if (first.signal === "SIGKILL" || task !== "sign" || attempt === 3) break;
        }
        expect(first.signal, `never killed:\n${first.stdout}\n${first.stderr}`).toBe("SIGKILL");
        expect(started(killed.events)).toContain(task);
        expect(ran(killed.events)).not.toContain(task);
        const finished = new Set([...ran(killed.events), ...fresh(killed.events)]);
        // What a crash leaves: the step's commands run on in their own process groups.
        const orphans = processesOf(root);
        if (kill.orphans && hasProc) expect(orphans, "the killed step's commands outlive it").not.toEqual([]);
        const t1 = Date.now();

        const rerun = startCli(root, ["convert", MODEL, "--json"], envFor(root, cache));
        const second = await rerun.done;
        expect(second.code, second.stdout + second.stderr).toBe(0);
        const t2 = Date.now();
        // Finished before the kill (in an earlier run, or in the killed one): fresh now. The rest runs.
        const unfinished = new Set([task, ...DOWNSTREAM[task]].filter((t) => !finished.has(t)));
        expect(unfinished).toContain(task);
        for (const t of TASKS) {
          if (unfinished.has(t)) expect(ran(rerun.events), `${t} was not finished at the kill`).toContain(t);
          else expect(fresh(rerun.events), `${t} was finished before the kill`).toContain(t);
        }

        expect(processesOf(root), "processes of the killed run still running").toEqual([]);
        expect(leftovers(root), "temporaries or locks left in the workspace").toEqual([]);
        // A blob lock of the killed run may stay in the cache's .locks/ (when it died between
        // finishing the blob and releasing the lock, nobody needs that lock again): harmless,
        // a dead holder's lock is taken over at once, and huggingface_hub leaves its own there too.
        expect(leftovers(cache).filter((p) => !p.endsWith(".ai-tools.lock")), "temporaries left in the Hub cache").toEqual([]);

        const verified = await verify(root);
        const signed = signedManifest(modelDir(root));
        expect(verified.rootDigest).toBe(signed.root);
        expect(Object.keys(signed.files).sort()).toEqual(Object.keys(reference.files).sort());
        for (const [name, digest] of Object.entries(signed.files)) {
          if (name !== "bench.json" && name !== "SHA256SUMS") expect(digest, name).toBe(reference.files[name]);
        }
        const benchRan = started(killed.events).has("bench") || started(rerun.events).has("bench");
        if (!benchRan) expect(signed.root).toBe(reference.root);
        console.log(
          `killed during ${task} at ${killedAt}: killed run ${t1 - t0} ms, ${orphans.length} orphans, rerun ${t2 - t1} ms (ran ${[...ran(rerun.events)].join(" ")})`,
        );
      });
    }

    it("two models converted at once share the engine build and the Hub cache", async () => {
      const t0 = Date.now();
      const ws = makeWorkspace();
      workspaces.push(ws.root);
      const recipes = join(ws.root, "configs", "models", "powerinfer");
      mkdirSync(recipes, { recursive: true });
      writeFileSync(join(recipes, `${MODEL}.yaml`), recipe(MODEL));
      writeFileSync(join(recipes, `${MODEL_B}.yaml`), recipe(MODEL_B));
      const cache = join(ws.root, "shared-hf-cache");
      server.resetLog();
      const a = startCli(ws.root, ["convert", MODEL, "--json"], envFor(ws.root, cache));
      const b = startCli(ws.root, ["convert", MODEL_B, "--json"], envFor(ws.root, cache));
      const [ra, rb] = await Promise.all([a.done, b.done]);
      expect(ra.code, ra.stdout + ra.stderr).toBe(0);
      expect(rb.code, rb.stdout + rb.stderr).toBe(0);

      // The engine: built by exactly one of them; the other waited and found it fresh.
      const builders = [a, b].filter((r) => ran(r.events).has("build"));
      expect(builders).toHaveLength(1);
      const other = builders[0] === a ? b : a;
      expect(fresh(other.events)).toContain("build");
      const waited = other.events.filter((e) => e.event === "task-wait").map((e) => (e as { task: string }).task);
      // The same for the checkout (not necessarily by the same process).
      expect([a, b].filter((r) => ran(r.events).has("upstream"))).toHaveLength(1);
      expect([a, b].filter((r) => fresh(r.events).has("upstream"))).toHaveLength(1);
      expect(readdirSync(join(ws.root, "build", "powerinfer"))).toHaveLength(1);

      // The Hub cache: each blob fetched once (the second process waited for the first and
      // found it done), complete and correct, used by both.
      for (const f of server.listFiles(MODEL_REPO).filter((f) => f.sha256)) expect(server.bytesSent[f.path], f.path).toBe(f.size);
      for (const [repo, files] of [
        [MODEL_REPO, server.listFiles(MODEL_REPO)],
        [PREDICTOR_REPO, server.listFiles(PREDICTOR_REPO)],
      ] as const) {
        const blobs = join(cache, `models--${repo.replace("/", "--")}`, "blobs");
        expect(readdirSync(blobs).sort()).toEqual(files.map((f) => f.etag).sort());
        for (const f of files) expect(readFileSync(join(blobs, f.etag)).equals(f.content), `${repo}/${f.path}`).toBe(true);
      }
      for (const model of [MODEL, MODEL_B]) {
        const verified = await verify(ws.root, model);
        expect(verified.ok).toBe(true);
        expect(signedManifest(modelDir(ws.root, model)).files["model.powerinfer.gguf"]).toBe(reference.files["model.powerinfer.gguf"]);
      }
      expect(processesOf(ws.root)).toEqual([]);
      expect(leftovers(ws.root)).toEqual([]);
      console.log(`two models at once: ${Date.now() - t0} ms (the one that did not build waited for: ${waited.join(", ") || "nothing"})`);
    });
  },
);
