// Child process of signing-races.test.ts: re-signs a directory (argv[2]) in a loop, as a
// release job re-signing a model in place would, changing one file each round, until killed.
import { createPrivateKey } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { signModelDirectory } from "../../pipeline/signing/sign.js";

const dir = process.argv[2]!;
const privateKey = createPrivateKey(process.env.RESIGN_KEY!);
for (let round = 0; ; round++) {
  writeFileSync(join(dir, "part-0.bin"), `round ${round}`);
  await signModelDirectory(dir, { privateKey });
}
