/**
 * The follower side (`cuemux serve --follow`): reconcile this server's show to each ShowState of the master's
 * WatchShow stream. Level-triggered: only the latest state matters, so states that arrive while one is being applied
 * (a load takes a disk read) are skipped for the newest. The clock is taken exactly (ShowClock.mirror); each cue is
 * loaded from this server's own media (same relative path under its own media roots), checked against the master's
 * media fingerprint, and put on exactly the master's run and segment numbering (Show.mirrorCue); cues gone from the
 * master are unloaded. A cue whose media is missing here or differs from the master's is not loaded: it is a cue
 * problem (status, OSC status, log) until the master's cue or file changes, or a retry finds the file right.
 */
import { errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import type { FollowerReport, ShowState } from '../generated/cuemux/v1/media_server';
import { parseCueDefinition, sameCue } from '../show/cue-definition';
import type { Show } from '../show/show';
import type { ClockSource, ClockStateName } from '../show/show-clock';
import { mediaFingerprint } from './show-watch';
import type { ClockMapping } from './clock-quality';

const log = getLogger('show-mirror');

/** A refused cue is tried again this long after, in ms (the technician may have copied the right file meanwhile). */
const RETRY_REFUSED_MS = 10_000;

/** How often the follower reports what it does not play to the master (ReportFollower), in ms; at once on a change. */
const REPORT_MS = 2_000;

/** How a mirror tells its master what it does not play. */
export interface MirrorReporting {
  /** This follower's name in the master's status (host name and where it serves). */
  name: string;
  /** Send one ReportFollower (failures are retried at the next report). */
  report: (report: FollowerReport) => Promise<void>;
}

/** Where the follower stands with its master (status). */
export interface MirrorStatus {
  /** The master's address. */
  master: string;
  /** True while a WatchShow stream delivers states. */
  connected: boolean;
  /** The master's wall clock when it sent the last state applied (ns since the epoch), or null before the first. */
  lastStateUnixNs: string | null;
  /** The master's show id, or null before the first state. */
  masterShowId: string | null;
  /** Cues of the master not played here, and why. */
  refused: Array<{ cueId: string; media: string; reason: string }>;
}

/** A cue this follower does not play, and what it was refused for (retried when that changes). */
interface Refused {
  key: string;
  media: string;
  reason: string;
  atMs: number;
}

/** Mirrors a master's show onto `show` (built with ShowOptions.mirrored). */
export class ShowMirror {
  readonly #show: Show;
  readonly #master: string;
  #pending: ShowState | null = null;
  #applying: Promise<void> | null = null;
  #connected = false;
  #lastSent: bigint | null = null;
  #masterShowId: string | null = null;
  readonly #refused = new Map<string, Refused>();
  #closed = false;
  readonly #reporting: MirrorReporting | null;
  readonly #reportTimer: NodeJS.Timeout | null;
  #reported = '';
  #reportFailures = 0;
  /** The wall-clock offset to the master, measured (src/server/clock-quality.ts); null: anchors taken as they are. */
  readonly #clock: ClockMapping | null;
  #last: ShowState | null = null;

  constructor(show: Show, master: string, reporting: MirrorReporting | null = null, clock: ClockMapping | null = null) {
    this.#show = show;
    this.#clock = clock;
    this.#master = master;
    this.#reporting = reporting;
    this.#reportTimer = reporting === null ? null : setInterval(() => this.#report(true), REPORT_MS);
    this.#reportTimer?.unref();
  }

  /** Tell the master what this follower does not play: when it changed, or always (`heartbeat`). */
  #report(heartbeat: boolean): void {
    const r = this.#reporting;
    if (r === null || this.#masterShowId === null || !this.#connected || this.#closed) return;
    const refused = [...this.#refused].map(([cueId, x]) => ({ cueId, media: x.media, reason: x.reason }));
    const said = JSON.stringify([this.#masterShowId, refused]);
    if (!heartbeat && said === this.#reported) return;
    this.#reported = said;
    r.report({ follower: r.name, showId: this.#masterShowId, refused }).then(() => { this.#reportFailures = 0; }, (e: unknown) => {
      if (this.#reportFailures++ === 0) log.warn(`could not report to the master ${this.#master} which cues this follower does not play`, { error: errorMessage(e) });
    });
  }

  /** The master's address, as given to --follow. */
  get master(): string {
    return this.#master;
  }

  /** Called by the stream runner: the stream is up (true) or lost (false). */
  setConnected(connected: boolean): void {
    if (connected !== this.#connected) log[connected ? 'info' : 'warn'](connected ? `following the show of ${this.#master}` : `lost the master ${this.#master}: the show runs on from its last state`);
    this.#connected = connected;
  }

  /** Take a state of the master; resolves when it (or a newer one) has been applied. Never rejects. */
  push(state: ShowState): Promise<void> {
    this.#pending = state;
    this.#applying ??= this.#drain().finally(() => { this.#applying = null; });
    return this.#applying;
  }

  async #drain(): Promise<void> {
    while (this.#pending !== null && !this.#closed) {
      const s = this.#pending;
      this.#pending = null;
      try {
        await this.#apply(s);
      } catch (e) {
        log.error('a state of the master could not be applied', { master: this.#master, error: errorMessage(e) });
      }
    }
  }

  /** Apply the last state again (the clock mapping or refusal changed: ClockQuality's onChange). */
  remap(): void {
    if (this.#last !== null && this.#pending === null) void this.push(this.#last);
  }

  async #apply(s: ShowState): Promise<void> {
    // The first states wait for the first clock measure (a burst of pings, milliseconds on a LAN) so the show is
    // never mapped uncorrected, nor refused as unmeasured, for a moment at start.
    await this.#clock?.ready();
    this.#last = s;
    const show = this.#show;
    const c = s.clock;
    if (c === undefined) throw new Error('the master sent a show state without a clock');
    if (this.#masterShowId !== null && this.#masterShowId !== s.showId) {
      // Another show (the master restarted fresh): its cues, runs and segments are new.
      log.warn('the master started another show: unloading every cue', { master: this.#master, showId: s.showId });
      show.unload();
      this.#refused.clear();
    }
    this.#masterShowId = s.showId;
    this.#lastSent = s.sentUnixNs;
    show.clock.mirror({
      showId: s.showId, generation: Number(c.generation), state: c.state as ClockStateName, source: c.source as ClockSource, rate: c.rate,
      positionSeconds: c.positionSeconds, anchorUnixNs: this.#clock?.mapAnchor(c.anchorUnixNs) ?? c.anchorUnixNs, timecodeRate: c.timecodeRate,
    });
    show.mirrorCueList(s.cueListPath, s.cueIds, s.playhead ?? null);
    const wanted = new Set(s.cues.map((q) => q.id));
    for (const cue of show.cues) if (!wanted.has(cue.id)) show.unload(cue.id);
    for (const id of [...this.#refused.keys()]) if (!wanted.has(id)) this.#refused.delete(id);
    for (const q of s.cues) {
      if (this.#closed) return;
      await this.#mirrorCue(q);
    }
    this.#report(false);
  }

  async #mirrorCue(q: ShowState['cues'][number]): Promise<void> {
    const show = this.#show;
    const key = `${q.definitionJson}\n${q.mediaFingerprint}`;
    const refused = this.#refused.get(q.id);
    if (refused !== undefined && refused.key === key && Date.now() - refused.atMs < RETRY_REFUSED_MS) return;
    const def = parseCueDefinition(JSON.parse(q.definitionJson) as unknown, `cue of the master ${this.#master}`, null);
    const clockRefusal = this.#clock?.refusal() ?? null;
    if (clockRefusal !== null) {
      // --clock-offset-policy refuse: nothing plays here; the cue loads again (a new key) once the clocks agree.
      if (show.cue(q.id) !== undefined) show.unload(q.id);
      this.#refuse(q.id, `${key}\nclock`, def.media, clockRefusal);
      return;
    }
    let cue = show.cue(q.id);
    if (cue !== undefined && !sameCue(cue.def, def)) {
      // Redefined on the master (a cue list edit): loaded anew, its media checked again.
      show.unload(q.id);
      cue = undefined;
    }
    if (cue === undefined || refused !== undefined) {
      try {
        cue = await show.load(q.id, def);
      } catch (e) {
        this.#refuse(q.id, key, def.media, `its media cannot be opened here: ${errorMessage(e)}`);
        return;
      }
      const mine = mediaFingerprint(cue);
      if (mine !== q.mediaFingerprint) {
        show.unload(q.id);
        this.#refuse(q.id, key, def.media, `${def.media} here is not the master's file (fingerprint ${mine.slice(0, 24)}… here, ${q.mediaFingerprint.slice(0, 24)}… on the master)`);
        return;
      }
      if (refused !== undefined) {
        this.#refused.delete(q.id);
        log.info(`cue "${q.id}" plays here now (it was refused: ${refused.reason})`, { cue: q.id });
      }
    }
    const state = q.state === 'playing' || q.state === 'paused' ? q.state : 'armed';
    const run = q.run === undefined ? null : { clockSeconds: q.run.clockSeconds, mediaSeconds: q.run.mediaSeconds, id: q.run.id };
    const numbering = q.numbering === undefined ? cue.numbering : { runs: q.numbering.runs, nextSegment: q.numbering.nextSegment, passes: [...q.numbering.passes] };
    const stopped = q.stoppedClockSeconds === undefined ? null
      : { clockSeconds: q.stoppedClockSeconds, reason: q.stoppedReason === 'ended' ? 'ended' as const : 'stop' as const };
    await show.mirrorCue(def, state, run, numbering, q.pausedMediaSeconds ?? null, stopped);
  }

  #refuse(id: string, key: string, media: string, reason: string): void {
    const known = this.#refused.get(id);
    this.#refused.set(id, { key, media, reason, atMs: Date.now() });
    // Said once per change (a retry that loaded the cue cleared its problem: said again).
    if (known?.key === key && known.reason === reason && this.#show.cueProblems.some((p) => p.cueId === id)) return;
    this.#show.reportProblem(id, 'mirror', `not played on this follower: ${reason}`);
  }

  /** Status of the mirror (OSC /cuemux/status "follower", GetStatus through the cue problems). */
  status(): MirrorStatus {
    return {
      master: this.#master, connected: this.#connected, lastStateUnixNs: this.#lastSent === null ? null : String(this.#lastSent),
      masterShowId: this.#masterShowId, refused: [...this.#refused].map(([cueId, r]) => ({ cueId, media: r.media, reason: r.reason })),
    };
  }

  /** Stop applying states (the show itself is closed by its owner). */
  close(): void {
    this.#closed = true;
    if (this.#reportTimer !== null) clearInterval(this.#reportTimer);
    this.#pending = null;
  }
}
