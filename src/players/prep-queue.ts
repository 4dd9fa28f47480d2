/**
 * @packageDocumentation
 * The order in which a player prepares prerolls (CuePreroll): one at a time, in the order they came (the server sends
 * the likely next GO's first), so that preparing cues leaves the CPU to the cues on the clock. A preroll that is due
 * (a GO adopted it) or likely next (CueRearmed) starts at once, beside the one in progress; its end starts no other,
 * so the queue behind still goes one at a time, in its order. (A chain of promises, each preroll waiting for the one
 * before, did not: bench:go saw a preroll started at its GO release the next in the chain as soon as it was done,
 * beside the head still in progress, three prerolls at once on a player that had just connected.) A player may keep
 * several queues, e.g. one per cost class (output-follower.ts).
 */

/** One preroll's place in a {@link PrepQueue}. */
export class PrepTurn {
  /** Resolves when the preroll may start decoding. */
  readonly ready: Promise<void>;
  #resolve: () => void = () => undefined;
  #started = false;
  #finished = false;

  constructor() {
    this.ready = new Promise<void>((resolve) => { this.#resolve = resolve; });
  }

  /** It may start (resolves {@link ready}); false when it had started or finished already. */
  start(): boolean {
    if (this.#started || this.#finished) return false;
    this.#started = true;
    this.#resolve();
    return true;
  }

  /** Marks it finished; false when it was already. */
  finish(): boolean {
    if (this.#finished) return false;
    this.#finished = true;
    this.#resolve(); // a turn dropped before its start lets nothing wait on it
    return true;
  }
}

/** Prerolls waiting for their turn, and the one whose turn it is. */
export class PrepQueue {
  readonly #waiting: PrepTurn[] = [];
  #current: PrepTurn | null = null;

  /** A new turn at the end of the queue (it starts at once when nothing is in progress). */
  add(): PrepTurn {
    const t = new PrepTurn();
    this.#waiting.push(t);
    this.#next();
    return t;
  }

  /** Start `turn` now, out of its order and beside the one in progress (due, or likely next). */
  startNow(turn: PrepTurn): void {
    const i = this.#waiting.indexOf(turn);
    if (i >= 0) this.#waiting.splice(i, 1);
    turn.start();
  }

  /** `turn` is done (its packets decoded) or dropped: the next waiting one starts if it was the one in progress. */
  finish(turn: PrepTurn): void {
    if (!turn.finish()) return;
    const i = this.#waiting.indexOf(turn);
    if (i >= 0) this.#waiting.splice(i, 1);
    if (this.#current === turn) {
      this.#current = null;
      this.#next();
    }
  }

  /** Turns waiting (for status and tests). */
  get waiting(): number {
    return this.#waiting.length;
  }

  #next(): void {
    while (this.#current === null) {
      const t = this.#waiting.shift();
      if (t === undefined) return;
      if (t.start()) this.#current = t;
    }
  }
}
