/**
 * The one serialiser of native calls. FFmpeg's format, codec and filter contexts are not reentrant, and beamcoder
 * runs each call on a thread-pool thread while the JavaScript side goes on; so every demuxer, decoder and resampler
 * owns one lane, and each of its native calls runs in that lane strictly after the previous one has settled.
 * Closing goes through the lane too: the native object is released only once the call in progress has finished
 * (freeing an AVFormatContext under a running av_read_frame crashes the process), and calls that were queued behind
 * the close fail with CLOSED instead of touching the released object.
 */
import { CuemuxError, type ErrorCode } from '../common/errors';
import { CallOrder } from '../common/call-order';
import { subjectError, translateNativeError, type NativeSubject } from './native-error';

/** A queue of native calls on one native object, with its lifetime (see the module comment). */
export class NativeLane {
  readonly #order = new CallOrder();
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
    return this.#order.run(guarded);
  }

  /**
   * Close once the call in progress (and every call queued before this close) has settled, then `release` the native
   * object. Idempotent; calls queued after this one reject with CLOSED: this close's continuation was registered on
   * the tail before them, so it marks the lane closed before any of them runs.
   */
  async close(release: () => void): Promise<void> {
    if (this.#closed) return;
    await this.#order.idle();
    if (this.#closed) return;
    this.#closed = true;
    release();
  }
}
