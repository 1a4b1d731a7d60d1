/** `--json`: the events themselves, one per line on stdout, for CI. */
import type { PipelineEvent } from "../../core/events.js";

export function jsonReporter(write: (text: string) => void) {
  return (event: PipelineEvent): void => write(JSON.stringify(event) + "\n");
}
