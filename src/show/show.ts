/**
 * The show: one clock, the loaded cues and the cue list. It decides *what* plays *when* (load/arm, go, stop, pause,
 * resume, unload, auto-follow, pre-arming the next cue); the Follow calls of the media server turn its events into
 * packets for each player output. Every action is synchronous once its media is open, so the order of events is
 * the order of actions.
 */
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { monoNs } from '../common/time-source';
import { TypedEmitter } from '../common/typed-emitter';
import type { OpenMedia } from '../media/open-media';
import { resolveOutputs, sameCue, type CueDefinition } from './cue-definition';
import { LoadedCue, type CueRun } from './loaded-cue';
import { ShowClock, positionAt, snapshotTimecode, type ShowClockOptions } from './show-clock';
import { TimecodeChaser, type ChaseOptions } from './timecode-chase';
import { DEFAULT_MAX_PREFETCH_BYTES, PrefetchStore } from './prefetch-store';
import { ArmingRecord } from './arming-record';
import { CueListCursor, type CueList } from './cue-list-cursor';
import { CueProblems, type CueProblem } from './cue-problems';

const log = getLogger('show');

/**
 * How long after a GO the next cues are armed, in ms: past the GO's first packets (an unarmed GO sends them ~1-2 ms
 * after its media is open) and well before any next GO an operator can give.
 */
const ARM_NEXT_DELAY_MS = 25;

/**
 * How long after an unarmed GO the cue's in-point is read into memory, in ms: after the GO's own reads from the file
 * (a lead window of packets), which must not queue behind it.
 */
const REFETCH_DELAY_MS = 500;

export { DEFAULT_MAX_PREFETCH_BYTES } from './prefetch-store';
/** Default most ad-hoc cues loaded at once. */
export const DEFAULT_MAX_ADHOC_CUES = 64;

/** Where the show gets media (the server's registry): one reference per open, returned by release. */
export interface MediaSource {
  /** Open (or join) the media at `path` (relative to a media root). */
  open(path: string): Promise<OpenMedia>;
  /** Drop one reference taken by open. */
  release(media: OpenMedia): void;
}

/** Why a cue stopped. */
export type StopReason = 'stop' | 'pause' | 'ended' | 'unload';

/** Cue events, in the order the actions happened. */
export type CueEvent =
  | { type: 'loaded'; cue: LoadedCue }
  | { type: 'started'; cue: LoadedCue }
  | { type: 'stopped'; cue: LoadedCue; reason: StopReason; clockSeconds: number; mediaSeconds: number }
  | { type: 'unloaded'; cue: LoadedCue };

export type { CueList } from './cue-list-cursor';

/** Show events. */
export interface ShowEvents extends Record<string, unknown[]> {
  /** A cue changed state. */
  cue: [event: CueEvent];
  /** The cue list or its playhead changed. */
  cuelist: [list: CueList, playhead: string | null];
  /** A loaded cue got its in-point prefetched after it was loaded (it was loaded by an unarmed GO): players may prepare it now. */
  prefetched: [cue: LoadedCue];
  /** A loaded cue was loaded again with the same definition (its GO is likely next): players may prepare it first. */
  rearmed: [cue: LoadedCue];
}

/** Show settings. */
export interface ShowOptions {
  /** Clock settings. */
  clock?: ShowClockOptions;
  /** External timecode chase settings. */
  chase?: ChaseOptions;
  /** Seconds of packets read at load time from the in-point, so GO sends from memory. Default 1. */
  prefetchSeconds?: number;
  /**
   * Most bytes of prefetched packets held by all armed cues together. A cue whose prefetch would go beyond it loads
   * without one (its GO reads from the file, as an unarmed GO does), with a warning. Default 256 MiB.
   */
  maxPrefetchBytes?: number;
  /**
   * Most ad-hoc cues (defined at load, not in the cue list) loaded at once; another is refused with
   * RESOURCE_EXHAUSTED. Default 64.
   */
  maxAdHocCues?: number;
  /** GO (without a timecode) on a stopped internal clock starts the clock. Default true. */
  goStartsClock?: boolean;
  /** Arm the next cue of the list while a cue plays, so GO on it is instant. Default true. */
  armNext?: boolean;
  /**
   * An auto-follow cue is placed on the clock this long before its predecessor ends, so players get its packets
   * within their lead window and there is no gap, in seconds. Default 2 (at least 2; set it to the largest Follow
   * lead in use).
   */
  followAheadSeconds?: number;
  /**
   * A follower server's show (`cuemux serve --follow`): every change comes from the master (mirrorCue,
   * mirrorCueList, ShowClock.mirror), so it never ends a cue, starts an auto-follow successor or arms the next cue
   * on its own, and its loaded cues do not count as ad-hoc cues. Default false.
   */
  mirrored?: boolean;
}

/** When an action takes effect. */
export interface ActionTime {
  /** Monotonic instant (ns) the action refers to, e.g. an OSC bundle's timetag. Default now. */
  at?: bigint;
}

export type { CueProblem } from './cue-problems';

/** A JSON-ready summary of the show for status replies. */
export interface ShowStatus {
  clock: { generation: number; state: string; source: string; rate: number; positionSeconds: number; timecode: string; timecodeRate: string; chaseLocked: boolean };
  cues: Array<{ id: string; name: string; media: string; state: string; inSeconds: number; outSeconds: number | null; loop: boolean;
    outputs: Record<string, number[]>; positionSeconds: number | null; clockSeconds: number | null }>;
  cueList: { path: string; cues: string[]; playhead: string | null };
}

/** The show. */
export class Show extends TypedEmitter<ShowEvents> {
  /** The one show clock. */
  readonly clock: ShowClock;
  /** External timecode chase (fed by /cuemux/clock/timecode). */
  readonly chaser: TimecodeChaser;
  readonly #media: MediaSource;
  readonly #prefetches: PrefetchStore;
  readonly #maxAdHocCues: number;
  readonly #goStartsClock: boolean;
  #armNext: boolean;
  /** armNext as the options asked (a show that stops mirroring arms the next cues again when they asked it). */
  readonly #armNextOption: boolean;
  /** Cues whose in-point is being prefetched after their load. */
  readonly #refetching = new Set<LoadedCue>();
  readonly #cues = new Map<string, LoadedCue>();
  readonly #loading = new Map<string, Promise<LoadedCue>>();
  /** GOs waiting for their media to open; a STOP or UNLOAD of the cue meanwhile cancels them. */
  readonly #pendingGo = new Map<string, symbol>();
  readonly #cancelledGos = new Set<symbol>();
  /** Loads in flight that an UNLOAD cancelled: the cue is released as soon as its media is open. */
  readonly #cancelledLoads = new Set<string>();
  /** Cues loaded with an ad-hoc definition (not from the cue list): cue list edits do not touch them. */
  readonly #adHoc = new Set<string>();
  /** How long before a cue's end its auto-follow successor is placed on the clock, in seconds (≥ any lead). */
  readonly #followAheadSeconds: number;
  /** The last problem of each cue, in the order they happened (a cue that loads or starts again is cleared). */
  readonly #problems = new CueProblems();
  readonly #cueList = new CueListCursor();
  /** When cues were loaded, started and stood by, in loads (LoadedCue.lastLoad): what orders a new call's prerolls. */
  readonly arming = new ArmingRecord();
  #mirrored: boolean;
  #closed = false;

  constructor(media: MediaSource, options: ShowOptions = {}) {
    super();
    this.#media = media;
    this.clock = new ShowClock(options.clock);
    this.chaser = new TimecodeChaser(this.clock, options.chase);
    this.#prefetches = new PrefetchStore(options.prefetchSeconds ?? 1, options.maxPrefetchBytes ?? DEFAULT_MAX_PREFETCH_BYTES);
    this.#maxAdHocCues = options.maxAdHocCues ?? DEFAULT_MAX_ADHOC_CUES;
    if (!(Number.isInteger(this.#maxAdHocCues) && this.#maxAdHocCues >= 0)) {
      throw new CuemuxError('INVALID_ARGUMENT', `maxAdHocCues must be a whole number >= 0, got ${this.#maxAdHocCues}`);
    }
    this.#goStartsClock = options.goStartsClock ?? true;
    this.#mirrored = options.mirrored ?? false;
    this.#armNextOption = options.armNext ?? true;
    this.#armNext = !this.#mirrored && this.#armNextOption;
    this.#followAheadSeconds = Math.max(2, options.followAheadSeconds ?? 2);
    // Re-plan end-of-cue watches on every clock change (a locate past the end ends a cue at once).
    this.clock.on('change', () => {
      for (const c of this.#cues.values()) if (c.state === 'playing') this.#watchEnd(c);
    });
  }

  /** Loaded cues. */
  get cues(): LoadedCue[] {
    return [...this.#cues.values()];
  }

  /** The loaded cue `id`, or undefined. */
  cue(id: string): LoadedCue | undefined {
    return this.#cues.get(id);
  }

  /** The cue list in effect. */
  get cueList(): CueList {
    return this.#cueList.list;
  }

  /**
   * Announce the cue list; `chosen`: a change of its standby cue was a choice of the next GO (ArmingRecord.standby),
   * not the side effect of a GO that named its cue.
   */
  #emitCueList(list: CueList = this.#cueList.list, chosen = true): void {
    this.arming.standby(this.playhead, chosen);
    this.safeEmit('cuelist', list, this.playhead);
  }

  /** The id of the cue a GO without an id starts, or null. */
  get playhead(): string | null {
    return this.#cueList.playhead;
  }

  #checkOpen(): void {
    if (this.#closed) throw new CuemuxError('CLOSED', 'the show is closed (server shutting down)');
  }

  /**
   * Load (arm) cue `id`: open its media and index, resolve its outputs, prefetch its in-point. With `def` the cue is
   * defined ad hoc; without, it comes from the cue list. Loading a loaded cue with the same definition is a no-op;
   * a different definition replaces it unless it is playing. `options.prefetch` (default true): read the in-point's
   * packets now; `options.preArm` (default false): the show's own pre-arm of the list's next cues, not a command
   * (LoadedCue.preArmed).
   */
  async load(id: string, def?: CueDefinition, options: { prefetch?: boolean; preArm?: boolean } = {}): Promise<LoadedCue> {
    this.#checkOpen();
    const d = def ?? this.#cueList.definition(id);
    const existing = this.#cues.get(id);
    if (existing !== undefined) {
      if (sameCue(existing.def, d)) {
        // Loaded by an unarmed GO: arming it now reads its in-point, so its next GO is prepared.
        if (options.prefetch ?? true) await this.#prefetchLater(existing);
        existing.lastLoad = this.arming.loaded();
        existing.preArmed = options.preArm === true;
        if (this.#cues.get(id) === existing) this.safeEmit('rearmed', existing);
        return existing;
      }
      if (existing.state !== 'armed') {
        throw new CuemuxError('WRONG_STATE', `cue "${id}" is ${existing.state}; stop it before loading a new definition`);
      }
      this.unload(id);
    }
    let pending = this.#loading.get(id);
    if (pending === undefined && def !== undefined && !this.#mirrored && !this.#adHoc.has(id) && this.#adHoc.size >= this.#maxAdHocCues) {
      throw new CuemuxError('RESOURCE_EXHAUSTED', `cue "${id.slice(0, 64)}" not loaded: ${this.#adHoc.size} ad-hoc cues are loaded, the budget `
        + `(--max-adhoc-cues ${this.#maxAdHocCues}); unload one (/cuemux/cue/unload ID) or put the cues in the cue list`);
    }
    if (pending === undefined) {
      this.#cancelledLoads.delete(id);
      pending = this.#arm(d, options.prefetch ?? true).finally(() => {
        this.#loading.delete(id);
        // A failed ad-hoc load frees its place in the budget.
        if (!this.#cues.has(id)) this.#adHoc.delete(id);
      });
      this.#loading.set(id, pending);
      if (def === undefined) this.#adHoc.delete(id);
      else this.#adHoc.add(id);
    }
    const cue = await pending;
    cue.lastLoad = this.arming.loaded();
    cue.preArmed = options.preArm === true;
    this.#problems.clear(id);
    // A cue list edit saved while this cue was loading: arm the new definition instead.
    if (cue.state === 'armed' && this.#cues.get(id) === cue && this.#stale(cue)) {
      this.unload(id);
      return this.load(id, undefined, options);
    }
    return cue;
  }

  /** True when `cue` came from the cue list and the list now defines it differently (an edit since it loaded). */
  #stale(cue: LoadedCue): boolean {
    if (this.#adHoc.has(cue.id)) return false;
    const listed = this.#cueList.listed(cue.id);
    return listed !== undefined && !sameCue(listed, cue.def);
  }

  async #arm(def: CueDefinition, prefetch: boolean): Promise<LoadedCue> {
    const media = await this.#media.open(def.media);
    let cue: LoadedCue;
    try {
      const outputs = resolveOutputs(def, media.streams, media.path);
      const start = media.startSeconds;
      const end = start + media.durationSeconds;
      const inMedia = start + def.inSeconds;
      const outMedia = def.outSeconds === null ? null : start + def.outSeconds;
      const endMedia = outMedia === null ? end : Math.min(end, outMedia);
      cue = new LoadedCue(def, media, outputs, inMedia, endMedia, outMedia);
      // A cue that follows a growing file waits for its in-point as for any packet not written yet (its definition
      // has its out-point after its in-point).
      if (!cue.followsGrowth && !(inMedia < endMedia)) {
        throw new CuemuxError('INVALID_ARGUMENT', `cue "${def.id}": in-point ${def.inSeconds} s is at or past the end of ${media.path} (${media.durationSeconds.toFixed(3)} s)`, { path: media.path });
      }
      // A growing file's in-point not written yet: prefetched once it is (#watchGrowth), not cut short now.
      if (prefetch && this.#prefetches.written(cue)) cue.prefetch = await this.#prefetches.read(cue);
    } catch (e) {
      this.#media.release(media);
      throw e;
    }
    const drop = (): void => {
      this.#prefetches.drop(cue);
      this.#media.release(media);
    };
    if (this.#closed) {
      drop();
      throw new CuemuxError('CLOSED', 'the show is closed (server shutting down)');
    }
    if (this.#cancelledLoads.delete(def.id)) {
      drop();
      throw new CuemuxError('WRONG_STATE', `cue "${def.id}" was unloaded while it was loading`);
    }
    this.#cues.set(def.id, cue);
    this.#watchGrowth(cue);
    log.info('cue loaded', { cue: def.id, media: media.path, in: def.inSeconds, out: def.outSeconds, prefetchedPackets: cue.prefetch?.entries.length ?? 0 });
    this.safeEmit('cue', { type: 'loaded', cue });
    return cue;
  }

  /** Bytes of prefetched packets held by loaded cues, and the budget. */
  get prefetchBudget(): { bytes: number; max: number } {
    return this.#prefetches.budget;
  }

  /** Ad-hoc cues loaded (or loading), and the budget. */
  get adHocBudget(): { cues: number; max: number } {
    return { cues: this.#adHoc.size, max: this.#maxAdHocCues };
  }

  /**
   * GO: start cue `id` (the playhead cue when omitted), loading it first if needed. Its in-point is presented at
   * clock position `clockSeconds` (default: the clock's position at `at`). On a stopped internal clock without an
   * explicit position the clock starts (goStartsClock). GO on a playing cue restarts it.
   */
  async go(id?: string, options: ActionTime & { clockSeconds?: number } = {}): Promise<LoadedCue> {
    this.#checkOpen();
    const cueId = id ?? this.playhead;
    if (cueId === null) throw new CuemuxError('NOT_FOUND', 'GO without a cue id, but no cue is standing by (load a cue list, or give the cue id)');
    let cue = this.#cues.get(cueId);
    if (cue !== undefined && cue.state === 'armed' && this.#stale(cue)) {
      // Edited in the cue list while it played or was armed: this GO plays the definition now in the list.
      this.unload(cueId);
      cue = undefined;
    }
    if (cue === undefined) {
      // An unarmed GO does not wait for a prefetch: the feeds read from the file as soon as it is open.
      const token = Symbol(cueId);
      this.#pendingGo.set(cueId, token);
      try {
        cue = await this.load(cueId, undefined, { prefetch: false });
      } finally {
        if (this.#pendingGo.get(cueId) === token) this.#pendingGo.delete(cueId);
      }
      if (this.#cancelledGos.delete(token)) {
        log.info('GO cancelled by a STOP while its media opened', { cue: cueId });
        throw new CuemuxError('WRONG_STATE', `GO of cue "${cueId}" was cancelled by a STOP while its media opened`);
      }
    }
    const at = options.at ?? monoNs();
    if (cue.state !== 'armed') this.#stopCue(cue, 'stop', at);
    if (options.clockSeconds === undefined) this.#startStoppedClock(at);
    const clockSeconds = options.clockSeconds ?? this.clock.position(at);
    this.#startCue(cue, clockSeconds, cue.inMedia);
    this.#problems.clear(cueId);
    this.#advancePlayhead(cueId, id === undefined);
    if (cue.prefetch === null && this.#armNext) {
      // An unarmed GO: its in-point is read once the GO's own first packets are out, so the next GO of the cue (a
      // restart, or after it ends) is prepared like any armed one.
      const started = cue;
      setTimeout(() => {
        this.#prefetchLater(started).catch((e: unknown) => this.#problems.note(started.id, 'prefetch', e, 'warn'));
      }, REFETCH_DELAY_MS).unref();
    }
    return cue;
  }

  /** Prefetch the in-point of a cue loaded without it (once; not after its unload), and say so ('prefetched'). */
  async #prefetchLater(cue: LoadedCue): Promise<void> {
    // A growing file's in-point not written yet: the growth watch prefetches it once it is (not cut short now).
    if (cue.prefetch !== null || this.#refetching.has(cue) || this.#closed || !this.#prefetches.written(cue)) return;
    this.#refetching.add(cue);
    try {
      const pre = await this.#prefetches.read(cue);
      if (pre === null) return;
      if (this.#cues.get(cue.id) !== cue || cue.prefetch !== null || this.#closed) {
        this.#prefetches.release(pre); // unloaded meanwhile
        return;
      }
      cue.prefetch = pre;
      log.info('cue prefetched', { cue: cue.id, prefetchedPackets: pre.entries.length });
      this.safeEmit('prefetched', cue);
    } finally {
      this.#refetching.delete(cue);
    }
  }

  /** A GO or resume on a stopped internal clock starts it (goStartsClock); a chased clock is left to its source. */
  #startStoppedClock(at: bigint): void {
    const s = this.clock.snapshot;
    if (s.state === 'stopped' && s.source === 'internal' && this.#goStartsClock) this.clock.play(at);
  }

  /** `cue` started (a GO, a resume, a restore or a mirrored start): the loads counted then (ArmingRecord.started, lastStartLoads). */
  #countStart(cue: LoadedCue): void {
    cue.lastStartLoads = this.arming.started();
  }

  #startCue(cue: LoadedCue, clockSeconds: number, mediaSeconds: number): void {
    const run = cue.start(clockSeconds, mediaSeconds);
    this.#countStart(cue);
    // The Follow feeds write the cue's first packets inside this emit; everything else waits until they are out.
    this.safeEmit('cue', { type: 'started', cue });
    log.info('cue started', { cue: cue.id, clockSeconds, mediaSeconds });
    // The end watch after this turn of the event loop, once HTTP/2 has written those packets (a cue stopped or
    // restarted meanwhile has another run, or none: its watch is not wanted).
    setImmediate(() => {
      if (!this.#closed && cue.run === run && cue.state === 'playing') this.#watchEnd(cue);
    });
  }

  /**
   * Load cue `def` and put it back where a stopped server left it (crash recovery): playing on its saved run, or
   * paused, with the saved segment numbering, so reconnecting players go on with the same segments.
   */
  async restoreCue(def: CueDefinition, state: 'armed' | 'playing' | 'paused', run: CueRun | null,
    numbering: LoadedCue['numbering'], pausedMedia: number | null): Promise<LoadedCue> {
    // A cue of the cue list is restored as one (not an ad-hoc cue, which counts against --max-adhoc-cues).
    const listed = this.#cueList.listed(def.id);
    const cue = await (listed !== undefined && sameCue(listed, def) ? this.load(def.id) : this.load(def.id, def));
    if (state === 'armed' || run === null) return cue;
    cue.restore(state, run, numbering, pausedMedia);
    if (state === 'playing') {
      log.info('cue restored', { cue: cue.id, clockSeconds: run.clockSeconds, mediaSeconds: run.mediaSeconds });
      this.#countStart(cue);
      this.safeEmit('cue', { type: 'started', cue });
      this.#watchEnd(cue);
    }
    return cue;
  }

  /** Stop cue `id` (every playing or paused cue when omitted). */
  stop(id?: string, options: ActionTime = {}): LoadedCue[] {
    this.#checkOpen();
    const at = options.at ?? monoNs();
    // A STOP also cancels a GO still waiting for its media (the operator's STOP must win).
    if (this.#cancelPendingGo(id) && id !== undefined && !this.#cues.has(id)) return [];
    const targets = this.#targets(id, (c) => c.state !== 'armed');
    for (const c of targets) if (c.state !== 'armed') this.#stopCue(c, 'stop', at);
    return targets;
  }

  /** Pause cue `id` (every playing cue when omitted): its media position freezes while the clock goes on. */
  pause(id?: string, options: ActionTime = {}): LoadedCue[] {
    this.#checkOpen();
    const at = options.at ?? monoNs();
    const targets = this.#targets(id, (c) => c.state === 'playing');
    for (const c of targets) {
      if (c.state !== 'playing') throw new CuemuxError('WRONG_STATE', `cue "${c.id}" is ${c.state}, not playing`);
      const run = c.run;
      if (run === null) continue;
      c.pausedMedia = c.mediaAt(run, this.clock.position(at));
      this.#stopCue(c, 'pause', at);
    }
    return targets;
  }

  /** Resume cue `id` (every paused cue when omitted) from where it paused, at the clock's current position. */
  resume(id?: string, options: ActionTime = {}): LoadedCue[] {
    this.#checkOpen();
    const at = options.at ?? monoNs();
    const targets = this.#targets(id, (c) => c.state === 'paused');
    for (const c of targets) {
      if (c.state !== 'paused' || c.pausedMedia === null) throw new CuemuxError('WRONG_STATE', `cue "${c.id}" is ${c.state}, not paused`);
      this.#startStoppedClock(at);
      this.#startCue(c, this.clock.position(at), c.pausedMedia);
    }
    return targets;
  }

  /** Unload cue `id` (every loaded cue when omitted): stop it if needed and release its media. */
  unload(id?: string, options: ActionTime = {}): string[] {
    this.#checkOpen();
    this.#cancelPendingGo(id);
    for (const loading of this.#loading.keys()) if (id === undefined || loading === id) this.#cancelledLoads.add(loading);
    if (id !== undefined && !this.#cues.has(id) && this.#loading.has(id)) return [id];
    const targets = this.#targets(id, () => true);
    for (const c of targets) {
      if (c.state !== 'armed') this.#stopCue(c, 'unload', options.at ?? monoNs());
      this.#cues.delete(c.id);
      this.#adHoc.delete(c.id);
      this.#prefetches.drop(c);
      this.safeEmit('cue', { type: 'unloaded', cue: c });
      this.#media.release(c.media);
      log.info('cue unloaded', { cue: c.id });
    }
    return targets.map((c) => c.id);
  }

  /** Cancel the pending GO of `id` (all when undefined); true when one was cancelled. */
  #cancelPendingGo(id: string | undefined): boolean {
    let any = false;
    for (const [cueId, token] of this.#pendingGo) {
      if (id !== undefined && cueId !== id) continue;
      this.#pendingGo.delete(cueId);
      this.#cancelledGos.add(token);
      any = true;
    }
    return any;
  }

  /** The loaded cue `id`, or every loaded cue that `concerned` accepts when no id is given. */
  #targets(id: string | undefined, concerned: (c: LoadedCue) => boolean): LoadedCue[] {
    return id === undefined ? this.cues.filter(concerned) : [this.#loaded(id)];
  }

  #loaded(id: string): LoadedCue {
    const c = this.#cues.get(id);
    if (c === undefined) throw new CuemuxError('NOT_FOUND', `cue "${id}" is not loaded`);
    return c;
  }

  #stopCue(cue: LoadedCue, reason: StopReason, at: bigint): void {
    const clockSeconds = this.clock.position(at);
    const chained = cue.chainedNext === null ? undefined : this.#cues.get(cue.chainedNext);
    cue.chainedNext = null;
    if (reason !== 'ended' && chained?.state === 'playing' && chained.run !== null && chained.run.clockSeconds > clockSeconds) {
      // Its successor was placed on the clock ahead of time but has not begun: it goes with it.
      this.#stopCue(chained, 'stop', at);
    }
    const mediaSeconds = cue.run ? cue.mediaAt(cue.run, clockSeconds) : cue.inMedia;
    cue.endWatch?.abort();
    cue.endWatch = null;
    cue.state = reason === 'pause' ? 'paused' : 'armed';
    if (reason !== 'pause') cue.run = null;
    log.info(`cue ${reason === 'ended' ? 'ended' : reason === 'pause' ? 'paused' : 'stopped'}`, { cue: cue.id, clockSeconds, mediaSeconds });
    this.safeEmit('cue', { type: 'stopped', cue, reason, clockSeconds, mediaSeconds });
  }

  /**
   * (Re)start the watches of a playing, non-looping cue: at its end it ends; `followAheadSeconds` before the end
   * its auto-follow successor is placed on the clock at exactly that end, so players get the successor's packets
   * within their lead window and the chain has no gap.
   */
  #watchEnd(cue: LoadedCue): void {
    cue.endWatch?.abort();
    cue.endWatch = null;
    // A follower's cues end (and chain) when the master's do.
    if (this.#mirrored) return;
    const run = cue.run;
    const end = run ? cue.endClock(run) : null;
    // An open end (a growing file): planned once the file is complete (#watchGrowth).
    if (run === null || end === null || !Number.isFinite(end)) return;
    const watch = new AbortController();
    cue.endWatch = watch;
    const live = (): boolean => !watch.signal.aborted && cue.run === run && cue.state === 'playing' && !this.#closed;
    const next = this.#cueList.autoFollower(cue.id);
    const chain = (): void => {
      // Once per run: clock changes re-plan these watches, but the successor is placed on the clock only once.
      if (next === undefined || cue.chainedNext !== null) return;
      cue.chainedNext = next.id;
      this.go(next.id, { clockSeconds: end }).catch((e: unknown) => {
        this.#problems.note(next.id, 'auto-follow', e, 'error');
      });
    };
    if (next !== undefined) {
      this.clock.whenAt(end - this.#followAheadSeconds, watch.signal).then(() => {
        if (live()) chain();
      }, () => undefined);
    }
    this.clock.whenAt(end, watch.signal).then(() => {
      if (!live()) return;
      try {
        chain(); // if the clock jumped past the end before the ahead watch ran
        // The end is exact on the clock even if this timer ran late: report it at `end`, not at "now".
        this.#stopCue(cue, 'ended', this.#instantOf(end));
      } catch (e) {
        this.#problems.note(cue.id, 'end', e, 'error');
      }
    }, () => undefined);
  }

  /**
   * A cue that follows a growing file (LoadedCue.followsGrowth) gets its end once the file is complete (or its growth
   * failed: then the end of what was indexed): its end watch is planned again then, so it ends, and its auto-follow
   * successor starts, as for any file. One watch per load (not per clock change, which re-plans end watches), woken by
   * the index's changes (GrowingIndex.done settles only once FFmpeg's read blocked at the written end gives up, up to
   * three times --growing-wait-ms after a failure), until the cue is unloaded.
   */
  #watchGrowth(cue: LoadedCue): void {
    const growth = cue.media.growth;
    if (!cue.followsGrowth || growth === null) return;
    const loaded = (): boolean => !this.#closed && this.#cues.get(cue.id) === cue;
    void (async () => {
      while (growth.state === 'growing' && loaded()) {
        await growth.waitForChange(growth.waitMs);
        // Loaded before its in-point's prefetch was written (content landing late, loaded at once): without this its
        // players never got a preroll, so they never prepared it and its GO started unprepared.
        if (cue.prefetch === null && cue.state === 'armed' && loaded()) {
          await this.#prefetchLater(cue).catch((e: unknown) => this.#problems.note(cue.id, 'prefetch', e, 'warn'));
        }
      }
      if (!loaded()) return;
      // A file cut or replaced while it grew (its feeds report CueFeedFailed to the players): kept for status too.
      if (growth.error !== null && cue.state !== 'armed') this.#problems.note(cue.id, 'end', growth.error, 'error');
      if (cue.state !== 'playing') return;
      log.info('growing media of a playing cue settled', { cue: cue.id, media: cue.media.path, growth: cue.media.growthState, endMedia: cue.endMedia });
      this.#watchEnd(cue);
    })();
  }

  /** The monotonic instant the clock reached (or reaches) `position`; now when it is not running forwards. */
  #instantOf(position: number): bigint {
    const s = this.clock.snapshot;
    const now = monoNs();
    if (s.state === 'stopped' || !(s.rate > 0)) return now;
    const at = s.anchorMonoNs + BigInt(Math.round(((position - s.positionSeconds) / s.rate) * 1e9));
    return at < now ? at : now;
  }

  /**
   * After GO on `id`: the playhead moves to the next cue that does not auto-follow; arm what comes next. `fromStandby`:
   * the GO started the standby cue (it named none), so the new standby is the one chosen for the next GO.
   */
  #advancePlayhead(id: string, fromStandby: boolean): void {
    const ids = this.#cueList.advancePast(id);
    if (ids === null) return;
    this.#emitCueList(this.#cueList.list, fromStandby);
    if (!this.#armNext) return;
    // Arm the auto-follow chain after this cue and the standby cue, so neither waits on a disk read; a moment after
    // this GO, whose own first packets (read from the file when it was not armed) must not queue behind the index
    // check and prefetch reads of the next cues.
    const timer = setTimeout(() => {
      if (this.#closed) return;
      // Those still in the list (an edit may have come meanwhile) and not loaded by now.
      for (const id of ids) {
        if (this.#cues.has(id) || this.#cueList.listed(id) === undefined) continue;
        this.load(id, undefined, { preArm: true }).catch((e: unknown) => this.#problems.note(id, 'pre-arm', e, 'warn'));
      }
    }, ARM_NEXT_DELAY_MS);
    timer.unref();
  }

  /** Move the playhead to cue `id` (the next GO without an id starts it). */
  standBy(id: string): void {
    this.#cueList.standBy(id);
    this.#emitCueList();
  }

  /**
   * Replace the cue list. Playing and paused cues go on untouched with the definition they were started with; armed
   * cues whose definition changed are re-armed, those removed are unloaded. The playhead stays on the same cue id
   * when it still exists.
   */
  setCueList(list: CueList): void {
    this.#checkOpen();
    const old = this.#cueList.replace(list);
    const wasListed = new Set(old.cues.map((c) => c.id));
    for (const cue of this.cues) {
      if (cue.state !== 'armed' || !wasListed.has(cue.id)) continue;
      const def = list.cues.find((c) => c.id === cue.id);
      if (def === undefined) {
        this.unload(cue.id);
      } else if (!sameCue(def, cue.def)) {
        this.unload(cue.id);
        this.load(cue.id).catch((e: unknown) => this.#problems.note(cue.id, 're-arm', e, 'warn'));
      }
    }
    log.info('cue list in effect', { path: list.path, cues: list.cues.length, playhead: this.playhead });
    this.#emitCueList(list);
  }

  /**
   * Follower servers: put cue `def` where the master has it — loaded (armed), playing on exactly `run` with the
   * master's segment numbering, or paused — from whatever it is here. A cue stopped or paused here is stopped at the
   * clock position where the master stopped it (`stopped`, with its reason: a stop or an end), else now. A changed
   * definition reloads it.
   */
  async mirrorCue(def: CueDefinition, state: 'armed' | 'playing' | 'paused', run: CueRun | null, numbering: LoadedCue['numbering'],
    pausedMedia: number | null, stopped: { clockSeconds: number; reason: StopReason } | null): Promise<LoadedCue> {
    this.#checkOpen();
    let cue = this.#cues.get(def.id);
    if (cue !== undefined && !sameCue(cue.def, def)) {
      this.unload(def.id);
      cue = undefined;
    }
    if (cue === undefined) return this.restoreCue(def, state, run, numbering, pausedMedia);
    const stopAt = stopped === null ? monoNs() : this.#instantOf(stopped.clockSeconds);
    if (state === 'armed' || run === null) {
      if (cue.state !== 'armed') this.#stopCue(cue, stopped?.reason === 'ended' ? 'ended' : 'stop', stopAt);
      return cue;
    }
    const same = cue.run !== null && cue.run.id === run.id && cue.run.clockSeconds === run.clockSeconds && cue.run.mediaSeconds === run.mediaSeconds;
    if (state === 'paused') {
      if (cue.state === 'paused' && same) return cue;
      if (cue.state === 'playing') {
        cue.pausedMedia = pausedMedia;
        this.#stopCue(cue, 'pause', stopAt);
      }
      cue.restore('paused', run, numbering, pausedMedia);
      return cue;
    }
    if (cue.state === 'playing' && same) return cue;
    if (cue.state === 'playing') this.#stopCue(cue, 'stop', stopAt);
    cue.restore('playing', run, numbering, null);
    this.#problems.clear(cue.id);
    log.info('cue started (mirrored)', { cue: cue.id, clockSeconds: run.clockSeconds, mediaSeconds: run.mediaSeconds });
    this.#countStart(cue);
    this.safeEmit('cue', { type: 'started', cue });
    return cue;
  }

  /**
   * Main/backup failover. `true`: this show becomes a follower's (a master that stands down): its cues no longer end
   * or chain on their own, every change comes from the new master. `false`: a backup takes over: every cue goes on
   * exactly where it is (same runs, same clock), `list` (the master's cue list, last sent) becomes the cue list with
   * the master's standby cue, and ends, auto-follow chains and arming the next cue are this show's again. A successor
   * the master already placed on the clock is not started twice.
   */
  setMirrored(mirrored: boolean, list: CueList | null = null): void {
    if (mirrored === this.#mirrored) return;
    this.#mirrored = mirrored;
    this.#armNext = !mirrored && this.#armNextOption;
    if (mirrored) {
      for (const c of this.#cues.values()) {
        c.endWatch?.abort();
        c.endWatch = null;
      }
      return;
    }
    const standby = this.playhead;
    if (list !== null) this.setCueList(list);
    this.#cueList.stopMirroring(standby);
    for (const c of this.#cues.values()) {
      if (c.state !== 'playing') continue;
      const next = this.#cueList.autoFollower(c.id);
      if (next !== undefined && this.#cues.get(next.id)?.state === 'playing') c.chainedNext = next.id;
      this.#watchEnd(c);
    }
    this.#emitCueList();
  }

  /** True while this show mirrors a master's (a follower's or a backup's). */
  get mirrored(): boolean {
    return this.#mirrored;
  }

  /** Follower servers: the master's cue list (its file, cue ids and standby cue), for status. */
  mirrorCueList(path: string, ids: readonly string[], playhead: string | null): void {
    if (this.#cueList.mirror(path, ids, playhead)) this.#emitCueList();
  }

  /** Keep a problem with cue `id` for status and log it (a follower's media that is not the master's). */
  reportProblem(id: string, during: CueProblem['during'], message: string): void {
    this.#problems.note(id, during, message, 'warn');
  }

  /** Problems the show met with cues on its own (see {@link CueProblem}), oldest first; at most 64. */
  get cueProblems(): readonly CueProblem[] {
    return this.#problems.list;
  }

  /** A JSON-ready summary: clock, cues, cue list. */
  status(): ShowStatus {
    const s = this.clock.snapshot;
    const now = monoNs();
    const position = positionAt(s, now);
    return {
      clock: {
        generation: s.generation, state: s.state, source: s.source, rate: s.rate, positionSeconds: position,
        timecode: snapshotTimecode({ ...s, positionSeconds: position }), timecodeRate: s.timecodeRate.name, chaseLocked: this.chaser.locked,
      },
      cues: this.cues.map((c) => ({
        id: c.id, name: c.def.name, media: c.media.path, state: c.state, inSeconds: c.def.inSeconds, outSeconds: c.def.outSeconds,
        loop: c.def.loop, outputs: Object.fromEntries([...c.outputs].map(([k, v]) => [k, [...v]])),
        positionSeconds: c.state === 'paused' ? c.pausedMedia : c.run ? c.mediaAt(c.run, position) : null,
        clockSeconds: c.run?.clockSeconds ?? null,
      })),
      cueList: this.#cueList.status(),
    };
  }

  #closing = false;

  /** Unload every cue, stop the chase, drop listeners. Idempotent. */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const c of this.cues) {
      c.endWatch?.abort();
      this.#prefetches.drop(c);
      this.#media.release(c.media);
    }
    this.#adHoc.clear();
    this.#cues.clear();
    this.#closed = true;
    this.chaser.close();
    this.clock.close();
    this.removeAllListeners();
  }
}
