/**
 * The show clock: one position every player presents. It is stopped, playing (free-running internal master) or
 * chasing (following an external timecode, see TimecodeChaser). Its state is an anchor — a position at a monotonic
 * instant plus a rate — so any process on the machine computes the current position exactly, and the state only
 * changes on events (play, stop, locate, rate, a chase correction), never per tick.
 */
import { randomBytes } from 'node:crypto';
import { CuemuxError } from '../common/errors';
import { monoNs, monoToUnixNs, unixToMonoNs } from '../common/time-source';
import { TypedEmitter } from '../common/typed-emitter';
import { parseTimecodeRate, secondsToTimecode, type TimecodeRate } from './timecode';

/** What the clock is doing. */
export type ClockStateName = 'stopped' | 'playing' | 'chasing';

/** Who drives the clock: the server itself, or a timecode fed from outside. */
export type ClockSource = 'internal' | 'external';

/** The clock at its anchor instant (the ClockState of the API). */
export interface ClockSnapshot {
  /** Timeline number: grows on every discontinuity (a locate, a chased timecode's jump or loss); not at play or stop. */
  readonly generation: number;
  /** Stopped, playing or chasing. */
  readonly state: ClockStateName;
  /** Show seconds per real second while running (kept while stopped, applied on play). */
  readonly rate: number;
  /** Show position at the anchor, in seconds. */
  readonly positionSeconds: number;
  /** The anchor on the monotonic clock, in ns (CLOCK_MONOTONIC). */
  readonly anchorMonoNs: bigint;
  /** The same anchor on the Unix wall clock, in ns since the epoch. */
  readonly anchorUnixNs: bigint;
  /** Timecode rate of the labels. */
  readonly timecodeRate: TimecodeRate;
  /** Internal master or external timecode. */
  readonly source: ClockSource;
}

/** True when the position moves (playing or chasing with a non-zero rate). */
export function isRunning(s: ClockSnapshot): boolean {
  return s.state !== 'stopped' && s.rate !== 0;
}

/** The position in seconds of `s` at monotonic instant `atMonoNs`. */
export function positionAt(s: ClockSnapshot, atMonoNs: bigint): number {
  if (!isRunning(s)) return s.positionSeconds;
  return s.positionSeconds + (s.rate * Number(atMonoNs - s.anchorMonoNs)) / 1e9;
}

/** The timecode label of the anchor position. */
export function snapshotTimecode(s: ClockSnapshot): string {
  return secondsToTimecode(s.positionSeconds, s.timecodeRate);
}

/**
 * The monotonic instant (ns) at which `s` reaches `position` seconds, or null if it never will (stopped, or moving
 * away from it). A position already reached gives the anchor or earlier.
 */
export function instantOf(s: ClockSnapshot, position: number): bigint | null {
  if (!isRunning(s)) return null;
  const dt = (position - s.positionSeconds) / s.rate;
  if (s.rate < 0 && position > s.positionSeconds) return null;
  if (s.rate > 0 && position < s.positionSeconds) return s.anchorMonoNs + BigInt(Math.floor(dt * 1e9));
  return s.anchorMonoNs + BigInt(Math.ceil(dt * 1e9));
}

/** Clock events. */
export interface ShowClockEvents extends Record<string, unknown[]> {
  /** A new snapshot; `discontinuity` is true when the generation grew. */
  change: [snapshot: ClockSnapshot, discontinuity: boolean];
}

/** Clock settings. */
export interface ShowClockOptions {
  /** Timecode rate of the labels, e.g. "25" or "29.97df". Default "25". */
  timecodeRate?: string;
}

/** Longest single Node timer, in ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Highest accepted |rate| (show seconds per real second). */
const MAX_RATE = 16;

/**
 * How far in the past a stop may freeze the clock without a discontinuity, s: under a 60 fps picture (the video
 * player keeps the one before its queue) and under the audio player's write-ahead and two periods (the samples it keeps
 * behind its read position).
 */
export const LATE_STOP_SECONDS = 0.015;

/** The show clock. */
export class ShowClock extends TypedEmitter<ShowClockEvents> {
  #s: ClockSnapshot;
  #showId = randomBytes(8).toString('hex');

  constructor(options: ShowClockOptions = {}) {
    super();
    const mono = monoNs();
    this.#s = {
      generation: 1, state: 'stopped', rate: 1, positionSeconds: 0, anchorMonoNs: mono, anchorUnixNs: monoToUnixNs(mono),
      timecodeRate: parseTimecodeRate(options.timecodeRate ?? '25'), source: 'internal',
    };
  }

  /** The current state (anchor and rate). */
  get snapshot(): ClockSnapshot {
    return this.#s;
  }

  /**
   * Identifies this show (16 hex digits): made anew for each fresh show, taken over by {@link restore}. Resume points
   * (generation, segment, entry) of players are meaningful only within one show id.
   */
  get showId(): string {
    return this.#showId;
  }

  /** The position in seconds now, or at monotonic instant `at`. */
  position(at: bigint = monoNs()): number {
    return positionAt(this.#s, at);
  }

  /**
   * Start the internal master at the current position (at monotonic instant `at`, default now). Not a discontinuity:
   * the position goes on from where it stood, so the generation stays and so does everything planned for it (the
   * feeds, the players' decoders and decoded pictures). Why: with a new generation at every resume, each player
   * threw away the pictures and samples queued for the very position it resumed at and decoded them again from the
   * keyframe while the clock ran: 1-3 held video ticks and ~30 ms of silence at every resume on an idle machine,
   * 8-21 held ticks under bench:multi's load.
   */
  play(at: bigint = monoNs()): void {
    if (this.#s.state === 'playing') return;
    // Taken from a chased source, the clock runs at normal speed: not at the chase's last estimate (a paused source
    // froze it at rate 0, and the clock would never move).
    const rate = this.#s.source === 'external' || !(this.#s.rate > 0) ? 1 : this.#s.rate;
    this.#set({ state: 'playing', source: 'internal', rate, positionSeconds: this.position(at) }, at, false);
  }

  /**
   * Stop (freeze the position reached at `at`, default now). Not a discontinuity, as {@link play}, unless `at` lies
   * more than {@link LATE_STOP_SECONDS} in the past (a late bundle's timetag): the players had gone on past the
   * position it freezes, further back than the picture and samples they keep behind them.
   */
  stop(at: bigint = monoNs()): void {
    if (this.#s.state === 'stopped' && this.#s.source === 'internal') return;
    const frozen = this.position(at);
    this.#set({ state: 'stopped', source: 'internal', positionSeconds: frozen }, at, this.position() - frozen > LATE_STOP_SECONDS);
  }

  /** Jump to `seconds`, keeping the state (a playing clock goes on playing from there). */
  locate(seconds: number, at: bigint = monoNs()): void {
    checkPosition(seconds);
    const state = this.#s.state === 'chasing' ? 'playing' : this.#s.state;
    this.#set({ state, source: 'internal', positionSeconds: seconds }, at, true);
  }

  /** Change the rate (show seconds per real second) without a discontinuity. */
  setRate(rate: number, at: bigint = monoNs()): void {
    // Cues and Follow move forwards only: a clock running backwards would leave players with no packets to show.
    if (!Number.isFinite(rate) || rate <= 0 || rate > MAX_RATE) {
      throw new CuemuxError('INVALID_ARGUMENT', `clock rate must be a number above 0 and at most ${MAX_RATE} (stop the clock to hold it), got ${rate}`);
    }
    if (rate === this.#s.rate) return;
    this.#set({ rate, positionSeconds: this.position(at) }, at, false);
  }

  /** Change the timecode rate of the labels (e.g. "29.97df"); the position is unchanged. */
  setTimecodeRate(rate: string | number): void {
    const timecodeRate = parseTimecodeRate(rate);
    if (timecodeRate.name === this.#s.timecodeRate.name) return;
    const at = monoNs();
    this.#set({ timecodeRate, positionSeconds: this.position(at) }, at, false);
  }

  /**
   * Follow an external source (TimecodeChaser only): anchor at `seconds` at instant `at`, moving at `rate`.
   * `discontinuity` is true for a lock, a jump or a loss; false for a small correction (same timeline).
   */
  chase(seconds: number, rate: number, at: bigint, discontinuity: boolean): void {
    checkPosition(seconds);
    this.#set({ state: 'chasing', source: 'external', positionSeconds: seconds, rate }, at, discontinuity);
  }

  /** Stop after losing the external source (TimecodeChaser only): the source stays "external". */
  chaseStop(at: bigint): void {
    this.#set({ state: 'stopped', source: 'external', positionSeconds: this.position(at) }, at, true);
  }

  /**
   * Take over a clock saved by a server that stopped (crash recovery): same generation, same anchor on the wall
   * clock, same show id (when saved: a state file written before show ids keeps this clock's fresh id), so players
   * that reconnect find the timeline they were on.
   */
  restore(saved: { generation: number; state: ClockStateName; source: ClockSource; rate: number; positionSeconds: number; anchorUnixNs: bigint; timecodeRate: string; showId?: string }, discontinuity = false): void {
    if (saved.showId !== undefined && !/^[0-9a-f]{16}$/.test(saved.showId)) throw new CuemuxError('INVALID_ARGUMENT', `saved show id "${saved.showId.slice(0, 40)}" is not 16 hex digits`);
    checkPosition(saved.positionSeconds);
    if (!Number.isFinite(saved.rate) || Math.abs(saved.rate) > MAX_RATE) throw new CuemuxError('INVALID_ARGUMENT', `saved clock rate ${saved.rate} is not valid`);
    if (!Number.isSafeInteger(saved.generation) || saved.generation < 1) throw new CuemuxError('INVALID_ARGUMENT', `saved clock generation ${saved.generation} is not valid`);
    this.#s = {
      generation: saved.generation, state: saved.state, source: saved.source, rate: saved.rate, positionSeconds: saved.positionSeconds,
      anchorUnixNs: saved.anchorUnixNs, anchorMonoNs: unixToMonoNs(saved.anchorUnixNs), timecodeRate: parseTimecodeRate(saved.timecodeRate),
    };
    if (saved.showId !== undefined) this.#showId = saved.showId;
    this.safeEmit('change', this.#s, discontinuity);
  }

  /**
   * Follower servers: take the master's clock exactly — same show id, generation, state, rate, position and anchor
   * (its Unix anchor mapped onto this machine's monotonic clock). Unlike {@link restore}, a new generation is a
   * discontinuity for this clock's listeners (players reposition), and an unchanged state emits nothing.
   */
  mirror(master: { showId: string; generation: number; state: ClockStateName; source: ClockSource; rate: number; positionSeconds: number; anchorUnixNs: bigint; timecodeRate: string }): void {
    const s = this.#s;
    if (master.showId === this.#showId && master.generation === s.generation && master.state === s.state && master.source === s.source
      && master.rate === s.rate && master.positionSeconds === s.positionSeconds && master.anchorUnixNs === s.anchorUnixNs
      && master.timecodeRate === s.timecodeRate.name) return;
    const discontinuity = master.showId !== this.#showId || master.generation !== s.generation;
    this.restore(master, discontinuity);
  }

  #set(change: Partial<ClockSnapshot>, at: bigint, discontinuity: boolean): void {
    this.#s = {
      ...this.#s, ...change, anchorMonoNs: at, anchorUnixNs: monoToUnixNs(at),
      generation: this.#s.generation + (discontinuity ? 1 : 0),
    };
    this.safeEmit('change', this.#s, discontinuity);
  }

  /**
   * Resolve once the clock position is at or past `position` seconds (at once if it already is, whether running or
   * not); reject with `signal`'s reason when aborted. Re-planned on every clock change, so a locate or a stop
   * moves the wake-up; timers are unref'd (the server's sockets keep the process alive).
   */
  whenAt(position: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        this.off('change', plan);
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal.reason instanceof Error ? signal.reason : new CuemuxError('CLOSED', 'wait aborted'));
      };
      const plan = (): void => {
        if (timer) clearTimeout(timer);
        timer = null;
        const s = this.#s;
        const now = monoNs();
        if (positionAt(s, now) >= position) {
          cleanup();
          resolve();
          return;
        }
        const when = instantOf(s, position);
        if (when === null) return; // stopped or running backwards: wait for a change
        const ms = Math.max(0, Number(when - now) / 1e6);
        // Node timers have 1 ms granularity and never fire early; re-check on wake in case of rounding.
        // Node caps timers at 2^31-1 ms (~24.8 days); a longer wait just wakes and re-plans.
        timer = setTimeout(plan, Math.min(MAX_TIMER_MS, Math.ceil(ms)));
        timer.unref();
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      if (!Number.isFinite(position)) {
        reject(new CuemuxError('INVALID_ARGUMENT', `clock position to wait for must be a number of seconds, got ${position}`));
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.on('change', plan);
      plan();
    });
  }

  /** Drop every listener (the clock itself holds no timers). Idempotent. */
  close(): void {
    this.removeAllListeners();
  }
}

/** Largest accepted |position| in seconds (a week: a show clock never needs more, and it keeps ns exact). */
const MAX_POSITION = 7 * 24 * 3600;

function checkPosition(seconds: number): void {
  if (!Number.isFinite(seconds) || Math.abs(seconds) > MAX_POSITION) {
    throw new CuemuxError('INVALID_ARGUMENT', `clock position must be a number of seconds within ±${MAX_POSITION}, got ${seconds}`);
  }
}
