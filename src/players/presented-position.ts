/**
 * What the presenting thread and the decode worker share without a message: the show clock position the presenter
 * last presented (written at every tick, read by the decoder to skip intra-only pictures whose time has passed, see
 * OutputFollower) and the count of packets skipped so (written by the decoder, read into the sync log).
 *
 * Why a SharedArrayBuffer and not a message: the worker reads the position when it is about to decode a packet, i.e.
 * while it is catching up and its message queue waits behind the decoding; a message would be as late as the
 * decoder. Measured on this 2-vCPU VM at load 11 (200,000 of each, hrtime read included): a publish here costs
 * 0.5-0.7 µs of the presenting thread, a `postMessage` of the same two numbers 4.1-4.3 µs (and a wake-up of the worker).
 */
import type { ClockState } from '../generated/cuemux/v1/media_server';

/** Slots of the shared BigInt64Array. */
const SEQ = 0;
const MONO = 1;
const CLOCK = 2;
const SKIPPED = 3;
const SLOTS = 4;

/** Times a reader retries while the presenter is writing (a write is 3 stores: it never waits long). */
const READ_TRIES = 16;

/** The presenter's last presented clock position and the decoder's skip count, shared by two threads. */
export class PresentedPosition {
  /** Pass to the other thread (it structured-clones as the same memory). */
  readonly buffer: SharedArrayBuffer;
  readonly #a: BigInt64Array;

  /** `buffer`: the other thread's (default: a new one, position not published yet). */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(SLOTS * BigInt64Array.BYTES_PER_ELEMENT);
    this.#a = new BigInt64Array(this.buffer);
  }

  /** Presenter: at CLOCK_MONOTONIC `monoNs` the show clock was at `clockSeconds` (its tick's position). */
  publish(monoNs: bigint, clockSeconds: number): void {
    // A sequence lock: odd while writing, so a reader never takes one tick's instant with another's position.
    Atomics.add(this.#a, SEQ, 1n);
    Atomics.store(this.#a, MONO, monoNs);
    Atomics.store(this.#a, CLOCK, BigInt(Math.round(clockSeconds * 1e9)));
    Atomics.add(this.#a, SEQ, 1n);
  }

  /**
   * Decoder: the show clock position (s) at CLOCK_MONOTONIC `monoNs`, from the last published one moved on at the
   * clock's rate (the presenter's mapping includes a remote server's Ping offset, which the worker has not); null
   * when nothing was published (no video presenter) or the clock is unknown.
   */
  clockAt(monoNs: bigint, clock: ClockState | null): number | null {
    if (clock === null) return null;
    for (let i = 0; i < READ_TRIES; i++) {
      const seq = Atomics.load(this.#a, SEQ);
      if (seq === 0n) return null;
      if ((seq & 1n) === 1n) continue;
      const mono = Atomics.load(this.#a, MONO);
      const pos = Number(Atomics.load(this.#a, CLOCK)) / 1e9;
      if (Atomics.load(this.#a, SEQ) !== seq) continue;
      const rate = clock.state === 'stopped' ? 0 : clock.rate;
      return pos + (Number(monoNs - mono) / 1e9) * rate;
    }
    return null;
  }

  /** Decoder: one more packet skipped. */
  countSkipped(): void {
    Atomics.add(this.#a, SKIPPED, 1n);
  }

  /** Packets the decoder skipped so far (intra-only pictures whose time had passed). */
  get skipped(): number {
    return Number(Atomics.load(this.#a, SKIPPED));
  }
}
