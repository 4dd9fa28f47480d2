/**
 * Calls a function at regular instants of CLOCK_MONOTONIC (display refreshes, audio periods). Node's timers wake up
 * to a millisecond or more late, which alone breaks a 1 ms sync budget: the scheduler sleeps on a timer until
 * `spinNs` before the instant and then waits out the rest precisely (a futex wait, then polling the clock for the last
 * 0.2 ms), so ticks land within microseconds when the event loop is free. Instants are computed from the first one (no accumulated error); ticks that cannot be met any more
 * are skipped, never bunched: counted ({@link TickScheduler.skipped}) and logged (a warning at the first skip and
 * at every 100th after it, with the totals), so a skip never passes without a trace.
 */
import { getLogger } from '../common/logger';

const log = getLogger('player');

/**
 * The last part of a wait that is polled, ns: a futex wait wakes a real-time thread within tens of µs of its timeout,
 * so the wait before it sleeps and this much is polled for a microsecond-exact instant.
 */
const POLL_NS = 200_000n;

/** What the precise sleep waits on (nothing ever notifies it: only its timeout ends it). */
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Options of {@link TickScheduler}. */
export interface TickSchedulerOptions {
  /** First instant, CLOCK_MONOTONIC ns. */
  startNs: bigint;
  /** Ticks per second as a rational (e.g. 30000/1001): the period is den/num s. */
  rate: { num: number; den: number };
  /**
   * How long before each instant the timer wakes the thread, which then waits out the rest precisely (a futex wait,
   * then polling the last 0.2 ms), ns (default 2 ms, at most half a period; 0 = timer only, never early).
   */
  spinNs?: bigint;
  /** A tick this late or more is skipped, ns (default: one period). */
  skipLateNs?: bigint;
}

/** The instant of tick `n`, CLOCK_MONOTONIC ns: exact rational arithmetic, so tick 10^6 is where it should be. */
export function tickInstant(startNs: bigint, rate: { num: number; den: number }, n: number): bigint {
  return startNs + (BigInt(n) * 1_000_000_000n * BigInt(rate.den)) / BigInt(rate.num);
}

/** Runs `onTick(n, instantNs)` at every tick until stopped. */
export class TickScheduler {
  readonly #o: Required<TickSchedulerOptions>;
  readonly #onTick: (n: number, instantNs: bigint) => void;
  #n = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #skipped = 0;
  #skipEvents = 0;

  constructor(options: TickSchedulerOptions, onTick: (n: number, instantNs: bigint) => void) {
    if (!(options.rate.num > 0 && options.rate.den > 0)) throw new RangeError(`tick rate must be positive, got ${options.rate.num}/${options.rate.den}`);
    const period = (1_000_000_000n * BigInt(options.rate.den)) / BigInt(options.rate.num);
    // Polling is capped at half a period: the thread sleeps at least that long each tick, whatever its priority.
    const spin = options.spinNs ?? 2_000_000n;
    this.#o = { ...options, spinNs: spin < period / 2n ? spin : period / 2n, skipLateNs: options.skipLateNs ?? period };
    this.#onTick = onTick;
  }

  /** Ticks skipped because they could not be met. */
  get skipped(): number {
    return this.#skipped;
  }

  /** Times the scheduler fell behind and skipped ticks (each skips one or more). */
  get skipEvents(): number {
    return this.#skipEvents;
  }

  /** Start ticking. */
  start(): void {
    this.#schedule();
  }

  /** Stop; no tick runs after this returns. Idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#stopped) return;
    const { startNs, rate, spinNs, skipLateNs } = this.#o;
    let at = tickInstant(startNs, rate, this.#n);
    const now = process.hrtime.bigint();
    if (now - at >= skipLateNs) {
      // Behind (a busy loop, a suspended machine): go on with the next tick still ahead instead of a burst of late ones.
      const period = (1_000_000_000n * BigInt(rate.den)) / BigInt(rate.num);
      const next = Number((now - startNs) / period) + 1;
      this.#skipped += next - this.#n;
      this.#skipEvents++;
      if (this.#skipEvents === 1 || this.#skipEvents % 100 === 0) {
        log.warn('ticks skipped: the scheduler was more than the skip limit late', {
          ticks: next - this.#n, lateMs: Number(now - at) / 1e6, skippedTotal: this.#skipped, skipEvents: this.#skipEvents,
        });
      }
      this.#n = next;
      at = tickInstant(startNs, rate, this.#n);
    }
    const sleepMs = Number(at - spinNs - now) / 1e6;
    // Without polling, sleep at least until the instant (a timer may fire early by its rounding), as a player built
    // on timers alone does.
    this.#timer = setTimeout(() => this.#fire(at), Math.max(0, spinNs > 0n ? Math.floor(sleepMs) : Math.ceil(sleepMs)));
  }

  #fire(at: bigint): void {
    this.#timer = null;
    if (this.#stopped) return;
    if (this.#o.spinNs > 0n) {
      // The remaining wait is shorter than the timer's own error (1 ms and more): sleep it out precisely, then poll the
      // last POLL_NS. Measured with perf in bench:go (60 ticks/s): polling the whole window was 40 % of the presenting
      // thread's time (clock reads), on a thread whose real-time priority takes that time from the decoders.
      const sleepNs = at - POLL_NS - process.hrtime.bigint();
      if (sleepNs > 0n) Atomics.wait(sleeper, 0, 0, Number(sleepNs) / 1e6);
      while (process.hrtime.bigint() < at) {
        // Poll.
      }
    }
    const n = this.#n++;
    try {
      this.#onTick(n, at);
    } finally {
      this.#schedule();
    }
  }
}
