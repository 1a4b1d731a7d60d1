/**
 * One line per event, for CI logs and pipes (no cursor movement). Progress is
 * thinned to every 10% so a build does not print hundreds of lines.
 */
import { assertNever } from "../../core/errors.js";
import type { PipelineEvent } from "../../core/events.js";
import { failureLines, seconds } from "./format.js";

export function plainReporter(write: (line: string) => void, options: { showPlan: boolean }) {
  const lastDecile = new Map<string, number>();
  return (event: PipelineEvent): void => {
    switch (event.event) {
      case "graph-start":
        write(`${event.dryRun ? "plan for" : "running"} ${event.graph}: ${event.tasks.map((t) => t.id).join(" -> ")}`);
        return;
      case "task-plan":
        if (options.showPlan) write(`  ${event.task.padEnd(10)} ${event.action.padEnd(4)}  ${event.reasons.join("; ")}`);
        return;
      case "task-wait":
        write(`[${event.task}] waiting: pid ${event.holder.pid} on ${event.holder.host} (${event.holder.command}) holds this step since ${event.holder.since}`);
        return;
      case "task-start":
        write(`[${event.task}] run: ${event.reasons.join("; ")}`);
        return;
      case "task-progress": {
        // Notes and warnings always show; plain progress only by the tenth.
        if (event.message && /^(note|warning): /.test(event.message)) {
          write(`[${event.task}] ${event.message}`);
          return;
        }
        if (event.percent === undefined) return;
        const decile = Math.floor(event.percent / 10);
        if ((lastDecile.get(event.task) ?? -1) >= decile) return;
        lastDecile.set(event.task, decile);
        write(`[${event.task}] ${event.percent}%${event.message ? ` ${event.message}` : ""}`);
        return;
      }
      case "task-skip":
        write(`[${event.task}] ${event.reason === "fresh" ? "fresh, skipped" : event.detail}`);
        return;
      case "task-end":
        write(`[${event.task}] done in ${seconds(event.durationMs)}`);
        return;
      case "task-error":
        for (const line of failureLines(event)) write(line.startsWith(" ") ? line : `[${event.task}] ${line}`);
        return;
      case "graph-end": {
        const c = event.counts;
        const summary = options.showPlan ? `${c.planned} to run` : `${c.ran} ran, ${c.fresh} fresh, ${c.failed} failed, ${c.blocked} not run`;
        write(`${event.graph}: ${event.status} in ${seconds(event.durationMs)} (${summary})`);
        return;
      }
      default:
        assertNever(event);
    }
  };
}
