/**
 * The executor reports what happens as events; reporters (TTY, plain lines, NDJSON)
 * render them. `--json` prints exactly these objects, one per line: this schema is
 * the CI contract, so fields are added, never renamed (bump `v` otherwise).
 */
export const EVENT_SCHEMA_VERSION = 1;

interface Base {
  v: typeof EVENT_SCHEMA_VERSION;
  /** ISO 8601 time of the event. */
  time: string;
}

export interface GraphStartEvent extends Base {
  event: "graph-start";
  graph: string;
  dryRun: boolean;
  tasks: { id: string; title: string; dependsOn: string[] }[];
}

/** `plan` / `--dry-run`: what would happen and why. */
export interface TaskPlanEvent extends Base {
  event: "task-plan";
  task: string;
  action: "run" | "skip";
  reasons: string[];
}

export interface TaskWaitEvent extends Base {
  event: "task-wait";
  task: string;
  holder: { pid: number; host: string; command: string; since: string };
}

export interface TaskStartEvent extends Base {
  event: "task-start";
  task: string;
  reasons: string[];
  logPath: string;
}

export interface TaskProgressEvent extends Base {
  event: "task-progress";
  task: string;
  percent?: number;
  message?: string;
}

export interface TaskSkipEvent extends Base {
  event: "task-skip";
  task: string;
  reason: "fresh" | "blocked";
  detail: string;
}

export interface TaskEndEvent extends Base {
  event: "task-end";
  task: string;
  durationMs: number;
  fingerprint: string;
}

export interface TaskErrorEvent extends Base {
  event: "task-error";
  task: string;
  code: string;
  message: string;
  details: string[];
  durationMs: number;
  command?: string[];
  exitCode?: number | null;
  /** Last lines of the tool's output. */
  tail?: string[];
  /** The first lines of its output that look like errors. */
  errorLines?: string[];
  logPath?: string;
}

export interface GraphEndEvent extends Base {
  event: "graph-end";
  graph: string;
  status: "success" | "failed" | "aborted";
  durationMs: number;
  counts: { ran: number; fresh: number; failed: number; blocked: number; planned: number };
}

export type PipelineEvent =
  | GraphStartEvent
  | TaskPlanEvent
  | TaskWaitEvent
  | TaskStartEvent
  | TaskProgressEvent
  | TaskSkipEvent
  | TaskEndEvent
  | TaskErrorEvent
  | GraphEndEvent;

/** Distributes Omit over the union, so each event keeps its own fields. */
export type EventPayload = PipelineEvent extends infer E ? (E extends PipelineEvent ? Omit<E, "v" | "time"> : never) : never;

export type EventSink = (event: PipelineEvent) => void;
