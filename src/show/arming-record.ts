/**
 * When cues were armed, counted in loads: each load of a cue takes the next number (LoadedCue.lastLoad), and a start
 * or a choice of the standby cue notes the count then. A new Follow call orders the prerolls it sends by these
 * (src/server/preroll-order.ts): the likely next GO first.
 */

/**
 * Starts whose loads {@link ArmingRecord.loadsAtStartAgo} keeps: a cue loaded since the third last start is one a
 * console loaded ahead for its next GOs (bench:go's loads each cue two GOs ahead), see src/server/preroll-order.ts.
 */
export const RECENT_STARTS = 3;

/** The show's load count, and the counts at its last starts and its last choice of a standby cue. */
export class ArmingRecord {
  #loads = 0;
  /** The loads counted at the last starts, the latest last (at most RECENT_STARTS). */
  readonly #starts: number[] = [];
  #atStandby = 0;
  /** The standby cue last noted, to tell when it changes. */
  #standby: string | null = null;

  /** A cue was loaded (or loaded again): its number, for LoadedCue.lastLoad. */
  loaded(): number {
    return ++this.#loads;
  }

  /** A cue started (a GO or resume; a mirrored start; a cue restored playing): the loads counted now. */
  started(): number {
    this.#starts.push(this.#loads);
    if (this.#starts.length > RECENT_STARTS) this.#starts.shift();
    return this.#loads;
  }

  /**
   * The cue list's standby cue is `playhead` now; `chosen`: when it changed, it was a choice of the next GO (a GO
   * without a cue id, a standby command, a new cue list), not the side effect of a GO that named its cue.
   */
  standby(playhead: string | null, chosen: boolean): void {
    if (playhead === this.#standby) return;
    this.#standby = playhead;
    if (chosen) this.#atStandby = this.#loads;
  }

  /**
   * The loads counted when a cue last started: a cue whose `lastLoad` is greater was loaded since, which a console
   * does to GO it next.
   */
  get loadsAtLastGo(): number {
    return this.loadsAtStartAgo(0);
  }

  /** The loads counted at the start `n` starts before the last (0: the last; up to RECENT_STARTS - 1), 0 when there were not that many. */
  loadsAtStartAgo(n: number): number {
    return this.#starts[this.#starts.length - 1 - n] ?? 0;
  }

  /**
   * The loads counted when a standby cue was last chosen. At or after {@link loadsAtLastGo}, it is the next GO's cue;
   * before it, a console that GOes cues by id (whose GOs move the playhead too, past the cue each names) has left it
   * as a place in the list, and the cues it loaded are the likelier next GOs (bench:go, whose GOs name their cues:
   * the list's standby cue prepared before the cue loaded for a fresh player's next GO, 13-20 ticks late).
   */
  get loadsAtStandby(): number {
    return this.#atStandby;
  }
}
