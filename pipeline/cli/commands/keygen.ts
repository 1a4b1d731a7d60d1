/** `keygen --out <prefix>`: an ECDSA P-256 signing key, <prefix>.key (mode 0600) and <prefix>.pub. */
import { relative, resolve } from "node:path";
import { Option } from "commander";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";
import { printEvent } from "../output.js";

interface KeygenFlags {
  out: string;
  force?: boolean;
  json?: boolean;
}

export const keygen: CliCommand<KeygenFlags> = {
  name: "keygen",
  group: "Sign and verify",
  define: (command) =>
    command
      .description("an ECDSA P-256 signing key: <prefix>.key (mode 0600; encrypted with env AI_TOOLS_SIGNING_KEY_PASSPHRASE when set) and <prefix>.pub")
      .addOption(new Option("--out <prefix>", "where to write the key pair, e.g. keys/release").makeOptionMandatory())
      .option("--force", "replace an existing key pair")
      .option("--json", "one keygen event on stdout"),
  async run({ options }, io) {
    const [{ generateKeyFiles, PASSPHRASE_ENV }, { TRUSTED_KEYS_FILE }] = await Promise.all([import("../../signing/signing-key.js"), import("../../signing/trust-store.js")]);
    const passphrase = io.env[PASSPHRASE_ENV];
    const key = await generateKeyFiles(resolve(options.out), { ...(passphrase ? { passphrase } : {}), force: options.force ?? false });
    if (options.json) {
      printEvent(io, { event: "keygen", keyFile: key.keyFile, publicKeyFile: key.publicKeyFile, hint: key.hint, sshFingerprint: key.sshFingerprint, encrypted: Boolean(passphrase) });
      return EXIT.ok;
    }
    const show = (p: string) => relative(process.cwd(), p) || p;
    io.out(`wrote ${show(key.keyFile)} (ECDSA P-256, PKCS#8, mode 0600${passphrase ? `, encrypted with ${PASSPHRASE_ENV}` : ""}) and ${show(key.publicKeyFile)}\n`);
    io.out(`key hint ${key.hint}\nssh fingerprint ${key.sshFingerprint}\n\n`);
    io.out(`Trust it where models are verified (${TRUSTED_KEYS_FILE}):\n`);
    io.out(`keys:\n  - id: ${options.out.split("/").pop()}\n    notBefore: ${new Date().toISOString().slice(0, 10)}T00:00:00Z\n    publicKey: |\n${key.publicKeyPem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n")}\n`);
    return EXIT.ok;
  },
};
