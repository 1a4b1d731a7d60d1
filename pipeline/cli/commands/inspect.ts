/** `inspect <file>`: a GGUF / .powerinfer.gguf / .gpuidx header summary. */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { jsonFlag } from "../flags.js";
import { printEvent } from "../output.js";

export const inspect: CliCommand<{ json?: boolean }> = {
  name: "inspect",
  group: "Workspace",
  define: (command) =>
    jsonFlag(
      command.description("a GGUF / .powerinfer.gguf header summary").argument("<file>", "a GGUF file (.gguf, .powerinfer.gguf, .gpuidx)"),
      "the summary as one gguf-summary event on stdout",
    ),
  async run({ args: [file], options }, io) {
    const [{ readGgufHeader }, { formatSummary, summarizeGguf }] = await Promise.all([import("../../gguf/reader.js"), import("../../gguf/validate.js")]);
    // PowerInfer index files (.gpuidx) hold I32 tensors, which plain GGUF readers do not know.
    const summary = summarizeGguf(await readGgufHeader(file!, { powerInferIntegerTypes: true }));
    if (options.json) printEvent(io, { event: "gguf-summary", ...summary });
    else io.out(formatSummary(summary).join("\n") + "\n");
    return EXIT.ok;
  },
};
