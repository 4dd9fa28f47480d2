/**
 * Crash recovery: the show (clock, loaded cues and where they play, the cue list file) is saved atomically on every
 * change and every few seconds while the server runs — by rename, without fsync: it has to survive a crash of the
 * process, not of the machine. A server that starts and finds a state saved moments ago by a server that did not
 * stop cleanly (killed, crashed) takes the show back exactly — same clock timeline and generation, same cues on the
 * same runs and segment numbers — so players that reconnect go on where they were. A clean stop (SIGTERM) marks the
 * state, and the next start keeps only the cue list.
 */
import { promises as fsp } from 'node:fs';
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import { unixNs } from '../common/time-source';
import { publishIndexFile } from '../index-store/index-file';
import { parseCueDefinition, type CueDefinition } from './cue-definition';
import type { CueRun } from './loaded-cue';
import type { Show } from './show';
import type { ClockSource, ClockStateName } from './show-clock';

const log = getLogger('show-state');

/** Saved state older than this is not resumed (a show that stopped minutes ago must not restart by itself). */
export const DEFAULT_RESUME_WITHIN_MS = 30_000;

/** Changes within this many ms are saved together. */
const SAVE_COALESCE_MS = 50;

/** How often the state is saved while nothing changes, so its age tells whether the server was alive. */
const HEARTBEAT_MS = 2_000;

interface SavedCue {
  def: Record<string, unknown>;
  state: 'armed' | 'playing' | 'paused';
  run: CueRun | null;
  numbering: { runs: number; nextSegment: number; passes: number[] };
  pausedMedia: number | null;
}

/** The saved show (JSON; bigints as decimal strings). */
interface SavedShow {
  version: 1;
  savedUnixNs: string;
  clean: boolean;
  clock: { generation: number; state: ClockStateName; source: ClockSource; rate: number; positionSeconds: number; anchorUnixNs: string; timecodeRate: string };
  cueListPath: string;
  playhead: string | null;
  cues: SavedCue[];
}

function defJson(d: CueDefinition): Record<string, unknown> {
  return {
    id: d.id, name: d.name, media: d.media, in: d.inSeconds, out: d.outSeconds, loop: d.loop, follow: d.follow,
    outputs: Object.fromEntries(d.outputs),
  };
}

function snapshot(show: Show, clean: boolean): SavedShow {
  const s = show.clock.snapshot;
  return {
    version: 1, savedUnixNs: String(unixNs()), clean,
    clock: {
      generation: s.generation, state: s.state, source: s.source, rate: s.rate, positionSeconds: s.positionSeconds,
      anchorUnixNs: String(s.anchorUnixNs), timecodeRate: s.timecodeRate.name,
    },
    cueListPath: show.cueList.path, playhead: show.playhead,
    cues: show.cues.map((c) => ({ def: defJson(c.def), state: c.state, run: c.run, numbering: c.numbering, pausedMedia: c.pausedMedia })),
  };
}

/** Options of {@link ShowStateFile.open}. */
export interface ShowStateOptions {
  /** Load a cue list file into the show (and watch it). */
  loadCueList: (path: string) => Promise<unknown>;
  /** Resume playback only from a state saved at most this long ago, in ms. Default 30 s. */
  resumeWithinMs?: number;
}

/** The show's state file: restored once at start, then kept up to date. */
export class ShowStateFile {
  /** Path of the state file. */
  readonly path: string;
  readonly #show: Show;
  #timer: NodeJS.Timeout | null = null;
  readonly #heartbeat: NodeJS.Timeout;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #onChange = (): void => this.#schedule();

  private constructor(file: string, show: Show) {
    this.path = file;
    this.#show = show;
    show.clock.on('change', this.#onChange);
    show.on('cue', this.#onChange);
    show.on('cuelist', this.#onChange);
    this.#heartbeat = setInterval(() => void this.#save(false), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Restore the show from `file` when it holds a recent unclean stop (see the module comment), then keep it saved. */
  static async open(file: string, show: Show, options: ShowStateOptions): Promise<ShowStateFile> {
    let saved: SavedShow | null = null;
    try {
      saved = JSON.parse(await fsp.readFile(file, 'utf8')) as SavedShow;
      if (saved.version !== 1) throw new CuemuxError('INVALID_ARGUMENT', `unknown version ${String(saved.version)}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('show state not readable: starting a fresh show', { path: file, error: e instanceof Error ? e.message : String(e) });
      saved = null;
    }
    if (saved !== null) await restore(saved, file, show, options);
    const f = new ShowStateFile(file, show);
    await f.#save(false);
    return f;
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== null) return;
    // Coalesce a burst of changes (a GO emits several; a chased clock re-anchors often) into one write.
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#save(false); // #save never rejects: failures are logged
    }, SAVE_COALESCE_MS);
    this.#timer.unref();
  }

  #save(clean: boolean): Promise<void> {
    const bytes = Buffer.from(JSON.stringify(snapshot(this.#show, clean)));
    this.#writing = this.#writing.then(() => publishIndexFile(this.path, bytes, 'save show state', false)).catch((e: unknown) => {
      log.warn('show state not saved (crash recovery will not resume this show)', { path: this.path, error: e instanceof Error ? e.message : String(e) });
    });
    return this.#writing;
  }

  /** Save a final state marked clean (the next start does not resume playback) and stop saving. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return this.#writing;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    clearInterval(this.#heartbeat);
    this.#show.clock.off('change', this.#onChange);
    this.#show.off('cue', this.#onChange);
    this.#show.off('cuelist', this.#onChange);
    return this.#save(true);
  }
}

async function restore(saved: SavedShow, file: string, show: Show, options: ShowStateOptions): Promise<void> {
  if (saved.cueListPath !== '') {
    await options.loadCueList(saved.cueListPath).catch((e: unknown) => {
      log.warn('the saved cue list could not be loaded', { path: saved.cueListPath, error: e instanceof Error ? e.message : String(e) });
    });
    if (saved.playhead !== null) {
      try {
        show.standBy(saved.playhead);
      } catch {
        // the cue list changed meanwhile: keep its own playhead
      }
    }
  }
  const ageMs = Number(unixNs() - BigInt(saved.savedUnixNs)) / 1e6;
  if (saved.clean || ageMs > (options.resumeWithinMs ?? DEFAULT_RESUME_WITHIN_MS)) {
    if (!saved.clean) log.info('the previous server stopped long ago: not resuming its playback', { path: file, ageSeconds: Math.round(ageMs / 1000) });
    return;
  }
  show.clock.restore({ ...saved.clock, anchorUnixNs: BigInt(saved.clock.anchorUnixNs) });
  for (const c of saved.cues) {
    try {
      const def = parseCueDefinition(c.def, `${file}: cue`, null);
      await show.restoreCue(def, c.state, c.run, c.numbering, c.pausedMedia);
    } catch (e) {
      log.error('a cue of the previous server could not be restored', { cue: String(c.def.id), error: e instanceof Error ? e.message : String(e) });
    }
  }
  log.warn('resumed the show of a server that stopped without a clean shutdown', {
    path: file, ageMs: Math.round(ageMs), position: show.clock.position(), cues: show.cues.map((c) => `${c.id}:${c.state}`),
  });
}
