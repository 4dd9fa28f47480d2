/**
 * How far ahead of the clock the decoders of the cues playing (live segments, not prerolls) are, and whether one of
 * them has packets waiting while it is not ahead: then it needs the CPU, and a preroll's next packet waits (see
 * OutputFollower#onPreroll).
 *
 * Why: a player that has just started prepares every armed cue (bench:go: 12 cues, about 300 MB of pictures written
 * into new pool slots, 0.7 s of page faults alone on this VM) while its first GO's cue, unarmed, catches up with the
 * clock. In session 19's bench:go runs every held tick of a DNxHD cue (8–30 a run) fell in a player's first 8 s, its
 * decoder 1–3 pictures ahead while the player's prerolls decoded beside it. Waiting only for the live decoders' queued
 * work (OutputFollower#liveIdle) let a preroll's packet in between two of theirs.
 */
import { performance } from 'node:perf_hooks';

/** What is known of one live decoder. */
interface Live {
  /** Decodes queued and not finished. */
  pending: number;
  /** The clock position (s) the pictures it gave cover up to; -Infinity before the first. */
  coveredTo: number;
}

/** The live video decoders' lead, for prerolls to wait behind. One per follower. */
export class LiveLead {
  readonly #live = new Map<object, Live>();
  /** Waiters of untilAhead, woken at every change. */
  readonly #waiters = new Set<() => void>();

  /** A decode was queued for live decoder `key`. */
  queued(key: object): void {
    const l = this.#live.get(key);
    if (l === undefined) this.#live.set(key, { pending: 1, coveredTo: -Infinity });
    else l.pending++;
  }

  /** A decode queued for `key` finished (or was skipped). */
  done(key: object): void {
    const l = this.#live.get(key);
    if (l === undefined) return;
    l.pending = Math.max(0, l.pending - 1);
    this.#notify();
  }

  /** Decoder `key` gave a picture that covers the clock up to `clockSeconds`. */
  gave(key: object, clockSeconds: number): void {
    const l = this.#live.get(key);
    if (l === undefined) return;
    if (clockSeconds > l.coveredTo) l.coveredTo = clockSeconds;
    this.#notify();
  }

  /** Decoder `key` is gone (dropped or closed). */
  forget(key: object): void {
    if (this.#live.delete(key)) this.#notify();
  }

  /** True when a live decoder has decodes waiting and its pictures cover the clock less than `lead` s past `now`. */
  behind(now: number, lead: number): boolean {
    for (const l of this.#live.values()) if (l.pending > 0 && l.coveredTo < now + lead) return true;
    return false;
  }

  /**
   * Resolves once no live decoder is {@link behind} (`now()`: the clock position now, or null when unknown: no
   * wait), or after `maxWaitMs` (a decoder slower than the clock must not stop every preroll for good).
   */
  async untilAhead(now: () => number | null, lead: number, maxWaitMs: number): Promise<void> {
    const deadline = performance.now() + maxWaitMs;
    for (;;) {
      const n = now();
      if (n === null || !this.behind(n, lead)) return;
      const left = deadline - performance.now();
      if (left <= 0) return;
      // Woken by the next picture or finished decode; at the latest every 50 ms, as the clock moves on by itself.
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 50));
        this.#waiters.add(wake);
      });
    }
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }
}
