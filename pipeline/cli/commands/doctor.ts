/** `doctor`: every tool the pipeline needs: found (version, path), or how to install it. */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { jsonFlag } from "../flags.js";
import { printEvent } from "../output.js";

export const doctor: CliCommand<{ json?: boolean }> = {
  name: "doctor",
  group: "Workspace",
  define: (command) => jsonFlag(command.description("every tool the pipeline needs: found, or how to install it (exit 1 when a required one is missing)"), "one doctor event per tool on stdout"),
  async run({ options }, io) {
    const [{ runDoctor }, { openWorkspace }] = await Promise.all([import("../../doctor.js"), import("../../workspace.js")]);
    const rows = await runDoctor(openWorkspace(io.root, io.env));
    // One column for the names, as wide as the longest ("python for convert-hf-to-powerinfer-gguf.py").
    const width = Math.max(...rows.map((r) => r.name.length));
    for (const row of rows) {
      if (options.json) printEvent(io, { event: "doctor", ...row });
      else {
        const mark = row.status === "ok" ? "ok     " : row.status === "missing" ? "MISSING" : "absent ";
        io.out(`${mark} ${row.name.padEnd(width)} ${row.detail}\n`);
        if (row.hint) io.out(`        ${"".padEnd(width)} -> ${row.hint}\n`);
      }
    }
    return rows.some((r) => r.status === "missing") ? EXIT.failed : EXIT.ok;
  },
};
