/**
 * A log line per key at most once per interval (a flood must not become a flood of log lines), saying how many were
 * suppressed meanwhile. Bounded in keys: beyond 256 live keys, they share one line.
 */
export class RateLimitedLog {
  readonly #intervalMs: number;
  readonly #last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(intervalMs = 10_000) {
    this.#intervalMs = intervalMs;
  }

  /** Call `emit(suppressedSinceLast)` unless `key` was logged less than the interval ago. */
  log(key: string, emit: (suppressed: number) => void, nowMs = Date.now()): void {
    let k = key;
    const seen = this.#last.get(k);
    if (seen !== undefined && nowMs - seen.atMs < this.#intervalMs) {
      seen.suppressed++;
      return;
    }
    if (seen === undefined && this.#last.size >= 256) {
      for (const [x, v] of this.#last) if (nowMs - v.atMs >= this.#intervalMs) this.#last.delete(x);
      if (this.#last.size >= 256) {
        k = '*'; // many keys at once: one line for all of them
        const shared = this.#last.get(k);
        if (shared !== undefined && nowMs - shared.atMs < this.#intervalMs) {
          shared.suppressed++;
          return;
        }
      }
    }
    const suppressed = this.#last.get(k)?.suppressed ?? 0;
    this.#last.set(k, { atMs: nowMs, suppressed: 0 });
    emit(suppressed);
  }
}
