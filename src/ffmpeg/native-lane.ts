/**
 * The one serialiser of native calls. FFmpeg's format, codec and filter contexts are not reentrant, and beamcoder
 * runs each call on a thread-pool thread while the JavaScript side goes on; so every demuxer, decoder and resampler
 * owns one lane, and each of its native calls runs in that lane strictly after the previous one has settled.
 * Closing goes through the lane too: the native object is released only once the call in progress has finished
 * (freeing an AVFormatContext under a running av_read_frame crashes the process), and calls that were queued behind
 * the close fail with CLOSED instead of touching the released object.
 */
import { CuemuxError, type ErrorCode } from '../common/errors';
import { subjectError, translateNativeError, type NativeSubject } from './native-error';

/** Drops a settled call's result or error. */
const settled = (): void => undefined;

/** A queue of native calls on one native object, with its lifetime (see the module comment). */
export class NativeLane {
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  /**
   * @param subject Names the object in errors (its file, or its stream name).
   * @param fallback The code of a native failure FFmpeg's message says nothing more specific about (a demuxer's
   *   read: MEDIA_DAMAGED; a resampler's filter: INTERNAL).
   */
  constructor(readonly subject: NativeSubject, private readonly fallback: ErrorCode) {}

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Run `op` once every call queued before it has settled; `operation` names it in errors. Rejects with CLOSED after
   * close() (or when close() got there first); any other failure is translated by the one translator
   * ({@link translateNativeError}), a CuemuxError thrown by `op` passing through unchanged.
   */
  run<T>(operation: string, op: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(subjectError(this.subject, 'CLOSED', `${operation} after close`, operation));
    const guarded = async (): Promise<T> => {
      if (this.#closed) throw subjectError(this.subject, 'CLOSED', `closed before ${operation} ran`, operation);
      try {
        return await op();
      } catch (e) {
        throw e instanceof CuemuxError ? e : translateNativeError(e, this.subject, operation, this.fallback);
      }
    };
    const next = this.#tail.then(guarded, guarded);
    // The tail keeps the order, not the result: `next.catch(...)` would resolve with `op`'s result and hold it until the
    // next call (bench:progressive's heap snapshots: a demuxer's last 4 MiB read, pinned while its reader waited for
    // the file to grow).
    this.#tail = next.then(settled, settled);
    return next;
  }

  /**
   * Close once the call in progress (and every call queued before this close) has settled, then `release` the native
   * object. Idempotent; calls queued after this one reject with CLOSED: this close's continuation was registered on
   * the tail before them, so it marks the lane closed before any of them runs.
   */
  async close(release: () => void): Promise<void> {
    if (this.#closed) return;
    await this.#tail;
    if (this.#closed) return;
    this.#closed = true;
    release();
  }
}
