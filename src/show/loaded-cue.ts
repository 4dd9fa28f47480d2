/**
 * A cue loaded in the show: its open media, its resolved output assignment, the packets prefetched at its in-point
 * (so GO sends them from memory), and — once started — its run: where its media sits on the show clock. The run is
 * a mapping in clock positions, so a clock locate moves what is presented, never the mapping itself.
 */
import { audioPrerollSeconds } from '../ffmpeg/decoder';
import type { IndexEntry, RangeOptions } from '../index-store/media-index';
import type { OpenMedia } from '../media/open-media';
import type { CueDefinition } from './cue-definition';

/**
 * The range options of every packet range the show sends: audio packets go to players ahead of a cue's in-point (or
 * of any feed start) by the decoder pre-roll its codec needs for the first presented sample to be a continuous
 * decode's (audioPrerollSeconds: 0.1 s, AAC's overlapped transform needs one frame; Opus 1 s, its decoder converges).
 */
export const AUDIO_PREROLL_OPTIONS: Readonly<RangeOptions> = { audioPrerollSeconds: (s) => audioPrerollSeconds(s.codecName) };

/** What a loaded cue is doing. */
export type CueState = 'armed' | 'playing' | 'paused';

/** The media of a started cue placed on the clock. */
export interface CueRun {
  /** Clock position (s) at which `mediaSeconds` is presented. */
  readonly clockSeconds: number;
  /** Media position (s, media timeline) presented at `clockSeconds`. */
  readonly mediaSeconds: number;
  /** Run number within the cue (from 0). */
  readonly id: number;
}

/** One pass of a run: media [mediaSeconds, endMediaSeconds) presented from clock position clockSeconds. */
export interface CueSegment {
  /** Segment number within the cue. */
  readonly segment: number;
  /** Clock position (s) of mediaSeconds. */
  readonly clockSeconds: number;
  /** First media position (s) of the pass. */
  readonly mediaSeconds: number;
  /** Media position (s) where the pass ends. */
  readonly endMediaSeconds: number;
}

/** Packets read at load time, from each stream's keyframe at or before the in-point (file order). */
export interface Prefetched {
  /** Index entries (all assigned streams). */
  readonly entries: readonly IndexEntry[];
  /** Their payloads, same order. */
  readonly data: readonly Buffer[];
  /** Entry numbers of `entries`, to skip them when reading on from the media. */
  readonly numbers: ReadonlySet<number>;
  /** Their payload bytes (counted against the show's prefetch budget); absent = not counted. */
  readonly bytes?: number;
}

/** A cue loaded in the show. */
export class LoadedCue {
  /** The definition it was loaded with (a cue list edit re-arms a cue that is not playing). */
  readonly def: CueDefinition;
  /** Its open media (one registry reference, released on unload). */
  readonly media: OpenMedia;
  /** Output name → stream indexes. */
  readonly outputs: ReadonlyMap<string, readonly number[]>;
  /** In-point on the media timeline (s): the media's start plus the cue's `in`. */
  readonly inMedia: number;
  /** End on the media timeline (s) as it was known at load. */
  readonly #loadedEnd: number;
  /** Out-point on the media timeline (s), or null (the end of the media). */
  readonly #outMedia: number | null;
  /**
   * The cue was loaded on a file still being written and does not loop: its end follows the file (see endMedia). A
   * loop's passes are placed on the clock by its length, which must be known when the first pass is announced, so
   * a looping cue keeps the end known at load.
   */
  readonly followsGrowth: boolean;
  /** Prefetched packets at the in-point, or null. */
  prefetch: Prefetched | null = null;
  /** Armed, playing or paused. */
  state: CueState = 'armed';
  /** The current run while playing (the last one while paused), else null. */
  run: CueRun | null = null;
  /** Media position (s) at which it was paused. */
  pausedMedia: number | null = null;
  /** Next free segment number. */
  #nextSegment = 0;
  /** Runs started so far. */
  #runs = 0;
  /** Segment numbers of the current run's passes, allocated on first use so numbers never repeat across runs. */
  readonly #numbers = new Map<number, number>();
  /** Aborts the end-of-cue watch of the current run. */
  endWatch: AbortController | null = null;
  /** The auto-follow successor placed on the clock ahead of this cue's end, until this cue ends. */
  chainedNext: string | null = null;
  /**
   * The show's load count at its last load (loading a loaded cue counts too): the cue loaded last is the one an
   * operator is likely to GO next, and a player that has just connected prepares it early (follow-stream.ts).
   */
  lastLoad = 0;
  /**
   * The show's load count when it last started (0: never): a cue whose {@link lastLoad} is greater was loaded (or
   * re-armed) and not started since, i.e. it is armed for a GO still to come (follow-stream.ts prepares those early).
   */
  lastStartLoads = 0;
  /**
   * Its last load was the show's own pre-arm of the cue list's next cues after a GO, not a command: a console that
   * GOes cues by id did not load it for a GO to come (src/server/preroll-order.ts).
   */
  preArmed = false;

  /**
   * `endMedia`: its end as known at load (the out-point, else the end of the media, clamped to the end indexed so far);
   * `outMedia`: the out-point on the media timeline, or null.
   */
  constructor(def: CueDefinition, media: OpenMedia, outputs: ReadonlyMap<string, readonly number[]>, inMedia: number, endMedia: number, outMedia: number | null = null) {
    this.def = def;
    this.media = media;
    this.outputs = outputs;
    this.inMedia = inMedia;
    this.#loadedEnd = endMedia;
    this.#outMedia = outMedia;
    this.followsGrowth = !def.loop && media.growthState === 'growing';
  }

  /**
   * End on the media timeline (s): the out-point, else the end of the media. A cue that follows a growing file
   * (followsGrowth) has an open end while the file grows: its out-point even past the written end, else Infinity
   * (on the wire: CueStarted.end_media_seconds = +inf); once the file is complete (or its growth failed) it is the
   * out-point clamped to the media's end, as for any file.
   */
  get endMedia(): number {
    if (!this.followsGrowth) return this.#loadedEnd;
    if (this.media.growthState === 'growing') return this.#outMedia ?? Infinity;
    const end = this.media.startSeconds + this.media.durationSeconds;
    return this.#outMedia === null ? end : Math.min(end, this.#outMedia);
  }

  /** The cue id. */
  get id(): string {
    return this.def.id;
  }

  /** Union of the streams of every output, ascending. */
  get allStreams(): number[] {
    return [...new Set([...this.outputs.values()].flat())].sort((a, b) => a - b);
  }

  /** Place the cue on the clock: `mediaSeconds` at `clockSeconds`. */
  start(clockSeconds: number, mediaSeconds: number): CueRun {
    this.run = { clockSeconds, mediaSeconds, id: this.#runs++ };
    this.#numbers.clear();
    this.state = 'playing';
    this.pausedMedia = null;
    return this.run;
  }

  /** Segment `k` (0 = the run's first) of `run`, or null past the end of a cue that does not loop. */
  segment(run: CueRun, k: number): CueSegment | null {
    if (k > 0 && !this.def.loop) return null;
    const segment = this.#number(run, k);
    if (k === 0) return { segment, clockSeconds: run.clockSeconds, mediaSeconds: run.mediaSeconds, endMediaSeconds: this.endMedia };
    const firstPass = this.endMedia - run.mediaSeconds;
    const length = this.endMedia - this.inMedia;
    return {
      segment, clockSeconds: run.clockSeconds + firstPass + (k - 1) * length,
      mediaSeconds: this.inMedia, endMediaSeconds: this.endMedia,
    };
  }

  /** The cue-wide number of pass `k` of `run`: every Follow call asking gets the same, and no two passes share one. */
  #number(run: CueRun, k: number): number {
    if (run !== this.run) return -1; // a stale run (stopped meanwhile): its feed is being aborted
    // Numbers grow with the pass: allocate every pass up to k (a locate may skip passes).
    for (let i = this.#numbers.size; i <= k; i++) this.#numbers.set(i, this.#nextSegment++);
    return this.#numbers.get(k) as number;
  }

  /** Segment numbering, saved with the show state so a restarted server numbers passes as before. */
  get numbering(): { runs: number; nextSegment: number; passes: number[] } {
    return { runs: this.#runs, nextSegment: this.#nextSegment, passes: [...this.#numbers.values()] };
  }

  /** Restore a saved run and its numbering (a server restarted mid-show). */
  restore(state: 'playing' | 'paused', run: CueRun, numbering: { runs: number; nextSegment: number; passes: number[] }, pausedMedia: number | null): void {
    this.state = state;
    this.run = run;
    this.pausedMedia = pausedMedia;
    this.#runs = numbering.runs;
    this.#nextSegment = numbering.nextSegment;
    this.#numbers.clear();
    numbering.passes.forEach((n, k) => this.#numbers.set(k, n));
  }

  /** The segment number (relative to the run, 0 = first) that covers clock position `clock`; 0 before the run. */
  segmentIndexAt(run: CueRun, clock: number): number {
    const firstEnd = run.clockSeconds + (this.endMedia - run.mediaSeconds);
    if (clock < firstEnd || !this.def.loop) return 0;
    return 1 + Math.floor((clock - firstEnd) / (this.endMedia - this.inMedia));
  }

  /** Clock position (s) where a run of a non-looping cue ends (Infinity while its end is open); null for a loop. */
  endClock(run: CueRun): number | null {
    return this.def.loop ? null : run.clockSeconds + (this.endMedia - run.mediaSeconds);
  }

  /** Media position (s) presented at clock position `clock` in `run`, clamped to the cue's span. */
  mediaAt(run: CueRun, clock: number): number {
    const seg = this.segment(run, this.segmentIndexAt(run, clock));
    if (seg === null) return this.endMedia;
    return Math.min(seg.endMediaSeconds, Math.max(seg.mediaSeconds, seg.mediaSeconds + (clock - seg.clockSeconds)));
  }
}
