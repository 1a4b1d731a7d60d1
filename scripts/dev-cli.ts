/**
 * The CLI straight from the TypeScript sources, for debugging: `node --import tsx
 * scripts/dev-cli.ts <command> [options]` (see .vscode/launch.json). Breakpoints bind to
 * pipeline/, tasks/ and engines/ through tsx's source maps. bin/ai-tools.mjs, which
 * users and `pnpm pipeline` run, starts the esbuild bundle in dist/cli/ instead.
 */
import { main } from "../pipeline/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
