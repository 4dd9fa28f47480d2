/**
 * A typed event emitter with a safe emit (after mediasoup's EnhancedEventEmitter): listeners are typed by an event
 * map, and a listener that throws is logged instead of unwinding into the emitter, so one faulty subscriber (a
 * Follow call, an OSC update subscription) can never break the clock or the cue engine that emitted the event.
 */
import { EventEmitter } from 'node:events';
import { getLogger } from './logger';

const log = getLogger('events');

/** An event map: event name → listener argument tuple. */
export type EventMap = Record<string, unknown[]>;

/** EventEmitter with typed `on`/`once`/`off` and a {@link TypedEmitter.safeEmit} that never throws. */
export class TypedEmitter<E extends EventMap> {
  readonly #emitter = new EventEmitter();

  constructor() {
    // Many Follow calls may subscribe to one show; the default limit of 10 would only print a false leak warning.
    this.#emitter.setMaxListeners(0);
  }

  /** Subscribe `listener` to `event`. */
  on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Subscribe `listener` to the next `event` only. */
  once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Unsubscribe `listener` from `event`. */
  off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Number of listeners of `event`. */
  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#emitter.listenerCount(event);
  }

  /**
   * Call every listener of `event`; each listener's exception (or rejected promise) is logged and the others still
   * run. `once` listeners are removed as EventEmitter does.
   */
  safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): void {
    const fail = (e: unknown): void => {
      log.error(`a listener of "${event}" failed`, { error: e instanceof Error ? e.stack ?? e.message : String(e) });
    };
    // rawListeners keeps the once-wrappers, which remove themselves when called (listeners() would unwrap them).
    for (const listener of this.#emitter.rawListeners(event) as Array<(...a: E[K]) => unknown>) {
      try {
        const r = listener.apply(this.#emitter, args);
        if (r instanceof Promise) r.catch(fail);
      } catch (e) {
        fail(e);
      }
    }
  }

  /** Remove every listener (used by close()). */
  removeAllListeners(): void {
    this.#emitter.removeAllListeners();
  }
}
