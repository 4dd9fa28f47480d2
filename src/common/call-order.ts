/**
 * Async calls run one after another, each once every call queued before it has settled (fulfilled or rejected). The
 * chain keeps the order, never a result: a tail made with `next.catch(...)` resolves with the call's result and holds
 * it until the next call (bench:progressive's heap snapshots, session 17: a demuxer's last read of up to 4 MiB and a
 * packet reader's last packets, pinned while the reader waited for a growing file). Used by every native lane, the
 * preview muxer and the demuxing packet reader.
 */

/** Drops a settled call's result or error. */
const dropped = (): void => undefined;

/** A queue of async calls (see the module comment). */
export class CallOrder {
  #tail: Promise<void> = Promise.resolve();

  /** Run `op` once every call queued before it has settled; resolves or rejects as `op` does. */
  run<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(op, op);
    this.#tail = next.then(dropped, dropped);
    return next;
  }

  /**
   * Resolves once every call queued so far has settled (never rejects). A continuation of it runs before any call
   * queued after this: e.g. a close that marks the owner closed first.
   */
  idle(): Promise<void> {
    return this.#tail;
  }
}
