/**
 * Choosing the converter's Python: a missing module or NumPy 2 is a one-line reason
 * with the install command, never a traceback.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { choosePython, installHint, probePython, rejectionReason } from "../pipeline/python.js";

const dir = mkdtempSync(join(tmpdir(), "ai-tools-python-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in interpreter that answers the probe with the given modules. */
function fakePython(name: string, modules: Record<string, string | null>): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho '${JSON.stringify({ version: "3.11.2", executable: path, modules })}'\n`);
  chmodSync(path, 0o755);
  return path;
}

describe("rejectionReason", () => {
  it("accepts numpy < 2 with sentencepiece", () => {
    expect(rejectionReason({ path: "p", version: "3.11", modules: { numpy: "1.24.2", sentencepiece: "0.1.97" } }, ["numpy", "sentencepiece"])).toBeNull();
  });

  it("says why NumPy 2 cannot run the converter", () => {
    expect(rejectionReason({ path: "p", version: "3.12", modules: { numpy: "2.4.6", sentencepiece: "0.2.0" } }, ["numpy", "sentencepiece"])).toBe(
      "numpy 2.4.6: the converter needs numpy < 2 (it calls newbyteorder, removed in NumPy 2)",
    );
  });

  it("names the missing modules", () => {
    expect(rejectionReason({ path: "p", version: "3.12", modules: { numpy: "1.26.4", sentencepiece: null } }, ["numpy", "sentencepiece"])).toBe("missing sentencepiece");
  });
});

describe("probePython", () => {
  it("reads what an interpreter can import", async () => {
    const py = fakePython("py-numpy2", { numpy: "2.1.0", sentencepiece: null });
    expect(await probePython(py, ["numpy", "sentencepiece"])).toEqual({ path: py, version: "3.11.2", modules: { numpy: "2.1.0", sentencepiece: null } });
    expect(await probePython(join(dir, "does-not-exist"), ["numpy"])).toBeNull();
  });

  it("install hints name the Debian packages and pip's numpy<2", () => {
    const hint = installHint(["numpy", "sentencepiece"]);
    expect(hint).toContain("apt-get install python3-numpy python3-sentencepiece");
    expect(hint).toContain("'numpy<2'");
  });
});

describe("choosePython", () => {
  it("takes the first candidate that can run the converter", async () => {
    const good = fakePython("py-good", { numpy: "1.24.2", sentencepiece: "0.1.97" });
    const numpy2 = fakePython("python3", { numpy: "2.1.0", sentencepiece: "0.2.0" });
    const chosen = await choosePython(["numpy", "sentencepiece"], { root: dir, env: { PATH: dir, AI_TOOLS_PYTHON: good }, systemPythons: [] });
    expect(chosen).toMatchObject({ path: good, source: "AI_TOOLS_PYTHON" });
    const fromPath = await choosePython(["numpy", "sentencepiece"], { root: dir, env: { PATH: dir }, systemPythons: [good] });
    expect(fromPath).toMatchObject({ path: good, source: "system" });
    expect(numpy2).toBe(join(dir, "python3"));
  });

  it("with no suitable Python: one error listing each candidate's reason and what to install", async () => {
    fakePython("python3", { numpy: "2.1.0", sentencepiece: "0.2.0" });
    const noSp = fakePython("py-no-sp", { numpy: "1.26.4", sentencepiece: null });
    const error = await choosePython(["numpy", "sentencepiece"], { root: dir, env: { PATH: dir }, flag: noSp, systemPythons: [] }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "E_PYTHON_UNSUITABLE", message: "no Python can run the converter: it needs numpy<2, sentencepiece." });
    const details = (error as { details: string[] }).details;
    expect(details[0]).toBe(`${noSp} (--python, Python 3.11.2): missing sentencepiece`);
    expect(details[1]).toBe(`${join(dir, "python3")} (PATH, Python 3.11.2): numpy 2.1.0: the converter needs numpy < 2 (it calls newbyteorder, removed in NumPy 2)`);
    expect(details.at(-1)).toContain("apt-get install python3-numpy python3-sentencepiece");
  });
});
