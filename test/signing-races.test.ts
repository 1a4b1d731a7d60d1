/**
 * Verifying a directory that changes underneath: files vanishing between the walk and the
 * hash (node:fs is wrapped so the removal lands exactly there), and a real signer re-signing
 * the directory in a loop while it is verified. Every failure must be a typed verify code,
 * never a raw ENOENT or E_INTERNAL.
 */
import { fork } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import * as realFs from "node:fs";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/** Called with each path before the wrapped call runs. */
const hooks: { beforeOpen?: (path: string) => void; beforeLstat?: (path: string) => void } = {};
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  return {
    ...fs,
    openSync: (path: realFs.PathLike, ...rest: unknown[]) => {
      hooks.beforeOpen?.(String(path));
      return (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
    },
    lstatSync: (path: realFs.PathLike, ...rest: unknown[]) => {
      hooks.beforeLstat?.(String(path));
      return (fs.lstatSync as (...a: unknown[]) => realFs.Stats)(path, ...rest);
    },
  };
});

const { signModelDirectory } = await import("../pipeline/signing/sign.js");
const { verifyModel } = await import("../pipeline/signing/verify.js");
const { VerifyError } = await import("../pipeline/signing/errors.js");
const { listModelFiles } = await import("../pipeline/signing/walk.js");

let dir: string;
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const trustedKeys = [{ id: "k", publicKey: publicKey.export({ type: "spki", format: "pem" }) as string }];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "signing-races-"));
  for (let i = 0; i < 20; i++) writeFileSync(join(dir, `part-${i}.bin`), `content ${i}`);
  await signModelDirectory(dir, { privateKey });
});
afterEach(() => {
  hooks.beforeOpen = hooks.beforeLstat = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe("a directory changing during verification", () => {
  it("a signed file removed between the walk and its hash: E_MISSING_FILE naming it, 'vanished while'", async () => {
    hooks.beforeOpen = (path) => {
      if (path.endsWith("part-7.bin")) {
        hooks.beforeOpen = undefined;
        unlinkSync(path);
      }
    };
    const error = await verifyModel(dir, { trustedKeys }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VerifyError);
    expect(error).toMatchObject({ code: "E_MISSING_FILE", files: ["part-7.bin"], message: expect.stringContaining("part-7.bin vanished while the directory was being verified") });
  });

  it("a signer's temporary renamed away between readdir and lstat is simply not there", async () => {
    writeFileSync(join(dir, "SHA256SUMS.tmp-999999-0123abcd"), "x");
    hooks.beforeLstat = (path) => {
      if (path.endsWith("SHA256SUMS.tmp-999999-0123abcd")) unlinkSync(path);
    };
    const listing = await listModelFiles(dir, [], { sizes: true });
    expect(listing.files.map((f) => f.name)).not.toContain("SHA256SUMS.tmp-999999-0123abcd");
    expect(listing.files).toHaveLength(22); // 20 parts, SHA256SUMS, model.sig
  });

  it("verified while another process re-signs it in a loop: passes or fails with a verify code, never a raw error", async () => {
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const signer = fork(join(import.meta.dirname, "helpers", "resign-loop.ts"), [dir], { execArgv: ["--import", "tsx"], env: { ...process.env, RESIGN_KEY: pem }, stdio: "ignore" });
    const outcomes = new Map<string, number>();
    try {
      await new Promise((resolve) => setTimeout(resolve, 500)); // tsx start-up
      const until = Date.now() + 2500;
      while (Date.now() < until) {
        const code = await verifyModel(dir, { trustedKeys }).then(
          () => "ok",
          (error: unknown) => (error instanceof VerifyError ? error.code : `untyped: ${(error as Error).message}`),
        );
        outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
      }
    } finally {
      signer.kill("SIGKILL");
    }
    const codes = [...outcomes.keys()];
    expect(codes.filter((c) => !["ok", "E_EXTRA_FILE", "E_MISSING_FILE", "E_DIGEST_MISMATCH", "E_NO_SIGNATURE", "E_MANIFEST_INVALID"].includes(c)), JSON.stringify([...outcomes])).toEqual([]);
    expect([...outcomes.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(5);
  });
});
