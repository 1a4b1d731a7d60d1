/** `render --config <policy>`: the policy as it would run here (or on --host): every value and where it came from. */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { jsonFlag, policyFlags, prepareOptionsOf, type PolicyFlags } from "../flags.js";
import { printEvent } from "../output.js";

export const render: CliCommand<PolicyFlags & { json?: boolean }> = {
  name: "render",
  group: "Run models",
  define: (command) => jsonFlag(policyFlags(command.description("the policy as it would run here: every value and its source")), "one rendered-policy event on stdout"),
  async run({ options }, io) {
    const { preparePolicy } = await import("../../runtime/prepare.js");
    const { rendered } = await preparePolicy(prepareOptionsOf(options, io.root, io.env, io.err));
    if (options.json) {
      printEvent(io, { event: "rendered-policy", ...rendered });
      return EXIT.ok;
    }
    const rows: [string, unknown][] = [
      ["engine", rendered.engine],
      ["model_path", rendered.modelPath],
      ...Object.entries(rendered.generation).map(([k, v]) => [`generation.${k}`, v] as [string, unknown]),
      ...Object.entries(rendered.runtime).map(([k, v]) => [`runtime.${k}`, v] as [string, unknown]),
    ];
    const gpus = rendered.host.gpus.length ? rendered.host.gpus.map((g) => `${g.name} ${(g.memoryTotalBytes / 2 ** 30).toFixed(0)} GiB`).join(", ") : "no GPU";
    io.out(`${rendered.file} for host ${rendered.host.name} (${rendered.host.physicalCores} physical cores, ${(rendered.host.memoryBytes / 2 ** 30).toFixed(1)} GiB RAM, ${gpus})\n`);
    for (const [key, value] of rows) {
      const source = rendered.sources[key];
      const shown = value === null ? "(not set)" : JSON.stringify(value);
      io.out(`  ${key.padEnd(28)} ${shown.padEnd(24)} ${source ? source.source : "default"}${source?.note ? `: ${source.note}` : ""}\n`);
    }
    io.out(`  policy hash ${rendered.policyHash}\n`);
    for (const warning of rendered.warnings) io.err(`warning: ${warning}`);
    return EXIT.ok;
  },
};
