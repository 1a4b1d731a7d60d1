/**
 * `pull oci://HOST/REPO:TAG|@sha256:…`: a model from a registry into the shared local store
 * (blobs by digest, never fetched twice), then a model directory that is verified like
 * `verify` before it gets its name. A pull by tag prints the digest it resolved to;
 * --require-digest refuses tags (production).
 */
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { registryFlags, trustFlags, type RegistryFlags, type TrustFlags } from "../flags.js";
import { formatBytes, printEvent, shownPath } from "../output.js";

interface PullFlags extends RegistryFlags, TrustFlags {
  to?: string;
  requireDigest?: boolean;
  replace?: boolean;
  json?: boolean;
}

export const pull: CliCommand<PullFlags> = {
  name: "pull",
  group: "Distribute",
  define(command) {
    command
      .description("fetch a signed model from an OCI registry into the local store and a verified model directory")
      .argument("<reference>", "oci://HOST[:PORT]/REPOSITORY:TAG or oci://HOST/REPOSITORY@sha256:DIGEST")
      .option("--to <dir>", "the model directory to create (default: models/powerinfer/<last part of the repository>)")
      .option("--require-digest", "refuse a tag: only @sha256:… references (a tag can be moved)")
      .option("--replace", "replace the directory when it exists");
    trustFlags(command, "the pulled model must be signed by it");
    registryFlags(command);
    return command;
  },
  async run({ args: [reference], options }, io) {
    const [{ pullWorkspaceModel }, { prepareTransfer }] = await Promise.all([import("../../registry/transfer.js"), import("../registry-transfer.js")]);
    const { trust, access, progress } = await prepareTransfer("pull", reference!, options, io);
    const result = await pullWorkspaceModel({
      root: io.root,
      reference: reference!,
      ...trust,
      ...access,
      ...(options.to ? { to: options.to } : {}),
      ...(options.requireDigest ? { requireDigest: true } : {}),
      ...(options.replace ? { replace: true } : {}),
      ...(progress ? { onProgress: progress.pull } : {}),
    }).finally(() => progress?.done());
    const fetched = result.blobs.filter((b) => b.fetched);
    if (options.json) {
      printEvent(io, {
        event: "pull",
        reference: result.reference,
        digest: result.digest,
        tag: result.tag ?? null,
        dir: shownPath(io.root, result.dir),
        blobs: result.blobs.map(({ name, digest, size, fetched, resumedFrom }) => ({ name, digest, size, fetched, resumedFrom })),
        bytesFetched: result.bytesFetched,
        key: result.verified.key.id,
      });
      return EXIT.ok;
    }
    const size = result.verified.files.reduce((n, f) => n + f.size, 0);
    io.out(`pulled ${result.reference} into ${shownPath(io.root, result.dir)}\n`);
    io.out(`  ${result.verified.files.length} files (${formatBytes(size)}); ${fetched.length} of ${result.blobs.length} blobs fetched (${formatBytes(result.bytesFetched)}), the rest from the store\n`);
    io.out(`  verified: signed by ${result.verified.key.id}, root sha256 ${result.verified.rootDigest}\n`);
    if (result.tag) io.out(`  pin it: ${result.reference.replace(`:${result.tag}@`, "@")}\n`);
    return EXIT.ok;
  },
};
