/**
 * Turns to write packet batches on one Follow call: a segment's first message (the GO) is written at once, every other
 * batch waits while FLIGHT_BYTES or more of the call's packets are not on the socket yet: the batches of cues on the
 * clock first, in arrival order, then those of prerolls for GOs to come, in arrival order.
 */

/**
 * Bytes of this call's packet messages handed to HTTP/2 and not yet written to the socket (their write callback not
 * called) below which a batch that is not a segment's first is written; at or above it, it waits its turn in this
 * session (see TurnKind for which goes first: a loop's next pass needs its preroll within a pass, so a playing cue's
 * preroll takes its turn with the feeds).
 * A segment's first message (the GO: CueStarted and the batch that adopts the preroll or carries the first packets)
 * is written at once, so it never queues behind more than this and one batch. Batches go out a few at a time, not
 * one per write callback: with 64 KiB here (one batch at a time) and prerolls after feeds, two quick bench:go runs
 * held 16 ticks at loop seams each (the last frame of a pass for the next pass's first two; 0 before), the next pass's
 * preroll most likely not in yet.
 *
 * Why: bench:go (quick, 60 ticks/s) traced each hop of armed GOs over a playing DNxHD cue: the server wrote the GO's
 * message 1-2 ms after the datagram, behind 0.38-1.3 MB of earlier batches still queued on the call (each feed and
 * preroll wrote a batch of up to 512 KiB before waiting), and the player's decode worker read it 44-320 ms later:
 * 3-58 ticks late. Feeds are paced by the lead window, so holding their batches here delays no picture.
 */
export const FLIGHT_BYTES = 256 << 10;

/**
 * A batch's kind: `first`, a segment's first message (written at once); `live`, another batch of a cue on the clock
 * (a feed's, or the preroll of a playing cue's next pass: a loop's); `preroll`, a preroll's batch for a cue not
 * playing, which waits while `live` batches wait. Why: a player that connects gets the preroll of every armed cue at
 * once (11 in bench:go, several MB), and a GO's feed then queued behind them: bench:go on c0fc31d, a fresh player's
 * first GO (unarmed DNxHD) had a picture decoded one ahead of its tick for a second (6-12 held ticks in two runs of
 * three) while 3.6 ms of CPU decode one of its pictures. Feeds are paced by the lead window, so prerolls still go out
 * between their batches.
 */
export type TurnKind = 'first' | 'live' | 'preroll';

/** The writers of one call waiting for their turn. */
export class WriteTurns {
  readonly #waiting: { live: Array<() => void>; preroll: Array<() => void> } = { live: [], preroll: [] };
  readonly #inFlight: () => number;

  /** `inFlight`: bytes of the call's packets handed to HTTP/2 and not yet written to the socket. */
  constructor(inFlight: () => number) {
    this.#inFlight = inFlight;
  }

  /**
   * Wait for the turn to write a batch of `kind`. A writer woken that does not write (its call ended) wakes no one:
   * releaseAll has woken them all.
   */
  async take(kind: TurnKind): Promise<void> {
    if (kind === 'first') return;
    const ahead = this.#waiting.live.length + (kind === 'preroll' ? this.#waiting.preroll.length : 0);
    if (ahead === 0 && this.#inFlight() < FLIGHT_BYTES) return;
    await new Promise<void>((resolve) => this.#waiting[kind].push(resolve));
  }

  /** Let the next waiting writer write when the bytes in flight are under FLIGHT_BYTES (a write was done or given up). */
  next(): void {
    if (this.#inFlight() >= FLIGHT_BYTES) return;
    (this.#waiting.live.shift() ?? this.#waiting.preroll.shift())?.();
  }

  /** The call ended: every waiting writer goes on (and finds it ended). */
  releaseAll(): void {
    for (const wake of [...this.#waiting.live.splice(0), ...this.#waiting.preroll.splice(0)]) wake();
  }
}
