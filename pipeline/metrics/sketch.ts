/**
 * Streaming quantiles in bounded memory: DDSketch (@datadog/sketches-js). Values fall into
 * buckets whose bounds grow by a constant factor, so every quantile is within 1% of the
 * value at that rank, and memory depends on the range of the values, never on how many.
 */
import { DDSketch } from "@datadog/sketches-js";

export interface QuantileSketch {
  /** Adds one observation. */
  accept(value: number): void;
  /** The value at quantile q in [0, 1]; NaN when empty. */
  getValueAtQuantile(q: number): number;
  /** Adds every observation of `other` (another createSketch() sketch): e.g. two time buckets becoming one. */
  merge(other: QuantileSketch): void;
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
}

/** Relative error of every quantile: 1%. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;

/** The DDSketch behind each sketch handed out, for merge(). */
const inner = new WeakMap<QuantileSketch, DDSketch>();

export function createSketch(): QuantileSketch {
  const sketch = new DDSketch({ relativeAccuracy: SKETCH_RELATIVE_ACCURACY });
  const wrapper: QuantileSketch = {
    accept: (value) => sketch.accept(value),
    getValueAtQuantile: (q) => (sketch.count === 0 ? Number.NaN : sketch.getValueAtQuantile(q)),
    merge: (other) => {
      const source = inner.get(other);
      if (!source) throw new TypeError("merge: not a sketch from createSketch()");
      sketch.merge(source);
    },
    get count() {
      return sketch.count;
    },
    get sum() {
      return sketch.sum;
    },
    get min() {
      return sketch.min;
    },
    get max() {
      return sketch.max;
    },
  };
  inner.set(wrapper, sketch);
  return wrapper;
}
