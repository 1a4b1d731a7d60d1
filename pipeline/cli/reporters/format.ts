/** Text shared by the plain and TTY reporters. */
import type { TaskErrorEvent } from "../../core/events.js";
import { formatArgv } from "../../core/process.js";

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** What failed, the command it ran, the tool's last lines, and where the full log is. */
export function failureLines(event: TaskErrorEvent): string[] {
  const lines = [`${event.task} failed [${event.code}]: ${event.message}`];
  for (const detail of event.details) lines.push(`  ${detail}`);
  if (event.command) lines.push(`  command: ${formatArgv(event.command)}`);
  const unseen = (event.errorLines ?? []).filter((line) => !event.tail?.includes(line));
  if (unseen.length) {
    lines.push(`  first error lines:`);
    for (const line of unseen) lines.push(`    ${line}`);
  }
  if (event.tail?.length) {
    lines.push(`  last ${event.tail.length} lines of its output:`);
    for (const line of event.tail) lines.push(`    ${line}`);
  }
  if (event.logPath) lines.push(`  full log: ${event.logPath}`);
  return lines;
}
