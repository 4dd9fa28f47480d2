/**
 * A byte destination for a real-time player: a FIFO (named pipe), a regular file, or stdout (`-`).
 *
 * A player presents on the show clock, so its output must never hold it up: nothing here blocks the event loop or
 * throws because a reader went away. Bytes are written in units (a video frame, an audio period), each whole or not
 * at all, so whatever reads the stream always sees it cut at unit boundaries (a y4m reader resynchronises on nothing).
 * A slow or absent reader makes the player drop units instead of stalling or growing memory.
 *
 * FIFOs: the FIFO is opened `O_WRONLY | O_NONBLOCK`, which fails with ENXIO while no reader has it open, so the
 * output polls for a reader instead of blocking a thread in open(2). The fd is then wrapped in a `net.Socket`:
 * libuv sees a FIFO fd as a pipe and writes to it non-blockingly, queueing what the kernel's pipe buffer cannot take
 * (checked on Node 20: writes return at once, `writableLength` counts the bytes libuv still holds, and a reader that
 * dies shows up as an EPIPE 'error' — Node ignores SIGPIPE — followed by 'close').
 *
 * A reader that leaves and another that opens the FIFO before the next unit is written share the pipe, so the new
 * one may start with the old one's unread tail; readers attached on their own (the usual case) always start with
 * the header and a whole unit.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import { CuemuxError, fromSystemError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { TypedEmitter } from '../common/typed-emitter';

const log = getLogger('player-sink');

const openFd = promisify(fs.open);

/** What a {@link PipeOutput} writes to. */
export type PipeOutputKind = 'fifo' | 'file' | 'stdout';

/** Options of {@link PipeOutput.open}. */
export interface PipeOutputOptions {
  /**
   * Bytes that may wait for the reader (or the disk) before new units are dropped, default 8 MiB. A unit is written
   * when nothing is queued or when it fits under this limit, so the queue never exceeds `max(limit, one unit)`
   * (plus a header). The kernel's own pipe buffer (64 KiB on Linux) comes on top.
   */
  maxQueuedBytes?: number;
  /** How often to look for a reader of a FIFO, in milliseconds, default 100. */
  retryMs?: number;
  /**
   * Bytes a new reader must get before the first unit (a y4m stream header), or null when there are none yet (the
   * format is not known): it is then asked again before each unit until it returns bytes. Called once per reader of
   * a FIFO, once for a file or stdout. Its bytes are written whole, together with the first unit that follows.
   */
  header?: () => Buffer | readonly Buffer[] | null;
  /** Name used in log lines (e.g. `video:main`), default the path. */
  name?: string;
  /**
   * How long {@link PipeOutput.close} waits for a FIFO or stdout reader to take the bytes still queued, in
   * milliseconds, default 1000. Files are always flushed completely.
   */
  closeGraceMs?: number;
}

/** Counters of a {@link PipeOutput}; a snapshot. */
export interface PipeOutputStats {
  /** Units the OS accepted completely. */
  unitsWritten: number;
  /** Units dropped: no reader, queue over the limit, or output closed or failed. */
  unitsDropped: number;
  /** Bytes the OS accepted (units and headers). */
  bytesWritten: number;
  /** Readers attached so far (a file or stdout counts once). */
  attachments: number;
  /** Bytes accepted by {@link PipeOutput.writeUnit} but not yet taken by the OS. */
  queuedBytes: number;
}

/** Events of a {@link PipeOutput}. */
export interface PipeOutputEvents extends Record<string, unknown[]> {
  /**
   * A reader attached (a FIFO reader, or a file or stdout right at open); the header, if ready, has been queued. A
   * reader already waiting when open() runs is attached before open() resolves: check {@link PipeOutput.attached}.
   */
  attached: [];
  /** The reader went away, the output failed, or it was closed; `reason` says which (e.g. `EPIPE`, `closed`). */
  detached: [reason: string];
}

const DEFAULT_MAX_QUEUED = 8 * 1024 * 1024;
const DEFAULT_RETRY_MS = 100;
const DEFAULT_CLOSE_GRACE_MS = 1000;

function errorCode(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : errorMessage(e);
}

/** Bytes of `chunks` together (a unit's, a picture's planes). */
export function totalLength(chunks: readonly Uint8Array[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

/**
 * A non-blocking, unit-atomic byte sink (see the module comment). Create with {@link PipeOutput.open}.
 */
export class PipeOutput extends TypedEmitter<PipeOutputEvents> {
  /** The path given to {@link PipeOutput.open} (`-` for stdout). */
  readonly path: string;
  /** What the path turned out to be. */
  readonly kind: PipeOutputKind;

  readonly #name: string;
  readonly #maxQueued: number;
  readonly #retryMs: number;
  readonly #closeGraceMs: number;
  readonly #header: (() => Buffer | readonly Buffer[] | null) | undefined;

  #stream: Writable | null = null;
  /** Listeners put on #stream, so a stream we do not own (process.stdout) can be given back clean. */
  #unlisten: (() => void) | null = null;
  #headerPending = false;
  /** Settles when the last accepted unit has been taken by the OS (or failed): writes complete in order. */
  #lastWrite: Promise<void> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | null = null;
  #opening = false;
  /** A file or stdout that failed never comes back; a FIFO waits for the next reader. */
  #failedForGood = false;
  #closePromise: Promise<void> | null = null;
  #openErrorsLogged = new Set<string>();

  #unitsWritten = 0;
  #unitsDropped = 0;
  #bytesWritten = 0;
  #attachments = 0;

  private constructor(path: string, kind: PipeOutputKind, options: PipeOutputOptions) {
    super();
    this.path = path;
    this.kind = kind;
    this.#name = options.name ?? path;
    this.#maxQueued = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED;
    this.#retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.#closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    this.#header = options.header;
  }

  /**
   * Open `path` for writing: `-` is stdout, an existing FIFO is waited on for readers (the returned output may not be
   * attached yet), anything else is a regular file, created or truncated (a character device such as /dev/null is
   * written like one). Rejects with a {@link CuemuxError} naming the path when it cannot be written: a directory
   * (INVALID_ARGUMENT), a missing parent folder (NOT_FOUND), no permission (PERMISSION_DENIED), a socket or block
   * device or stdout on a terminal (INVALID_ARGUMENT).
   */
  static async open(path: string, options: PipeOutputOptions = {}): Promise<PipeOutput> {
    if (path === '-') return PipeOutput.#openStdout(options);
    let stat: fs.Stats | null = null;
    try {
      stat = await fs.promises.stat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(e, path, 'open output');
    }
    if (stat?.isDirectory()) {
      throw new CuemuxError('INVALID_ARGUMENT', `${path}: is a directory; an output must be a file, a FIFO or -`,
        { path, operation: 'open output' });
    }
    if (stat?.isFIFO()) {
      // One attempt now, so a FIFO we may not write (EACCES) fails before the show rather than in the retry loop.
      let fd: number | null = null;
      try {
        fd = await openFd(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw fromSystemError(e, path, 'open output');
      }
      const out = new PipeOutput(path, 'fifo', options);
      if (fd === null) {
        log.info('waiting for a reader', { output: out.#name, path });
        out.#scheduleRetry();
      } else {
        out.#attachFifo(fd);
      }
      return out;
    }
    if (stat !== null && !stat.isFile() && !stat.isCharacterDevice()) {
      throw new CuemuxError('INVALID_ARGUMENT', `${path}: is neither a regular file nor a FIFO; an output must be a file, a FIFO or -`,
        { path, operation: 'open output' });
    }
    let fd: number;
    try {
      fd = await openFd(path, 'w');
    } catch (e) {
      throw fromSystemError(e, path, 'open output');
    }
    const out = new PipeOutput(path, 'file', options);
    out.#attach(fs.createWriteStream(path, { fd }), null);
    return out;
  }

  static #openStdout(options: PipeOutputOptions): PipeOutput {
    let stat: fs.Stats;
    try {
      stat = fs.fstatSync(1);
    } catch (e) {
      throw fromSystemError(e, '-', 'open output');
    }
    const out = new PipeOutput('-', 'stdout', { name: 'stdout', ...options });
    if (stat.isFIFO() || stat.isSocket()) {
      // Node makes stdout on a pipe a non-blocking net.Socket (checked on Node 20); reuse it rather than open a
      // second writer on fd 1.
      out.#attach(process.stdout, null);
    } else if (stat.isFile() || (stat.isCharacterDevice() && process.stdout.isTTY !== true)) {
      // process.stdout on a file writes synchronously; a WriteStream on fd 1 goes through the thread pool instead.
      out.#attach(fs.createWriteStream('', { fd: 1, autoClose: false }), null);
    } else {
      throw new CuemuxError('INVALID_ARGUMENT', '-: stdout is a terminal; redirect it to a file or a pipe',
        { path: '-', operation: 'open output' });
    }
    return out;
  }

  /** True while a reader is attached (always, for a file or stdout, until it fails or is closed). */
  get attached(): boolean {
    return this.#stream !== null;
  }

  /** Bytes accepted but not yet taken by the OS. */
  get queuedBytes(): number {
    return this.#stream?.writableLength ?? 0;
  }

  /** A snapshot of the counters. */
  get stats(): PipeOutputStats {
    return {
      unitsWritten: this.#unitsWritten,
      unitsDropped: this.#unitsDropped,
      bytesWritten: this.#bytesWritten,
      attachments: this.#attachments,
      queuedBytes: this.queuedBytes,
    };
  }

  /**
   * Write one unit, whole or not at all. Returns false when it was dropped: no reader, more than `maxQueuedBytes`
   * already queued, or the output is closed or failed. Never throws and never blocks. The buffers are queued by
   * reference, so they must not be modified afterwards; `done` (if given) is called once when the OS has taken them,
   * the write failed, or the unit was dropped, i.e. when the buffers are no longer needed.
   */
  writeUnit(chunks: readonly Buffer[], done?: () => void): boolean {
    const s = this.#stream;
    if (s === null || this.#closePromise !== null || s.destroyed || !s.writable) return this.#drop(done);
    const header = this.#headerPending ? this.#takeHeader() : null;
    const size = totalLength(chunks) + (header === null ? 0 : totalLength(header));
    const queued = s.writableLength;
    if (queued > 0 && queued + size > this.#maxQueued) return this.#drop(done);
    if (header !== null) this.#headerPending = false;
    const written = this.#write(s, header === null ? chunks : [...header, ...chunks], size, true);
    this.#lastWrite = done === undefined ? written : written.then(done);
    return true;
  }

  /**
   * Stop writing: flush what is queued (completely for a file, for at most `closeGraceMs` for a FIFO or stdout),
   * close the fd (never stdout's), stop looking for readers. Idempotent; resolves when done, never rejects.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const s = this.#stream;
    if (s === null) return;
    if (this.kind === 'file' || (this.kind === 'stdout' && s !== process.stdout)) {
      s.end();
      await finished(s).catch(() => undefined);
    } else {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.#closeGraceMs); });
      await Promise.race([this.#lastWrite, grace]);
      clearTimeout(timer);
    }
    this.#detach('closed', false);
  }

  #drop(done?: () => void): false {
    this.#unitsDropped++;
    done?.();
    return false;
  }

  #takeHeader(): readonly Buffer[] | null {
    try {
      const h = this.#header?.() ?? null;
      return h === null ? null : Buffer.isBuffer(h) ? [h] : h;
    } catch (e) {
      log.error('the header callback failed', { output: this.#name, error: errorMessage(e) });
      return null;
    }
  }

  /** Queue `chunks` as one writev; settles when the OS has taken them or the write failed. */
  #write(s: Writable, chunks: readonly Buffer[], size: number, isUnit: boolean): Promise<void> {
    const parts = chunks.filter((c) => c.length > 0);
    if (parts.length === 0) {
      if (isUnit) this.#unitsWritten++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      s.cork();
      parts.forEach((c, i) => {
        if (i < parts.length - 1) {
          s.write(c);
          return;
        }
        s.write(c, (err) => {
          if (err === null || err === undefined) {
            if (isUnit) this.#unitsWritten++;
            this.#bytesWritten += size;
          }
          resolve();
        });
      });
      s.uncork();
    });
  }

  #attach(s: Writable, fd: number | null): void {
    const onError = (e: unknown): void => {
      if (this.#stream === s) this.#detach(errorCode(e), true);
    };
    const onClose = (): void => {
      // close() ends a file itself; only a close nobody asked for is a failure.
      if (this.#stream === s && this.#closePromise === null) this.#detach('closed by the reader', true);
    };
    s.on('error', onError);
    s.on('close', onClose);
    this.#unlisten = () => {
      s.off('error', onError);
      s.off('close', onClose);
    };
    this.#stream = s;
    this.#attachments++;
    this.#headerPending = this.#header !== undefined;
    if (this.#headerPending) {
      const h = this.#takeHeader();
      if (h !== null) {
        this.#headerPending = false;
        this.#lastWrite = this.#write(s, h, totalLength(h), false);
      }
    }
    log.info(this.kind === 'fifo' ? 'a reader attached' : 'output opened', { output: this.#name, path: this.path, fd });
    this.safeEmit('attached');
  }

  #attachFifo(fd: number): void {
    let socket: net.Socket;
    try {
      socket = new net.Socket({ fd, readable: false, writable: true });
    } catch (e) {
      // The path no longer is a FIFO (replaced by a file?): net.Socket refuses the fd type. Keep looking.
      fs.close(fd, () => undefined);
      this.#logOpenError(e);
      this.#scheduleRetry();
      return;
    }
    this.#attach(socket, fd);
  }

  /** Let go of the current stream; `failure` says the reader or the OS ended it (not close()). */
  #detach(reason: string, failure: boolean): void {
    const s = this.#stream;
    if (s === null) return;
    this.#stream = null;
    this.#unlisten?.();
    this.#unlisten = null;
    // A destroyed stream may still report a last error, and a broken stdout fails every later write of anyone in
    // the process: nothing of that may crash the show. A healthy stdout is given back untouched.
    if (s !== process.stdout || failure) s.on('error', () => undefined);
    if (s !== process.stdout) s.destroy();
    if (failure && this.kind !== 'fifo') {
      this.#failedForGood = true;
      log.error('output failed; its units are dropped from now on', { output: this.#name, path: this.path, reason });
    } else {
      log.info(failure ? 'the reader went away' : 'output closed', { output: this.#name, path: this.path, reason });
    }
    this.safeEmit('detached', reason);
    if (failure && !this.#failedForGood && this.#closePromise === null) this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== null || this.#opening || this.#closePromise !== null) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#tryOpenFifo();
    }, this.#retryMs);
    // Waiting for a reader must not keep the process alive on its own.
    this.#retryTimer.unref();
  }

  #tryOpenFifo(): void {
    if (this.#closePromise !== null) return;
    this.#opening = true;
    // O_NONBLOCK: open(2) of a FIFO for writing returns at once (ENXIO without a reader) instead of blocking.
    fs.open(this.path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK, (err, fd) => {
      this.#opening = false;
      if (this.#closePromise !== null) {
        if (err === null) fs.close(fd, () => undefined);
        return;
      }
      if (err !== null) {
        if (err.code !== 'ENXIO') this.#logOpenError(err);
        this.#scheduleRetry();
        return;
      }
      this.#openErrorsLogged.clear();
      this.#attachFifo(fd);
    });
  }

  #logOpenError(e: unknown): void {
    const code = errorCode(e);
    if (this.#openErrorsLogged.has(code)) return;
    this.#openErrorsLogged.add(code);
    log.warn('cannot open the FIFO; still trying', { output: this.#name, path: this.path, reason: code });
  }
}
