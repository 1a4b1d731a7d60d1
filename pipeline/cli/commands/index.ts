/**
 * The registry: every command of the CLI, one line each. `--help` lists them by their group
 * (command.ts, COMMAND_GROUPS), alphabetically within it.
 *
 * To add a command, e.g. `push`:
 *   1. Write pipeline/cli/commands/push.ts exporting `export const push: CliCommand<PushFlags>`
 *      with `name: "push"`, `group`, `define(command)` (declares the description, arguments and
 *      flags on the commander Command it is given; shared flag groups are in ../flags.ts) and
 *      `run({ args, options }, io)` returning the exit status (../exit.ts). Import libraries
 *      inside run(), not at the top: every command module loads at start-up. A small one to
 *      copy: inspect.ts.
 *   2. Add its line below.
 * Its help page, flag checks, usage errors (E_USAGE, exit 2), `--json` errors and exit
 * status come from the program (../program.ts). A `--json` output is an event: add it to
 * ../events.ts and run `pnpm pipeline schemas`.
 */
export { bench } from "./bench.js";
export { clean } from "./clean.js";
export { convert } from "./convert.js";
export { doctor } from "./doctor.js";
export { download } from "./download.js";
export { drift } from "./drift.js";
export { engine } from "./engine.js";
export { engines } from "./engines.js";
export { inspect } from "./inspect.js";
export { keygen } from "./keygen.js";
export { metrics } from "./metrics.js";
export { models } from "./models.js";
export { plan } from "./plan.js";
export { pull } from "./pull.js";
export { push } from "./push.js";
export { release } from "./release.js";
export { render } from "./render.js";
export { report } from "./report.js";
export { run } from "./run.js";
export { schemas } from "./schemas.js";
export { serve } from "./serve.js";
export { setupPython } from "./setup-python.js";
export { sign } from "./sign.js";
export { status } from "./status.js";
export { verify } from "./verify.js";
