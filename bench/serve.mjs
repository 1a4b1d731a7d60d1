#!/usr/bin/env node
// Benchmark: `ai-tools serve`'s OpenAI-compatible front against the engine's own /completion,
// from the same run and the same engine process: requests/s and time to first token, streamed,
// the same prompt, seed and token count, blocks of requests alternating between the two paths.
// The front's extra cost is what is measured: request checking, the queue, the second HTTP hop
// and the re-encoding of every token as an OpenAI chunk.
//
// Usage: node bench/serve.mjs [--requests N] [--concurrency C] [--max-tokens T] [-- <serve args>]
//   default 200 requests per path, 1 client at a time, 16 tokens; serve args default to
//   --config models/powerinfer/tiny-relu-llama/policy.yaml (needs `pnpm pipeline convert
//   tiny-relu-llama`); e.g. `-- --config p.yaml --binary build/bin/server --model m.gguf`.
// The engine gets C + 1 slots (--parallel): a request sent the moment the previous one ended can
// find that slot not yet released ("no slot", asked again after a few ms, on both paths); the
// spare slot keeps that race out of the comparison. Retries are counted and printed.
import { spawn } from "node:child_process";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = process.env.AI_TOOLS_ROOT ?? repo;
const argv = process.argv.slice(2);
const dash = argv.indexOf("--");
const own = dash >= 0 ? argv.slice(0, dash) : argv;
const serveArgs = dash >= 0 ? argv.slice(dash + 1) : ["--config", "models/powerinfer/tiny-relu-llama/policy.yaml"];
const flag = (name, fallback) => {
  const at = own.indexOf(name);
  return at >= 0 ? Number(own[at + 1]) : fallback;
};
const requests = flag("--requests", 200);
const concurrency = flag("--concurrency", 1);
const maxTokens = flag("--max-tokens", 16);
const prompt = "Once upon a time";
const BLOCK = 10;

// ---- the server --------------------------------------------------------------------------
const child = spawn(process.execPath, [join(repo, "bin", "ai-tools.mjs"), "serve", "--port", "0", "--json", "--queue", "1000", "--parallel", String(concurrency + 1), ...serveArgs], {
  cwd: root,
  env: { ...process.env, CI: "true" },
  stdio: ["ignore", "pipe", "pipe"],
});
let stderr = "";
child.stderr.on("data", (d) => (stderr += d));
const ready = await new Promise((resolve, reject) => {
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
    const line = out.split("\n").find((l) => l.includes('"serve-ready"'));
    if (line) resolve(JSON.parse(line));
  });
  child.on("close", (code) => reject(new Error(`serve exited with ${code}:\n${stderr}`)));
});
const model = ready.model;

// ---- one streamed request, either path ---------------------------------------------------------
/**
 * Time to the first non-empty piece of text and to the end of the stream (ms). The same client
 * for both paths: node:http, a new connection per request (as the front itself talks to the
 * engine; fetch's keep-alive pool against the engine's cpp-httplib measured slower and noisier).
 */
async function timed(url, body, textOf, isLast = () => false) {
  const started = performance.now();
  const payload = JSON.stringify(body);
  const response = await new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } }, resolve);
    req.on("error", reject);
    req.end(payload);
  });
  if (response.statusCode !== 200) throw new Error(`${url}: HTTP ${response.statusCode}`);
  const decoder = new TextDecoder();
  let buffer = "";
  let first = null;
  let events = 0;
  for await (const chunk of response) {
    buffer += decoder.decode(chunk, { stream: true });
    let at;
    while ((at = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (!event.startsWith("data: ")) continue;
      events++;
      // The end is the last event (the engine's stop:true, the front's [DONE]), not the connection's
      // close: cpp-httplib writes the chunked terminator in two small writes without TCP_NODELAY,
      // and waiting for the second one would add a delayed-ACK stall to the direct path only.
      if (event === "data: [DONE]" || isLast(JSON.parse(event.slice(6)))) {
        response.destroy();
        return { ttft: first, total: performance.now() - started };
      }
      if (first === null && textOf(JSON.parse(event.slice(6)))) first = performance.now() - started;
    }
  }
// An empty stream: the engine had no free slot (its slot of the last request not yet released).
  if (events === 0) return null;
  return { ttft: first, total: performance.now() - started };
}

/** Asked again after 5, 10, 20 ... ms while the engine has no free slot, as the front does; the retries count in the time. */
const retries = { engine: 0, front: 0 };
async function withRetry(name, request) {
  const started = performance.now();
  for (let delay = 5; ; delay = Math.min(2 * delay, 200)) {
    const result = await request();
    if (result !== null) return { ttft: result.ttft === null ? null : result.ttft + (performance.now() - started - result.total), total: performance.now() - started };
    retries[name]++;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

const paths = {
  engine: {
    label: "engine: POST /completion (direct)",
    run: (i) => withRetry("engine", () => timed(`${ready.engine}/completion`, { prompt, n_predict: maxTokens, seed: i, stream: true }, (e) => e.stop === false && e.content, (e) => e.stop === true)),
  },
  front: {
    label: "ai-tools serve: POST /v1/completions",
    run: (i) => withRetry("front", () => timed(`${ready.url}/completions`, { model, prompt, max_tokens: maxTokens, seed: i, stream: true }, (e) => e.choices?.[0]?.text)),
  },
};

// ---- closed loop, C clients, alternating blocks ---------------------------------------------------
const samples = { engine: [], front: [] };
const wall = { engine: 0, front: 0 };
// Before each request a random pause of 0-6 ms, left out of the time: with no slot busy the engine's
// loop sleeps 5 ms between looks at its queue, so a client that sends the next request the instant
// the last one ended always lands at the start of a sleep, one that is a millisecond slower does not.
// The pause gives both paths the same spread of arrival times.
const JITTER_MS = 6;
async function block(name, from) {
  const started = performance.now();
  let paused = 0;
  let next = from;
  const end = from + BLOCK;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < end) {
        const i = next++;
        const pause = Math.random() * JITTER_MS;
        paused += pause;
        await new Promise((resolve) => setTimeout(resolve, pause));
        samples[name].push(await paths[name].run(i));
      }
    }),
  );
  wall[name] += performance.now() - started - paused / concurrency;
}
// Warm-up (first connections, JIT), not counted.
for (const name of ["engine", "front"]) for (let i = 0; i < 3; i++) await paths[name].run(i);
for (let done = 0; done < requests; done += BLOCK) {
  const order = (done / BLOCK) % 2 === 0 ? ["engine", "front"] : ["front", "engine"];
  for (const name of order) await block(name, done);
}

child.kill("SIGTERM");
await new Promise((resolve) => child.on("close", resolve));

// ---- table ----------------------------------------------------------------------------------------
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const ms = (v) => `${v.toFixed(2)} ms`;
const row = (name) => {
  const s = samples[name];
  const ttft = s.map((x) => x.ttft).filter((x) => x !== null);
  return { label: paths[name].label, n: s.length, rps: s.length / (wall[name] / 1000), ttft50: quantile(ttft, 0.5), ttft95: quantile(ttft, 0.95), total50: quantile(s.map((x) => x.total), 0.5) };
};
const rows = [row("engine"), row("front")];
console.log(`${requests} streamed requests per path, ${concurrency} client(s), ${maxTokens} tokens each, engine ${ready.engine} (${model}, ${concurrency + 1} slots), alternating blocks of ${BLOCK}; "no slot" retries: engine ${retries.engine}, front ${retries.front}\n`);
console.log("| path | requests | requests/s | TTFT median | TTFT p95 | total median |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) console.log(`| ${r.label} | ${r.n} | ${r.rps.toFixed(1)} | ${ms(r.ttft50)} | ${ms(r.ttft95)} | ${ms(r.total50)} |`);
const [e, f] = rows;
console.log(`\nfront vs engine: ${(f.rps / e.rps).toFixed(3)}x requests/s, TTFT median +${(f.ttft50 - e.ttft50).toFixed(2)} ms, total median +${(f.total50 - e.total50).toFixed(2)} ms`);
