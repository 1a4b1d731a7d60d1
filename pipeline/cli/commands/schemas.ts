/** `schemas`: the JSON Schemas of the YAML files (for editors) and of the --json events, written to schemas/. */
import { join } from "node:path";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";

/** The file the --json events' schema is written to. */
export const EVENTS_SCHEMA_FILE = "events.schema.json";

export const schemas: CliCommand<Record<string, never>> = {
  name: "schemas",
  group: "Workspace",
  define: (command) => command.description("write the JSON Schemas of the YAML files and of the --json events to schemas/"),
  async run(_invocation, io) {
    const [{ writeFile }, { writeSchemas }, { eventsJsonSchema }] = await Promise.all([import("node:fs/promises"), import("../../policy/json-schema.js"), import("../events.js")]);
    const dir = join(io.root, "schemas");
    const written = await writeSchemas(dir);
    const events = join(dir, EVENTS_SCHEMA_FILE);
    await writeFile(events, JSON.stringify(eventsJsonSchema(), null, 2) + "\n");
    for (const file of [...written, events]) io.out(`wrote ${file}\n`);
    return EXIT.ok;
  },
};
