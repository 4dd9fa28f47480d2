/**
 * The prerolls segments adopted, as the presenting thread heard of them, to label what the decoder gave before it
 * heard of them itself.
 *
 * Why: the follow thread tells the presenting thread of an adoption (FollowPackets.preroll) as soon as it reads it
 * (follow-relay.ts), while the decode worker, busy, may still post pictures and audio of that preroll, labelled with
 * the preroll. The presenter moved the preroll's queue to the segment at the adoption: those late ones are the
 * segment's too.
 */
import type { PrerollAdopted } from './follower';

/** What a decoder's picture or audio block is labelled with. */
export interface PrerollLabel {
  cueId: string;
  segment: number;
  generation: bigint;
  /** The preroll it was decoded from, 0 when it is a segment's. */
  preroll: number;
}

/** Adoptions kept per cue: a cue is re-armed (a new preroll) at most a few times while a late picture is in flight. */
const KEEP_PER_CUE = 4;

/** Adoptions heard on this Follow call (preroll numbers belong to a call). */
export class PrerollAdoptions {
  /** By cue, then preroll number: the segment and generation that adopted it. */
  readonly #byCue = new Map<string, Map<number, { segment: number; generation: bigint }>>();

  /** A segment adopted a preroll. */
  adopted(a: Pick<PrerollAdopted, 'cueId' | 'preroll' | 'segment' | 'generation'>): void {
    let m = this.#byCue.get(a.cueId);
    if (m === undefined) this.#byCue.set(a.cueId, (m = new Map<number, { segment: number; generation: bigint }>()));
    m.delete(a.preroll);
    m.set(a.preroll, { segment: a.segment, generation: a.generation });
    for (const k of m.keys()) if (m.size > KEEP_PER_CUE) m.delete(k);
  }

  /** Label `x` (in place) with the segment that adopted its preroll, if one did; returns `x`. */
  relabel<T extends PrerollLabel>(x: T): T {
    if (x.preroll === 0) return x;
    const a = this.#byCue.get(x.cueId)?.get(x.preroll);
    if (a === undefined) return x;
    x.segment = a.segment;
    x.generation = a.generation;
    x.preroll = 0;
    return x;
  }

  /** The cue was unloaded: its prerolls are gone. */
  forget(cueId: string): void {
    this.#byCue.delete(cueId);
  }

  /** A new Follow call: its prerolls are numbered afresh. */
  clear(): void {
    this.#byCue.clear();
  }
}
