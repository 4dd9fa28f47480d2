/**
 * The sync log (`--sync-log FILE`): one JSON line per presented frame or audio period, saying on which monotonic
 * instant which media time was presented at which clock position. Benchmarks and tests compare players through it,
 * so `mono_ns` is CLOCK_MONOTONIC in nanoseconds (comparable between processes of one machine), written as a
 * decimal string because a double cannot hold it exactly.
 *
 * Lines go through one fs.WriteStream, which batches what arrives while a write is in flight into one writev: the
 * player never waits for the disk. A failing disk (full, removed) must not stop the show, so a write error is logged
 * once and the log then drops every record.
 */
import { createWriteStream, open as openCb, promises as fsp, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import { CuemuxError, fromSystemError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';

const log = getLogger('player-sink');

// A numeric fd, not a FileHandle: a FileHandle closes its fd when garbage-collected, under the stream's feet.
const openFd = promisify(openCb);

/** Extra fields of a sync-log line (flat JSON values). */
export type SyncExtra = Record<string, string | number | boolean | null>;

/** One parsed sync-log line. */
export interface SyncRecord {
  /** CLOCK_MONOTONIC instant of the presentation, in nanoseconds. */
  monoNs: bigint;
  /** Presentation time of what was shown, in seconds on the show clock's timeline, null when nothing was. */
  ptsSeconds: number | null;
  /** Show clock position at `monoNs`, in seconds. */
  clockSeconds: number;
  /** Every other field of the line. */
  extra: SyncExtra;
}

/** Options of {@link SyncLog.open}. */
export interface SyncLogOptions {
  /**
   * Bytes that may wait for the disk before records are dropped (and counted), default 4 MiB: a stalled disk must
   * not grow the player's memory without bound.
   */
  maxQueuedBytes?: number;
}

/** Counters of a {@link SyncLog}; a snapshot. */
export interface SyncLogStats {
  /** Records queued for writing. */
  records: number;
  /** Records dropped (queue full, log failed or closed). */
  dropped: number;
  /** True once a write error disabled the log. */
  failed: boolean;
}

const RESERVED = new Set(['mono_ns', 'pts_seconds', 'clock_seconds']);

/** A JSON-lines log of presentations; see the module comment. Create with {@link SyncLog.open}. */
export class SyncLog {
  /** The file written. */
  readonly path: string;
  readonly #stream: WriteStream;
  readonly #maxQueued: number;
  #failed = false;
  #closePromise: Promise<void> | null = null;
  #records = 0;
  #dropped = 0;

  private constructor(path: string, stream: WriteStream, options: SyncLogOptions) {
    this.path = path;
    this.#stream = stream;
    this.#maxQueued = options.maxQueuedBytes ?? 4 * 1024 * 1024;
    stream.on('error', (e) => {
      if (this.#failed) return;
      this.#failed = true;
      log.error('the sync log cannot be written; it is disabled for the rest of the run',
        { path, error: e.message, records: this.#records });
    });
  }

  /**
   * Create (or truncate) `path` and return the log. Rejects with a {@link CuemuxError} naming the path when it cannot
   * be created (missing folder, a directory, no permission, `-`).
   */
  static async open(path: string, options: SyncLogOptions = {}): Promise<SyncLog> {
    if (path === '-') {
      // fd 1 may be a pipe libuv made non-blocking, which a WriteStream's plain write(2) calls cannot handle.
      throw new CuemuxError('INVALID_ARGUMENT', '-: a sync log must be a file, not stdout', { path, operation: 'open sync log' });
    }
    let fd: number;
    try {
      fd = await openFd(path, 'w');
    } catch (e) {
      throw (e as NodeJS.ErrnoException).code === 'EISDIR'
        ? new CuemuxError('INVALID_ARGUMENT', `${path}: is a directory; a sync log must be a file`, { path, operation: 'open sync log', cause: e })
        : fromSystemError(e, path, 'open sync log');
    }
    return new SyncLog(path, createWriteStream(path, { fd }), options);
  }

  /** A snapshot of the counters. */
  get stats(): SyncLogStats {
    return { records: this.#records, dropped: this.#dropped, failed: this.#failed };
  }

  /**
   * Queue one line: `monoNs` CLOCK_MONOTONIC nanoseconds, `ptsSeconds` and `clockSeconds` in seconds (a non-finite
   * number is written as null), then the `extra` fields in their order (the three names above are ignored there).
   * Never throws and never waits.
   */
  record(monoNs: bigint, ptsSeconds: number | null, clockSeconds: number, extra?: SyncExtra): void {
    if (this.#failed || this.#closePromise !== null || this.#stream.writableLength > this.#maxQueued) {
      this.#dropped++;
      return;
    }
    const fields: Record<string, unknown> = { pts_seconds: ptsSeconds, clock_seconds: clockSeconds };
    if (extra !== undefined) {
      for (const [k, v] of Object.entries(extra)) if (!RESERVED.has(k)) fields[k] = v;
    }
    // JSON has no bigint: splice mono_ns in front as a string (JSON.stringify writes NaN and Infinity as null).
    const rest = JSON.stringify(fields);
    this.#stream.write(`{"mono_ns":"${monoNs}",${rest.slice(1)}\n`);
    this.#records++;
  }

  /** Flush and close the file. Idempotent; resolves when done (also after a write error), never rejects. */
  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      this.#stream.end();
      await finished(this.#stream).catch(() => undefined);
    })();
    return this.#closePromise;
  }
}

/**
 * Parse a sync log written by {@link SyncLog} (or a hash log of the video sinks, which has the same shape). A last
 * line cut short (a killed player) is ignored; any other malformed line rejects with an INVALID_ARGUMENT
 * {@link CuemuxError} naming the file and line.
 */
export async function readSyncLog(path: string): Promise<SyncRecord[]> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (e) {
    throw fromSystemError(e, path, 'read sync log');
  }
  const lines = text.split('\n');
  const out: SyncRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    try {
      out.push(parseLine(line));
    } catch (e) {
      const last = i === lines.length - 1;
      if (last) break;
      throw new CuemuxError('INVALID_ARGUMENT', `${path}:${i + 1}: not a sync-log line (${errorMessage(e)})`,
        { path, operation: 'read sync log', cause: e });
    }
  }
  return out;
}

function parseLine(line: string): SyncRecord {
  const o = JSON.parse(line) as unknown;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('not a JSON object');
  const { mono_ns: mono, pts_seconds: pts, clock_seconds: clock, ...rest } = o as Record<string, unknown>;
  if (typeof mono !== 'string' || !/^-?\d+$/.test(mono)) throw new Error('mono_ns is not a decimal string');
  if (pts !== null && typeof pts !== 'number') throw new Error('pts_seconds is not a number or null');
  if (typeof clock !== 'number') throw new Error('clock_seconds is not a number');
  const extra: SyncExtra = {};
  for (const [k, v] of Object.entries(rest)) {
    if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new Error(`${k} is not a flat value`);
    extra[k] = v;
  }
  return { monoNs: BigInt(mono), ptsSeconds: pts, clockSeconds: clock, extra };
}
