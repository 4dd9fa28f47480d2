/**
 * Where each cue of an output is on the show clock: the segments announced by CueStarted (media time m is
 * presented at clock time `clock_seconds + (m − media_seconds)`), cut short where a CueStopped says the cue stopped.
 * Both reference players ask it the same questions, so audio and video agree on what is due when.
 */
import type { CueStarted, CueStopped } from '../generated/cuemux/v1/media_server';

/** One segment's place on the clock. */
export interface SegmentWindow {
  /** The cue. */
  cueId: string;
  /** Segment number. */
  segment: number;
  /** Clock position (s) at which `mediaSeconds` is presented. */
  clockSeconds: number;
  /** Media position (s) presented at `clockSeconds`: the segment's first media instant. */
  mediaSeconds: number;
  /** Media position (s) where the segment ends (exclusive). */
  endMediaSeconds: number;
  /** Clock position (s) where the segment ends (exclusive): its media end, or where the cue stopped. */
  endClockSeconds: number;
  /** Stacking order: the run's start across cues (a later GO is on top of earlier ones on a video output). */
  order: number;
}

/** Clock position (s) at which media time `mediaSeconds` of `w` (a segment's window, or its CueStarted) is presented. */
export function clockOf(w: Pick<SegmentWindow, 'clockSeconds' | 'mediaSeconds'>, mediaSeconds: number): number {
  return w.clockSeconds + (mediaSeconds - w.mediaSeconds);
}

/** The cues' segments on one output. */
export class CueTimeline {
  readonly #segments = new Map<string, Map<number, SegmentWindow>>();
  /** Stacking order of each cue's current run: a loop's later passes stay where its first one was. */
  readonly #runOrder = new Map<string, number>();
  #order = 0;

  /** Record a CueStarted. A segment announced again (after a reconnect) keeps its first announcement. */
  started(s: CueStarted): void {
    let m = this.#segments.get(s.cueId);
    if (m === undefined) this.#segments.set(s.cueId, (m = new Map<number, SegmentWindow>()));
    if (m.has(s.segment)) return;
    let order = this.#runOrder.get(s.cueId);
    if (order === undefined) this.#runOrder.set(s.cueId, (order = this.#order++));
    m.set(s.segment, {
      cueId: s.cueId, segment: s.segment, clockSeconds: s.clockSeconds, mediaSeconds: s.mediaSeconds, endMediaSeconds: s.endMediaSeconds,
      endClockSeconds: s.clockSeconds + (s.endMediaSeconds - s.mediaSeconds), order,
    });
  }

  /** Record a CueStopped: every segment of the cue announced so far ends at the stop's clock position. */
  stopped(s: CueStopped): void {
    this.#runOrder.delete(s.cueId); // its next GO (or resume) is a new run, on top
    for (const w of this.#segments.get(s.cueId)?.values() ?? []) w.endClockSeconds = Math.min(w.endClockSeconds, s.clockSeconds);
  }

  /** Forget a cue (unloaded). */
  unloaded(cueId: string): void {
    this.#segments.delete(cueId);
    this.#runOrder.delete(cueId);
  }

  /** The window of one segment, if known. */
  window(cueId: string, segment: number): SegmentWindow | undefined {
    return this.#segments.get(cueId)?.get(segment);
  }

  /** The segments whose clock span contains `clockSeconds`, the most recently announced first. */
  activeAt(clockSeconds: number): SegmentWindow[] {
    const out: SegmentWindow[] = [];
    for (const m of this.#segments.values()) {
      for (const w of m.values()) if (w.clockSeconds <= clockSeconds && clockSeconds < w.endClockSeconds) out.push(w);
    }
    return out.sort((a, b) => b.order - a.order);
  }
}
