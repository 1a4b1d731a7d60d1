/**
 * `sign <dir>`: SHA256SUMS and model.sig (OpenSSF Model Signing v1.0). A converted model
 * (models/powerinfer/<name> with a recipe) is re-signed by its graph's sign step, which also
 * records provenance.sigstore.json (SLSA v1) from the step records; any other directory is
 * signed as it is.
 */
import { existsSync } from "node:fs";
import { Option } from "commander";
import { UsageError } from "../../core/errors.js";
import type { CliCommand } from "../command.js";
import { EXIT, exitForOutcome } from "../exit.js";
import { buildFlags, collect, conversionFlags, keyFlags } from "../flags.js";
import { convertedModelOf, runGraph, type RunFlags } from "../graph-run.js";
import { printEvent } from "../output.js";

type SignFlags = RunFlags & { ignorePath?: string[] };

export const sign: CliCommand<SignFlags> = {
  name: "sign",
  group: "Sign and verify",
  define(command) {
    command
      .description("sign a model directory: SHA256SUMS, model.sig (OpenSSF Model Signing v1.0) and, for a converted model, provenance.sigstore.json (SLSA v1)")
      .argument("<dir>", "the model directory, e.g. models/powerinfer/<model>")
      .addOption(new Option("--ignore-path <path>", "leave a path out (repeatable; not for a converted model)").argParser(collect))
      .option("--no-wait", "a converted model: fail at once (exit 75) if another run holds its sign step")
      .option("--json", "one sign-result event (a converted model: its graph's events) on stdout");
    // A converted model's sign step checks its dependencies as convert ran them: same build and conversion flags.
    return conversionFlags(buildFlags(keyFlags(command, "; a converted model falls back to build/keys/development.key")));
  },
  async run({ args: [dir], options }, io) {
    const model = await convertedModelOf(io.root, dir!);
    if (model !== undefined) {
      const { outcome } = await runGraph({ graph: "convert", model, flags: options }, io, { only: "sign", force: ["sign"] });
      return exitForOutcome(outcome);
    }
    const [{ loadSigningKey }, { signModelDirectory }] = await Promise.all([import("../../signing/signing-key.js"), import("../../signing/sign.js")]);
    if (!existsSync(dir!)) throw new UsageError(`sign: ${dir} does not exist`);
    const key = await loadSigningKey({ env: io.env, ...(options.key ? { keyFile: options.key } : {}), allowInsecurePermissions: options.allowInsecureKeyPermissions ?? false });
    const result = await signModelDirectory(dir!, { privateKey: key.privateKey, ignorePaths: options.ignorePath ?? [] });
    if (options.json) {
      printEvent(io, { event: "sign-result", dir: dir!, rootDigest: result.rootDigest, keyHint: result.keyHint, files: result.resources.length, written: result.written });
    } else {
      io.out(`signed ${dir}: ${result.resources.length} files, root sha256 ${result.rootDigest}, key ${key.source} (${result.keyHint.slice(0, 16)}…)\n`);
      io.out(`  wrote ${result.written.join(", ")}; no provenance (only \`pnpm pipeline sign\` on a converted model, or convert, records one)\n`);
    }
    return EXIT.ok;
  },
};
