/**
 * The CLI's name and version line, from package.json: the program's `--version` and main's
 * answer to a bare `--version`, which needs neither commander nor the command modules.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../root.js";

/** The flags that print the version (commander declares them; main answers them alone). */
export const VERSION_FLAGS = ["-V", "--version"] as const;

export interface PackageInfo {
  version: string;
  description: string;
}

export function packageInfo(): PackageInfo {
  return JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as PackageInfo;
}

/** "ai-tools 0.1.0". */
export function versionLine(info: PackageInfo = packageInfo()): string {
  return `ai-tools ${info.version}`;
}
