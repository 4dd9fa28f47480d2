/**
 * Crash recovery: the show (clock, loaded cues and where they play, the cue list file) is saved atomically on every
 * change and every few seconds while the server runs — by rename, without fsync: it has to survive a crash of the
 * process, not of the machine. A server that starts and finds a state saved moments ago by a server that did not
 * stop cleanly (killed, crashed) takes the show back exactly — same clock timeline and generation, same cues on the
 * same runs and segment numbers — so players that reconnect go on where they were. A clean stop (SIGTERM) marks the
 * state, and the next start keeps only the cue list.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import { RateLimitedLog } from '../common/rate-limited-log';
import { getLogger } from '../common/logger';
import { unixNs } from '../common/time-source';
import { publishFileAtomically } from '../common/atomic-file';
import { DEFAULT_OUTPUTS, parseCueDefinition, type CueDefinition } from './cue-definition';
import type { CueRun } from './loaded-cue';
import type { Show } from './show';
import type { ClockSource, ClockStateName } from './show-clock';
import { parseTimecodeRate } from './timecode';
import { errorMessage } from '../common/errors';

const log = getLogger('show-state');

/** Saved state older than this is not resumed (a show that stopped minutes ago must not restart by itself). */
export const DEFAULT_RESUME_WITHIN_MS = 30_000;

/** Changes within this many ms are saved together. */
const SAVE_COALESCE_MS = 50;

/** How often the state is saved while nothing changes, so its age tells whether the server was alive. */
const HEARTBEAT_MS = 2_000;

/**
 * Limits of a state file this server reads back; beyond them it is not the state of a show but damage or an attack,
 * and a fresh show starts. A show saves a few hundred bytes per cue, plus about 7 per pass of a playing loop: these
 * are far above any show, and bound what a damaged or crafted file can cost to read.
 */
const MAX_STATE_BYTES = 16 << 20;
const MAX_SAVED_CUES = 10_000;
const MAX_SAVED_PASSES = 1_000_000;

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
  clock: { generation: number; state: ClockStateName; source: ClockSource; rate: number; positionSeconds: number; anchorUnixNs: string; timecodeRate: string; showId?: string };
  cueListPath: string;
  playhead: string | null;
  cues: SavedCue[];
}

/**
 * A cue definition as cue list JSON (docs/cue-list.md): parseCueDefinition gives the same definition back (the
 * default outputs stay implicit, so they resolve as defaults). Saved here and sent to follower servers (WatchShow).
 */
export function cueDefinitionJson(d: CueDefinition): Record<string, unknown> {
  return {
    id: d.id, name: d.name, media: d.media, in: d.inSeconds, out: d.outSeconds, loop: d.loop, follow: d.follow,
    ...(d.outputs === DEFAULT_OUTPUTS ? {} : { outputs: Object.fromEntries(d.outputs) }),
  };
}

function snapshot(show: Show, clean: boolean): SavedShow {
  const s = show.clock.snapshot;
  return {
    version: 1, savedUnixNs: String(unixNs()), clean,
    clock: {
      generation: s.generation, state: s.state, source: s.source, rate: s.rate, positionSeconds: s.positionSeconds,
      anchorUnixNs: String(s.anchorUnixNs), timecodeRate: s.timecodeRate.name, showId: show.clock.showId,
    },
    cueListPath: show.cueList.path, playhead: show.playhead,
    cues: show.cues.map((c) => ({ def: cueDefinitionJson(c.def), state: c.state, run: c.run, numbering: c.numbering, pausedMedia: c.pausedMedia })),
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
  readonly #saveFailures = new RateLimitedLog(60_000);
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
    // Whatever is at the path (damage, an old or foreign file, a FIFO, a folder): a warning and a fresh show, never a
    // failed start (a server that cannot start over its own state file would crash-loop under systemd).
    let saved: SavedShow | null = null;
    try {
      saved = parseSavedShow(await readStateText(file));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        log.warn(`${file}: show state not usable (${errorMessage(e)}): starting a fresh show`, { path: file });
      }
      saved = null;
    }
    if (saved !== null) {
      try {
        await restore(saved, file, show, options);
      } catch (e) {
        log.warn(`${file}: the saved show could not be resumed (${errorMessage(e)}): starting a fresh show`, { path: file });
      }
    }
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
    this.#writing = this.#writing.then(() => publishFileAtomically(this.path, bytes, 'save show state', false)).catch((e: unknown) => {
      // A full disk fails every save (one per change, and the 2 s heartbeat): one line per minute says so.
      this.#saveFailures.log('save', (suppressed) => log.warn('show state not saved (crash recovery will not resume this show)', { path: this.path, error: errorMessage(e), suppressed }));
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

/**
 * The state file's text: a regular file of at most MAX_STATE_BYTES. Opened non-blocking, so a FIFO at the path
 * cannot hold the open (or a thread of the pool) until someone writes to it; the type is checked on the open fd.
 */
async function readStateText(file: string): Promise<string> {
  const fh = await fsp.open(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`not a regular file (${st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device'})`);
    if (st.size > MAX_STATE_BYTES) throw new Error(`${st.size} bytes, more than a show state can be (${MAX_STATE_BYTES})`);
    const buf = Buffer.alloc(st.size);
    let at = 0;
    while (at < st.size) {
      const { bytesRead } = await fh.read(buf, at, st.size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return buf.toString('utf8', 0, at);
  } finally {
    await fh.close();
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Check a state file's text against {@link SavedShow}, field by field; throws an Error saying which field is wrong.
 * Everything restore() relies on is checked here, so a file that passes cannot make the restore throw halfway.
 */
export function parseSavedShow(text: string): SavedShow {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${errorMessage(e)}`);
  }
  const fail = (what: string, v: unknown): never => {
    const shown = JSON.stringify(v) ?? String(v);
    throw new Error(`${what} is ${shown.length > 60 ? `${shown.slice(0, 60)}...` : shown}`);
  };
  const obj = (v: unknown, what: string): Record<string, unknown> => (isObject(v) ? v : fail(`${what} is not an object: it`, v));
  const finite = (v: unknown, what: string): number => (typeof v === 'number' && Number.isFinite(v) ? v : fail(`${what} is not a finite number: it`, v));
  const count = (v: unknown, what: string, min = 0): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= min ? v : fail(`${what} is not an integer >= ${min}: it`, v));
  const oneOf = <T extends string>(v: unknown, what: string, allowed: readonly T[]): T => (typeof v === 'string' && (allowed as readonly string[]).includes(v) ? v as T : fail(`${what} is not one of ${allowed.join(', ')}: it`, v));
  const decimal = (v: unknown, what: string): string => (typeof v === 'string' && /^-?\d{1,20}$/.test(v) ? v : fail(`${what} is not a decimal integer string: it`, v));
  const top = obj(raw, 'the file');
  if (top.version !== 1) fail('version (expected 1)', top.version);
  const savedUnixNs = decimal(top.savedUnixNs, 'savedUnixNs');
  if (typeof top.clean !== 'boolean') fail('clean is not a boolean: it', top.clean);
  const c = obj(top.clock, 'clock');
  const clock: SavedShow['clock'] = {
    generation: count(c.generation, 'clock.generation', 1),
    state: oneOf(c.state, 'clock.state', ['stopped', 'playing', 'chasing'] as const),
    source: oneOf(c.source, 'clock.source', ['internal', 'external'] as const),
    rate: finite(c.rate, 'clock.rate'),
    positionSeconds: finite(c.positionSeconds, 'clock.positionSeconds'),
    anchorUnixNs: decimal(c.anchorUnixNs, 'clock.anchorUnixNs'),
    timecodeRate: typeof c.timecodeRate === 'string' ? c.timecodeRate : fail('clock.timecodeRate is not a string: it', c.timecodeRate),
  };
  // Absent in files written before show ids: the restored show keeps the fresh id (players then start its cues anew).
  if (c.showId !== undefined) clock.showId = typeof c.showId === 'string' && /^[0-9a-f]{16}$/.test(c.showId) ? c.showId : fail('clock.showId is not 16 hex digits: it', c.showId);
  try {
    parseTimecodeRate(clock.timecodeRate);
  } catch {
    fail('clock.timecodeRate is not a timecode rate: it', clock.timecodeRate);
  }
  if (typeof top.cueListPath !== 'string') fail('cueListPath is not a string: it', top.cueListPath);
  if (top.playhead !== null && typeof top.playhead !== 'string') fail('playhead is not a string or null: it', top.playhead);
  if (!Array.isArray(top.cues)) fail('cues is not an array: it', top.cues);
  const rawCues = top.cues as unknown[];
  if (rawCues.length > MAX_SAVED_CUES) throw new Error(`cues has ${rawCues.length} entries, more than ${MAX_SAVED_CUES}`);
  const cues = rawCues.map((v, i): SavedCue => {
    const at = `cues[${i}]`;
    const q = obj(v, at);
    const def = obj(q.def, `${at}.def`);
    const state = oneOf(q.state, `${at}.state`, ['armed', 'playing', 'paused'] as const);
    let run: CueRun | null = null;
    if (q.run !== null) {
      const r = obj(q.run, `${at}.run`);
      run = { clockSeconds: finite(r.clockSeconds, `${at}.run.clockSeconds`), mediaSeconds: finite(r.mediaSeconds, `${at}.run.mediaSeconds`), id: count(r.id, `${at}.run.id`) };
    }
    const n = obj(q.numbering, `${at}.numbering`);
    if (!Array.isArray(n.passes)) fail(`${at}.numbering.passes is not an array: it`, n.passes);
    const rawPasses = n.passes as unknown[];
    if (rawPasses.length > MAX_SAVED_PASSES) throw new Error(`${at}.numbering.passes has ${rawPasses.length} entries, more than ${MAX_SAVED_PASSES}`);
    const numbering = {
      runs: count(n.runs, `${at}.numbering.runs`), nextSegment: count(n.nextSegment, `${at}.numbering.nextSegment`),
      passes: rawPasses.map((p, k) => count(p, `${at}.numbering.passes[${k}]`)),
    };
    const pausedMedia = q.pausedMedia === null ? null : finite(q.pausedMedia, `${at}.pausedMedia`);
    return { def, state, run, numbering, pausedMedia };
  });
  return {
    version: 1, savedUnixNs, clean: top.clean as boolean, clock, cueListPath: top.cueListPath as string,
    playhead: top.playhead as string | null, cues,
  };
}

async function restore(saved: SavedShow, file: string, show: Show, options: ShowStateOptions): Promise<void> {
  if (saved.cueListPath !== '') {
    await options.loadCueList(saved.cueListPath).catch((e: unknown) => {
      log.warn('the saved cue list could not be loaded', { path: saved.cueListPath, error: errorMessage(e) });
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
  if (saved.clean) return;
  if (ageMs < 0) {
    // Saved "in the future": the wall clock was set back since, or the file is not what this server wrote. Its age
    // is unknown, so it may be any old show: not resumed.
    log.warn(`${file}: the show state is dated ${Math.round(-ageMs / 1000)} s in the future: not resuming its playback`, { path: file, ageMs: Math.round(ageMs) });
    return;
  }
  if (ageMs > (options.resumeWithinMs ?? DEFAULT_RESUME_WITHIN_MS)) {
    log.info('the previous server stopped long ago: not resuming its playback', { path: file, ageSeconds: Math.round(ageMs / 1000) });
    return;
  }
  try {
    show.clock.restore({ ...saved.clock, anchorUnixNs: BigInt(saved.clock.anchorUnixNs) });
  } catch (e) {
    log.warn(`${file}: the saved clock is not valid (${errorMessage(e)}): not resuming its playback`, { path: file });
    return;
  }
  for (const c of saved.cues) {
    try {
      const def = parseCueDefinition(c.def, `${file}: cue`, null);
      await show.restoreCue(def, c.state, c.run, c.numbering, c.pausedMedia);
    } catch (e) {
      log.error(`${file}: a cue of the previous server could not be restored`, { path: file, cue: String(c.def.id), error: errorMessage(e) });
    }
  }
  log.warn('resumed the show of a server that stopped without a clean shutdown', {
    path: file, ageMs: Math.round(ageMs), position: show.clock.position(), cues: show.cues.map((c) => `${c.id}:${c.state}`),
  });
}
