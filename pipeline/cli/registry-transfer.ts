/**
 * What push and pull do before a byte moves: the reference checked (the cheapest mistake to
 * report, before any file or key is read), the trust read from the flags (its notes on
 * stderr), the registry access from the flags, and a progress line on a terminal.
 */
import type { RegistryAccess, ModelTrust } from "../registry/transfer.js";
import type { RegistryFlags, TrustFlags } from "./flags.js";
import type { CliIo } from "./output.js";
import { progressLine, type ProgressLine } from "./progress.js";

export interface TransferSetup {
  trust: ModelTrust;
  access: RegistryAccess & { concurrency?: number };
  progress: ProgressLine | undefined;
}

export async function prepareTransfer(verb: "push" | "pull", reference: string, options: RegistryFlags & TrustFlags & { json?: boolean }, io: CliIo): Promise<TransferSetup> {
  const [{ parseReference }, { trustFromFlags }] = await Promise.all([import("../registry/reference.js"), import("../signing/trust-store.js")]);
  parseReference(reference);
  const { keys, certificateRoots, notes } = await trustFromFlags(options, io.root);
  if (!options.json) for (const note of notes) io.err(`note: ${note}`);
  return {
    trust: { trustedKeys: keys, certificateRoots },
    access: {
      env: io.env,
      ...(options.insecure ? { insecure: true } : {}),
      ...(options.registryCa ? { caFile: options.registryCa } : {}),
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    },
    progress: options.json ? undefined : progressLine(io, verb),
  };
}
