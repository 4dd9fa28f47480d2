/**
 * The packets a Follow feed sends for one segment of a cue, in file order: planned over the media's index from a
 * position to the segment's end, the first ones from the cue's prefetch when the plan starts at its in-point. A cue
 * that follows a growing file (LoadedCue.followsGrowth) plays on as the file grows: once the packets indexed so far
 * are planned, the feed waits for the index to grow (each wait bounded by the media's --growing-wait-ms) and plans on
 * over the grown index from the entry after the last one planned, until the index is complete or the segment's end is
 * indexed (a growth that failed, e.g. a file cut or replaced while it grew, is thrown: the feed reports CueFeedFailed).
 */
import { secondsToTicks } from '../common/rational';
import type { IndexEntry, MediaIndex } from '../index-store/media-index';
import { AUDIO_PREROLL_OPTIONS, type LoadedCue } from '../show/loaded-cue';
import { waitForGrowth } from './packet-stream';

/** A packet to send: its entry and, when prefetched, its payload. */
export interface Planned {
  e: IndexEntry;
  data: Buffer | null;
}

/** The packets of one feed segment; see the module comment. */
export class FeedPlan {
  readonly #cue: LoadedCue;
  readonly #streams: readonly number[];
  readonly #from: number;
  readonly #end: number;
  /** The first entry a plan may hold (a reconnecting player's next packet; 0 = none). */
  readonly #fromEntry: number;
  /** The index snapshot planned over (a growing file's index is a new object after every growth). */
  #planned: MediaIndex;
  #packets: Generator<Planned>;
  #next: IteratorResult<Planned>;
  /** No growth of the file can add packets to this plan. */
  #final: boolean;

  /**
   * The packets of `streams` of `cue` for media [from, end) seconds: from entry `fromEntry` on when it is above 0 (a
   * reconnecting player's next packet), else from the prefetch when `from` is the in-point, leaving out the entries
   * in `sent` (the preroll the player already has), then from the file.
   */
  constructor(cue: LoadedCue, streams: readonly number[], from: number, end: number, fromEntry: number, sent?: ReadonlySet<number>) {
    this.#cue = cue;
    this.#streams = streams;
    this.#from = from;
    this.#end = end;
    this.#fromEntry = fromEntry;
    this.#planned = cue.media.index;
    this.#final = this.#isFinal();
    this.#packets = this.#plan(fromEntry, sent);
    this.#next = this.#packets.next();
  }

  /** The next packet planned, or null when none is planned now (see {@link ended} and {@link grow}). */
  peek(): Planned | null {
    return this.#next.done === true ? null : this.#next.value;
  }

  /** Take the next packet planned (null when none is). */
  take(): Planned | null {
    const p = this.peek();
    if (p !== null) this.#next = this.#packets.next();
    return p;
  }

  /** Every packet of the segment has been taken: no more will come (the feed's last batch says so). */
  get ended(): boolean {
    return this.#next.done === true && this.#final;
  }

  /**
   * Once every packet planned has been taken and the plan has not ended (a growing file): wait until the index grows,
   * completes or fails (at most the media's growing wait, or until `signal` aborts), then plan on over the index as it
   * is from the entry after the last one of the index planned before. Throws the error that ended a growth (a file
   * truncated or replaced while it grew: MEDIA_DAMAGED naming the file).
   */
  async grow(signal: AbortSignal): Promise<void> {
    const media = this.#cue.media;
    // The index may have grown while the planned packets went out (paced by the clock): then no wait.
    if (media.index === this.#planned) await waitForGrowth(media, signal);
    if (signal.aborted) return;
    const fromEntry = Math.max(this.#planned.packetCount, this.#fromEntry);
    this.#planned = media.index;
    this.#final = this.#isFinal();
    this.#packets = this.#plan(fromEntry);
    this.#next = this.#packets.next();
  }

  /**
   * True when growth cannot add to the plan over the current snapshot: the cue does not follow a growing file, the
   * file is complete, or (a finite end) every stream has a packet indexed whose decode time is at or past the end (the
   * range's end condition, see MediaIndex.packetsInRange). A failed growth is not final: grow() then throws its error.
   */
  #isFinal(): boolean {
    const cue = this.#cue;
    if (!cue.followsGrowth || cue.media.growthState === 'complete') return true;
    if (!Number.isFinite(this.#end)) return false;
    const index = this.#planned;
    return this.#streams.every((s) => {
      const last = index.lastTime(s);
      return last !== null && last >= secondsToTicks(this.#end, index.stream(s).timeBase, 'ceil');
    });
  }

  *#plan(fromEntry: number, sent?: ReadonlySet<number>): Generator<Planned> {
    const cue = this.#cue;
    const index = this.#planned;
    const pre = cue.prefetch;
    // An open end (+Infinity: a growing file's) is "to the end" for the index.
    const end = Number.isFinite(this.#end) ? this.#end : undefined;
    const range = (): Generator<IndexEntry> => index.packetsInRange(this.#streams, this.#from, end, fromEntry > 0 ? { ...AUDIO_PREROLL_OPTIONS, fromEntry } : AUDIO_PREROLL_OPTIONS);
    if (fromEntry > 0 || pre === null || this.#from !== cue.inMedia) {
      for (const e of range()) yield { e, data: null };
      return;
    }
    // A segment adopting a preroll starts at the in-point too: the preroll's packets (`sent`) are not sent again.
    const wanted = new Set(this.#streams);
    for (let i = 0; i < pre.entries.length; i++) {
      const e = pre.entries[i];
      if (wanted.has(e.stream) && sent?.has(e.index) !== true) yield { e, data: pre.data[i] };
    }
    for (const e of range()) if (!pre.numbers.has(e.index)) yield { e, data: null };
  }
}
