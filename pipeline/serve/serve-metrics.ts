/**
 * /metrics: the per-request numbers `run` logs (the metrics records, summarized by the same
 * accumulator as `ai-tools metrics summary`, rendered by the same Prometheus writer), plus the
 * server's own gauges: queue, running requests, refusals and whether the engine is up.
 * Memory is bounded by the number of models, not of requests (quantile sketches).
 */
import type { MetricsRecord } from "../metrics/record.js";
import { renderPrometheusText } from "../metrics/prometheus.js";
import { MetricsAccumulator } from "../metrics/summary.js";

export interface ServeState {
  running: number;
  waiting: number;
  engineUp: boolean;
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export class ServeMetrics {
  private readonly accumulator = new MetricsAccumulator();
  /** Requests refused with 503 because the queue was full. */
  rejected = 0;

  add(record: MetricsRecord): void {
    this.accumulator.addRecord(record);
  }

  render(state: ServeState): string {
    const family = (name: string, type: "counter" | "gauge", help: string, value: number) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
    return (
      renderPrometheusText(this.accumulator.result()) +
      family("ai_tools_serve_rejected_total", "counter", "Requests refused with 503 because the request queue was full.", this.rejected) +
      family("ai_tools_serve_requests_running", "gauge", "Requests holding an engine slot.", state.running) +
      family("ai_tools_serve_requests_waiting", "gauge", "Requests waiting for an engine slot.", state.waiting) +
      family("ai_tools_serve_engine_up", "gauge", "1 while the engine server answers, else 0.", state.engineUp ? 1 : 0)
    );
  }
}
