/**
 * The loader lines that say what a GPU run really did (powerinfer-users.md §6): how much of
 * the FFN went to the GPU, how much VRAM the model used, how many layers the budget
 * covered, and whether a GPU index was loaded, generated or failed. "offloaded 0.00 MiB"
 * is the most common silent failure: a GPU result without these lines means nothing.
 */
export interface GpuLog {
  /** `llm_load_gpu_split: offloaded X MiB of FFN weights to GPU`. */
  offloadedFfnMiB: number | null;
  /** `VRAM used: X MB`. */
  vramUsedMB: number | null;
  /** `offloaded layers from VRAM budget(<bytes>): a/b`. */
  offloadedLayers: { layers: number; of: number; budgetBytes: number } | null;
  /** `loaded gpu_idx` / the solver ran / `failed to ... gpu split`. */
  gpuIndex: "loaded" | "generated" | "failed" | null;
  /** The matching lines as printed. */
  lines: string[];
}

const OFFLOADED_FFN = /offloaded ([\d.]+) MiB of FFN weights to GPU/;
const VRAM_USED = /VRAM used: ([\d.]+) MB/;
const OFFLOADED_LAYERS = /offloaded layers from VRAM budget\((-?\d+) bytes\): (\d+)\/(\d+)/;
const INDEX_LOADED = /loaded gpu_idx/;
const INDEX_GENERATED = /invoking powerinfer Python module to generate gpu split/;
/** The loader ends up with no index: FFN stays on the CPU. */
const INDEX_FAILED = /failed to generate gpu split|activation files under '.*' not found/;
/** A cached index that did not fit: regenerated next (the solver line follows), so not a failure by itself. */
const INDEX_STALE = /failed to apply previously generated gpu split/;

/** Whether `line` is one of the lines parseGpuLog reads (for collecting them from a stream). */
export function isGpuLogLine(line: string): boolean {
  return [OFFLOADED_FFN, VRAM_USED, OFFLOADED_LAYERS, INDEX_LOADED, INDEX_GENERATED, INDEX_FAILED, INDEX_STALE].some((re) => re.test(line));
}

/** null when the run printed none of them (a CPU build). */
export function parseGpuLog(lines: readonly string[]): GpuLog | null {
  const relevant = lines.filter(isGpuLogLine).map((l) => l.trim());
  if (relevant.length === 0) return null;
  const number = (re: RegExp) => {
    for (const line of relevant) {
      const m = re.exec(line);
      if (m) return Number(m[1]);
    }
    return null;
  };
  const layers = relevant.map((l) => OFFLOADED_LAYERS.exec(l)).find((m) => m);
  const has = (re: RegExp) => relevant.some((l) => re.test(l));
  const index = has(INDEX_FAILED) || (has(INDEX_STALE) && !has(INDEX_GENERATED)) ? "failed" : has(INDEX_GENERATED) ? "generated" : has(INDEX_LOADED) ? "loaded" : null;
  return {
    offloadedFfnMiB: number(OFFLOADED_FFN),
    vramUsedMB: number(VRAM_USED),
    offloadedLayers: layers ? { budgetBytes: Number(layers[1]), layers: Number(layers[2]), of: Number(layers[3]) } : null,
    gpuIndex: index,
    lines: relevant,
  };
}

/**
 * The engine authors' end-to-end metric: tokens generated / (prompt + generation time), in
 * tokens/s (their README's "total prompting + generation time / total tokens generated").
 */
export function endToEndTokensPerSecond(t: { promptEvalMs: number | null; evalMs: number | null; evalRuns: number }): number | null {
  if (t.promptEvalMs === null || t.evalMs === null) return null;
  const seconds = (t.promptEvalMs + t.evalMs) / 1000;
  // evalRuns counts n - 1 tokens: the first comes from the prompt evaluation.
  return seconds > 0 ? (t.evalRuns + 1) / seconds : null;
}
