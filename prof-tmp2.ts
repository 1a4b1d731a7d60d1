import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signModelDirectory } from "./pipeline/signing/sign.js";
import { verifyModel } from "./pipeline/signing/verify.js";
const dir = join(mkdtempSync(join(tmpdir(), "sfprof-")), "m");
for (let i = 0; i < 20000; i++) { const f = join(dir, `part-${String(Math.floor(i / 100)).padStart(3, "0")}`); if (i % 100 === 0) mkdirSync(f, { recursive: true }); writeFileSync(join(f, `f${i}.bin`), "abcd".slice(0, i % 5)); }
const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const pem = publicKey.export({ type: "spki", format: "pem" }) as string;
await signModelDirectory(dir, { privateKey });
const { Session } = await import("node:inspector/promises");
const s = new Session(); s.connect(); await s.post("Profiler.enable"); await s.post("Profiler.start");
for (let r = 0; r < 3; r++) { const t = performance.now(); await verifyModel(dir, { trustedKeys: [{ id: "k", publicKey: pem }], provenance: "skip" }); console.log("verify", performance.now() - t); }
const { profile } = await s.post("Profiler.stop");
const self = new Map<string, number>();
const byId = new Map(profile.nodes.map((n: any) => [n.id, n]));
const dt = profile.timeDeltas; const samples = profile.samples;
for (let i = 0; i < samples.length; i++) { const n: any = byId.get(samples[i]); const k = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").slice(-2).join("/")}:${n.callFrame.lineNumber}`; self.set(k, (self.get(k) ?? 0) + dt[i] / 1000); }
console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, 22).map(([k, v]) => `${(v/3).toFixed(1)} ms  ${k}`).join("\n"));
