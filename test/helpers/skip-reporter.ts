/**
 * A vitest reporter (after the default one) that ends every run with what was skipped and why, then one
 * closing line a CI reader parses: `tests: N passed, N failed, N skipped`.
 *
 * A skip is reported once per unit: the outermost skipped `describe`, or the test itself (an
 * `it.skipIf`, or `ctx.skip(note)` at run time). Its reason is its title, which by this suite's
 * convention says in parentheses what it needs ("(needs ...)", "(opt-in: ...)", "(skipped: ...)"),
 * or the note given to ctx.skip. A skipped unit whose title gives no reason is flagged.
 */
import { relative } from "node:path";
import type { Reporter, TestCase, TestModule, TestSuite } from "vitest/node";
import type { Vitest } from "vitest/node";

/** What a title must say for a skip not to be silent. */
const REASON = /\((needs |opt-in|skipped|runs where|with )/;

/** The outermost suite skipped as a whole above `test`, else the test. */
function skipUnit(test: TestCase): TestCase | TestSuite {
  let unit: TestCase | TestSuite = test;
  for (let parent = test.parent; parent.type === "suite"; parent = parent.parent) {
    if (parent.options.mode === "skip") unit = parent;
  }
  return unit;
}

export default class SkipReporter implements Reporter {
  private vitest?: Vitest;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    const log = (line: string) => (this.vitest ? this.vitest.logger.log(line) : console.log(line));
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const units = new Map<TestCase | TestSuite, { file: string; count: number; note?: string }>();
    for (const module of testModules) {
      const file = relative(process.cwd(), module.moduleId);
      let moduleFailed = false;
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === "passed") passed++;
        else if (result.state === "failed") (failed++, (moduleFailed = true));
        else if (result.state === "skipped") {
          skipped++;
          const unit = skipUnit(test);
          const entry = units.get(unit) ?? { file, count: 0, ...(result.note ? { note: result.note } : {}) };
          entry.count++;
          units.set(unit, entry);
        }
      }
      // A file that failed to load has no failed test: count it, so the closing line never says 0 failed.
      if (module.state() === "failed" && !moduleFailed) failed++;
    }
    failed += unhandledErrors.length;

    if (units.size > 0) {
      log("");
      log(`Skipped: ${skipped} test${skipped === 1 ? "" : "s"}, and why:`);
      for (const [unit, { file, count, note }] of units) {
        const said = note ? `${unit.fullName} (${note})` : unit.fullName;
        const silent = !note && !REASON.test(unit.name);
        log(`  ${file} > ${said}${count > 1 ? ` [${count} tests]` : ""}${silent ? "  <- NO REASON GIVEN: say in the title what it needs" : ""}`);
      }
    }
    log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  }
}
