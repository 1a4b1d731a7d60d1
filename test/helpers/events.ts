/**
 * `--json` output as a consumer reads it: one JSON object per line, each validated against the
 * committed schemas/events.schema.json (ajv, JSON Schema 2020-12) before a test looks at it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { OutputEvent } from "../../pipeline/cli/events.js";
import { PROJECT_ROOT } from "./workspace.js";

const ajv = new Ajv2020({ allErrors: true, strict: true, validateFormats: false });
const validate = ajv.compile(JSON.parse(readFileSync(join(PROJECT_ROOT, "schemas", "events.schema.json"), "utf8")) as object);

/** Every line of `stdout`, parsed and checked against the event schema; throws naming the line and what is wrong. */
export function parseEvents(stdout: string): OutputEvent[] {
  return stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const value = JSON.parse(line) as unknown;
      if (!validate(value)) throw new Error(`not an event of schemas/events.schema.json: ${line.slice(0, 300)}\n  ${ajv.errorsText(validate.errors, { separator: "\n  " }).slice(0, 2000)}`);
      return value as OutputEvent;
    });
}

/** The events of one kind, narrowed. */
export function eventsOf<K extends OutputEvent["event"]>(events: readonly OutputEvent[], kind: K): Extract<OutputEvent, { event: K }>[] {
  return events.filter((e): e is Extract<OutputEvent, { event: K }> => e.event === kind);
}
