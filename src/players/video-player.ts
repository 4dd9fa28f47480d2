/**
 * The reference video composer (`cuemux play-video`): at each display tick of its output rate it presents, for the
 * top cue on the output, the decoded frame whose time span covers the show clock at that instant — repeating a
 * frame when the output rate is above the media's, dropping frames when below — and black when no cue is on.
 */
import { getLogger } from '../common/logger';
import type { ClockState } from '../generated/cuemux/v1/media_server';
import type { ClockAt } from '../clients/clock-position';
import { clockOf, CueTimeline, type SegmentWindow } from './cue-timeline';
import type { FollowerSource, TimedPicture } from './follower';
import type { SyncLog } from './sync-log';
import { TickScheduler } from './tick-scheduler';
import type { VideoSink } from './video-sinks';

const log = getLogger('play-video');

/** Options of {@link VideoPlayer}. */
export interface VideoPlayerOptions {
  /** Display ticks per second as a rational, e.g. 60/1 or 30000/1001. */
  fps: { num: number; den: number };
  /** Where pictures go (each tick goes to every sink). */
  sinks: VideoSink[];
  /** One JSON line per tick (`--sync-log`), or null. */
  syncLog: SyncLog | null;
  /** Poll the clock for the last part of each wait, ns (default 2 ms). */
  spinNs?: bigint;
  /** The show position of a clock state at an instant (play-command maps it locally or through the Ping offset). */
  clockAt: ClockAt;
}

/** Counters of a {@link VideoPlayer}. */
export interface VideoPlayerStats {
  /** Ticks presented. */
  ticks: number;
  /** Ticks presented with a cue frame. */
  frames: number;
  /** Ticks where a cue was on but the frame covering the clock was not decoded in time (a previous one was shown). */
  late: number;
  /** Ticks skipped because the process could not meet them. */
  skipped: number;
}

/** A queued picture, and how to let go of it (a pooled picture's slot goes back when nobody holds it). */
interface Queued {
  p: TimedPicture;
  release: () => void;
}

const nothingToRelease = (): void => undefined;

/** Let go of queued pictures. */
function free(items: Iterable<Queued>): void {
  for (const x of items) x.release();
}

/** Presents an output's video at display ticks. */
export class VideoPlayer {
  readonly #o: VideoPlayerOptions;
  readonly #timeline = new CueTimeline();
  /** Decoded pictures by cue and segment ("cue\0segment"), in presentation order. */
  readonly #queues = new Map<string, Queued[]>();
  /** The video stream each cue presents. */
  readonly #streamOf = new Map<string, number>();
  #clock: ClockState | null = null;
  #ticker: TickScheduler | null = null;
  readonly #stats: VideoPlayerStats = { ticks: 0, frames: 0, late: 0, skipped: 0 };

  constructor(follower: FollowerSource, options: VideoPlayerOptions) {
    this.#o = options;
    follower.on('clock', (s) => {
      if (this.#clock !== null && s.generation !== this.#clock.generation) this.#dropOlderThan(s.generation);
      this.#clock = s;
    });
    follower.on('started', (s) => this.#timeline.started(s));
    follower.on('stopped', (s) => this.#timeline.stopped(s));
    follower.on('unloaded', (id) => {
      this.#timeline.unloaded(id);
      for (const [k, q] of [...this.#queues]) {
        if (!k.startsWith(`${id}\0`)) continue;
        free(q);
        this.#queues.delete(k);
      }
    });
    follower.on('loaded', (c) => {
      // A cue may route several video streams to one output: a layer presents one, the first.
      const video = (c.media?.streams ?? []).filter((st) => st.codecType === 'video' && c.streams.includes(st.index)).map((st) => st.index);
      this.#streamOf.set(c.cueId, Math.min(...video));
    });
    follower.on('picture', (p) => this.#add(p));
  }

  /** Decoded pictures held for presentation, all cues together. */
  get queuedPictures(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.length;
    return n;
  }

  /** Counters so far. */
  get stats(): Readonly<VideoPlayerStats> {
    return { ...this.#stats, skipped: this.#ticker?.skipped ?? 0 };
  }

  /** Start presenting: the first tick is now, then one every period. */
  start(): void {
    this.#ticker = new TickScheduler({ startNs: process.hrtime.bigint(), rate: this.#o.fps, spinNs: this.#o.spinNs }, (_n, at) => this.#tick(at));
    this.#ticker.start();
  }

  /** Stop presenting and let go of the queued pictures (sinks and log are the caller's to close). Idempotent. */
  stop(): void {
    this.#ticker?.stop();
    for (const q of this.#queues.values()) free(q);
    this.#queues.clear();
  }

  #add(p: TimedPicture): void {
    if (this.#clock !== null && p.generation < this.#clock.generation) return;
    // Only the presented stream, and only for segments still on the timeline (a drain may outlive an unload).
    const w = this.#timeline.window(p.cueId, p.segment);
    if (this.#streamOf.get(p.cueId) !== p.stream || w === undefined) return;
    // Decoder pre-roll (from the keyframe before the segment's first media instant) is never shown: not kept.
    if (p.mediaSeconds + p.durationSeconds <= w.mediaSeconds + 1e-9) return;
    const key = `${p.cueId}\0${p.segment}`;
    let q = this.#queues.get(key);
    if (q === undefined) this.#queues.set(key, (q = []));
    // A new generation of the same segment replaces what was queued for the old one.
    if (q.length > 0 && q[0].p.generation !== p.generation) free(q.splice(0));
    const item = { p, release: p.frame.retain?.() ?? nothingToRelease };
    // Decoders give pictures in presentation order; keep the queue sorted anyway (a cheap insert from the end).
    let i = q.length;
    while (i > 0 && q[i - 1].p.mediaSeconds > p.mediaSeconds) i--;
    q.splice(i, 0, item);
  }

  #dropOlderThan(generation: bigint): void {
    // A queue holds one generation (#add empties it for a new one): it is kept or dropped whole.
    for (const [k, q] of this.#queues) {
      if (q.length > 0 && q[0].p.generation >= generation) continue;
      free(q);
      this.#queues.delete(k);
    }
  }

  /** The picture to present at clock position `c` for window `w`, and whether it covers `c`. */
  #pick(w: SegmentWindow, c: number): { q: Queued; covers: boolean; end: number } | null {
    const q = this.#queues.get(`${w.cueId}\0${w.segment}`);
    if (q === undefined || q.length === 0) return null;
    // Pictures before the segment's first media instant are decoder pre-roll: never shown.
    let best = -1;
    for (let i = 0; i < q.length; i++) {
      const m = q[i].p.mediaSeconds;
      if (m < w.mediaSeconds - 1e-9 || m >= w.endMediaSeconds) continue;
      if (clockOf(w, m) <= c + 1e-9) best = i;
      else break;
    }
    if (best < 0) return null;
    // Everything before the chosen picture is in the past: free it.
    if (best > 0) free(q.splice(0, best));
    const cur = q[0];
    const next = q.length > 1 ? q[1] : null;
    const end = Math.min(next !== null ? clockOf(w, next.p.mediaSeconds) : clockOf(w, cur.p.mediaSeconds) + cur.p.durationSeconds, w.endClockSeconds);
    return { q: cur, covers: c < end, end };
  }

  /** Free the pictures of segments whose clock span is over (a locate back gets new ones, under a new generation). */
  #prune(c: number): void {
    for (const [k, q] of this.#queues) {
      const w = q.length === 0 ? undefined : this.#timeline.window(q[0].p.cueId, q[0].p.segment);
      if (q.length > 0 && w !== undefined && w.endClockSeconds > c) continue;
      free(q);
      this.#queues.delete(k);
    }
  }

  /** Present the tick due at `tickNs` (CLOCK_MONOTONIC ns). */
  #tick(tickNs: bigint): void {
    const now = process.hrtime.bigint();
    const s = this.#clock;
    const c = s === null ? 0 : this.#o.clockAt(s, now);
    let shown: { q: Queued; covers: boolean; end: number; w: SegmentWindow } | null = null;
    let due = false;
    for (const w of this.#timeline.activeAt(c)) {
      // Every active window is picked (which frees its past pictures), the top one with a picture is shown: a cue
      // under another keeps only its current picture, not a whole pass of decoded frames.
      const r = this.#pick(w, c);
      due = true;
      if (r !== null && shown === null) shown = { ...r, w };
    }
    const info = {
      monoNs: now, ptsSeconds: shown === null ? null : clockOf(shown.w, shown.q.p.mediaSeconds), clockSeconds: c,
    };
    for (const sink of this.#o.sinks) sink.present(shown === null ? null : shown.q.p.frame, info);
    this.#stats.ticks++;
    if (shown !== null) this.#stats.frames++;
    if (due && (shown === null || !shown.covers)) {
      this.#stats.late++;
      if (this.#stats.late === 1 || this.#stats.late % 100 === 0) log.warn('a frame was not decoded in time for its tick', { clockSeconds: c, late: this.#stats.late });
    }
    // late_ns: how far after its display instant the tick was presented (the tick's jitter).
    const lateNs = Number(now - tickNs);
    this.#o.syncLog?.record(now, info.ptsSeconds, c, shown === null
      ? { cue: null, due, late_ns: lateNs }
      : { cue: shown.w.cueId, segment: shown.w.segment, media_seconds: shown.q.p.mediaSeconds, end_seconds: shown.end, covers: shown.covers, late_ns: lateNs });
    // After presenting: the tick's instant matters more than freeing memory.
    this.#prune(c);
  }
}
