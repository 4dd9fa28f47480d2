/**
 * The order in which a Follow call writes its prerolls: one after another, the first asked for first (a player
 * prepares them in that order), except that one may be moved to the front (a cue loaded again: its GO is likely next,
 * see CueRearmed in the proto).
 */

/** What waits here: `started` is set when its turn comes. */
export interface PrerollTurn {
  started: boolean;
}

/** Writes queued one at a time. */
export class PrerollWrites<T extends PrerollTurn> {
  readonly #waiting: Array<{ entry: T; write: () => Promise<void> }> = [];
  #writing = false;

  /**
   * Queue `entry`: `write` runs when its turn comes (after the writes queued before it have settled); resolves with
   * what `write` resolved, or false when it threw (`onError` is told).
   */
  add(entry: T, write: () => Promise<boolean>, onError: (e: unknown) => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      this.#waiting.push({ entry, write: () => write().then(resolve, (e: unknown) => { onError(e); resolve(false); }) });
      void this.#run();
    });
  }

  /** Write `entry` next, before the others waiting (nothing when it is no longer waiting). */
  first(entry: T): void {
    const at = this.#waiting.findIndex((w) => w.entry === entry);
    if (at > 0) this.#waiting.unshift(...this.#waiting.splice(at, 1));
  }

  async #run(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      for (let w = this.#waiting.shift(); w !== undefined; w = this.#waiting.shift()) {
        w.entry.started = true;
        await w.write();
      }
    } finally {
      this.#writing = false;
    }
  }
}
