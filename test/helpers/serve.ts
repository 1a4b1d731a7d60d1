/**
 * `ai-tools serve` started as a user starts it, on a free port, returned once it says where
 * it serves (the build of its engine server may come first).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { CLI, type TestWorkspace } from "./workspace.js";

export interface Served {
  child: ChildProcess;
  /** http://127.0.0.1:PORT (the API is under /v1). */
  base: string;
  enginePid: number;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function serveCli(ws: TestWorkspace, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", ...args], { cwd: ws.root, env: { ...ws.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stdout!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  const ready = await new Promise<RegExpExecArray | null>((resolve) => {
    child.stderr!.on("data", (d) => {
      stderr += d;
      const match = /^serving \S+ at (http:\/\/[\d.]+:\d+)\/v1 .*pid (\d+)\)$/m.exec(stderr);
      if (match) resolve(match);
    });
    void exit.then(() => resolve(null));
  });
  if (!ready) throw new Error(`serve did not start:\n${stderr}`);
  return { child, base: ready[1]!, enginePid: Number(ready[2]), stderr: () => stderr, exit };
}
