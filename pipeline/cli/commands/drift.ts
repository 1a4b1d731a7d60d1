/** `drift --config <policy>`: the model, policy and engine build against what was signed (exit 3 on drift). */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { jsonFlag, policyFlags, prepareOptionsOf, type PolicyFlags } from "../flags.js";
import { printEvent } from "../output.js";

export const drift: CliCommand<PolicyFlags & { json?: boolean }> = {
  name: "drift",
  group: "Run models",
  define: (command) =>
    jsonFlag(
      policyFlags(command.description("the model, policy, engine build and (for oci:// models) the registry tag against what was signed and pulled (exit 3 on drift)")).option(
        "--trusted-keys <file>",
        "the trust store for a model pulled from a registry (default: configs/trusted-keys.yaml plus the development key)",
      ),
      "one drift event on stdout",
    ),
  async run({ options }, io) {
    const [{ preparePolicy }, { detectDrift }] = await Promise.all([import("../../runtime/prepare.js"), import("../../runtime/drift.js")]);
    const { rendered, pulled } = await preparePolicy(prepareOptionsOf(options, io.root, io.env, io.err));
    // A model run from oci://…: whether its tag still names the artifact that was pulled.
    const report = await detectDrift(rendered, { root: io.root, env: io.env, ...(options.binary ? { binary: options.binary } : {}), ...(pulled ? { pulled } : {}) });
    if (options.json) printEvent(io, { event: "drift", ...report });
    else {
      io.out(`${"".padEnd(2)}${"what".padEnd(8)} ${"item".padEnd(36)} ${"status".padEnd(8)} expected -> actual\n`);
      for (const row of report.rows) {
        io.out(`  ${row.subject.padEnd(8)} ${row.item.padEnd(36)} ${row.status.padEnd(8)} ${row.expected ?? "?"}${row.status === "ok" ? "" : ` -> ${row.actual ?? "?"}`}\n`);
      }
      io.out(report.drift ? `drift: ${report.rows.filter((r) => r.status === "drift").length} difference(s)\n` : "no drift\n");
    }
    return report.drift ? EXIT.drift : EXIT.ok;
  },
};
