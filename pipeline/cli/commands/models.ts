/** `models`: the model recipes (configs/models/powerinfer/), with what each needs and whether it runs. */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { jsonFlag } from "../flags.js";
import { recipeRoot } from "../graph-run.js";
import { printEvent } from "../output.js";

export const models: CliCommand<{ json?: boolean }> = {
  name: "models",
  group: "Workspace",
  define: (command) => jsonFlag(command.description("the model recipes (configs/models/powerinfer/)"), "one model event per recipe on stdout"),
  async run({ options }, io) {
    const { listRecipes } = await import("../../config/recipe.js");
    const recipes = await listRecipes(await recipeRoot(io.root));
    if (options.json) {
      for (const r of recipes) {
        if (r.ok) {
          const { file: _file, ...summary } = r;
          printEvent(io, { event: "model", ...summary });
        } else printEvent(io, { event: "model", name: r.name, ok: false, error: r.error.message });
      }
      return EXIT.ok;
    }
    const size = (bytes: number | undefined) => (bytes === undefined ? "?" : `${(bytes / 1e9).toFixed(1)} GB`);
    const width = Math.max(24, ...recipes.map((r) => r.name.length));
    io.out(`${"model".padEnd(width)} ${"kind".padEnd(11)} ${"size".padStart(8)}  ${"source repo".padEnd(42)} predictor / file\n`);
    for (const r of recipes) {
      if (!r.ok) {
        io.out(`${r.name.padEnd(width)} ${"".padEnd(11)} ${"".padStart(8)}  broken recipe: ${r.error.message}\n`);
        continue;
      }
      const notes = [
        r.verified || r.kind === "local" ? "" : "unverified repo ids",
        r.gated ? "gated: needs HF_TOKEN" : "",
        r.kind === "unsupported" ? "refused: not runnable or convertible on the pinned engine" : r.unsupported ? "cannot be converted by the pinned engine" : "",
        r.origin === "workspace" ? (r.overrides ? "workspace recipe: overrides the built-in one" : "workspace recipe") : "",
      ]
        .filter(Boolean)
        .join("; ");
      io.out(`${r.name.padEnd(width)} ${r.kind.padEnd(11)} ${size(r.sizeBytes).padStart(8)}  ${r.modelRepo.padEnd(42)} ${r.ggufFile ? `${r.ggufFile} (${r.ggufType})` : r.predictorRepo}${notes ? `  (${notes})` : ""}\n`);
    }
    return EXIT.ok;
  },
};
