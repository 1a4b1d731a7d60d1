/** `setup-python`: a venv in build/python-venv with numpy<2 and sentencepiece, which the converter then uses. */
import { join } from "node:path";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";

export const setupPython: CliCommand<Record<string, never>> = {
  name: "setup-python",
  group: "Workspace",
  define: (command) => command.description("a venv in build/python-venv with numpy<2 and sentencepiece (needs a package index)"),
  async run(_invocation, io) {
    const [{ setupPythonVenv }, { openWorkspace }] = await Promise.all([import("../../python.js"), import("../../workspace.js")]);
    const workspace = openWorkspace(io.root, io.env);
    const py = await setupPythonVenv({ root: workspace.root, env: workspace.env, logFile: join(workspace.logDir, "setup-python.log") });
    io.out(`${py.path}: Python ${py.version}, numpy ${py.modules.numpy}, sentencepiece ${py.modules.sentencepiece}; the converter will use it.\n`);
    return EXIT.ok;
  },
};
