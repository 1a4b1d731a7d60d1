/**
 * `release <model>`: what a CI release job runs: convert, signed with a configured key (not
 * the development one), the bench gate against --baseline, and the manifest folder to
 * publish. --dry-run shows exactly that without running it.
 */
import { join } from "node:path";
import { PipelineError } from "../../core/errors.js";
import type { CliCommand } from "../command.js";
import { EXIT, exitForOutcome } from "../exit.js";
import { buildFlags, conversionFlags, gateFlags, graphFlags, keyFlags, transferFlags } from "../flags.js";
import { recipeRoot, runGraph } from "../graph-run.js";
import { printEvent } from "../output.js";
import { reportBench, type BenchFlags } from "./bench.js";

export const release: CliCommand<BenchFlags> = {
  name: "release",
  group: "Build and convert",
  define(command) {
    command
      .description("what a CI release job runs: convert (signed with a configured key, not the development one), the bench gate against --baseline, the manifest to publish")
      .argument("<model>", "a model recipe (see `models`)");
    return gateFlags(keyFlags(conversionFlags(transferFlags(buildFlags(graphFlags(command)))), "; a release refuses the development key"));
  },
  async run({ args: [model], options }, io) {
    const [{ loadRecipe }, { configuredKeySource }] = await Promise.all([import("../../config/recipe.js"), import("../../signing/signing-key.js")]);
    const development = configuredKeySource({ env: io.env, ...(options.key ? { keyFile: options.key } : {}) }) === null;
    if (development && !options.dryRun) {
      throw new PipelineError("E_SIGNING_KEY", "a release is signed with a configured key, not the development key: set AI_TOOLS_SIGNING_KEY (a CI secret), AI_TOOLS_SIGNING_KEY_FILE, or pass --key", {
        details: ["`pnpm pipeline convert <model>` signs with the development key for local use."],
      });
    }
    const { outcome, workspace } = await runGraph({ graph: "convert", model: model!, flags: options }, io);
    const { recipe } = await loadRecipe(await recipeRoot(workspace.root), model!);
    const manifestDir = join(development ? join("build", "manifests") : "manifests", model!, recipe.audit.model_version);
    const baseline = options.compare ?? options.baseline;
    const report = (gateFailed: boolean | null) =>
      options.json && printEvent(io, { event: "release", model: model!, dryRun: options.dryRun ?? false, manifestDir, developmentKey: development, baseline: baseline ?? null, maxRegressionPercent: options.maxRegression, gateFailed });
    if (options.dryRun) {
      if (options.json) report(null);
      else {
        const bench = join("models", "powerinfer", model!, "bench.json");
        io.out(`then: bench gate: ${baseline ? `compare ${bench} with ${baseline} (fail above ${options.maxRegression}% slower eval tokens/s), Markdown table to $GITHUB_STEP_SUMMARY` : "no --baseline: skipped"}\n`);
        io.out(`then: publish ${manifestDir}/ (model.sig, provenance.sigstore.json, SHA256SUMS, bench.json, policy.yaml)${development ? "  [no signing key configured: a real release refuses to run]" : ""}\n`);
      }
      return exitForOutcome(outcome);
    }
    if (outcome.status !== "success") {
      report(null);
      return exitForOutcome(outcome);
    }
    // With a baseline: the gate and its table; without: the result table (both to $GITHUB_STEP_SUMMARY with --markdown / a baseline).
    const gate = baseline || options.markdown ? await reportBench(io, workspace.root, model!, { ...options, markdown: true }) : EXIT.ok;
    if (options.json) report(gate !== EXIT.ok);
    else io.out(`release ${model}: signed files in ${manifestDir}/${gate === EXIT.ok ? "" : " (bench gate failed)"}\n`);
    return gate;
  },
};
