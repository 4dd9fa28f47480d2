/**
 * A bound on the busy share of the thread that reads OSC datagrams. The OSC thread runs at real-time priority
 * (osc-priority.ts), where nothing of normal priority can interrupt it: a flood it keeps reading would take a whole
 * core from the show's main thread, the gRPC streams and the players. So the endpoint accounts the time it spends on
 * each datagram (reading, admitting, decoding, answering), and when that exceeds {@link DutyBoundOptions.busyMs} in a
 * window of {@link DutyBoundOptions.windowMs}, the thread sleeps for the rest of the window (a real sleep: the core
 * goes to other threads; datagrams wait in the socket's receive buffer, 4 MiB asked).
 *
 * The default, 5 ms of every 10 ms, is far above a console's need (a thump or GO costs 20-60 µs here) and leaves a
 * flood at most half of one core; the first datagrams after a sleep wait at most 5 ms.
 */
import { monoNs } from '../common/time-source';

/** Options of {@link DutyBound}. */
export interface DutyBoundOptions {
  /** Accounting window, in ms (default 10). */
  windowMs?: number;
  /** Most busy time per window before the thread sleeps for the rest of it, in ms (default 5). */
  busyMs?: number;
}

/** Default window and busy time, in ms. */
export const DEFAULT_DUTY: Required<DutyBoundOptions> = { windowMs: 2, busyMs: 1 };

/** Busy-time accounting with a sleep past the bound (see the module's comment). */
export class DutyBound {
  readonly #windowNs: bigint;
  readonly #busyNs: bigint;
  readonly #sleeper = new Int32Array(new SharedArrayBuffer(4));
  #windowStartNs = monoNs();
  #spentNs = 0n;
  /** Times the thread slept because it was over its bound. */
  sleeps = 0;
  /** Time slept in total, in ms. */
  sleptMs = 0;

  constructor(options: DutyBoundOptions = {}) {
    const o = { ...DEFAULT_DUTY, ...options };
    if (!(o.windowMs > 0) || !(o.busyMs > 0) || o.busyMs > o.windowMs) {
      throw new RangeError(`duty bound: busyMs (${o.busyMs}) must be > 0 and at most windowMs (${o.windowMs})`);
    }
    this.#windowNs = BigInt(Math.round(o.windowMs * 1e6));
    this.#busyNs = BigInt(Math.round(o.busyMs * 1e6));
  }

  /**
   * Account the work that began at `startNs` (monoNs) and ends now; past the bound, sleep for the rest of the window.
   *
   * @returns true when the thread slept.
   */
  spent(startNs: bigint): boolean {
    const now = monoNs();
    if (now - this.#windowStartNs >= this.#windowNs) {
      this.#windowStartNs = startNs;
      this.#spentNs = 0n;
    }
    this.#spentNs += now - startNs;
    if (this.#spentNs <= this.#busyNs) return false;
    const restMs = Number(this.#windowStartNs + this.#windowNs - now) / 1e6;
    if (restMs > 0) {
      // Atomics.wait on a slot no one writes: a plain sleep of this thread (allowed in worker threads and in Node's main thread).
      Atomics.wait(this.#sleeper, 0, 0, restMs);
      this.sleptMs += restMs;
    }
    this.sleeps++;
    this.#windowStartNs = monoNs();
    this.#spentNs = 0n;
    return true;
  }
}
