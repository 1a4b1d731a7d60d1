/**
 * Task `upstream`: the PowerInfer source at the pinned commit, in the git submodule
 * `external/powerinfer`. Fetches only that commit, shallow, blob-filtered and sparse
 * (9.5 MB instead of the whole history), never recursively (the upstream's own
 * submodules belong to smallthinker/, which the classic build does not use).
 * Local changes are never discarded unless --reset-upstream says so.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { atomicWriteFile } from "../pipeline/core/files.js";
import { PipelineError } from "../pipeline/core/errors.js";
import type { TaskDefinition, TaskPlanContext, TaskRunContext } from "../pipeline/core/graph.js";
import { runCommand } from "../pipeline/core/process.js";
import { redact } from "../pipeline/core/redact.js";
import type { EngineSettings, Workspace } from "../pipeline/workspace.js";

export const GIT_INSTALL_HINT = "Install git (apt-get install git, or brew install git).";

export interface UpstreamResult {
  url: string;
  commit: string;
  commitDate: string;
  clean: boolean;
  shallow: boolean;
  sparseCheckout: string[];
  /** True when the checkout is this repository's registered submodule. */
  submodule: boolean;
  path: string;
}

export interface CheckoutStatus {
  head: string | null;
  /** Porcelain lines of changed or untracked files. */
  changes: string[];
}

/** Parses `git status --porcelain=v2 --branch`. */
export function parseStatus(output: string): CheckoutStatus {
  let head: string | null = null;
  const changes: string[] = [];
  for (const line of output.split("\n")) {
    if (!line) continue;
    if (line.startsWith("# branch.oid ")) {
      const oid = line.slice("# branch.oid ".length).trim();
      head = /^[0-9a-f]{40}$/.test(oid) ? oid : null;
    } else if (!line.startsWith("#")) {
      changes.push(line);
    }
  }
  return { head, changes };
}

/** Readable form of a porcelain v2 entry: "modified: ggml.c", "untracked: notes.txt". */
function describeChange(line: string): string {
  if (line.startsWith("? ")) return `untracked: ${line.slice(2)}`;
  const fields = line.split(" ");
  const path = line.startsWith("2 ") ? fields.slice(9).join(" ") : fields.slice(8).join(" ");
  return `changed: ${path}`;
}

/**
 * A submodule's `.git` is a file `gitdir: ../../.git/modules/<path>`. The engine's
 * common/CMakeLists.txt reads that path as if it were absolute, so the build fails
 * with "No rule to make target .../.git/modules/.../index". Returns the absolute form
 * when the file holds a relative path, else null.
 */
export function absoluteGitdirFix(checkout: string): string | null {
  const dotGit = join(checkout, ".git");
  if (!existsSync(dotGit) || statSync(dotGit).isDirectory()) return null;
  const match = /^gitdir: (.*?)\s*$/m.exec(readFileSync(dotGit, "utf8"));
  if (!match || isAbsolute(match[1]!)) return null;
  return `gitdir: ${resolve(checkout, match[1]!)}\n`;
}

async function git(args: string[], cwd: string, env: NodeJS.ProcessEnv, run?: TaskRunContext["run"]): Promise<string> {
  const argv = ["git", ...args];
  const options = { cwd, env, captureStdout: true, installHint: GIT_INSTALL_HINT };
  const result = run ? await run(argv, options) : await runCommand(argv, options);
  return result.stdout.trim();
}

async function checkoutStatus(dir: string, env: NodeJS.ProcessEnv): Promise<CheckoutStatus | null> {
  if (!existsSync(join(dir, ".git"))) return null;
  const out = await runCommand(["git", "status", "--porcelain=v2", "--branch", "--untracked-files=normal"], {
    cwd: dir,
    env,
    captureStdout: true,
    allowFailure: true,
    installHint: GIT_INSTALL_HINT,
  });
  return out.exitCode === 0 ? parseStatus(out.stdout) : null;
}

/** The commit the superproject's index pins the submodule at, or null when root is no such checkout. */
export async function submoduleGitlink(root: string, path: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (!existsSync(join(root, ".git"))) return null;
  const out = await runCommand(["git", "ls-files", "--stage", "--", path], { cwd: root, env, captureStdout: true, allowFailure: true });
  const match = /^160000 ([0-9a-f]{40}) /.exec(out.stdout);
  return match ? match[1]! : null;
}

export function upstreamTask(workspace: Workspace, settings: EngineSettings): TaskDefinition<UpstreamResult> {
  const { upstream } = settings;
  const dir = join(workspace.root, upstream.path);
  const configName = "configs/engines/powerinfer.yaml";

  return {
    id: "upstream",
    title: "Fetch PowerInfer source",
    version: 1,
    dependsOn: [],

    async inputs(ctx: TaskPlanContext) {
      return {
        values: {
          [`${configName}#upstream.commit`]: upstream.commit,
          [`${configName}#upstream.sparseCheckout`]: upstream.sparseCheckout,
          [`${configName}#upstream.path`]: upstream.path,
          // The submodule pin is read so that a moved gitlink is noticed (and refused).
          gitlink: await submoduleGitlink(ctx.root, upstream.path, ctx.env),
        },
      };
    },

    // Downstream tasks depend on the source, not on where it was fetched from or when.
    identity: (record) => {
      const result = record.result as UpstreamResult;
      return { commit: result.commit, sparseCheckout: result.sparseCheckout };
    },

    async verify(_record, ctx) {
      const status = await checkoutStatus(dir, ctx.env);
      if (!status) return `checkout ${upstream.path} missing`;
      if (status.head !== upstream.commit) return `checkout ${upstream.path} is at ${status.head ?? "no commit"}, the pin is ${upstream.commit}`;
      if (status.changes.length) return `checkout ${upstream.path} has local changes`;
      if (absoluteGitdirFix(dir)) return `${upstream.path}/.git names its git folder by a relative path, which the engine's build cannot follow`;
      return null;
    },

    async run(ctx) {
      const gitlink = await submoduleGitlink(ctx.root, upstream.path, ctx.env);
      if (gitlink && gitlink !== upstream.commit) {
        throw new PipelineError(
          "E_UPSTREAM_PIN_MISMATCH",
          `${configName} pins upstream.commit ${upstream.commit}, but the submodule ${upstream.path} is recorded at ${gitlink}.`,
          {
            details: [
              `Make them agree: either set upstream.commit to ${gitlink} in ${configName},`,
              `or move the submodule: git update-index --cacheinfo 160000,${upstream.commit},${upstream.path}`,
            ],
          },
        );
      }

      let status = await checkoutStatus(dir, ctx.env);
      if (!status && existsSync(dir) && readdirSync(dir).length > 0) {
        throw new PipelineError("E_UPSTREAM_FETCH", `${upstream.path} exists but is not a git checkout; move it away and rerun.`);
      }
      if (status && status.changes.length > 0) {
        const listed = status.changes.slice(0, 20).map(describeChange);
        if (!settings.resetUpstream) {
          throw new PipelineError("E_UPSTREAM_DIRTY", `${upstream.path} has local changes; refusing to touch them.`, {
            details: [
              ...listed,
              ...(status.changes.length > 20 ? [`... and ${status.changes.length - 20} more`] : []),
              `Commit or stash them in ${upstream.path}, or rerun with --reset-upstream to discard them.`,
            ],
          });
        }
        ctx.log(`--reset-upstream: discarding ${status.changes.length} local change(s):`);
        for (const line of listed) ctx.log(`  ${line}`);
        ctx.progress({ message: `discarding ${status.changes.length} local change(s) (--reset-upstream)` });
        await git(["reset", "--hard", "--quiet"], dir, ctx.env, ctx.run);
        await git(["clean", "-fd", "--quiet"], dir, ctx.env, ctx.run);
        status = await checkoutStatus(dir, ctx.env);
      }

      const atPin = status?.head === upstream.commit;
      const stored = withoutCredentials(upstream.url);
      if (!atPin) {
        if (!status) {
          await mkdir(dir, { recursive: true });
          await git(["init", "--quiet"], dir, ctx.env, ctx.run);
        }
        await fetchPinnedCommit(ctx, dir, upstream.url, upstream.commit);
      } else if (stored !== upstream.url) {
        // A changed sparse set may fetch blobs lazily: let those requests authenticate too.
        await git(["remote", "set-url", "origin", upstream.url], dir, ctx.env, ctx.run);
      }
      ctx.progress({ percent: 70, message: "checking out" });
      // Always applied: the patterns may be what changed.
      await git(["sparse-checkout", "set", "--no-cone", ...upstream.sparseCheckout], dir, ctx.env, ctx.run);
      if (!atPin) await git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", upstream.commit], dir, ctx.env, ctx.run);
      // Credentials in a mirror URL were for this fetch; they must not stay in .git/config.
      if (stored !== upstream.url) await git(["remote", "set-url", "origin", stored], dir, ctx.env, ctx.run);

      const submodule = gitlink !== null;
      if (submodule) await registerSubmodule(ctx, upstream.path);
      const fixedGitdir = absoluteGitdirFix(dir);
      if (fixedGitdir) {
        ctx.log(`rewriting ${upstream.path}/.git to an absolute path (the engine's CMake misreads relative ones)`);
        await atomicWriteFile(join(dir, ".git"), fixedGitdir);
      }

      const after = await checkoutStatus(dir, ctx.env);
      if (after?.head !== upstream.commit) {
        throw new PipelineError("E_UPSTREAM_FETCH", `after checkout ${upstream.path} is at ${after?.head ?? "no commit"}, expected ${upstream.commit}`);
      }
      return {
        url: redact(upstream.url),
        commit: upstream.commit,
        commitDate: await git(["show", "-s", "--format=%cI", "HEAD"], dir, ctx.env),
        clean: after.changes.length === 0,
        shallow: (await git(["rev-parse", "--is-shallow-repository"], dir, ctx.env)) === "true",
        sparseCheckout: upstream.sparseCheckout,
        submodule,
        path: upstream.path,
      };
    },
  };
}

/** The URL without `user:password@`. */
export function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/i, "$1");
}

/**
 * Fetch just the pinned commit: shallow and blob-filtered where the server allows it
 * (GitHub does; a plain mirror needs uploadpack.allowFilter and allowAnySHA1InWant),
 * else every branch, and then check that the commit arrived.
 */
async function fetchPinnedCommit(ctx: TaskRunContext, dir: string, url: string, commit: string): Promise<void> {
  const remotes = await git(["remote"], dir, ctx.env, ctx.run);
  await git(remotes.split("\n").includes("origin") ? ["remote", "set-url", "origin", url] : ["remote", "add", "origin", url], dir, ctx.env, ctx.run);
  ctx.progress({ percent: 10, message: `fetching ${commit.slice(0, 12)} from ${redact(url)}` });
  const shallow = await ctx.run(["git", "fetch", "--depth", "1", "--filter=blob:none", "--no-tags", "origin", commit], {
    cwd: dir,
    allowFailure: true,
    installHint: GIT_INSTALL_HINT,
  });
  if (shallow.exitCode !== 0) {
    ctx.log("shallow fetch of the commit was refused; fetching the branches instead");
    ctx.progress({ percent: 30, message: "server refused a single-commit fetch; fetching branches" });
    await ctx.run(["git", "fetch", "--filter=blob:none", "--no-tags", "origin"], { cwd: dir, installHint: GIT_INSTALL_HINT });
  }
  const present = await ctx.run(["git", "cat-file", "-e", `${commit}^{commit}`], { cwd: dir, allowFailure: true });
  if (present.exitCode !== 0) {
    throw new PipelineError("E_UPSTREAM_FETCH", `commit ${commit} is not available from the upstream`, {
      details: [`Fetched from ${redact(url)}.`, "Check upstream.commit in configs/engines/powerinfer.yaml, or point --upstream-url / AI_TOOLS_POWERINFER_URL at a mirror that has it."],
    });
  }
}

/**
 * Make the checkout a proper submodule of this repository (git dir under
 * .git/modules, URL from .gitmodules registered), so `git submodule status` shows it.
 */
async function registerSubmodule(ctx: TaskRunContext, path: string): Promise<void> {
  const quiet = { cwd: ctx.root, allowFailure: true };
  await ctx.run(["git", "submodule", "init", "--", path], quiet);
  const absorbed = await ctx.run(["git", "submodule", "absorbgitdirs", "--", path], quiet);
  if (absorbed.exitCode !== 0) ctx.log(`note: could not move ${path}/.git under .git/modules (the checkout works as it is)`);
}
