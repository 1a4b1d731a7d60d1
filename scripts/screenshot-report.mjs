#!/usr/bin/env node
// A full-page PNG of a report in headless Chromium (Debian's /usr/bin/chromium, or AI_TOOLS_CHROMIUM), as the
// README's screenshot was made:
//   node scripts/screenshot-report.mjs build/report/index.html docs/report.png [light|dark] [width]
// (then `pngquant --quality 70-95 --strip` keeps it small).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [page, out, scheme = "light", width = "1200"] = process.argv.slice(2);
if (!page || !out || !["light", "dark"].includes(scheme) || !(Number(width) > 0)) {
  console.error("usage: node scripts/screenshot-report.mjs <report.html> <out.png> [light|dark] [width]");
  process.exit(2);
}
// Without the last four flags Chromium keeps trying to reach Google's services and hangs on a closed network.
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const profile = mkdtempSync(join(tmpdir(), "ai-tools-chromium-profile-"));
try {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.AI_TOOLS_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args,
    viewport: { width: Number(width), height: 900 },
    colorScheme: scheme,
  });
  const tab = context.pages()[0] ?? (await context.newPage());
  await tab.goto(pathToFileURL(resolve(page)).href, { waitUntil: "load" });
  await tab.screenshot({ path: out, fullPage: true });
  await context.close();
  console.log(`wrote ${out}`);
} finally {
  rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}
