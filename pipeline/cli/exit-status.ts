/**
 * The CLI's exit statuses and what each means: the help page's "Exit codes" line is
 * generated from EXIT_MEANINGS; error-table.ts gives every error code one of them.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, drift: 3, busy: 75, interrupted: 130 } as const;

export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_MEANINGS: Readonly<Record<ExitStatus, string>> = {
  0: "ok",
  1: "a step, the verification, the engine or the bench gate failed",
  2: "bad usage or configuration",
  3: "drift found (drift)",
  75: "busy (--no-wait)",
  130: "interrupted",
};
