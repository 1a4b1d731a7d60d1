/**
 * The published package: `pnpm pack` builds first (the `prepare` script) and packs the
 * bundled CLI, the `ai-tools/verify` entry point with its declarations, the `ai-tools` and
 * `pipeline` bins and the configs the CLI reads from its own folder, and nothing else.
 * Installed from that tarball into an empty project with no registry (npm --offline, the
 * registry pointed at a closed port, the few runtime dependencies packed from this
 * checkout's node_modules), other code imports `verifyModel` and `npx ai-tools verify` works.
 *
 * The tarball is packed from a copy of the package's sources, not from this checkout, so
 * the build it runs never swaps dist/cli/ under CLI tests running beside this one; the copy
 * also gets decoy test/, bench/, models/, build/ and external/ files that must stay out.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { list } from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publicKeyPem } from "../pipeline/signing/keys.js";
import { signModelDirectory } from "../pipeline/signing/sign.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const PKG = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  name: string;
  version: string;
  files: string[];
  bin: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
  dependencies?: Record<string, string>;
};

/** Built by `prepare` from these; with the top folders of package.json "files" (less dist/), what the copy needs. */
const BUILD_INPUTS = ["package.json", "README.md", ".npmignore", "tsconfig.json", "tsconfig.build.json", "pipeline", "tasks", "engines", "scripts"];
/** Must never reach the tarball (decoys are written into the copy). */
const DECOYS = ["test/decoy.test.ts", "test/fixtures/decoy.json", "bench/decoy.mjs", "models/decoy/model.gguf", "build/state/decoy.json", "external/powerinfer/decoy.c", ".github/workflows/decoy.yml", ".vscode/settings.json"];

/** The environment for npm and pnpm: nothing inherited from a `pnpm test` run, no registry reachable. */
function toolEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_|^pnpm_/i.test(k)));
  return {
    ...env,
    npm_config_registry: "http://127.0.0.1:9/",
    npm_config_offline: "true",
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_update_notifier: "false",
    // pnpm must not fetch the packageManager version it is not (there is no network).
    npm_config_manage_package_manager_versions: "false",
    COREPACK_ENABLE_STRICT: "0",
    NO_COLOR: "1",
    ...extra,
  };
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = toolEnv(), timeout = 60_000): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, env, encoding: "utf8", timeout });
  if (result.error) throw result.error;
  return result;
}

function mustRun(command: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv, timeout?: number): string {
  const result = run(command, args, cwd, env, timeout);
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

const missing = ["pnpm", "npm"].filter((tool) => spawnSync(tool, ["--version"], { cwd: tmpdir(), env: toolEnv() }).status !== 0);

/** The package folder `name` resolves to from `fromDir`, as Node would find it (through pnpm's links). */
function packageDir(name: string, fromDir: string): string {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (looked from ${fromDir}); run pnpm install`);
  }
}

/** The package folders of `deps` and everything they depend on (not optional or peer dependencies). */
function runtimeClosure(deps: Record<string, string>, fromDir: string, found = new Map<string, string>()): Map<string, string> {
  for (const name of Object.keys(deps)) {
    const dir = packageDir(name, fromDir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string; dependencies?: Record<string, string> };
    const key = `${name}@${pkg.version}`;
    if (found.has(key)) continue;
    found.set(key, dir);
    runtimeClosure(pkg.dependencies ?? {}, dir, found);
  }
  return found;
}

describe.skipIf(missing.length > 0)(`the published package${missing.length > 0 ? ` (skipped: ${missing.join(" and ")} not on PATH)` : ""}`, () => {
  let stage: string;
  let tarball: string;
  let entries: string[];
  let consumer: string;
  let modelDir: string;
  let tamperedDir: string;
  let trustFile: string;
  let signedRoot: string;
  const consumerEnv = () => toolEnv({ XDG_CACHE_HOME: join(stage, "xdg-cache") });

  beforeAll(async () => {
    stage = realpathSync(mkdtempSync(join(tmpdir(), "ai-tools-package-")));

    // 1. A copy of the package's sources, the checkout's node_modules linked in, decoys added.
    const src = join(stage, "src");
    const tops = new Set([...BUILD_INPUTS, ...PKG.files.filter((f) => !f.startsWith("!")).map((f) => f.split("/")[0]!)]);
    tops.delete("dist");
    for (const top of tops) if (existsSync(join(REPO, top))) cpSync(join(REPO, top), join(src, top), { recursive: true });
    symlinkSync(join(REPO, "node_modules"), join(src, "node_modules"), "dir");
    for (const decoy of DECOYS) {
      mkdirSync(dirname(join(src, decoy)), { recursive: true });
      writeFileSync(join(src, decoy), "decoy\n");
    }

    // 2. `pnpm pack` (runs the build) into the stage.
    mustRun("pnpm", ["pack", "--pack-destination", stage], src, toolEnv(), 150_000);
    const packed = readdirSync(stage).filter((f) => f.endsWith(".tgz"));
    expect(packed).toEqual([`${PKG.name}-${PKG.version}.tgz`]);
    tarball = join(stage, packed[0]!);
    entries = [];
    await list({ file: tarball, onReadEntry: (entry) => void entries.push(entry.path.replace(/^package\//, "")) });

    // 3. The runtime dependencies (the bundles leave only these external), packed from this checkout.
    const deps = runtimeClosure(PKG.dependencies ?? {}, REPO);
    mkdirSync(join(stage, "deps"));
    const depTarballs = JSON.parse(mustRun("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", join(stage, "deps"), ...deps.values()], stage)) as { name: string; filename: string }[];
    expect(depTarballs.map((d) => d.name).sort()).toEqual([...deps.keys()].map((k) => k.slice(0, k.lastIndexOf("@"))).sort());

    // 4. An empty project installs the tarball, offline: every package comes from a file.
    consumer = join(stage, "consumer");
    mkdirSync(consumer);
    const dependencies = Object.fromEntries([[PKG.name, `file:${tarball}`], ...depTarballs.map((d) => [d.name, `file:${join(stage, "deps", d.filename)}`])]);
    writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module", dependencies }, null, 2));
    mustRun("npm", ["install", "--offline", "--no-audit", "--no-fund", "--omit=optional", "--cache", join(stage, "npm-cache")], consumer);

    // 5. A model signed with the library from this checkout, a trust file, a tampered copy.
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    modelDir = join(stage, "models", "my-model");
    mkdirSync(join(modelDir, "tokenizer"), { recursive: true });
    writeFileSync(join(modelDir, "weights.gguf"), Buffer.alloc(64 * 1024, 7));
    writeFileSync(join(modelDir, "tokenizer", "vocab.txt"), "a\nb\n");
    signedRoot = (await signModelDirectory(modelDir, { privateKey })).rootDigest;
    trustFile = join(stage, "trusted-keys.yaml");
    const indented = publicKeyPem(publicKey).trimEnd().split("\n").map((l) => `      ${l}`).join("\n");
    writeFileSync(trustFile, `keys:\n  - id: release\n    publicKey: |\n${indented}\n`);
    tamperedDir = join(stage, "models", "tampered");
    cpSync(modelDir, tamperedDir, { recursive: true });
    writeFileSync(join(tamperedDir, "weights.gguf"), Buffer.alloc(64 * 1024, 8)); // same size, other bytes
  }, 240_000);

  afterAll(() => {
    if (stage) rmSync(stage, { recursive: true, force: true });
  });

  it("packs compiled JS, declarations, both bins and the runtime files, and no sources, tests or local data", () => {
    for (const file of ["package.json", "README.md", "bin/ai-tools.mjs", "dist/cli/main.js", "dist/cli/verify.js", "dist/pipeline/verify.d.ts", "configs/engines/powerinfer.yaml", "configs/trusted-keys.yaml", "scripts/make-tiny-relu-llama.py"]) {
      expect(entries).toContain(file);
    }
    expect(entries.some((e) => e.startsWith("configs/models/powerinfer/"))).toBe(true);
    expect(entries.some((e) => e.startsWith("schemas/") && e.endsWith(".schema.json"))).toBe(true);
    // Everything the packed manifest points at is in the tarball.
    const packedPkg = JSON.parse(readFileSync(join(consumer, "node_modules", PKG.name, "package.json"), "utf8")) as typeof PKG;
    for (const target of Object.values(packedPkg.bin)) expect(entries).toContain(target);
    expect(Object.keys(packedPkg.bin).sort()).toEqual(["ai-tools", "pipeline"]);
    for (const target of Object.values(packedPkg.exports).flatMap((t) => (typeof t === "string" ? [t] : Object.values(t)))) {
      expect(entries).toContain(target.replace(/^\.\//, ""));
    }

    expect(entries.filter((e) => e.endsWith(".ts") && !e.endsWith(".d.ts"))).toEqual([]);
    expect(entries.filter((e) => /^(test|bench|models|build|external|pipeline|tasks|engines|\.github|\.vscode|node_modules)\//.test(e))).toEqual([]);
    // Only the bundles and the launcher run; tsc's per-file JS stays home, so does the bundler.
    expect(entries.filter((e) => /\.(m?js)$/.test(e) && !e.startsWith("dist/cli/") && e !== "bin/ai-tools.mjs")).toEqual([]);
    expect(entries.filter((e) => e.startsWith("dist/") && !e.startsWith("dist/cli/") && !e.endsWith(".d.ts"))).toEqual([]);
    expect(entries).not.toContain("scripts/bundle-cli.mjs");
    expect(entries).not.toContain("dist/cli/.bundled");
  });

  it("installs offline with only the external runtime dependencies, and links both bins", () => {
    const installed = join(consumer, "node_modules", PKG.name);
    expect(JSON.parse(readFileSync(join(installed, "package.json"), "utf8")).version).toBe(PKG.version);
    expect(existsSync(join(installed, "pipeline"))).toBe(false);
    expect(existsSync(join(installed, "node_modules"))).toBe(false);
    for (const bin of ["ai-tools", "pipeline"]) expect(existsSync(join(consumer, "node_modules", ".bin", bin))).toBe(true);
    // The bundles carry commander, zod, yaml, got, listr2...: none of them is installed.
    for (const bundled of ["commander", "zod", "yaml", "got", "listr2", "tar"]) expect(existsSync(join(consumer, "node_modules", bundled))).toBe(false);
  });

  it("lets another project import verifyModel from ai-tools/verify: a signed model verifies, a tampered one fails with E_DIGEST_MISMATCH", () => {
    const script = `
      import { verifyModel, loadTrustedKeys, VerifyError } from "ai-tools/verify";
      const trustedKeys = await loadTrustedKeys(${JSON.stringify(trustFile)});
      const ok = await verifyModel(${JSON.stringify(modelDir)}, { trustedKeys });
      let failure;
      try { await verifyModel(${JSON.stringify(tamperedDir)}, { trustedKeys }); } catch (error) {
        failure = { code: error.code, files: error.files, isVerifyError: error instanceof VerifyError };
      }
      console.log(JSON.stringify({
        resolved: import.meta.resolve("ai-tools/verify"),
        ok: { root: ok.rootDigest, key: ok.key.id, files: ok.files.map((f) => f.name) },
        failure,
      }));
    `;
    const out = JSON.parse(mustRun(process.execPath, ["--input-type=module", "-e", script], consumer, consumerEnv()));
    expect(fileURLToPath(out.resolved)).toBe(join(consumer, "node_modules", PKG.name, "dist", "cli", "verify.js"));
    expect(out.ok).toEqual({ root: signedRoot, key: "release", files: ["SHA256SUMS", "tokenizer/vocab.txt", "weights.gguf"] });
    expect(out.failure).toEqual({ code: "E_DIGEST_MISMATCH", files: ["weights.gguf"], isVerifyError: true });
  });

  it("types ai-tools/verify for TypeScript consumers (NodeNext resolution through exports)", () => {
    writeFileSync(
      join(consumer, "check.ts"),
      [
        `import { verifyModel, loadTrustedKeys, isVerifyError, type VerifyResult, type VerifyErrorCode } from "ai-tools/verify";`,
        `const code: VerifyErrorCode = "E_DIGEST_MISMATCH";`,
        `const result: VerifyResult = await verifyModel("m", { trustedKeys: await loadTrustedKeys("k.yaml"), digestCache: true });`,
        `const names: string[] = result.files.map((f) => f.name);`,
        `// @ts-expect-error: the declarations are real types, not any`,
        `await verifyModel(42);`,
        `export { code, names, isVerifyError };`,
        ``,
      ].join("\n"),
    );
    const tsconfig = {
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        // Checking all of @types/node costs seconds; the @ts-expect-error above fails if any declaration went missing.
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [join(REPO, "node_modules", "@types")],
      },
      files: ["check.ts"],
    };
    writeFileSync(join(consumer, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
    const tsc = run(process.execPath, [join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", consumer], consumer, consumerEnv());
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
  });

  it("runs `npx ai-tools verify` from the installed bundle: exit 0 and 'verified', exit 1 on the tampered copy", () => {
    const ok = run("npx", ["--no", "--", "ai-tools", "verify", modelDir, "--trusted-keys", trustFile], consumer, consumerEnv());
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain("verified");
    // No sources next to the installed launcher: it never tries to bundle again.
    expect(ok.stderr).not.toContain("bundling");

    const tampered = run("npx", ["--no", "--", "ai-tools", "verify", tamperedDir, "--trusted-keys", trustFile], consumer, consumerEnv());
    expect(tampered.status, tampered.stdout + tampered.stderr).toBe(1);
    expect(tampered.stderr).toContain("E_DIGEST_MISMATCH");
  });

  it("runs `npx pipeline --version`", () => {
    const version = run("npx", ["--no", "--", "pipeline", "--version"], consumer, consumerEnv());
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toContain(PKG.version);
    expect(version.stderr).not.toContain("bundling");
  });
});
