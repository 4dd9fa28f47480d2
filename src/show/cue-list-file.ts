/**
 * The cue list file (format in docs/cue-list.md): parsed with errors naming the file, the line and the field, and
 * watched so an edit applies at once without a restart. A broken save never replaces a good list: the error is
 * logged (and shown in status) and the list in effect stays until the file is valid again.
 */
import { watch, promises as fsp, type FSWatcher } from 'node:fs';
import * as path from 'node:path';
import { CuemuxError, fromSystemError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { checkCueId, parseCueDefinition, type CueDefinition } from './cue-definition';
import type { CueList, Show } from './show';
import { parseTimecodeRate, type TimecodeRate } from './timecode';

const log = getLogger('cue-list');

/** Largest cue list file read, in bytes (a list of thousands of cues is a few hundred KB). */
const MAX_BYTES = 8 << 20;

/** A parsed cue list file. */
export interface ParsedCueList extends CueList {
  /** The file's timecode rate, if it sets one (applied to the show clock). */
  readonly timecodeRate: TimecodeRate | null;
}

function lineOf(text: string, message: string): string {
  // V8's JSON errors say "at position N": turn that into a line and column a technician can find in an editor.
  // Its excerpts of the text ("...") are dropped: the path may come over the network (/cuemux/cuelist/load) and
  // the reply must not quote a file that is not a cue list.
  const plain = message.replace(/,? ?"[^"]*"(\.\.\.)?/g, '').replace(/\s+/g, ' ').trim();
  const m = /position (\d+)/.exec(message);
  if (m === null) return plain;
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  const column = Number(m[1]) - before.lastIndexOf('\n');
  return `${plain} (line ${line}, column ${column})`;
}

/** Parse cue list JSON `text` read from `file`; `fallbackRate` resolves timecodes when the file sets no rate. */
export function parseCueList(text: string, file: string, fallbackRate: TimecodeRate): ParsedCueList {
  let raw: unknown;
  try {
    raw = JSON.parse(text) as unknown;
  } catch (e) {
    throw new CuemuxError('INVALID_ARGUMENT', `${file}: not valid JSON: ${lineOf(text, errorMessage(e))}`, { path: file });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CuemuxError('INVALID_ARGUMENT', `${file}: a cue list is a JSON object {"version": 1, "cues": [...]}`, { path: file });
  }
  const o = raw as Record<string, unknown>;
  if (o.version !== 1) throw new CuemuxError('INVALID_ARGUMENT', `${file}: "version" must be 1, got ${JSON.stringify(o.version)}`, { path: file });
  for (const k of Object.keys(o)) {
    if (!['version', 'timecodeRate', 'cues', 'name'].includes(k)) {
      throw new CuemuxError('INVALID_ARGUMENT', `${file}: unknown field "${k}" (known: version, name, timecodeRate, cues)`, { path: file });
    }
  }
  let timecodeRate: TimecodeRate | null = null;
  if (o.timecodeRate !== undefined) {
    try {
      timecodeRate = parseTimecodeRate(o.timecodeRate as string);
    } catch (e) {
      throw new CuemuxError('INVALID_ARGUMENT', `${file}: "timecodeRate": ${errorMessage(e)}`, { path: file });
    }
  }
  if (!Array.isArray(o.cues)) throw new CuemuxError('INVALID_ARGUMENT', `${file}: "cues" must be an array of cues`, { path: file });
  const seen = new Set<string>();
  const cues: CueDefinition[] = o.cues.map((c: unknown, i) => {
    const def = parseCueDefinition(c, `${file}: cues[${i}]`, timecodeRate ?? fallbackRate);
    if (seen.has(def.id)) throw new CuemuxError('INVALID_ARGUMENT', `${file}: cues[${i}]: cue id "${checkCueId(def.id, file)}" is used twice`, { path: file });
    seen.add(def.id);
    return def;
  });
  return { path: file, cues, timecodeRate };
}

/** Read and parse the cue list at `file`. */
export async function readCueList(file: string, fallbackRate: TimecodeRate): Promise<ParsedCueList> {
  let text: string;
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw new CuemuxError('INVALID_ARGUMENT', `${file}: a cue list must be a file`, { path: file });
    if (st.size > MAX_BYTES) throw new CuemuxError('INVALID_ARGUMENT', `${file}: cue list is ${st.size} bytes, above the ${MAX_BYTES} limit`, { path: file });
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw fromSystemError(e, file, 'read cue list');
  }
  return parseCueList(text, file, fallbackRate);
}

/** Debounce for file events: editors write a file in several steps (truncate, write, rename). */
const SETTLE_MS = 100;

/** A cue list file loaded into a show and watched for edits. */
export class CueListFile {
  /** Absolute path of the file. */
  readonly path: string;
  readonly #show: Show;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lastError: string | null = null;
  #reloads = 0;
  #closed = false;
  #reading: Promise<void> = Promise.resolve();

  private constructor(file: string, show: Show) {
    this.path = file;
    this.#show = show;
  }

  /** Load `file` into `show` (errors name the file and what is wrong), then watch it. */
  static async load(file: string, show: Show): Promise<CueListFile> {
    const abs = path.resolve(file);
    const list = await readCueList(abs, show.clock.snapshot.timecodeRate);
    const f = new CueListFile(abs, show);
    f.#apply(list);
    f.#watch();
    return f;
  }

  /** The last error of a reload (the list in effect is the last valid one), or null. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** Successful reloads after edits. */
  get reloads(): number {
    return this.#reloads;
  }

  #apply(list: ParsedCueList): void {
    if (list.timecodeRate) this.#show.clock.setTimecodeRate(list.timecodeRate.name);
    this.#show.setCueList(list);
  }

  #watch(): void {
    // Watch the folder, not the file: editors that save by rename replace the inode a file watch is tied to.
    const dir = path.dirname(this.path);
    const base = path.basename(this.path);
    try {
      this.#watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || name === base) this.#schedule();
      });
      this.#watcher.on('error', (e) => log.warn('cue list watch failed; edits will not apply until it is loaded again', { path: this.path, error: e.message }));
    } catch (e) {
      log.warn('cannot watch the cue list; edits will not apply until it is loaded again', { path: this.path, error: errorMessage(e) });
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#reading = this.#reading.then(() => this.#reload());
    }, SETTLE_MS);
    this.#timer.unref();
  }

  async #reload(): Promise<void> {
    if (this.#closed) return;
    try {
      const list = await readCueList(this.path, this.#show.clock.snapshot.timecodeRate);
      if (this.#closed) return;
      this.#apply(list);
      this.#lastError = null;
      this.#reloads++;
      log.info('cue list reloaded after an edit', { path: this.path, cues: list.cues.length });
    } catch (e) {
      // Keep the list in effect: a half-saved file must not unload the show.
      this.#lastError = errorMessage(e);
      log.error('cue list edit not applied (the previous list stays in effect)', { path: this.path, error: this.#lastError });
    }
  }

  /** Stop watching (idempotent). The cues stay in the show. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
  }
}
