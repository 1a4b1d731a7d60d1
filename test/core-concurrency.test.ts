/**
 * core/concurrency.ts: the bounded map the hashers and registry transfers use keeps input
 * order, never has more than its limit in flight, and after a failure starts nothing new.
 */
import { describe, expect, it } from "vitest";
import { mapLimit } from "../pipeline/core/concurrency.js";

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("mapLimit", () => {
  it("returns results in input order with at most `limit` in flight", async () => {
    let inFlight = 0;
    let most = 0;
    const results = await mapLimit([5, 1, 4, 2, 3, 0, 6], 3, async (n) => {
      most = Math.max(most, ++inFlight);
      for (let i = 0; i < n; i++) await tick();
      inFlight--;
      return n * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30, 0, 60]);
    expect(most).toBe(3);
  });

  it("rejects with the first failure and starts no item after it", async () => {
    const started: number[] = [];
    const failing = mapLimit([0, 1, 2, 3, 4, 5, 6, 7], 2, async (n) => {
      started.push(n);
      await tick();
      if (n === 1) throw new Error("item 1 failed");
      return n;
    });
    await expect(failing).rejects.toThrow("item 1 failed");
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(started).toEqual([0, 1, 2]);
  });

  it("handles an empty list", async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });
});
