/** `engines`: the registered engines: available or not, version, how they would run. */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { binaryFlag, jsonFlag } from "../flags.js";
import { printEvent } from "../output.js";

export const engines: CliCommand<{ binary?: string; json?: boolean }> = {
  name: "engines",
  group: "Run models",
  define: (command) => jsonFlag(command.description("registered engines: available, version, how they run").addOption(binaryFlag()), "one engine event per engine on stdout"),
  async run({ options }, io) {
    const { engineNames, getEngine } = await import("../../../engines/registry.js");
    for (const name of engineNames()) {
      const engine = await getEngine(name, { root: io.root, env: io.env, ...(options.binary ? { binary: options.binary } : {}) });
      const probe = await engine.probe().catch((error: Error) => ({ name, available: false, version: null, commit: null, via: null, detail: error.message }));
      if (options.json) printEvent(io, { event: "engine", ...engine.info(), ...probe });
      else io.out(`${name.padEnd(11)} ${(probe.available ? "available" : "absent").padEnd(9)} ${probe.version ?? ""}${probe.via ? `  via ${probe.via}` : ""}\n${"".padEnd(21)} ${probe.detail}\n`);
    }
    return EXIT.ok;
  },
};
