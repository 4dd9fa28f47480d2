/**
 * A watch for silence: `onSilent` runs once nothing has `touch()`ed it for `ms`. When its timer fires, messages may be
 * waiting unread in a socket: after the process itself was busy (an index built, a collection), Node runs due timers
 * before it reads sockets, and a plain timer would call a stream silent that is not (measured: a backup building a
 * 4,314-packet index blocked for ~700 ms and gave up its main's live stream). So the silence is judged again once
 * pending input has been read (two turns of the event loop), and the watch re-armed for the rest if something came.
 */
export class SilenceTimer {
  readonly #ms: number;
  readonly #onSilent: (silentMs: number) => void;
  #last = Date.now();
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  /** Armed at once. `ms`: the silence that counts, in ms. */
  constructor(ms: number, onSilent: (silentMs: number) => void) {
    this.#ms = ms;
    this.#onSilent = onSilent;
    this.#arm(ms);
  }

  /** Something was heard: the silence starts again now. */
  touch(): void {
    this.#last = Date.now();
  }

  #arm(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      setImmediate(() => setImmediate(() => {
        if (this.#stopped) return;
        const silent = Date.now() - this.#last;
        if (silent < this.#ms) {
          this.#arm(this.#ms - silent);
          return;
        }
        this.#stopped = true;
        this.#onSilent(silent);
      }));
    }, ms);
    this.#timer.unref();
  }

  /** Stop watching (idempotent); `onSilent` is not called after this. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
