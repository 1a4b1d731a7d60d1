/**
 * `ai-tools report` on a fixture workspace (test/helpers/report-workspace.ts: results on two host classes over three
 * releases, a 10,000-line metrics log, a drifted and a tampered model), opened in a real headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core; one launch for the file). What a reader would notice: the page loads
 * nothing and logs no error, every chart draws one mark per data point the workspace holds (counted from the design,
 * not from the report), the tampered model shows its error code, the drifted one its engine build, and it reads in
 * light and dark (screenshots; AI_TOOLS_REPORT_SCREENSHOTS=<dir> keeps them).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/workspace.js";
import {
  DESIGNED_RESULTS,
  DRIFTED_MODEL,
  INTACT_MODEL,
  LOG_HOURS,
  LOG_SERIES,
  LOG_START,
  MALFORMED_LINES,
  makeReportWorkspace,
  metricsLogLines,
  TAMPERED_MODEL,
  type DesignedResult,
  type ReportWorkspace,
} from "./helpers/report-workspace.js";

const CHROMIUM = process.env.AI_TOOLS_CHROMIUM ?? "/usr/bin/chromium";
/** As a closed network needs them: without the last four Chromium keeps trying to reach Google's services and hangs. */
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];


const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The gate by its definition: generation median more than 10% down and the run ranges apart. */
function failsGate(old: DesignedResult, next: DesignedResult): boolean {
  return median(next.evalTps) < median(old.evalTps) * 0.9 && Math.max(...next.evalTps) < Math.min(...old.evalTps);
}

describe.skipIf(!existsSync(CHROMIUM))("the report in Chromium", () => {
  let ws: ReportWorkspace;
  let context: BrowserContext;
  let page: Page;
  let event: Record<string, unknown>;
  let shots: string;
  let profile: string;
  const consoleErrors: string[] = [];
  const requests: string[] = [];
  const keepShots = process.env.AI_TOOLS_REPORT_SCREENSHOTS;

  beforeAll(async () => {
    ws = await makeReportWorkspace();
    const out = join(ws.root, "build", "report", "index.html");
    const result = await runCli(["report", "--metrics-log", ws.metricsLog, "--baseline", ws.gpuResults, "--json"], ws.env);
    expect(result.code, result.stderr).toBe(0);
    event = JSON.parse(result.stdout.trim()) as Record<string, unknown>;
    expect(event).toMatchObject({ v: 1, event: "report", file: out });

    shots = keepShots ?? mkdtempSync(join(tmpdir(), "ai-tools-report-shots-"));
    mkdirSync(shots, { recursive: true });
    profile = mkdtempSync(join(tmpdir(), "ai-tools-chromium-profile-"));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 900 }, colorScheme: "light" });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(out).href, { waitUntil: "load" });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    // Chromium's helper processes may still be letting go of the profile for a moment after close.
    if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    if (!keepShots && shots) rmSync(shots, { recursive: true, force: true });
    ws?.cleanup();
  });

  /** Elements a layer named `name` drew in the chart of `selector` (vega: `g.<name>_marks > path|line`). */
  const marks = (selector: string, name: string) => page.locator(`${selector} svg g.${name}_marks > :is(path, line)`).count();

  it("loads only itself, with no console error", async () => {
    expect(consoleErrors).toEqual([]);
    expect(requests).toEqual([page.url()]);
    const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute("content");
    expect(csp).toMatch(/^default-src 'none'/);
  });

  it("has one bench chart per model and host class, with a point and a spread bar per result and metric, the gate's threshold per gated result and a ring per failure", async () => {
    const groups = new Map<string, DesignedResult[]>();
    for (const d of DESIGNED_RESULTS) groups.set(`${d.model}|${d.hostClass}`, [...(groups.get(`${d.model}|${d.hostClass}`) ?? []), d]);
    expect(await page.locator('figure[data-chart="bench"]').count()).toBe(groups.size);
    for (const [key, results] of groups) {
      const [model, hostClass] = key.split("|");
      const chart = `figure[data-chart="bench"][data-model="${model}"][data-host-class="${hostClass}"]`;
      const sorted = [...results].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
      const withEndToEnd = sorted.filter((d) => !d.noEndToEnd).length;
      for (const [metric, n] of [["generation", sorted.length], ["prompt", sorted.length], ["end_to_end", withEndToEnd]] as const) {
        expect(await marks(chart, `${metric}_points`), `${key} ${metric} points`).toBe(n);
        expect(await marks(chart, `${metric}_spread`), `${key} ${metric} spread bars`).toBe(n);
        expect(await marks(chart, `${metric}_band`), `${key} ${metric} band`).toBe(n > 0 ? 1 : 0);
      }
      expect(await marks(chart, "gate_threshold"), `${key} gate thresholds`).toBe(sorted.length - 1);
      const failures = sorted.slice(1).filter((d, i) => failsGate(sorted[i]!, d)).length;
      expect(await marks(chart, "gate_failed"), `${key} gate failures`).toBe(failures);
    }
    // Not vacuous: the design has a failure, and the page's table says which result it was.
    expect(await page.locator('figure[data-chart="bench"] svg g.gate_failed_marks > path').count()).toBe(1);
    const failedRow = page.locator("table.bench tr", { has: page.locator(".pill.bad") });
    await expect(failedRow.textContent()).resolves.toMatch(/^v0\.3.*FAILED: eval tokens\/s .*-18\.\d%/);
  });

  it("has one runtime chart per model in the log, with p50/p95/p99 per hour and engine version, and peak memory", async () => {
    // 48 hours with at most 60 buckets: 1-hour buckets.
    const { records } = metricsLogLines();
    const keys = [...new Set(LOG_SERIES.map((s) => s.key))];
    expect(await page.locator('figure[data-chart="runtime"]').count()).toBe(keys.length);
    for (const key of keys) {
      const chart = `figure[data-chart="runtime"][data-model="${key}"]`;
      const own = records.filter((r) => `${r.model.name}@${r.model.version}` === key && r.exitStatus === "ok");
      const buckets = (pick: (r: (typeof own)[number]) => unknown) => new Set(own.filter((r) => pick(r) !== undefined).map((r) => `${r.engine.version}|${Math.floor((Date.parse(r.time) - LOG_START) / 3_600_000)}`)).size;
      const engines = new Set(own.map((r) => r.engine.version)).size;
      expect(await marks(chart, "latency_points"), `${key} latency`).toBe(3 * buckets((r) => r.metrics!.totalMs));
      expect(await marks(chart, "ttft_points"), `${key} ttft`).toBe(3 * buckets((r) => r.metrics!.timeToFirstTokenMs));
      expect(await marks(chart, "latency_line"), `${key} latency lines`).toBe(3 * engines);
      expect(await marks(chart, "memory_points"), `${key} memory`).toBe(buckets((r) => r.metrics!.peakRssBytes) + buckets((r) => r.metrics!.gpuMemoryBytes));
    }
    // The powerinfer model changed engine version half-way: two series of 24 hours each.
    expect(await marks(`figure[data-chart="runtime"][data-model="model.powerinfer.gguf@v0.3"]`, "latency_points")).toBe(3 * LOG_HOURS);
    await expect(page.locator("#runtime").textContent()).resolves.toContain(`${MALFORMED_LINES.length} malformed lines`);
  });

  it("shows the tampered model's error code, the drifted model's engine build, and the intact model verified", async () => {
    const tampered = page.locator(`table.verification tr[data-model="${TAMPERED_MODEL}"]`);
    await expect(tampered.getAttribute("data-status")).resolves.toBe("failed");
    await expect(tampered.textContent()).resolves.toContain("E_DIGEST_MISMATCH");
    await expect(page.locator(`table.verification tr[data-model="${DRIFTED_MODEL}"]`).textContent()).resolves.toMatch(/verified.*key release-2025/);
    const drifted = page.locator(`table.drift tr[data-model="${DRIFTED_MODEL}"]`);
    await expect(drifted.getAttribute("data-drift")).resolves.toBe("true");
    await expect(drifted.locator("td").nth(3).textContent()).resolves.toMatch(/^drift.*source commit: 7e1a3c9d0b8f… → d3ebd7c56663….*main sha256/);
    await expect(page.locator(`table.drift tr[data-model="${INTACT_MODEL}"]`).getAttribute("data-drift")).resolves.toBe("false");
    await expect(page.locator(`table.provenance tr[data-model="${INTACT_MODEL}"]`).textContent()).resolves.toMatch(/verified.*make-tiny-relu-llama\.py \(seed 0\).*d3ebd7c56663, cpu, build 1590.*convert\.py/);
    expect(event.models).toEqual([
      { name: "bamboo-base-7b", verification: "failed", code: "E_DIGEST_MISMATCH", drift: true },
      { name: "relu-llama-2-7b", verification: "verified", keyId: "release-2025", drift: true },
      { name: "tiny-relu-llama", verification: "verified", keyId: "release-2025", drift: false },
    ]);
  });

  it("reads in light and dark: axis text follows the theme; screenshots of both", async () => {
    // Expressions evaluated in the page (strings: this project's TypeScript has no DOM types).
    const colours = () =>
      page.evaluate(`({
        background: getComputedStyle(document.body).backgroundColor,
        text: getComputedStyle(document.body).color,
        axisLabel: getComputedStyle(document.querySelector("figure.chart svg .role-axis-label text")).fill,
      })`);
    const light = await colours();
    await page.screenshot({ path: join(shots, "report-light.png"), fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    const dark = await colours();
    await page.screenshot({ path: join(shots, "report-dark.png"), fullPage: true });
    expect(light).toEqual({ background: "rgb(255, 255, 255)", text: "rgb(28, 31, 36)", axisLabel: "rgb(28, 31, 36)" });
    expect(dark).toEqual({ background: "rgb(20, 22, 26)", text: "rgb(227, 230, 234)", axisLabel: "rgb(227, 230, 234)" });
    // The switch overrides the system: dark system, light page.
    await page.locator("button#theme").click();
    await expect(page.locator("html").getAttribute("data-theme")).resolves.toBe("light");
    await expect(page.evaluate("getComputedStyle(document.body).backgroundColor")).resolves.toBe("rgb(255, 255, 255)");
    for (const name of ["report-light.png", "report-dark.png"]) {
      const png = readFileSync(join(shots, name));
      expect(png.subarray(1, 4).toString()).toBe("PNG");
      expect(statSync(join(shots, name)).size).toBeGreaterThan(50_000);
    }
    expect(consoleErrors).toEqual([]);
  });
});
