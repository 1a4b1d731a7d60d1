/**
 * Vega-Lite spec -> static SVG, in Node (vega's headless renderer: no browser, no canvas). Text widths are estimated
 * (no canvas package), which only affects label placement.
 */
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/**
 * The chart as an SVG string. `idPrefix` makes the ids vega writes (clip paths, gradients) unique, so several charts
 * can be inlined into one page without one chart's `url(#clip1)` pointing at another's.
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const { spec: vegaSpec } = compile(spec);
  const view = new View(parse(vegaSpec), { renderer: "none", logLevel: 1 /* errors only */ });
  try {
    const svg = await view.toSVG();
    return prefixIds(svg, idPrefix);
  } finally {
    view.finalize();
  }
}

/** Rewrites `id="x"`, `url(#x)` and `href="#x"` to `<prefix>-x`. */
export function prefixIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_m, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}-${id})`)
    .replace(/\b(xlink:href|href)="#([^"]+)"/g, (_m, attr: string, id: string) => `${attr}="#${prefix}-${id}"`);
}
