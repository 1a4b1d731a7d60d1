/**
 * Admission to the engine: as many requests run as it has slots (a request beyond them would
 * get the engine's "slot unavailable"), up to `maxWaiting` more wait in arrival order, and
 * one more is refused at once, with an estimate of when to retry.
 */
export class QueueFullError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super("the request queue is full");
    this.name = "QueueFullError";
  }
}

interface Waiter {
  admit: () => void;
}

export class AdmissionQueue {
  private active = 0;
  private readonly waiters: Waiter[] = [];
  /** Moving average of how long a request holds its slot (ms). */
  private averageMs: number | null = null;

  constructor(
    readonly slots: number,
    readonly maxWaiting: number,
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a positive integer; got ${slots}`);
    if (!Number.isInteger(maxWaiting) || maxWaiting < 0) throw new RangeError(`maxWaiting must be an integer >= 0; got ${maxWaiting}`);
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * A slot: resolves with its release function when one is free. Throws QueueFullError at
   * once when `maxWaiting` requests already wait; rejects with the signal's reason when it
   * aborts while waiting (the place in the queue is given up).
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.active < this.slots && this.waiters.length === 0) return Promise.resolve(this.grant());
    if (this.waiters.length >= this.maxWaiting) return Promise.reject(new QueueFullError(this.retryAfterSeconds()));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        admit: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(this.grant());
        },
      };
      const onAbort = () => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Seconds until a place is likely free: the queue ahead, over the slots, at the average request time (at least 1). */
  retryAfterSeconds(): number {
    const average = this.averageMs ?? 1000;
    return Math.max(1, Math.ceil(((this.waiters.length + 1) * average) / this.slots / 1000));
  }

  private grant(): () => void {
    this.active++;
    const started = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const took = performance.now() - started;
      this.averageMs = this.averageMs === null ? took : 0.8 * this.averageMs + 0.2 * took;
      this.active--;
      this.waiters.shift()?.admit();
    };
  }
}
