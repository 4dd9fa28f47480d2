/**
 * Progress display for `cuemux index build`: a redrawn bar on a TTY (files, packets, MB/s, ETA), nothing otherwise
 * (the caller prints a plain line per finished file instead). Writes to stderr so stdout stays for results.
 */

/** Totals shown by the bar. */
export interface ProgressState {
  /** Files finished (indexed, loaded, skipped or failed). */
  filesDone: number;
  /** Files in the run. */
  filesTotal: number;
  /** Packets indexed so far in this run. */
  packets: number;
  /** Media bytes read so far. */
  bytesDone: number;
  /** Media bytes in the run (sum of file sizes). */
  bytesTotal: number;
  /** The file being worked on (shown shortened). */
  current: string;
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}

/** A TTY progress bar redrawn at most 10 times a second. */
export class ProgressBar {
  readonly #out: NodeJS.WriteStream;
  readonly #started = process.hrtime.bigint();
  #last = 0;
  #shown = false;

  constructor(out: NodeJS.WriteStream = process.stderr) {
    this.#out = out;
  }

  /** True when the output is a terminal (otherwise the bar stays silent). */
  get enabled(): boolean {
    return this.#out.isTTY === true;
  }

  /** Redraw with `s` (throttled unless `force`). */
  update(s: ProgressState, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    const elapsed = Number(process.hrtime.bigint() - this.#started) / 1e9;
    const rate = elapsed > 0 ? s.bytesDone / elapsed : 0;
    const eta = rate > 0 ? (s.bytesTotal - s.bytesDone) / rate : NaN;
    const width = 24;
    const frac = s.bytesTotal > 0 ? Math.min(1, s.bytesDone / s.bytesTotal) : s.filesDone / Math.max(1, s.filesTotal);
    const filled = Math.round(frac * width);
    const bar = `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}`;
    const cols = this.#out.columns || 100;
    let line = `[${bar}] ${s.filesDone}/${s.filesTotal} files  ${s.packets.toLocaleString('en-US')} packets  ` +
      `${(rate / 1e6).toFixed(1)} MB/s  ETA ${clock(eta)}  ${s.current}`;
    if (line.length > cols - 1) line = `${line.slice(0, cols - 2)}…`;
    this.#out.write(`\r\x1b[2K${line}`);
    this.#shown = true;
  }

  /** Erase the bar so a normal line can be printed. */
  clear(): void {
    if (this.#shown) this.#out.write('\r\x1b[2K');
    this.#shown = false;
  }
}
