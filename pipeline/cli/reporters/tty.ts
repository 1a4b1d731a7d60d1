/**
 * Rich progress on a terminal, drawn by listr2. The executor stays in charge of the
 * graph; each listr task only mirrors the events of one graph task. Loaded lazily
 * (dynamic import from the CLI), so plain and JSON runs never pay for listr2.
 */
import { Listr, PRESET_TIMER, type ListrTaskWrapper, type DefaultRenderer, type SimpleRenderer } from "listr2";
import type { PipelineEvent, TaskErrorEvent } from "../../core/events.js";
import { failureLines } from "./format.js";

type Wrapper = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

interface Mirror {
  title: string;
  wrapper?: Wrapper;
  pending: PipelineEvent[];
  finish: (error?: Error) => void;
}

export function ttyReporter(writeError: (line: string) => void) {
  const mirrors = new Map<string, Mirror>();
  const failures: TaskErrorEvent[] = [];
  let run: Promise<unknown> | undefined;

  const apply = (mirror: Mirror, event: PipelineEvent) => {
    const task = mirror.wrapper;
    if (!task) {
      mirror.pending.push(event);
      return;
    }
    switch (event.event) {
      case "task-wait":
        task.output = `waiting for pid ${event.holder.pid} (${event.holder.command}), which holds this step`;
        break;
      case "task-start":
        task.output = event.reasons.join("; ");
        break;
      case "task-progress":
        if (event.percent !== undefined) task.title = `${mirror.title} [${event.percent}%]`;
        if (event.message) task.output = event.message;
        break;
      case "task-plan":
        task.title = `${mirror.title}: ${event.action}`;
        task.output = event.reasons.join("; ");
        mirror.finish();
        break;
      case "task-skip":
        // Fresh is the normal, good outcome: a plain tick. Blocked is listr's skip.
        if (event.reason === "fresh") task.title = `${mirror.title}: fresh`;
        else task.skip(`${mirror.title}: ${event.detail}`);
        mirror.finish();
        break;
      case "task-end":
        task.title = mirror.title;
        mirror.finish();
        break;
      case "task-error":
        task.title = mirror.title;
        mirror.finish(new Error(`${event.message}${event.logPath ? ` (log: ${event.logPath})` : ""}`));
        break;
      default:
        break;
    }
  };

  const reporter = (event: PipelineEvent): void => {
    if (event.event === "graph-start") {
      const listr = new Listr(
        event.tasks.map((t) => {
          const mirror: Mirror = { title: t.title, pending: [], finish: () => undefined };
          mirrors.set(t.id, mirror);
          return {
            title: t.title,
            task: (_ctx: unknown, wrapper: Wrapper) =>
              new Promise<void>((resolve, reject) => {
                mirror.finish = (error) => (error ? reject(error) : resolve());
                mirror.wrapper = wrapper;
                for (const queued of mirror.pending.splice(0)) apply(mirror, queued);
              }),
          };
        }),
        {
          concurrent: true,
          exitOnError: false,
          registerSignalListeners: false,
          rendererOptions: { timer: PRESET_TIMER, collapseSkips: false, showErrorMessage: false },
        },
      );
      run = listr.run().catch(() => undefined);
      return;
    }
    if (event.event === "graph-end") return;
    if (event.event === "task-error") failures.push(event);
    const mirror = mirrors.get(event.task);
    if (mirror) apply(mirror, event);
  };

  /** Waits for listr2 to draw its last frame, then prints the failure details. */
  const close = async (event: PipelineEvent | undefined) => {
    for (const mirror of mirrors.values()) mirror.finish();
    await run;
    for (const failure of failures) for (const line of failureLines(failure)) writeError(line);
    if (event?.event === "graph-end") writeError(`${event.graph}: ${event.status}`);
  };
  return { reporter, close };
}
