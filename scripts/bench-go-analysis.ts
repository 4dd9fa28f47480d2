/**
 * bench:go's judge: what the players presented (their hash sinks and sync logs, the audio player's WAV), checked
 * from outside against FFmpeg's own decode of the files and the cues' places on the show clock as a Follow client
 * saw them (CueStarted/CueStopped) and the clock's anchor (ClockState, CLOCK_MONOTONIC).
 *
 * - A tick is **in sync** when its picture's MD5 equals FFmpeg's frame for the media time its instant maps to on the
 *   clock: of the top cue (the latest run started, as a video layer stacks them), the frame with the largest pts at
 *   or before `media_seconds + (clock − clock_seconds)` of its segment (an in-point between frames shows the frame
 *   before it). The clock is computed here from the ClockState, not taken from the player's line.
 * - An audio period of a cue is **in sync** when the samples in the WAV at its device samples equal FFmpeg's samples
 *   at the media time the clock asks for at its device instant (summed with the other cues playing in the same
 *   samples); the player's own counters (underrun) only explain a miss.
 */
import { readSyncLog } from '../src/players/sync-log';
import type { FollowLine } from './bench-go-procs';
import type { Tick } from './bench/presented';
import { frameAt, type RefAudio, type RefVideo } from './bench/reference';

// ------------------------------------------------------------------------------------------------------------------
// The show as the Follow client saw it

/** The show clock from the ClockStates the Follow client received. */
export class ShowClock {
  readonly #states: Array<{ anchor: bigint; pos: number; rate: number; running: boolean; gen: string }>;

  constructor(lines: readonly FollowLine[]) {
    this.#states = [];
    for (const l of lines) {
      if (l.e !== 'clock') continue;
      const s = { anchor: BigInt(l.anchor), pos: l.pos, rate: l.rate, running: l.state !== 'stopped' && l.rate !== 0, gen: l.gen };
      const last = this.#states[this.#states.length - 1];
      if (last !== undefined && last.anchor === s.anchor && last.pos === s.pos && last.rate === s.rate && last.running === s.running) continue;
      this.#states.push(s);
    }
    this.#states.sort((a, b) => (a.anchor < b.anchor ? -1 : a.anchor > b.anchor ? 1 : 0));
    if (this.#states.length === 0) throw new Error('the Follow client saw no clock state');
  }

  /** Clock generations seen (a discontinuity during the run would show here). */
  get generations(): number {
    return new Set(this.#states.map((s) => s.gen)).size;
  }

  /** Show position (s) at CLOCK_MONOTONIC instant `mono`. */
  at(mono: bigint): number {
    let s = this.#states[0];
    for (const x of this.#states) {
      if (x.anchor <= mono) s = x;
      else break;
    }
    return s.running ? s.pos + (s.rate * Number(mono - s.anchor)) / 1e9 : s.pos;
  }
}

/** One cue segment's place on the clock (a CueStarted, cut short by a CueStopped). */
export interface Win {
  cue: string;
  seg: number;
  /** Clock position (s) of `media`. */
  clock: number;
  media: number;
  endMedia: number;
  endClock: number;
  /** Stacking order of its run (a later run is on top). */
  order: number;
  /** The first segment of its run (a GO), not a loop pass or an auto-follow start. */
  first: boolean;
  /** When the Follow client received the CueStarted. */
  mono: bigint;
}

/** Every segment of the run. */
export class Timeline {
  readonly wins: Win[] = [];

  constructor(lines: readonly FollowLine[]) {
    const runOf = new Map<string, number>();
    let order = 0;
    for (const l of lines) {
      if (l.e === 'started') {
        let o = runOf.get(l.cue);
        const first = o === undefined;
        if (o === undefined) runOf.set(l.cue, (o = order++));
        this.wins.push({ cue: l.cue, seg: l.seg, clock: l.clock, media: l.media, endMedia: l.end, endClock: l.clock + (l.end - l.media), order: o, first, mono: BigInt(l.mono) });
      } else if (l.e === 'stopped') {
        runOf.delete(l.cue);
        for (const w of this.wins) if (w.cue === l.cue) w.endClock = Math.min(w.endClock, l.clock);
      }
    }
  }

  /** Segments on at clock `c`, top first. */
  activeAt(c: number): Win[] {
    return this.wins.filter((w) => w.clock <= c && c < w.endClock).sort((a, b) => b.order - a.order || b.seg - a.seg);
  }

  /** The segments of the run `first` begins. */
  runOf(first: Win): Win[] {
    return this.wins.filter((w) => w.cue === first.cue && w.order === first.order);
  }
}

// ------------------------------------------------------------------------------------------------------------------
// What the audio player logged

/** One audio sync-log line: a period's samples of one cue. */
export interface AudioLine {
  mono: bigint;
  pts: number;
  clock: number;
  cue: string;
  seg: number;
  media: number;
  samples: number;
  underrun: number;
  slew: number;
  deviceSample: number;
}

/** An audio player's sync log. */
export async function readAudioLines(file: string): Promise<AudioLine[]> {
  return (await readSyncLog(file)).filter((r) => typeof r.extra.cue === 'string').map((r) => ({
    mono: r.monoNs, pts: r.ptsSeconds ?? NaN, clock: r.clockSeconds, cue: String(r.extra.cue), seg: Number(r.extra.segment),
    media: Number(r.extra.media_seconds), samples: Number(r.extra.samples), underrun: Number(r.extra.underrun), slew: Number(r.extra.slew ?? 0),
    deviceSample: Number(r.extra.device_sample),
  }));
}

// ------------------------------------------------------------------------------------------------------------------
// Judging

/** What the judge knows. */
export interface Show {
  clock: ShowClock;
  timeline: Timeline;
  /** Each cue's media reference. */
  video: ReadonlyMap<string, RefVideo>;
  audio: ReadonlyMap<string, RefAudio>;
  /** Every frame MD5 of every file → "tag#frame" (to say what a wrong tick showed). */
  frameNames: ReadonlyMap<string, string>;
}

/** Build the MD5 → frame name map of the references. */
export function frameNames(refs: Iterable<RefVideo>): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of refs) r.md5.forEach((h, i) => m.set(h, `${r.tag}#${i}`));
  return m;
}

/** The frame expected on screen at clock `c` (null: no cue on). */
export function expectedAt(show: Show, c: number): { win: Win; frame: number; md5: string } | null {
  const top = show.timeline.activeAt(c)[0];
  if (top === undefined) return null;
  const ref = show.video.get(top.cue);
  if (ref === undefined) return null;
  const frame = frameAt(ref, top.media + (c - top.clock));
  return frame < 0 ? null : { win: top, frame, md5: ref.md5[frame] };
}

/** How a tick before a GO's first in-sync picture looked. */
export type PreSync = 'held' | 'black' | 'under' | 'wrong-new' | 'wrong';

/** A GO's video result on one player. */
export interface VideoGo {
  /** Tick slots after the datagram up to the first in-sync picture (1 = the first tick after it); null: never in sync before the next GO or its end. */
  ticks: number | null;
  /** Datagram → the first in-sync picture's presentation instant, ms. */
  ms: number | null;
  /** Datagram → the tick before it (the frame was not shown there, so it was ready after it, give or take), ms. */
  readyAfterMs: number | null;
  /** The ticks before it (after the datagram). */
  pre: PreSync[];
  /** Descriptions of those ticks, for the report. */
  preText: string[];
  /** Frame of the first in-sync picture (tag#n) and the in-point's frame. */
  firstFrame: string | null;
  inPointFrame: string | null;
  /** [datagram, first in-sync tick) in ns: the GO's pending span, not counted as out of sync. */
  pendingUntil: bigint;
  /** The player's decode-ahead at the first in-sync tick (its sync log's `queued`: pictures ready, that one's included); null when not logged. */
  queued: number | null;
  /** The player's GO trace at that tick (its sync log, see VideoPlayer): ms before it each hop happened; null when not logged. */
  trace: GoTrace | null;
}

/** When a GO reached a player, ms before its first in-sync tick (the sync log's go_*_ns and adopt_*_ns fields). */
export interface GoTrace {
  /** The follower (decode worker) read CueStarted. */
  read: number;
  /** The presenting thread got it. */
  heard: number;
  /** The same for the batch adopting the preroll (armed GOs). */
  adoptRead: number | null;
  adoptHeard: number | null;
  /** Got at a tick's poll, not from the presenting thread's event loop. */
  polled: boolean;
}

/** The GO trace of a sync-log line, or null. */
function goTrace(extra: Tick['extra']): GoTrace | null {
  const ms = (k: string): number | null => {
    const v = extra?.[k];
    return typeof v === 'number' ? v / 1e6 : null;
  };
  const read = ms('go_read_ns');
  const heard = ms('go_heard_ns');
  if (read === null || heard === null) return null;
  return { read, heard, adoptRead: ms('adopt_read_ns'), adoptHeard: ms('adopt_heard_ns'), polled: extra?.go_polled === true };
}

/**
 * Judge GO `run` (its first segment) on a video player's `ticks`, from the datagram instant `sendMono` until
 * `limitMono` (the next datagram of any GO, or the player's end).
 */
export function judgeVideoGo(show: Show, ticks: readonly Tick[], run: Win, sendMono: bigint, limitMono: bigint, periodNs: number): VideoGo {
  const segs = new Set(show.timeline.runOf(run).map((w) => w.seg));
  const ref = show.video.get(run.cue) as RefVideo;
  const inFrame = frameAt(ref, run.media);
  const res: VideoGo = { ticks: null, ms: null, readyAfterMs: null, pre: [], preText: [], firstFrame: null, inPointFrame: `${ref.tag}#${inFrame}`, pendingUntil: limitMono, queued: null, trace: null };
  let j = ticks.findIndex((t) => t.mono > sendMono);
  if (j < 0) return res;
  let prevMd5: string | null | undefined = j > 0 ? ticks[j - 1].md5 : undefined;
  let prevMono = j > 0 ? ticks[j - 1].mono : sendMono;
  for (; j < ticks.length && ticks[j].mono < limitMono; j++) {
    const t = ticks[j];
    const c = show.clock.at(t.mono);
    const active = show.timeline.activeAt(c);
    const top = active[0];
    const exp = expectedAt(show, c);
    if (top !== undefined && top.cue === run.cue && segs.has(top.seg) && exp !== null && t.md5 === exp.md5) {
      res.ticks = Math.max(1, Math.ceil(Number(t.due - sendMono) / periodNs));
      res.ms = Number(t.mono - sendMono) / 1e6;
      res.readyAfterMs = Math.max(0, Number(prevMono - sendMono) / 1e6);
      res.firstFrame = `${ref.tag}#${exp.frame}`;
      res.pendingUntil = t.mono;
      res.queued = typeof t.extra?.queued === 'number' ? t.extra.queued : null;
      res.trace = goTrace(t.extra);
      return res;
    }
    if (top !== undefined && top.cue === run.cue && !segs.has(top.seg)) break; // another run of the cue: over
    // Not yet: what was on screen instead.
    const under = active.find((w) => !(w.cue === run.cue && segs.has(w.seg)));
    const underRef = under === undefined ? undefined : show.video.get(under.cue);
    const underMd5 = under === undefined || underRef === undefined ? undefined : underRef.md5[frameAt(underRef, under.media + (c - under.clock))];
    let kind: PreSync;
    if (t.md5 === null) kind = 'black';
    else if (underMd5 !== undefined && t.md5 === underMd5) kind = 'under';
    else if (t.md5 === prevMd5) kind = 'held';
    else if (show.frameNames.get(t.md5)?.startsWith(`${ref.tag}#`) === true && (top?.cue === run.cue)) kind = 'wrong-new';
    else kind = 'wrong';
    res.pre.push(kind);
    const shown = t.md5 === null ? 'black' : show.frameNames.get(t.md5) ?? 'unknown picture';
    const player = t.extra === null ? '' : ` (player: cue ${String(t.extra.cue)}${t.extra.held === true ? ', held' : ''}${t.extra.covers === false ? ', covers false' : ''})`;
    res.preText.push(`${kind} ${shown}${exp !== null && exp.win.cue === run.cue ? ` for ${ref.tag}#${exp.frame}` : ''}${player}`);
    prevMd5 = t.md5;
    prevMono = t.mono;
  }
  return res;
}

/** A `play-video --first-pictures` line: a segment's first picture, when it reached the presenting thread. */
export interface FirstPictureLine {
  mono: bigint;
  cue: string;
  segment: number;
  /** Its media time, s. */
  pts: number;
  md5: string;
}

/** The lines of a `--first-pictures` file (none when it is missing: a run made before the option). */
export async function readFirstPictures(file: string): Promise<FirstPictureLine[]> {
  const records = await readSyncLog(file).catch(() => []);
  return records.map((r) => ({ mono: r.monoNs, cue: String(r.extra.cue), segment: Number(r.extra.segment), pts: r.ptsSeconds ?? NaN, md5: String(r.extra.md5) }));
}

/** When an unprepared GO's first picture was decoded and ready to show, checked against FFmpeg. */
export interface FirstPicture {
  /** Datagram → the picture reached the presenting thread, ms. */
  ms: number;
  /** Which frame it is (tag#n) by its media time, and whether that is the in-point's frame. */
  frame: string;
  inPoint: boolean;
  /** Its MD5 is FFmpeg's for that frame. */
  correct: boolean;
}

/** GO `run`'s first picture on a player (its `--first-pictures` lines), from datagram `sendMono` until `limitMono`. */
export function judgeFirstPicture(show: Show, lines: readonly FirstPictureLine[], run: Win, sendMono: bigint, limitMono: bigint): FirstPicture | null {
  const l = lines.find((x) => x.cue === run.cue && x.segment === run.seg && x.mono > sendMono && x.mono < limitMono);
  const ref = show.video.get(run.cue);
  if (l === undefined || ref === undefined) return null;
  const n = frameAt(ref, l.pts);
  return { ms: Number(l.mono - sendMono) / 1e6, frame: `${ref.tag}#${n}`, inPoint: n === frameAt(ref, run.media), correct: n >= 0 && ref.md5[n] === l.md5 };
}

/** A tick that showed the wrong picture outside any GO's pending span. */
export interface WrongTick {
  mono: bigint;
  clock: number;
  cue: string;
  expected: string;
  shown: string;
  held: boolean;
  /** A display slot the player skipped (nothing presented: the picture before stayed on screen). */
  skipped: boolean;
  /** What it showed instead: black, the picture of the tick before, the cue under the top one in sync, or another frame. */
  kind: 'black' | 'repeated' | 'under' | 'other';
}

/**
 * Ticks of a player outside every pending span (a GO's datagram up to its first in-sync picture) whose picture is
 * not FFmpeg's frame for the clock; ticks with no cue on are not judged. A display slot the player skipped (a gap
 * in its tick instants) is judged too, with the picture of the tick before it, which stayed on screen. Returns the
 * judged count and the wrong ones.
 */
export function judgeTicks(show: Show, ticks: readonly Tick[], pending: ReadonlyArray<[bigint, bigint]>, periodNs: number): { judged: number; skipped: number; wrong: WrongTick[] } {
  const spans = [...pending].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  let k = 0;
  let judged = 0;
  let skipped = 0;
  const wrong: WrongTick[] = [];
  const judge = (mono: bigint, md5: string | null, prevMd5: string | null | undefined, held: boolean, skip: boolean): void => {
    while (k < spans.length && spans[k][1] <= mono) k++;
    if (k < spans.length && spans[k][0] < mono && mono < spans[k][1]) return;
    const c = show.clock.at(mono);
    const exp = expectedAt(show, c);
    if (exp === null) return;
    judged++;
    if (skip) skipped++;
    if (md5 === exp.md5) return;
    const under = show.timeline.activeAt(c)[1];
    const underRef = under === undefined ? undefined : show.video.get(under.cue);
    const underMd5 = under === undefined || underRef === undefined ? undefined : underRef.md5[frameAt(underRef, under.media + (c - under.clock))];
    const kind = md5 === null ? 'black' : md5 === underMd5 ? 'under' : md5 === prevMd5 ? 'repeated' : 'other';
    wrong.push({ mono, clock: c, cue: exp.win.cue, expected: show.frameNames.get(exp.md5) ?? '?', shown: md5 === null ? 'black' : show.frameNames.get(md5) ?? 'unknown picture', held, skipped: skip, kind });
  };
  ticks.forEach((t, j) => {
    judge(t.mono, t.md5, j > 0 ? ticks[j - 1].md5 : undefined, t.extra?.held === true, false);
    const next = ticks[j + 1];
    if (next === undefined) return;
    const gap = Math.round(Number(next.due - t.due) / periodNs) - 1;
    for (let g = 1; g <= gap; g++) judge(t.due + BigInt(Math.round(g * periodNs)), t.md5, t.md5, false, true);
  });
  return { judged, skipped, wrong };
}

/** A GO's audio result on the audio player. */
export interface AudioGo {
  /** Datagram → the device instant of the cue's first sample, ms (null: none logged). */
  firstMs: number | null;
  /** Whether that first period is in sync (every sample FFmpeg's for the clock). */
  firstOk: boolean;
  /** Why not, when not. */
  firstWhy: string;
  /** Datagram → the first in-sync period's device instant, ms. */
  syncMs: number | null;
  /** Samples (per channel) of the cue's first 0.5 s that were not FFmpeg's for the clock (silence or wrong). */
  bad: number;
  /** Periods of the first 0.5 s that could not be checked (mixed with a cue whose samples are unknown there). */
  unverifiable: number;
  /** Samples the player itself counted as missing (underrun) in the first 0.5 s. */
  underrun: number;
}

/** The audio player's lines grouped by device period (in log order within one). */
export function byPeriod(lines: readonly AudioLine[], periodFrames: number): Map<number, AudioLine[]> {
  const m = new Map<number, AudioLine[]>();
  for (const l of lines) {
    const p = Math.floor(l.deviceSample / periodFrames);
    const g = m.get(p);
    if (g === undefined) m.set(p, [l]);
    else g.push(l);
  }
  return m;
}

/** What one period of a cue held, against FFmpeg. */
export interface LineCheck {
  /** Samples (per channel) not FFmpeg's for the clock (at the best of 0, ±1 sample: the clock's instant rounds to either); NaN when unverifiable. */
  bad: number;
  /** Null when in sync, else why not. */
  why: string | null;
}

/**
 * Check one line against FFmpeg: the WAV's samples at its device samples must be FFmpeg's samples of its cue at the
 * media time the clock asks for at its device instant (window `win`), plus the other cues playing in the same
 * samples (at the positions they logged: they must be whole there, else this period cannot be checked).
 */
export function checkAudioLine(show: Show, l: AudioLine, win: Win, period: readonly AudioLine[], wav: Float32Array, sampleRate: number): LineCheck {
  const ref = show.audio.get(l.cue);
  if (ref === undefined) return { bad: NaN, why: 'no reference' };
  const ch = ref.channels;
  const mExp = win.media + (show.clock.at(l.mono) - win.clock);
  const want = Math.round((mExp - ref.first) * sampleRate);
  const others = period.filter((o) => o !== l);
  for (const o of others) if (o.underrun > 0 || o.slew !== 0) return { bad: NaN, why: `mixed with cue ${o.cue}, which is not whole there` };
  const expected = (offset: number, k: number, c: number): number => {
    let sum = 0;
    for (const o of period) {
      if (k < o.deviceSample || k >= o.deviceSample + o.samples) continue;
      const r = show.audio.get(o.cue);
      if (r === undefined) return NaN;
      const base = o === l ? want + offset : Math.round((o.media - r.first) * sampleRate);
      sum = Math.fround(sum + (r.samples[(base + (k - o.deviceSample)) * ch + c] ?? NaN));
    }
    return sum;
  };
  const mismatches = (offset: number, stopAt = Infinity): number => {
    let n = 0;
    for (let k = l.deviceSample; k < l.deviceSample + l.samples && n < stopAt; k++) {
      for (let c = 0; c < ch; c++) {
        if (!(Math.abs(wav[k * ch + c] - expected(offset, k, c)) <= (others.length === 0 ? 0 : 1e-6))) {
          n++;
          break;
        }
      }
    }
    return n;
  };
  const bad = Math.min(mismatches(0), mismatches(-1), mismatches(1));
  if (bad === 0) return { bad: 0, why: null };
  const player = l.underrun > 0 ? `; the player counted ${l.underrun} missing (underrun)` : '';
  for (let off = -480; off <= 480; off++) {
    if (Math.abs(off) > 1 && mismatches(off, 1) === 0) {
      return { bad, why: `${bad} of ${l.samples} samples not FFmpeg's: they are ${off} samples (${((off / sampleRate) * 1e3).toFixed(2)} ms) off the clock${player}` };
    }
  }
  const silent = (): boolean => {
    for (let i = l.deviceSample * ch; i < (l.deviceSample + l.samples) * ch; i++) if (wav[i] !== 0) return false;
    return true;
  };
  return { bad, why: `${bad} of ${l.samples} samples not FFmpeg's${silent() ? ' (silence)' : ''}${player}` };
}

/** Judge GO `run` on the audio player's lines (all of its instance), grouped by period. */
export function judgeAudioGo(show: Show, lines: readonly AudioLine[], periods: ReadonlyMap<number, AudioLine[]>, run: Win, sendMono: bigint,
  limitMono: bigint, wav: Float32Array | null, periodFrames: number, sampleRate: number): AudioGo {
  const wins = show.timeline.runOf(run);
  const segs = new Map(wins.map((w) => [w.seg, w]));
  const mine = lines.filter((l) => l.cue === run.cue && segs.has(l.seg) && l.mono > sendMono && l.mono < limitMono);
  const res: AudioGo = { firstMs: null, firstOk: false, firstWhy: 'no period of the cue was played', syncMs: null, bad: 0, unverifiable: 0, underrun: 0 };
  if (mine.length === 0) return res;
  const first = mine[0];
  res.firstMs = Number(first.mono - sendMono) / 1e6;
  const horizon = first.mono + 500_000_000n;
  for (const l of mine) {
    const inHorizon = l.mono <= horizon;
    if (!inHorizon && res.syncMs !== null) break;
    const r = wav === null ? { bad: NaN, why: 'no WAV' } : checkAudioLine(show, l, segs.get(l.seg) as Win, periods.get(Math.floor(l.deviceSample / periodFrames)) ?? [l], wav, sampleRate);
    if (inHorizon) {
      res.underrun += l.underrun;
      if (Number.isNaN(r.bad)) res.unverifiable++;
      else res.bad += r.bad;
    }
    if (l === first) {
      res.firstOk = r.why === null;
      res.firstWhy = r.why ?? '';
    }
    if (r.why === null && res.syncMs === null) res.syncMs = Number(l.mono - sendMono) / 1e6;
  }
  return res;
}
