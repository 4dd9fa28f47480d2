/**
 * The OSC endpoint on a thread of its own, as the show's (main) thread sees it. The worker (osc-worker.ts) owns the
 * UDP socket, the codec, the allow-list, the per-sender budgets, the shared-secret connections, bundle scheduling and
 * the reply limits, so a hostile datagram is read, judged and refused there and never reaches the main event loop.
 * What the show must run comes here as 'request' events; replies go back out through the worker.
 *
 * Why: with everything on one event loop (OSC, the show clock, cues, gRPC streams, index encoding in 10-15 ms tasks,
 * connection churn, restart catch-up) a console's `/cuemux/thump` round trip went from 1.0-1.8 ms idle to 3.4-14.5 ms
 * p99 under each attack of the fault suite (session of issue #12). The worker answers `/cuemux/thump` itself, but only
 * while the main thread is alive: the main thread stores the monotonic time in a shared heartbeat slot every
 * {@link HEARTBEAT_EVERY_MS}, and when the beat is older than {@link STALL_BOUND_MS} the worker answers thump with an
 * error naming the stall, so a console's heartbeat still means "show control is alive".
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CuemuxError, errorMessage, type ErrorCode } from '../common/errors';
import { getLogger, type LogLevel } from '../common/logger';
import { monoNs } from '../common/time-source';
import { TypedEmitter, type Listener } from '../common/typed-emitter';
import type { OscValue } from '../wire/osc-codec';
import type { SenderBudgetOptions } from './osc-access';
import type { OscEndpointCounters, OscPeer, OscRequest } from './osc-endpoint';
import type { ReplyBody } from './osc-reply';

const log = getLogger('osc-thread');

/** How often the main thread beats the shared heartbeat, in ms. */
export const HEARTBEAT_EVERY_MS = 50;

/**
 * A heartbeat older than this, in ms, means the main thread is stalled: the worker stops answering thump. 250 ms:
 * five missed beats, far above the longest main-loop task measured under the fault suite's attacks (index encode and
 * parse 10-15 ms, thump p99 ≤ 14.5 ms) and a major GC of a show-sized heap, so a busy but working server is never
 * called stalled; and low enough that a console polling thump a few times a second sees a stall that delays a GO
 * by more than six frames at 25 fps before the operator presses GO again.
 */
export const STALL_BOUND_MS = 250;

/** Slots of the shared BigInt64Array: the heartbeat (main writes) and the worker's counters (worker writes). */
export const SLOT = {
  heartbeatMonoNs: 0, notAllowed: 1, overBudget: 2, overBudgetMessages: 3, scheduleRefused: 4, scheduled: 5,
  scheduledBytes: 6, repliesNotSent: 7, connections: 8,
} as const;
const SLOTS = 9;

/** What the worker is started with (workerData). */
export interface OscWorkerData {
  host: string;
  port: number;
  allow: readonly string[];
  budgets?: SenderBudgetOptions;
  maxScheduled?: number;
  /** The shared secret (null: none), and how long a connection lasts after the sender's last message, in ms. */
  secret: string | null;
  connectIdleMs: number;
  replyPort: number | null;
  /** Addresses the show answers (the worker answers the rest NOT_FOUND itself). */
  routes: readonly string[];
  /** The shared slots ({@link SLOT}). */
  shared: SharedArrayBuffer;
  /** See {@link STALL_BOUND_MS}. */
  stallBoundMs: number;
}

/** A request as it crosses the thread boundary (blobs arrive as Uint8Array). */
export interface WireRequest {
  address: string;
  args: Array<Exclude<OscValue, Buffer> | Uint8Array>;
  types: string;
  from: OscPeer;
  timetagUnixNs: bigint | null;
  late: boolean;
}

/** Messages worker → main. */
export type FromWorker =
  | { op: 'listening'; port: number }
  | { op: 'failed'; code: ErrorCode; message: string }
  | { op: 'request'; req: WireRequest; datagram: number }
  | { op: 'seen'; keys: string[] }
  | { op: 'unsubscribe'; key: string }
  | { op: 'log'; level: LogLevel; name: string; message: string; meta?: Record<string, unknown> };

/** Messages main → worker. */
export type ToWorker =
  | { op: 'reply'; datagram: number | null; from: OscPeer; address: string; body: string }
  | { op: 'push'; address: string; json: string; peers: OscPeer[] }
  | { op: 'subscribers'; keys: string[] }
  | { op: 'close' };

/** Options of {@link OscThread.start}: the worker's, less what the thread fills in. */
export type OscThreadOptions = Omit<OscWorkerData, 'shared' | 'stallBoundMs'> & { stallBoundMs?: number };

/** Events of {@link OscThread}. */
export interface OscThreadEvents {
  /** A message the show must run (at its bundle's time, already checked against the secret). */
  request: [req: OscRequest];
  /** Update subscribers heard from by the worker alone (thump, connect...): `address:port` of their reply peers. */
  seen: [keys: string[]];
  /** A sender disconnected: its update subscription (`address:port` of its reply peer) ends. */
  unsubscribe: [key: string];
}

/** The OSC endpoint's thread, from the main thread. */
export class OscThread {
  /** The address actually bound (the real port when 0 was asked). */
  readonly address: { host: string; port: number };
  /** The allow-list in effect. */
  readonly allowList: readonly string[];
  readonly #worker: Worker;
  readonly #slots: BigInt64Array;
  readonly #events = new TypedEmitter<OscThreadEvents>({ owner: 'OSC thread' });
  readonly #datagrams = new WeakMap<OscRequest, number>();
  readonly #beat: NodeJS.Timeout;
  #closing: Promise<void> | null = null;
  #exited = false;

  private constructor(worker: Worker, slots: BigInt64Array, host: string, port: number, allow: readonly string[]) {
    this.#worker = worker;
    this.#slots = slots;
    this.address = { host, port };
    this.allowList = allow;
    // Beat now: the slot was last written before the worker started (its start takes 100-400 ms), not a stall.
    this.#heartbeat();
    this.#beat = setInterval(() => this.#heartbeat(), HEARTBEAT_EVERY_MS);
    // The worker (its bound socket) keeps the process alive while open, as the socket did; the beat must not.
    this.#beat.unref();
    worker.on('message', (m: FromWorker) => this.#message(m));
  }

  /**
   * Start the worker and bind its socket.
   *
   * @throws CuemuxError as the socket's bind failed (INVALID_ARGUMENT, RESOURCE_EXHAUSTED port in use, PERMISSION_DENIED).
   */
  static async start(options: OscThreadOptions): Promise<OscThread> {
    const shared = new SharedArrayBuffer(SLOTS * 8);
    const slots = new BigInt64Array(shared);
    Atomics.store(slots, SLOT.heartbeatMonoNs, monoNs());
    const data: OscWorkerData = { ...options, shared, stallBoundMs: options.stallBoundMs ?? STALL_BOUND_MS };
    const worker = new Worker(path.join(__dirname, 'osc-worker.js'), { workerData: data });
    const port = await new Promise<number>((resolve, reject) => {
      const onMessage = (m: FromWorker): void => {
        if (m.op === 'log') return logFromWorker(m);
        if (m.op !== 'listening' && m.op !== 'failed') return;
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (m.op === 'listening') resolve(m.port);
        else reject(new CuemuxError(m.code, m.message));
      };
      const onError = (e: Error): void => reject(new CuemuxError('INTERNAL', `the OSC thread failed to start: ${errorMessage(e)}`, { cause: e }));
      const onExit = (code: number): void => reject(new CuemuxError('INTERNAL', `the OSC thread exited (${code}) before listening`));
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
    }).catch(async (e: unknown) => {
      await worker.terminate();
      throw e;
    });
    const thread = new OscThread(worker, slots, options.host, port, options.allow);
    worker.on('error', (e) => log.error(`the OSC thread failed: ${errorMessage(e)}; OSC show control is down until the server restarts`));
    worker.once('exit', () => { thread.#exited = true; });
    return thread;
  }

  /** Subscribe to an event. Listener exceptions and rejections are logged, never propagated. */
  on<E extends keyof OscThreadEvents>(event: E, listener: Listener<OscThreadEvents[E]>): this {
    this.#events.on(event, listener);
    return this;
  }

  /** What the worker dropped or refused so far. */
  get counters(): OscEndpointCounters {
    return {
      notAllowed: this.#slot(SLOT.notAllowed), overBudget: this.#slot(SLOT.overBudget),
      overBudgetMessages: this.#slot(SLOT.overBudgetMessages), scheduleRefused: this.#slot(SLOT.scheduleRefused),
    };
  }

  /** Messages waiting for their bundle time. */
  get scheduled(): number {
    return this.#slot(SLOT.scheduled);
  }

  /** Datagram bytes held by messages waiting for their bundle time. */
  get scheduledBytes(): number {
    return this.#slot(SLOT.scheduledBytes);
  }

  /** Replies not sent because their datagram had its {@link MAX_REPLIES_PER_DATAGRAM}. */
  get repliesNotSent(): number {
    return this.#slot(SLOT.repliesNotSent);
  }

  /** Senders connected with the shared secret. */
  get connections(): number {
    return this.#slot(SLOT.connections);
  }

  /** Reply to `req` (the worker caps replies per datagram, bounds the size and sends to the reply peer). */
  reply(req: OscRequest, body: ReplyBody): void {
    this.#post({ op: 'reply', datagram: this.#datagrams.get(req) ?? null, from: req.from, address: req.address, body: JSON.stringify(body) });
  }

  /** Send the same message (one JSON string argument) to each of `peers`. */
  push(address: string, json: string, peers: OscPeer[]): void {
    if (peers.length > 0) this.#post({ op: 'push', address, json, peers });
  }

  /** Tell the worker who subscribes to updates (`address:port` of reply peers), so it reports when it hears them. */
  subscribers(keys: string[]): void {
    this.#post({ op: 'subscribers', keys });
  }

  /** Stop the worker: it drops waiting bundles and releases the port. Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      clearInterval(this.#beat);
      if (this.#exited) return resolve();
      this.#worker.once('exit', () => resolve());
      this.#post({ op: 'close' });
    });
    return this.#closing;
  }

  #post(m: ToWorker): void {
    if (!this.#exited) this.#worker.postMessage(m);
  }

  #slot(i: number): number {
    return Number(Atomics.load(this.#slots, i));
  }

  #heartbeat(): void {
    Atomics.store(this.#slots, SLOT.heartbeatMonoNs, monoNs());
  }

  #message(m: FromWorker): void {
    // Every message from the worker is proof the main loop runs: beat, so a backlog of requests is not a stall.
    this.#heartbeat();
    switch (m.op) {
      case 'request': {
        const w = m.req;
        const args = w.args.map((a) => (a instanceof Uint8Array ? Buffer.from(a.buffer, a.byteOffset, a.byteLength) : a));
        const req: OscRequest = { address: w.address, args, types: w.types, from: w.from, timetagUnixNs: w.timetagUnixNs, late: w.late };
        this.#datagrams.set(req, m.datagram);
        this.#events.safeEmit('request', req);
        return;
      }
      case 'seen': this.#events.safeEmit('seen', m.keys); return;
      case 'unsubscribe': this.#events.safeEmit('unsubscribe', m.key); return;
      case 'log': logFromWorker(m); return;
      default:
    }
  }
}

/** A log record of the worker, written by this thread's logger (the one the entry point configured). */
function logFromWorker(m: Extract<FromWorker, { op: 'log' }>): void {
  getLogger(m.name)[m.level](m.message, m.meta);
}
