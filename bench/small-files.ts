// Benchmark: signing and verifying a directory of many tiny files (issue 16: 20,001 files of <= 4 bytes took
// 143 s to sign and 99 s to verify), next to `sha256sum -c SHA256SUMS` on the same directory in the same run.
// Everything is timed as a spawned command, start-up included, so the comparison is what a user waits for:
// `ai-tools sign <dir>` and `ai-tools verify <dir>` (the bundled CLI) against coreutils. The library calls
// (signModelDirectory, verifyModel) are timed in-process too. Runs are interleaved; medians are printed.
//
// Usage: npx tsx bench/small-files.ts [--files N] [--runs N]     (defaults: 20000 files, 5 runs)
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { signModelDirectory } from "../pipeline/signing/sign.js";
import { verifyModel } from "../pipeline/signing/verify.js";

const { values } = parseArgs({ options: { files: { type: "string", default: "20000" }, runs: { type: "string", default: "5" } } });
const FILES = Number(values.files);
const RUNS = Number(values.runs);
const repo = join(import.meta.dirname, "..");
const cli = join(repo, "bin", "ai-tools.mjs");
const root = mkdtempSync(join(tmpdir(), "ai-tools-bench-small-"));
try {
  const dir = join(root, "model");
  // 100 files per folder, as a sharded tokenizer or a checkpoint of many small tensors would be.
  for (let i = 0; i < FILES; i++) {
    const folder = join(dir, `part-${String(Math.floor(i / 100)).padStart(3, "0")}`);
    if (i % 100 === 0) mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `f${i}.bin`), "abcd".slice(0, i % 5));
  }
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const keyFile = join(root, "release.key");
  writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }) as string, { mode: 0o600 });
  const pem = publicKey.export({ type: "spki", format: "pem" }) as string;
  const trustFile = join(root, "trusted.yaml");
  writeFileSync(trustFile, `keys:\n  - id: bench\n    publicKey: |\n${pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
  const trustedKeys = [{ id: "bench", publicKey: pem }];

  const time = async (fn: () => unknown) => {
    const start = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  const node = (args: string[], env: NodeJS.ProcessEnv = process.env) => execFileSync(process.execPath, [cli, ...args], { cwd: root, stdio: ["ignore", "ignore", "inherit"], env: { ...env, CI: "true" } });
  // NODE_EXTRA_CA_CERTS makes every Node process parse that bundle at start-up (~30 ms for the
  // ~140 certificates of a distribution's bundle), before any of our code runs: when it is set,
  // the CLI is timed without it too, so the table shows what is ours.
  const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...withoutExtraCa } = process.env;
  node(["sign", dir, "--key", keyFile]); // bundles the CLI if needed, warms the page cache
  const rows = {
    sumsCheck: [] as number[],
    cliVerify: [] as number[],
    cliVerifyNoExtraCa: [] as number[],
    cliSign: [] as number[],
    libVerify: [] as number[],
    libSign: [] as number[],
  };
  for (let r = 0; r < RUNS; r++) {
    rows.sumsCheck.push(await time(() => execFileSync("sha256sum", ["--quiet", "-c", "SHA256SUMS"], { cwd: dir })));
    rows.cliVerify.push(await time(() => node(["verify", dir, "--trusted-keys", trustFile, "--no-provenance"])));
    if (extraCaCerts) rows.cliVerifyNoExtraCa.push(await time(() => node(["verify", dir, "--trusted-keys", trustFile, "--no-provenance"], withoutExtraCa)));
    rows.libVerify.push(await time(() => verifyModel(dir, { trustedKeys, provenance: "skip" })));
    rows.cliSign.push(await time(() => node(["sign", dir, "--key", keyFile])));
    rows.libSign.push(await time(() => signModelDirectory(dir, { privateKey })));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
  const peer = median(rows.sumsCheck);
  const vs = (ms: number) => `${(ms / peer).toFixed(2)}x`;
  console.log(`\n${FILES} files of 0-4 bytes in ${FILES / 100} folders (+ SHA256SUMS), page cache, ${RUNS} interleaved runs (median); ${cpus().length} cores, node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}\n`);
  console.log("| what | median | vs `sha256sum -c` |\n| --- | ---: | ---: |");
  console.log(`| peer: \`sha256sum --quiet -c SHA256SUMS\` (digests only, no signature) | ${fmt(peer)} | 1.00x |`);
  console.log(`| ai-tools: \`ai-tools verify <dir>\` (CLI, start-up included) | ${fmt(median(rows.cliVerify))} | ${vs(median(rows.cliVerify))} |`);
  if (extraCaCerts) console.log(`| ai-tools: \`ai-tools verify <dir>\`, NODE_EXTRA_CA_CERTS unset (set here: Node parses it at start-up) | ${fmt(median(rows.cliVerifyNoExtraCa))} | ${vs(median(rows.cliVerifyNoExtraCa))} |`);
  console.log(`| ai-tools: \`verifyModel\` (library, in-process) | ${fmt(median(rows.libVerify))} | ${vs(median(rows.libVerify))} |`);
  console.log(`| ai-tools: \`ai-tools sign <dir> --key\` (CLI, start-up included) | ${fmt(median(rows.cliSign))} | ${vs(median(rows.cliSign))} |`);
  console.log(`| ai-tools: \`signModelDirectory\` (library, in-process) | ${fmt(median(rows.libSign))} | ${vs(median(rows.libSign))} |`);
  const ratio = median(rows.cliVerify) / peer;
  console.log(`\nverify CLI / sha256sum -c: ${ratio.toFixed(2)}x, goal <= 3x: ${ratio <= 3 ? "met" : "NOT met"}`);
  if (extraCaCerts) {
    const without = median(rows.cliVerifyNoExtraCa) / peer;
    console.log(`without NODE_EXTRA_CA_CERTS: ${without.toFixed(2)}x, goal <= 3x: ${without <= 3 ? "met" : "NOT met"}`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
