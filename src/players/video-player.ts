/**
 * The reference video composer (`cuemux play-video`): at each display tick of its output rate it presents, for the
 * top cue on the output, the decoded frame whose time span covers the show clock at that instant — repeating a
 * frame when the output rate is above the media's, dropping frames when below — and black when no cue is on.
 */
import { getLogger } from '../common/logger';
import type { ClockState } from '../generated/cuemux/v1/media_server';
import type { ClockAt } from '../clients/clock-position';
import { clockOf, CueTimeline, type SegmentWindow } from './cue-timeline';
import type { FirstPictureLog } from './first-picture-log';
import { endsBefore, type FollowerSource, type PrerollAdopted, type TimedPicture } from './follower';
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
  /**
   * After a cue's end (or pause) with nothing else on: `black`, or `hold` its last frame until another cue plays or
   * it is stopped or unloaded (as QLab and PVP do). Default `black`.
   */
  atEnd?: 'black' | 'hold';
  /**
   * Logs the first picture of each segment that started without a preroll (`--first-pictures`), when it reached this
   * thread; absent or null: none.
   */
  firstPictures?: FirstPictureLog | null;
}

/** Counters of a {@link VideoPlayer}. */
export interface VideoPlayerStats {
  /** Ticks presented. */
  ticks: number;
  /** Ticks presented with the cue frame for the clock. */
  frames: number;
  /**
   * Ticks where a cue was on but the frame covering the clock was not decoded in time: the picture shown before was
   * held (or black at a cue's very start), never a frame whose span had passed.
   */
  late: number;
  /** Ticks skipped because the process could not meet them. */
  skipped: number;
  /**
   * Packets the decoder skipped: intra-only pictures of a segment opened at its GO whose time had passed before they
   * could be decoded (see OutputFollower#skips; the sync log's `skipped_packets`).
   */
  skippedPackets: number;
}

/** A queued picture, and how to let go of it (a pooled picture's slot goes back when nobody holds it). */
interface Queued {
  p: TimedPicture;
  release: () => void;
}

/** The picture on screen, kept (retained) so that a tick can hold it. */
interface OnScreen {
  p: TimedPicture;
  release: () => void;
  /** Its presentation time on the clock, s. */
  ptsSeconds: number;
  /** Its window's end on the clock, s. */
  end: number;
}

const nothingToRelease = (): void => undefined;

/** Let go of queued pictures. */
function free(items: Iterable<Queued>): void {
  for (const x of items) x.release();
}

/**
 * When a GO's messages reached this player, CLOCK_MONOTONIC ns: the follower read CueStarted (`startedRead`; in the
 * follow thread) and the presenting thread got it (`startedHeard`), the same for the batch adopting the preroll.
 */
interface GoTrace {
  startedRead: bigint;
  startedHeard: bigint;
  /** Heard at a tick's poll (see FollowerSource.poll), not from the event loop. */
  polled: boolean;
  adoptedRead: bigint | null;
  adoptedHeard: bigint | null;
  /** The segment's first picture was logged (or needs not be: it adopted a preroll). */
  firstNoted: boolean;
}

/** GO traces kept for segments not shown yet (a cue under another may never be): the oldest go beyond this. */
const MAX_GO_TRACES = 16;

/**
 * How long after a segment's start its first picture may wait for the decoder's lead (see VideoPlayer#waitsForLead),
 * clock s: past it, a decoder slower than the clock shows what it has.
 */
const CATCH_UP_WAIT_SECONDS = 0.5;

/**
 * The decoded lead a segment that adopted no preroll waits for before its first picture is shown (see
 * VideoPlayer#waitsForLead), clock s: its pictures decoded through this far past the tick. Why 0.25: in six full
 * bench:go runs (session 16) such segments were shown with 1-3 pictures decoded ahead (one was the rule then), and
 * the decoder of an intra-only 1080p cue, just started on a machine busy with the GO, then stalled for up to 200 ms
 * (no picture decoded; bench:go run 6, cue D1: 8 held ticks): 3-23 out-of-sync ticks a run, the most of any kind.
 */
const CATCH_UP_LEAD_SECONDS = 0.25;

/** Queue key of a cue's segment. */
const segmentKey = (cueId: string, segment: number): string => `${cueId}\0${segment}`;
/** Queue key of a cue's preroll (one per cue: a new preroll replaces the old). */
const prerollKey = (cueId: string): string => `${cueId}\0preroll`;

/** Presents an output's video at display ticks. */
export class VideoPlayer {
  readonly #o: VideoPlayerOptions;
  readonly #follower: FollowerSource;
  readonly #timeline = new CueTimeline();
  /** Decoded pictures by cue and segment (or preroll), in presentation order. */
  readonly #queues = new Map<string, Queued[]>();
  /**
   * By queue key: the picture just before the queue's first, kept while the queue is (see #pick). Why: a clock
   * stopped by a command that took a few ms to reach the server stands where the server anchored it, up to a tick
   * before the instant this player had reached, so the picture for it may be the one before the picture on screen;
   * a stop is no discontinuity, so nothing is decoded again for it. Each segment on the clock so holds one pool slot
   * more than its queue (not counted in `queuedPictures`). A stop frozen further back is a discontinuity (ShowClock).
   */
  readonly #behind = new Map<string, Queued>();
  /** The video stream each cue presents. */
  readonly #streamOf = new Map<string, number>();
  /** Each cue's in-point (media s): a preroll keeps the pictures from the one covering it on. */
  readonly #inPoint = new Map<string, number>();
  #clock: ClockState | null = null;
  /** GO traces by segment key, until the tick showing the segment's first picture logs them. */
  readonly #goTraces = new Map<string, GoTrace>();
  /** Set while a tick polls the follower. */
  #polling = false;
  #ticker: TickScheduler | null = null;
  #onScreen: OnScreen | null = null;
  readonly #stats: VideoPlayerStats = { ticks: 0, frames: 0, late: 0, skipped: 0, skippedPackets: 0 };

  constructor(follower: FollowerSource, options: VideoPlayerOptions) {
    this.#o = options;
    this.#follower = follower;
    follower.on('clock', (s) => {
      if (this.#clock !== null && s.generation !== this.#clock.generation) this.#dropOlderThan(s.generation);
      this.#clock = s;
    });
    follower.on('started', (s, read) => {
      this.#timeline.started(s);
      this.#goTraces.set(segmentKey(s.cueId, s.segment), { startedRead: read, startedHeard: process.hrtime.bigint(), polled: this.#polling, adoptedRead: null, adoptedHeard: null, firstNoted: false });
      for (const k of this.#goTraces.keys()) if (this.#goTraces.size > MAX_GO_TRACES) this.#goTraces.delete(k);
    });
    follower.on('stopped', (s) => {
      this.#timeline.stopped(s);
      // A cue that ended or paused may be held (--at-end hold); one stopped or restarted is not.
      if (s.reason !== 'ended' && s.reason !== 'pause') this.#clearScreen(s.cueId);
    });
    follower.on('unloaded', (id) => {
      this.#timeline.unloaded(id);
      this.#dropCue(id);
      this.#clearScreen(id);
      this.#streamOf.delete(id);
      this.#inPoint.delete(id);
      for (const k of [...this.#goTraces.keys()]) if (k.startsWith(`${id}\0`)) this.#goTraces.delete(k);
    });
    follower.on('loaded', (c) => {
      // A cue may route several video streams to one output: a layer presents one, the first.
      const video = (c.media?.streams ?? []).filter((st) => st.codecType === 'video' && c.streams.includes(st.index)).map((st) => st.index);
      this.#streamOf.set(c.cueId, Math.min(...video));
      this.#inPoint.set(c.cueId, c.inSeconds);
      // Loaded again (re-armed): its old preroll is gone.
      this.#dropQueue(prerollKey(c.cueId));
    });
    follower.on('picture', (p) => this.#add(p));
    follower.on('adopted', (a) => this.#adopted(a));
    // Preroll numbers belong to a Follow call: a new call's prerolls replace every one held.
    follower.on('reconnect', () => {
      for (const k of [...this.#queues.keys()]) if (k.endsWith('\0preroll')) this.#dropQueue(k);
    });
  }

  /** Decoded pictures held for presentation, all cues together (prerolls included). */
  get queuedPictures(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.length;
    return n;
  }

  /** Counters so far. */
  get stats(): Readonly<VideoPlayerStats> {
    return { ...this.#stats, skipped: this.#ticker?.skipped ?? 0, skippedPackets: this.#follower.presented?.skipped ?? 0 };
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
    free(this.#behind.values());
    this.#behind.clear();
    this.#setScreen(null);
  }

  #add(p: TimedPicture): void {
    if (this.#streamOf.get(p.cueId) !== p.stream) return;
    if (p.preroll !== 0) {
      // A preroll's picture (no segment yet): pictures wholly before the in-point are decoder pre-roll, not kept.
      const inPoint = this.#inPoint.get(p.cueId);
      if (inPoint === undefined || endsBefore(p, inPoint)) return;
      const key = prerollKey(p.cueId);
      const q = this.#queues.get(key);
      if (q !== undefined && q.length > 0 && q[0].p.preroll !== p.preroll) this.#dropQueue(key); // replaced
      this.#insert(key, p);
      return;
    }
    if (this.#clock !== null && p.generation < this.#clock.generation) return;
    // Only segments still on the timeline (a drain may outlive an unload).
    const w = this.#timeline.window(p.cueId, p.segment);
    if (w === undefined) return;
    // Decoder pre-roll (wholly before the segment's first media instant) is never shown: not kept.
    if (endsBefore(p, w.mediaSeconds)) return;
    const key = segmentKey(p.cueId, p.segment);
    const trace = this.#goTraces.get(key);
    if (trace !== undefined && !trace.firstNoted && trace.adoptedRead === null) {
      trace.firstNoted = true;
      this.#o.firstPictures?.note(p.frame, {
        monoNs: process.hrtime.bigint(), cueId: p.cueId, segment: p.segment, generation: p.generation,
        mediaSeconds: p.mediaSeconds, clockSeconds: clockOf(w, p.mediaSeconds),
      });
    }
    const q = this.#queues.get(key);
    // A new generation of the same segment replaces what was queued for the old one.
    if (q !== undefined && q.length > 0 && q[0].p.generation !== p.generation) this.#dropQueue(key);
    this.#insert(key, p);
  }

  #insert(key: string, p: TimedPicture): void {
    let q = this.#queues.get(key);
    if (q === undefined) this.#queues.set(key, (q = []));
    const item = { p, release: p.frame.retain?.() ?? nothingToRelease };
    // Decoders give pictures in presentation order; keep the queue sorted anyway (a cheap insert from the end).
    let i = q.length;
    while (i > 0 && q[i - 1].p.mediaSeconds > p.mediaSeconds) i--;
    q.splice(i, 0, item);
  }

  /** A segment adopted the cue's preroll: its pictures are that segment's from now on. */
  #adopted(a: PrerollAdopted): void {
    const trace = this.#goTraces.get(segmentKey(a.cueId, a.segment));
    if (trace !== undefined) {
      trace.adoptedRead = a.receivedNs;
      trace.adoptedHeard = process.hrtime.bigint();
      trace.polled ||= this.#polling;
    }
    const from = prerollKey(a.cueId);
    const q = this.#queues.get(from);
    this.#queues.delete(from);
    if (q === undefined) return;
    const kept: Queued[] = [];
    for (const x of q) {
      if (x.p.preroll !== a.preroll) {
        x.release();
        continue;
      }
      x.p.segment = a.segment;
      x.p.generation = a.generation;
      x.p.preroll = 0;
      kept.push(x);
    }
    const key = segmentKey(a.cueId, a.segment);
    this.#dropQueue(key);
    this.#queues.set(key, kept);
  }

  #dropQueue(key: string): void {
    this.#keepBehind(key, null);
    const q = this.#queues.get(key);
    if (q === undefined) return;
    free(q);
    this.#queues.delete(key);
  }

  #dropCue(cueId: string): void {
    for (const k of [...this.#queues.keys()]) if (k.startsWith(`${cueId}\0`)) this.#dropQueue(k);
  }

  #dropOlderThan(generation: bigint): void {
    // A segment's queue holds one generation (#add empties it for a new one): it is kept or dropped whole. A
    // preroll holds no clock time: a discontinuity leaves it.
    for (const [k, q] of this.#queues) {
      if (q.length > 0 && (q[0].p.preroll !== 0 || q[0].p.generation >= generation)) continue;
      this.#dropQueue(k);
    }
  }

  /** The picture on screen changes: keep the new one (to hold it), let go of the old. */
  #setScreen(next: OnScreen | null): void {
    this.#onScreen?.release();
    this.#onScreen = next;
  }

  /** Stop holding a cue's picture (stopped or unloaded): its ticks go black. */
  #clearScreen(cueId: string): void {
    if (this.#onScreen?.p.cueId === cueId) this.#setScreen(null);
  }

  /** Keep `x` as the picture behind queue `key` (see #behind), or none; the one kept before is let go. */
  #keepBehind(key: string, x: Queued | null): void {
    this.#behind.get(key)?.release();
    if (x === null) this.#behind.delete(key);
    else this.#behind.set(key, x);
  }

  /** The picture covering clock position `c` in window `w`, or null when it is not decoded (yet). */
  #pick(w: SegmentWindow, c: number): { q: Queued; end: number } | null {
    const key = segmentKey(w.cueId, w.segment);
    const q = this.#queues.get(key);
    if (q === undefined || q.length === 0) return null;
    // The last picture due at or before c (the one covering the segment's first instant included).
    let best = -1;
    for (let i = 0; i < q.length; i++) {
      const m = q[i].p.mediaSeconds;
      if (m >= w.endMediaSeconds) break;
      if (clockOf(w, m) <= c + 1e-9) best = i;
      else break;
    }
    if (best < 0) {
      // Before the first queued picture: the one before it, when kept and it covers c (a clock stopped just behind).
      const b = this.#behind.get(key);
      const end = Math.min(clockOf(w, q[0].p.mediaSeconds), w.endClockSeconds);
      return b !== undefined && clockOf(w, b.p.mediaSeconds) <= c + 1e-9 && c < end ? { q: b, end } : null;
    }
    // Everything before the chosen picture is in the past: free it, but for the last (kept behind the queue).
    if (best > 0) {
      const past = q.splice(0, best);
      this.#keepBehind(key, past.pop() as Queued);
      free(past);
    }
    const cur = q[0];
    const next = q.length > 1 ? q[1] : null;
    // A picture ends where the next begins, or with its own duration when the next is more than half a frame later:
    // a picture left out between them (a catching-up intra-only segment skips one whose time would have passed by the
    // time it is decoded, intra-skip.ts) is not covered by the one before it. bench:go --quick showed dnxhd#77 at a tick
    // for #78, whose packet the decoder had skipped. Smaller gaps (rounding, a variable frame rate's durations) stay
    // covered.
    const own = clockOf(w, cur.p.mediaSeconds) + cur.p.durationSeconds;
    const nextStart = next === null ? own : clockOf(w, next.p.mediaSeconds);
    const end = Math.min(nextStart - own > cur.p.durationSeconds / 2 ? own : nextStart, w.endClockSeconds);
    // A picture whose span has passed is never shown: the one for c is still being decoded.
    return c < end ? { q: cur, end } : null;
  }

  /**
   * Whether the top cue's picture for clock position `c` waits for more to be decoded: a GO's segment that adopted no
   * preroll (an unarmed GO, a player that does not prepare) shows its first picture only once its pictures are decoded
   * through {@link CATCH_UP_LEAD_SECONDS} past `c` (or to the segment's end), while its decoder catches up with a
   * running clock. Why: with little decoded after it, a decoder that stalls a moment (just started, on a machine busy
   * with the GO) leaves the ticks after it holding a picture whose time has passed (bench:go on 2819d15: an unarmed
   * H.264 GO, 1 out-of-sync tick of 13,106, the decoder 1 picture ahead at the first in-sync tick). The tick that
   * waits shows black (or the cue under it) though it has the picture for the clock: a late first picture rather than
   * held ones after it. Not for a segment on time (its first picture ready at its start), nor a cue already on
   * screen, nor past {@link CATCH_UP_WAIT_SECONDS} after its start on the clock or after the GO reached the player (a
   * decoder slower than the clock, or a clock stopped, would otherwise never show the cue).
   */
  #waitsForLead(w: SegmentWindow, x: Queued, c: number): boolean {
    const key = segmentKey(w.cueId, w.segment);
    const trace = this.#goTraces.get(key); // kept from CueStarted until the segment's first picture is shown
    if (trace === undefined || trace.adoptedRead !== null || this.#onScreen?.p.cueId === w.cueId) return false;
    const since = c - w.clockSeconds;
    if (since < x.p.durationSeconds || since > CATCH_UP_WAIT_SECONDS) return false;
    // A clock stopped right after the GO does not move `since`: bounded by the time since the GO reached the player too.
    if (process.hrtime.bigint() - trace.startedHeard > BigInt(CATCH_UP_WAIT_SECONDS * 1e9)) return false;
    const q = this.#queues.get(key);
    const last = q === undefined || q.length === 0 ? x : q[q.length - 1];
    const decodedTo = clockOf(w, last.p.mediaSeconds) + last.p.durationSeconds;
    return decodedTo < Math.min(c + CATCH_UP_LEAD_SECONDS, w.endClockSeconds) - 1e-6;
  }

  /** Free the pictures of segments whose clock span is over (a locate back gets new ones, under a new generation). */
  #prune(c: number): void {
    for (const [k, q] of this.#queues) {
      if (q.length > 0 && q[0].p.preroll !== 0) continue; // a preroll waits for its segment
      const w = q.length === 0 ? undefined : this.#timeline.window(q[0].p.cueId, q[0].p.segment);
      if (q.length > 0 && w !== undefined && w.endClockSeconds > c) continue;
      this.#dropQueue(k);
    }
  }

  /**
   * The sync-log fields of the first tick showing a segment's picture: how long before this tick (`now`, ns) its GO
   * reached the player (`go_read_ns`: the follower read CueStarted; `go_heard_ns`: this thread got it; `adopt_read_ns`
   * and `adopt_heard_ns`: the same for the preroll's adoption, armed GOs only; `go_polled`: got at a tick's poll).
   * None after that tick, or when the segment's start was not seen.
   */
  #goFields(key: string, now: bigint): Record<string, number | boolean> {
    const t = this.#goTraces.get(key);
    if (t === undefined) return {};
    this.#goTraces.delete(key);
    const ago = (x: bigint): number => Number(now - x);
    return {
      go_read_ns: ago(t.startedRead), go_heard_ns: ago(t.startedHeard), go_polled: t.polled,
      ...(t.adoptedRead !== null && t.adoptedHeard !== null ? { adopt_read_ns: ago(t.adoptedRead), adopt_heard_ns: ago(t.adoptedHeard) } : {}),
    };
  }

  /** Present the tick due at `tickNs` (CLOCK_MONOTONIC ns). */
  #tick(tickNs: bigint): void {
    // What the follow thread and the decode worker posted while this thread waited out the tick (up to 2 ms of sleep
    // and polling, when the event loop does not run) is taken now: a GO that reached the player before the tick is
    // shown at it.
    this.#polling = true;
    try {
      this.#follower.poll?.();
    } finally {
      this.#polling = false;
    }
    const now = process.hrtime.bigint();
    const s = this.#clock;
    const c = s === null ? 0 : this.#o.clockAt(s, now);
    // For the decoder: the position it must stay ahead of (a remote server's Ping offset included).
    if (s !== null) this.#follower.presented?.publish(now, c);
    let shown: { q: Queued; end: number; w: SegmentWindow } | null = null;
    const active = this.#timeline.activeAt(c);
    for (const w of active) {
      // Every active window is picked (which frees its past pictures), the top one with its frame is shown: a cue
      // under another keeps only its current picture, not a whole pass of decoded frames. Once the top cue is on
      // screen, its picture is held while its next frame decodes: a flash of the cue under it would be worse.
      let r = this.#pick(w, c);
      if (r !== null && w === active[0] && this.#waitsForLead(w, r.q, c)) r = null;
      if (r !== null && shown === null && (w === active[0] || this.#onScreen?.p.cueId !== active[0].cueId)) shown = { ...r, w };
    }
    const due = active.length > 0;
    // The top cue's frame is not decoded yet: the picture on screen stays (black at the very start), never a stale one.
    const late = due && (shown === null || shown.w !== active[0]);
    if (shown !== null && this.#onScreen?.p === shown.q.p) {
      this.#onScreen.end = shown.end; // the same picture again (a 25 fps cue at 50 ticks/s): kept already
    } else if (shown !== null) {
      this.#setScreen({ p: shown.q.p, release: shown.q.p.frame.retain?.() ?? nothingToRelease, ptsSeconds: clockOf(shown.w, shown.q.p.mediaSeconds), end: shown.end });
    } else if (!due && this.#o.atEnd !== 'hold') {
      // Nothing on: black, unless the last picture of a cue that ended (or paused) is held.
      this.#setScreen(null);
    } else if (due && this.#onScreen !== null && !active.some((w) => w.cueId === this.#onScreen?.p.cueId) && this.#o.atEnd !== 'hold') {
      // A new cue starts over a picture whose cue is over: black until its first frame, not the old cue's picture.
      this.#setScreen(null);
    }
    const screen = this.#onScreen;
    const held = screen !== null && shown === null;
    // Decode-ahead of the top cue: its pictures decoded and waiting, the one for this tick included (0 when held).
    const queued = active.length === 0 ? 0 : this.#queues.get(segmentKey(active[0].cueId, active[0].segment))?.length ?? 0;
    const skippedPackets = this.#follower.presented?.skipped ?? 0;
    const info = { monoNs: now, ptsSeconds: screen === null ? null : screen.ptsSeconds, clockSeconds: c, held };
    for (const sink of this.#o.sinks) sink.present(screen === null ? null : screen.p.frame, info);
    this.#stats.ticks++;
    if (shown !== null && !late) this.#stats.frames++;
    if (late) {
      this.#stats.late++;
      if (this.#stats.late === 1 || this.#stats.late % 100 === 0) log.warn('a frame was not decoded in time for its tick', { clockSeconds: c, late: this.#stats.late });
    }
    // late_ns: how far after its display instant the tick was presented (the tick's jitter).
    const lateNs = Number(now - tickNs);
    // A sink's own figures (a window's presentation latency) join the line.
    let extra: Record<string, string | number | boolean | null> = {};
    for (const sink of this.#o.sinks) if (sink.syncFields !== undefined) extra = { ...extra, ...sink.syncFields() };
    if (shown !== null && !late) extra = { ...extra, ...this.#goFields(segmentKey(shown.w.cueId, shown.w.segment), now) };
    this.#o.syncLog?.record(now, info.ptsSeconds, c, screen === null
      ? { cue: null, due, queued, skipped_packets: skippedPackets, late_ns: lateNs, ...extra }
      : {
        cue: screen.p.cueId, segment: screen.p.segment, media_seconds: screen.p.mediaSeconds, end_seconds: screen.end,
        covers: !held && c < screen.end, held, due, queued, skipped_packets: skippedPackets, late_ns: lateNs, ...extra,
      });
    // After presenting: the tick's instant matters more than freeing memory.
    this.#prune(c);
  }
}
