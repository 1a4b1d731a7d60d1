/**
 * Stop sequences matched in streamed text, the same way for every backend that streams
 * text pieces: text that could be the start of a stop sequence is held back until the
 * next piece shows whether it is, so nothing at or past a stop is ever emitted.
 */
export class StopScanner {
  private held = "";
  constructor(private readonly stops: readonly string[]) {}

  /** What may be emitted now; `stop` is the sequence that ended the text, if one did (what follows it is dropped). */
  push(piece: string): { emit: string; stop?: string } {
    const text = this.held + piece;
    let hit: { at: number; stop: string } | undefined;
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (hit === undefined || at < hit.at)) hit = { at, stop };
    }
    if (hit) {
      this.held = "";
      return { emit: text.slice(0, hit.at), stop: hit.stop };
    }
    let keep = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, text.length); k > keep; k--) {
        if (text.endsWith(stop.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    this.held = text.slice(text.length - keep);
    return { emit: text.slice(0, text.length - keep) };
  }

  /** The held-back text, at the end of the stream. */
  flush(): string {
    const text = this.held;
    this.held = "";
    return text;
  }
}
