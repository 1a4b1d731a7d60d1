/** ReportData -> the HTML page: every chart compiled to SVG, then the page around them. */
import { benchChartSpec, runtimeChartSpec } from "./charts.js";
import { renderReportHtml, type RenderedChart } from "./html.js";
import type { ReportData } from "./report-data.js";
import { renderSvg } from "./svg.js";

export async function renderReport(data: ReportData): Promise<{ html: string; charts: number }> {
  const charts: RenderedChart[] = [];
  for (const group of data.bench.groups) {
    charts.push({ kind: "bench", model: group.model, hostClass: group.hostClass, svg: await renderSvg(benchChartSpec(group), `c${charts.length}`) });
  }
  if (data.metrics) {
    const { timeline } = data.metrics;
    for (const model of [...new Set(timeline.series.map((s) => s.model))]) {
      charts.push({ kind: "runtime", model, svg: await renderSvg(runtimeChartSpec(model, timeline.series, timeline.bucketMs), `c${charts.length}`) });
    }
  }
  return { html: renderReportHtml(data, charts), charts: charts.length };
}
