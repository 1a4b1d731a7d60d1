/** Bounded concurrency for the hashers and the registry transfers. */

/** Runs `work` over `items` with at most `limit` in flight, results in input order. By hand: p-limit would be the verify entry point's only dependency. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  });
  await Promise.all(lanes);
  return results;
}
