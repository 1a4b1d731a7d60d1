#!/usr/bin/env node
// The verify step's report: reads what `ai-tools verify --json` printed (one verify-result
// object, or an error event for bad usage), prints one summary line (also to the job summary),
// sets the step outputs and, when verification failed, emits an `::error title=<code>::`
// annotation and exits 1. Node built-ins only: it runs before anything else is installed.
//
//   node report.mjs <result.json> <ai-tools exit status> <model dir>
import { appendFileSync, readFileSync } from "node:fs";

const [resultFile, statusText = "", dir = "model"] = process.argv.slice(2);
const status = Number(statusText);

/** The last JSON object on stdout that is a verify result (or a usage/config error event). */
function readResult(file) {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const objects = text
    .split("\n")
    .map((line) => {
      try {
        return JSON.parse(line);
      } catch {
        return undefined;
      }
    })
    .filter((o) => o && typeof o === "object" && (o.event === "verify-result" || o.event === "error"));
  return objects.at(-1);
}

// Workflow command escaping (as @actions/core does): data escapes %, CR, LF; properties also : and ,.
const escapeData = (s) => String(s).replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
const escapeProperty = (s) => escapeData(s).replaceAll(":", "%3A").replaceAll(",", "%2C");

function setOutputs(values) {
  const file = process.env.GITHUB_OUTPUT;
  if (!file) return;
  appendFileSync(file, Object.entries(values).map(([k, v]) => `${k}=${String(v).replace(/[\r\n]+/g, " ")}\n`).join(""));
}

function summary(line) {
  console.log(line);
  if (process.env.GITHUB_STEP_SUMMARY) appendFileSync(process.env.GITHUB_STEP_SUMMARY, `${line}\n`);
}

const result = readResult(resultFile);

if (status === 0 && result?.event === "verify-result" && result.ok === true) {
  const files = Array.isArray(result.files) ? result.files.length : 0;
  const keyId = result.key?.id ?? "?";
  const provenance = result.provenance ? `; provenance: ${result.provenance.modelId ?? "?"} built by ${result.provenance.builderId}` : "";
  summary(`✅ verified ${dir}: ${files} files, root sha256 ${result.rootDigest}, signed by ${keyId}${provenance}`);
  setOutputs({ verified: "true", "error-code": "", "root-digest": result.rootDigest ?? "", "key-id": keyId });
  process.exit(0);
}

// Verification failed (exit 1), bad usage or an unreadable input (exit 2), or no result at all.
const code = result?.code ?? (status === 2 ? "E_USAGE" : "E_INTERNAL");
const message = result?.message ?? `ai-tools verify exited with status ${statusText || "?"} and printed no result`;
const files = Array.isArray(result?.files) && result.files.length > 0 ? ` (${result.files.join(", ")})` : "";
const details = Array.isArray(result?.details) ? result.details : [];
console.log(`::error title=${escapeProperty(code)}::${escapeData([`${code}: ${dir}: ${message}${files}`, ...details].join("\n"))}`);
summary(`❌ ${dir} did not verify: ${code}: ${message}${files}`);
setOutputs({ verified: "false", "error-code": code, "root-digest": "", "key-id": "" });
process.exit(1);
