/** `schemas`: the JSON Schemas of the YAML files (for editors) and of the --json events, written to schemas/. */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Command } from "commander";
import type { CliCommand } from "../command.js";
import { EXIT } from "../exit.js";

/** The file the --json events' schema is written to. */
export const EVENTS_SCHEMA_FILE = "events.schema.json";

export const schemas: CliCommand<Record<string, never>> = {
  group: "Workspace",
  define: () => new Command("schemas").description("write the JSON Schemas of the YAML files and of the --json events to schemas/"),
  async run(_invocation, io) {
    const [{ writeSchemas }, { eventsJsonSchema }] = await Promise.all([import("../../policy/json-schema.js"), import("../events.js")]);
    const dir = join(io.root, "schemas");
    const written = await writeSchemas(dir);
    const events = join(dir, EVENTS_SCHEMA_FILE);
    await writeFile(events, JSON.stringify(eventsJsonSchema(), null, 2) + "\n");
    for (const file of [...written, events]) io.out(`wrote ${file}\n`);
    return EXIT.ok;
  },
};
