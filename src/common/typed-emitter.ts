/**
 * A typed event emitter with a safe emit (after mediasoup's EnhancedEventEmitter): listeners are typed by an event
 * map, and a listener that throws is logged instead of unwinding into the emitter, so one faulty subscriber (a
 * Follow call, an OSC update subscription) can never break the clock or the cue engine that emitted the event.
 */
import { EventEmitter } from 'node:events';
import { getLogger } from './logger';
import { errorMessage, errorStack } from './errors';

const log = getLogger('events');

/** An event map: event name → listener argument tuple. */
export type EventMap = Record<string, unknown[]>;

/**
 * What an event map must be: every event's arguments a tuple. Unlike {@link EventMap} this also admits an interface
 * without an index signature, so `keyof` stays the declared event names and a misspelt event does not type-check.
 */
export type EventsOf<E> = { [K in keyof E]: unknown[] };

/**
 * A listener of an event with arguments `A`; what it returns is ignored, except that a promise is watched:
 * {@link TypedEmitter.safeEmit} does not wait for it, but logs its rejection like a thrown exception (an OSC handler
 * that awaits the show must not leave an unhandled rejection that would end the process). `unknown` rather than
 * `void | Promise<void>` so that `(x) => list.push(x)` stays a valid listener, as it is for `void`.
 */
export type Listener<A extends unknown[]> = (...args: A) => unknown;

/** Options of {@link TypedEmitter}. */
export interface TypedEmitterOptions {
  /** Names the emitter in the log line of a failing listener, e.g. `OSC endpoint`. */
  owner?: string;
}

/** EventEmitter with typed `on`/`once`/`off` and a {@link TypedEmitter.safeEmit} that never throws. */
export class TypedEmitter<E extends EventsOf<E>> {
  readonly #emitter = new EventEmitter();
  readonly #owner: string;

  constructor(options: TypedEmitterOptions = {}) {
    // Many Follow calls may subscribe to one show; the default limit of 10 would only print a false leak warning.
    this.#emitter.setMaxListeners(0);
    this.#owner = options.owner === undefined ? '' : ` of the ${options.owner}`;
  }

  /** Subscribe `listener` to `event`. */
  on<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    this.#emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Subscribe `listener` to the next `event` only. */
  once<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    this.#emitter.once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Unsubscribe `listener` from `event`. */
  off<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    this.#emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Number of listeners of `event`. */
  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#emitter.listenerCount(event);
  }

  /**
   * Call every listener of `event`; each listener's exception (or rejected promise) is logged and the others still
   * run. `once` listeners are removed as EventEmitter does. Returns whether `event` had any listener (so a caller
   * can log what nobody handled).
   */
  safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    const fail = (e: unknown): void => {
      // The reason is in the line itself (not only in the stack field): a log viewer that drops fields still says why.
      log.error(`a listener of "${event}"${this.#owner} failed: ${errorMessage(e)}`,
        { error: errorStack(e) });
    };
    // rawListeners keeps the once-wrappers, which remove themselves when called (listeners() would unwrap them); it
    // is a copy, so a listener may subscribe or unsubscribe while we iterate.
    const listeners = this.#emitter.rawListeners(event) as Array<(...a: E[K]) => unknown>;
    for (const listener of listeners) {
      try {
        const r = listener.apply(this.#emitter, args);
        if (r instanceof Promise) r.catch(fail);
      } catch (e) {
        fail(e);
      }
    }
    return listeners.length > 0;
  }

  /** Remove every listener (used by close()). */
  removeAllListeners(): void {
    this.#emitter.removeAllListeners();
  }
}
