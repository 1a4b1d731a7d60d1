import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // The default report, then what was skipped and why, and a closing "tests: N passed, N failed, N skipped".
    reporters: ["default", "./test/helpers/skip-reporter.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: CLI tests spawn cmake builds; more workers would only contend.
    maxWorkers: 2,
  },
});
