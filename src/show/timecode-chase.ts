/**
 * Chasing an external timecode (fed over OSC by an MTC/LTC bridge, one position per frame or so). The chaser turns
 * a stream of noisy position samples into few clock changes: it locks on the first sample, keeps the clock's anchor
 * while samples agree with it, re-anchors (same generation) when the drift passes a small tolerance, re-locks (new
 * generation) on a jump, and applies the loss policy when samples stop coming. Players therefore see one smooth
 * timeline instead of a correction per frame — the per-player "correct beyond 80 ms" of today's MTC players.
 */
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { monoNs } from '../common/time-source';
import type { ClockSnapshot, ShowClock } from './show-clock';

const log = getLogger('timecode-chase');

/** What to do when the external timecode stops arriving. */
export type LossPolicy = 'hold' | 'freerun';

/** Chase settings (all optional; defaults stated). */
export interface ChaseOptions {
  /** A sample further than this from the clock's extrapolation is a jump (new generation). Default 0.25 s. */
  jumpSeconds?: number;
  /** Drift above which the anchor is corrected without a new generation. Default 0.004 s. */
  correctSeconds?: number;
  /** No sample for this long means the source is lost. Default 250 ms (over 6 frames at 24 fps). */
  lossTimeoutMs?: number;
  /** `hold`: stop at once where the clock is; `freerun`: keep running for `freerunMs`, then stop. Default `hold`. */
  lossPolicy?: LossPolicy;
  /** How long `freerun` keeps running after the loss, in ms. Default 2000. */
  freerunMs?: number;
}

/** One accepted sample: position (s) at monotonic instant (ns). */
interface Sample {
  position: number;
  at: bigint;
}

/** Samples kept to estimate the source's rate: about 1 s of a 25–30 fps feed. */
const RATE_WINDOW = 32;

/** Validated chase settings with defaults applied. */
export function chaseSettings(o: ChaseOptions): Required<ChaseOptions> {
  const s: Required<ChaseOptions> = {
    jumpSeconds: o.jumpSeconds ?? 0.25, correctSeconds: o.correctSeconds ?? 0.004, lossTimeoutMs: o.lossTimeoutMs ?? 250,
    lossPolicy: o.lossPolicy ?? 'hold', freerunMs: o.freerunMs ?? 2000,
  };
  for (const [k, v] of Object.entries(s)) {
    if (typeof v === 'number' && !(Number.isFinite(v) && v > 0)) throw new CuemuxError('INVALID_ARGUMENT', `chase setting ${k} must be a positive number, got ${v}`);
  }
  if (s.lossPolicy !== 'hold' && s.lossPolicy !== 'freerun') {
    throw new CuemuxError('INVALID_ARGUMENT', `chase loss policy must be "hold" or "freerun", got "${String(s.lossPolicy)}"`);
  }
  if (s.correctSeconds >= s.jumpSeconds) throw new CuemuxError('INVALID_ARGUMENT', 'chase correctSeconds must be below jumpSeconds');
  return s;
}

/** Drives a ShowClock from external timecode samples. */
export class TimecodeChaser {
  readonly #clock: ShowClock;
  readonly #o: Required<ChaseOptions>;
  #samples: Sample[] = [];
  #lossTimer: NodeJS.Timeout | null = null;
  #freerunTimer: NodeJS.Timeout | null = null;
  #locked = false;
  readonly #onClock: (s: ClockSnapshot) => void;

  constructor(clock: ShowClock, options: ChaseOptions = {}) {
    this.#clock = clock;
    this.#o = chaseSettings(options);
    // An explicit play/stop/locate takes the clock back to the internal master: drop the lock.
    this.#onClock = (s) => {
      if (s.source === 'internal') this.#unlock();
    };
    clock.on('change', this.#onClock);
  }

  /** True while samples arrive and the clock follows them. */
  get locked(): boolean {
    return this.#locked;
  }

  /** Feed one external position (seconds), received at monotonic instant `at` (default now). */
  feed(position: number, at: bigint = monoNs()): void {
    if (!Number.isFinite(position)) throw new CuemuxError('INVALID_ARGUMENT', `timecode position must be a number of seconds, got ${position}`);
    this.#armLoss();
    if (this.#freerunTimer) {
      clearTimeout(this.#freerunTimer);
      this.#freerunTimer = null;
    }
    const last = this.#samples[this.#samples.length - 1];
    const clock = this.#clock.snapshot;
    if (!this.#locked || clock.source !== 'external' || clock.state !== 'chasing') {
      this.#lock(position, at, 1, 'lock');
      return;
    }
    const error = position - this.#clock.position(at);
    const still = last !== undefined && position === last.position;
    if (Math.abs(error) > this.#o.jumpSeconds) {
      // A still source repeats one position: hold it at rate 0 rather than "jumping" back on every sample.
      this.#lock(position, at, still ? 0 : 1, still ? 'still' : 'jump');
      return;
    }
    if (still) {
      // The source stopped (a paused MTC/LTC reader repeats its frame): freeze once, without a discontinuity.
      if (clock.rate !== 0) this.#restart(position, at, 0);
      return;
    }
    if (clock.rate === 0) {
      // Moving again after a still: assume normal speed until the window has measured the real rate.
      this.#restart(position, at, 1);
      return;
    }
    this.#samples.push({ position, at });
    if (this.#samples.length > RATE_WINDOW) this.#samples.shift();
    if (Math.abs(error) > this.#o.correctSeconds) {
      this.#clock.chase(position, this.#estimateRate(clock.rate), at, false);
    }
  }

  /** Re-anchor at `rate` on the same timeline (a start or stop of the source) and measure its rate afresh. */
  #restart(position: number, at: bigint, rate: number): void {
    this.#samples = [{ position, at }];
    this.#clock.chase(position, rate, at, false);
  }

  #lock(position: number, at: bigint, rate: number, why: string): void {
    if (why !== 'lock') log.info(`external timecode ${why}`, { position });
    this.#locked = true;
    this.#samples = [{ position, at }];
    this.#clock.chase(position, rate, at, true);
  }

  /** Least-squares slope of position over time across the window; the current rate until there is enough data. */
  #estimateRate(current: number): number {
    const n = this.#samples.length;
    if (n < 4) return current;
    const t0 = this.#samples[0].at;
    const p0 = this.#samples[0].position;
    let st = 0;
    let sp = 0;
    let stt = 0;
    let stp = 0;
    for (const s of this.#samples) {
      const t = Number(s.at - t0) / 1e9;
      const p = s.position - p0;
      st += t;
      sp += p;
      stt += t * t;
      stp += t * p;
    }
    const den = n * stt - st * st;
    if (den <= 0) return current;
    const rate = (n * stp - st * sp) / den;
    // Sample jitter over a short window can give nonsense: only trust a plausible running speed (varispeed is a
    // few percent; a start or stop of the source is handled by #restart, not by the estimate).
    return Number.isFinite(rate) && rate > 0.5 && rate < 2 ? rate : current;
  }

  #armLoss(): void {
    if (this.#lossTimer) clearTimeout(this.#lossTimer);
    this.#lossTimer = setTimeout(() => this.#lost(), this.#o.lossTimeoutMs);
    this.#lossTimer.unref();
  }

  #lost(): void {
    this.#lossTimer = null;
    if (!this.#locked) return;
    this.#locked = false;
    this.#samples = [];
    if (this.#o.lossPolicy === 'hold') {
      log.warn('external timecode lost: holding the position', { position: this.#clock.position() });
      this.#clock.chaseStop(monoNs());
      return;
    }
    log.warn(`external timecode lost: free-running for ${this.#o.freerunMs} ms`, { position: this.#clock.position() });
    this.#freerunTimer = setTimeout(() => {
      this.#freerunTimer = null;
      log.warn('external timecode still lost: stopping', { position: this.#clock.position() });
      this.#clock.chaseStop(monoNs());
    }, this.#o.freerunMs);
    this.#freerunTimer.unref();
  }

  #unlock(): void {
    this.#locked = false;
    this.#samples = [];
    if (this.#lossTimer) clearTimeout(this.#lossTimer);
    if (this.#freerunTimer) clearTimeout(this.#freerunTimer);
    this.#lossTimer = null;
    this.#freerunTimer = null;
  }

  /** Stop every timer and stop listening to the clock (idempotent). */
  close(): void {
    this.#unlock();
    this.#clock.off('change', this.#onClock);
  }
}
