/** `clean [model]`: temporaries, stale engine builds and bench logs [and the model's outputs]; --cache: partial Hub downloads [and the model's Hub repos]. */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { recipeRoot } from "../graph-run.js";
import { formatBytes, printEvent, shownPath } from "../output.js";

interface CleanFlags {
  cache?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export const clean: CliCommand<CleanFlags> = {
  name: "clean",
  group: "Workspace",
  define: (command) =>
    command
      .description("remove temporaries, stale engine builds and bench logs [and the model's outputs]")
      .argument("[model]", "also this model's outputs (models/powerinfer/<model>/, its step records)")
      .option("--cache", "the Hugging Face cache too: partial downloads [and the model's Hub repos]")
      .option("--dry-run", "say what would be removed, remove nothing")
      .option("--json", "one clean event on stdout"),
  async run({ args: [model], options }, io) {
    const [{ planClean, executeClean }, { hubSettings }] = await Promise.all([import("../../clean.js"), import("../../hub/env.js")]);
    let modelRepos: string[] = [];
    if (model !== undefined && options.cache) {
      const { loadRecipe, recipeHubRepos } = await import("../../config/recipe.js");
      const { recipe } = await loadRecipe(await recipeRoot(io.root), model);
      modelRepos = recipeHubRepos(recipe);
    }
    const dryRun = options.dryRun ?? false;
    const { items, kept } = planClean({ root: io.root, cache: options.cache ?? false, hubCacheDir: hubSettings(io.env).cacheDir, modelRepos, ...(model !== undefined ? { model } : {}) });
    const total = items.reduce((sum, i) => sum + i.bytes, 0);
    if (options.json) printEvent(io, { event: "clean", dryRun, items: items.map((i) => ({ ...i, path: shownPath(io.root, i.path) })), kept, bytes: total });
    else {
      for (const item of items) io.out(`${dryRun ? "would remove" : "removing"} ${shownPath(io.root, item.path)} (${formatBytes(item.bytes)}): ${item.why}\n`);
      for (const k of kept) io.out(`kept ${k}\n`);
    }
    if (!dryRun) await executeClean(items);
    if (!options.json) io.out(`${dryRun ? "would free" : "freed"} ${formatBytes(total)} in ${items.length} path${items.length === 1 ? "" : "s"}\n`);
    return EXIT.ok;
  },
};
