/**
 * `push <model|dir> oci://HOST/REPO:TAG`: a converted, signed model directory to a registry
 * as a CNCF ModelPack artifact (one raw layer per signed file, activation/ as one
 * deterministic tar), model.sig and the provenance attached as referrers. The directory is
 * verified first, so nothing broken is published; blobs the registry has cost one HEAD.
 */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { Option } from "commander";
import { collect, integerIn, registryFlags, trustFlags, type RegistryFlags, type TrustFlags } from "../flags.js";
import { formatBytes, printEvent, shownPath } from "../output.js";

interface PushFlags extends RegistryFlags, TrustFlags {
  mountFrom?: string[];
  chunkSize?: number;
  json?: boolean;
}

export const push: CliCommand<PushFlags> = {
  name: "push",
  group: "Distribute",
  define(command) {
    command
      .description("publish a signed model directory to an OCI registry (ModelPack layout; signature and provenance as referrers)")
      .argument("<model>", "a converted model's name (models/powerinfer/<model>) or a signed model directory")
      .argument("<reference>", "oci://HOST[:PORT]/REPOSITORY[:TAG], e.g. oci://ghcr.io/acme/models/tiny:v1");
    command
      .addOption(new Option("--mount-from <repository>", "a repository of the same registry that may hold some blobs already (repeatable; pushes and pulls are remembered too)").argParser(collect))
      .addOption(new Option("--chunk-size <MiB>", "blobs larger than this go in chunks of this size (default 64)").argParser(integerIn(1, 4096)));
    trustFlags(command, "the directory is verified against it before anything is uploaded");
    registryFlags(command);
    return command;
  },
  async run({ args: [model, reference], options }, io) {
    const [{ existsSync, statSync }, { join, resolve }, { pushWorkspaceModel }, { prepareTransfer }] = await Promise.all([
      import("node:fs"),
      import("node:path"),
      import("../../registry/transfer.js"),
      import("../registry-transfer.js"),
    ]);
    const { UsageError } = await import("../../core/errors.js");
    const named = join(io.root, "models", "powerinfer", model!);
    const dir = existsSync(model!) && statSync(model!).isDirectory() ? resolve(model!) : named;
    if (!existsSync(dir)) throw new UsageError(`push: ${model} is neither a directory nor a converted model (no ${shownPath(io.root, named)}); convert it first: pnpm pipeline convert ${model}`);
    const { trust, access, progress } = await prepareTransfer("push", reference!, options, io);
    const result = await pushWorkspaceModel({
      root: io.root,
      dir,
      reference: reference!,
      ...trust,
      ...access,
      ...(options.chunkSize ? { chunkSize: options.chunkSize * 2 ** 20 } : {}),
      ...(options.mountFrom ? { mountFrom: options.mountFrom } : {}),
      ...(progress ? { onProgress: progress.push } : {}),
    }).finally(() => progress?.done());
    const count = (outcome: string) => result.blobs.filter((b) => b.outcome === outcome).length;
    if (options.json) {
      printEvent(io, {
        event: "push",
        reference: result.reference,
        digest: result.digest,
        tag: result.tag ?? null,
        dir: shownPath(io.root, dir),
        blobs: result.blobs.map(({ name, digest, size, outcome, bytesSent, resumedFrom }) => ({ name, digest, size, outcome, bytesSent, resumedFrom })),
        bytesSent: result.bytesSent,
        referrers: result.referrers,
      });
      return EXIT.ok;
    }
    io.out(`pushed ${shownPath(io.root, dir)} to ${result.reference}\n`);
    io.out(`  ${result.blobs.length} blobs: ${count("uploaded")} uploaded (${formatBytes(result.bytesSent)}), ${count("exists")} already there, ${count("mounted")} mounted\n`);
    const via = [...new Set(result.referrers.map((r) => (r.via === "api" ? "Referrers API" : "tag-schema index: the registry has no Referrers API")))].join(", ");
    io.out(`  signed by ${result.verified.key.id}; ${result.referrers.map((r) => r.file).join(" and ") || "nothing"} attached as referrers${via ? ` (${via})` : ""}\n`);
    io.out(`  pull it with: pnpm pipeline pull ${result.reference}\n`);
    return EXIT.ok;
  },
};
