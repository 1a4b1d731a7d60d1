/**
 * Bounded concurrency, for everything that must not do all at once: the hashers, the Hub's
 * files and connections, the registry transfers. One library (p-limit) behind two shapes.
 */
import pLimit from "p-limit";

/** A shared limit several callers schedule into (e.g. the Hub's connections across files). */
export type Limiter = ReturnType<typeof pLimit>;

export function limiter(concurrency: number): Limiter {
  return pLimit(concurrency);
}

/**
 * Runs `work` over `items` with at most `limit` in flight, results in input order. The first
 * failure rejects, and what has not started yet never starts.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const run = pLimit(limit);
  // p-limit starts the next item in the same tick a failure settles, before Promise.all rejects: the flag stops it.
  let failed = false;
  const guarded = (item: T) => async () => {
    if (failed) return undefined as R;
    try {
      return await work(item);
    } catch (error) {
      failed = true;
      throw error;
    }
  };
  try {
    return await Promise.all(items.map((item) => run(guarded(item))));
  } finally {
    run.clearQueue();
  }
}
