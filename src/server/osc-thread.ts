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
import { CuemuxError, errorMessage, errorStack, type ErrorCode } from '../common/errors';
import { getLogger, type LogLevel } from '../common/logger';
import { monoNs } from '../common/time-source';
import { TypedEmitter, type Listener } from '../common/typed-emitter';
import type { OscValue } from '../wire/osc-codec';
import type { SenderBudgetOptions } from './osc-access';
import type { OscEndpointCounters, OscPeer, OscRequest } from './osc-endpoint';
import { DEFAULT_OSC_PRIORITY, type ThreadPriority } from './osc-priority';
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
  scheduledBytes: 6, repliesNotSent: 7, connections: 8, dutySleeps: 9, dutySleptUs: 10,
} as const;
const SLOTS = 11;
/** Slots that count up for the life of the server (carried over a worker restart). */
const CUMULATIVE = [SLOT.notAllowed, SLOT.overBudget, SLOT.overBudgetMessages, SLOT.scheduleRefused, SLOT.repliesNotSent, SLOT.dutySleeps, SLOT.dutySleptUs];

/** First delay before restarting a worker that died, in ms; doubled per failure in a row, up to {@link RESTART_BACKOFF_MAX_MS}. */
export const RESTART_BACKOFF_MS = 100;
/** Longest delay before a restart, in ms. */
export const RESTART_BACKOFF_MAX_MS = 10_000;
/** A worker that ran this long (ms) before dying starts the backoff again from {@link RESTART_BACKOFF_MS}. */
const RESTART_STABLE_MS = 60_000;

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
  /** SCHED_FIFO priority the thread asks for itself (0: normal scheduling); see osc-priority.ts. */
  priority: number;
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
  | { op: 'listening'; port: number; priority: ThreadPriority }
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
  | { op: 'close' }
  /** Test hook: the worker throws from its event loop (as a bug of ours would), to test the restart. */
  | { op: 'crash' };

/** Options of {@link OscThread.start}: the worker's, less what the thread fills in. */
export type OscThreadOptions = Omit<OscWorkerData, 'shared' | 'stallBoundMs' | 'priority'> & {
  stallBoundMs?: number;
  /** SCHED_FIFO priority of the OSC thread, 0..99 (0: normal scheduling; default {@link DEFAULT_OSC_PRIORITY}). */
  priority?: number;
};

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
  #worker!: Worker;
  readonly #data: OscWorkerData;
  readonly #slots: BigInt64Array;
  /** Counters of workers that died (see {@link OscThread.restarts}). */
  readonly #base: bigint[] = new Array<bigint>(SLOTS).fill(0n);
  #priority: ThreadPriority = { realtime: 0, tid: null, problem: null };
  #restarts = 0;
  #failuresInARow = 0;
  #startedAtMs = 0;
  #restartTimer: NodeJS.Timeout | null = null;
  readonly #events = new TypedEmitter<OscThreadEvents>({ owner: 'OSC thread' });
  readonly #datagrams = new WeakMap<OscRequest, number>();
  readonly #beat: NodeJS.Timeout;
  #closing: Promise<void> | null = null;
  #exited = false;

  private constructor(data: OscWorkerData, slots: BigInt64Array, host: string, allow: readonly string[]) {
    this.#data = data;
    this.#slots = slots;
    this.address = { host, port: data.port };
    this.allowList = allow;
    // Beat now: the slot was last written before the worker started (its start takes 100-400 ms), not a stall.
    this.#heartbeat();
    this.#beat = setInterval(() => this.#heartbeat(), HEARTBEAT_EVERY_MS);
    // The worker (its bound socket) keeps the process alive while open, as the socket did; the beat must not.
    this.#beat.unref();
  }

  /** Take a started worker as this thread's: its messages, its failure, its exit (restarted unless closing). */
  #adopt(started: StartedWorker): void {
    const worker = started.worker;
    this.#worker = worker;
    this.#exited = false;
    this.#startedAtMs = Date.now();
    this.#priority = started.priority;
    if (started.priority.problem !== null) {
      log.warn(`the OSC thread runs at normal priority, not SCHED_FIFO ${this.#data.priority} (--osc-priority): ${started.priority.problem}; `
        + 'a console\'s round trips may grow while other work keeps the cores busy (give the server CAP_SYS_NICE or LimitRTPRIO, or --osc-priority 0 to not ask)');
    } else if (started.priority.realtime > 0) {
      log.info(`the OSC thread (tid ${String(started.priority.tid)}) runs at SCHED_FIFO priority ${started.priority.realtime}`);
    }
    worker.on('message', (m: FromWorker) => this.#message(m));
    worker.on('error', (e) => log.error(`the OSC thread failed: ${errorStack(e)}`));
    worker.once('exit', (code) => {
      this.#exited = true;
      if (this.#closing === null) this.#restartLater(code);
    });
  }

  /**
   * The worker ended without close() (a bug of ours threw in it): show control must come back without a server
   * restart. Restarted after {@link RESTART_BACKOFF_MS} (doubling per failure in a row up to 10 s; a worker that ran
   * a minute starts the count again), its counters carried over.
   */
  #restartLater(code: number): void {
    this.#restarts++;
    const ranMs = Date.now() - this.#startedAtMs;
    if (ranMs >= RESTART_STABLE_MS) this.#failuresInARow = 0;
    const delay = Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** this.#failuresInARow);
    this.#failuresInARow++;
    // Cumulative counters go on from where the dead worker left them; the new one starts from zero.
    for (const i of CUMULATIVE) {
      this.#base[i] += Atomics.load(this.#slots, i);
      Atomics.store(this.#slots, i, 0n);
    }
    for (const i of [SLOT.scheduled, SLOT.scheduledBytes, SLOT.connections]) Atomics.store(this.#slots, i, 0n);
    log.error(`the OSC thread exited (code ${code}) after ${(ranMs / 1000).toFixed(1)} s: OSC show control is down; restarting it in ${delay} ms `
      + `(restart ${this.#restarts}; timed bundles and /cuemux/connect connections of the old thread are lost)`);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#closing !== null) return;
      startWorker(this.#data).then((started) => {
        if (this.#closing !== null) {
          void started.worker.terminate();
          return;
        }
        this.#adopt(started);
        log.info(`the OSC thread is back on ${this.address.host}:${this.address.port} (restart ${this.#restarts})`);
      }, (e: unknown) => {
        log.error(`the OSC thread did not restart: ${errorMessage(e)}`);
        this.#restartLater(-1);
      });
    }, delay);
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
    const data: OscWorkerData = {
      ...options, shared, stallBoundMs: options.stallBoundMs ?? STALL_BOUND_MS, priority: options.priority ?? DEFAULT_OSC_PRIORITY,
    };
    // The main thread beats while the worker starts: it runs (it awaits the worker), and the worker's warm-up thump
    // (osc-worker.ts) must not be answered "stalled".
    const beat = setInterval(() => Atomics.store(slots, SLOT.heartbeatMonoNs, monoNs()), HEARTBEAT_EVERY_MS);
    const started = await startWorker(data).finally(() => clearInterval(beat));
    // A restarted worker binds the port this one got (the one consoles were told).
    const thread = new OscThread({ ...data, port: started.port }, slots, options.host, options.allow);
    thread.#adopt(started);
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

  /** Times the thread slept because its busy share was over its bound (osc-duty.ts), and for how long in ms. */
  get dutySleeps(): { count: number; ms: number } {
    return { count: this.#slot(SLOT.dutySleeps), ms: Math.round(this.#slot(SLOT.dutySleptUs) / 1000) };
  }

  /** Scheduling of the OSC thread now: SCHED_FIFO priority (0: normal), its thread id, why not what was asked. */
  get priority(): ThreadPriority {
    return this.#priority;
  }

  /** Times the worker died and was restarted (or is about to be). */
  get restarts(): number {
    return this.#restarts;
  }

  /** Test hook: make the worker throw (as a bug of ours would) to see it restarted. */
  crashForTest(): void {
    this.#post({ op: 'crash' });
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
      if (this.#restartTimer !== null) clearTimeout(this.#restartTimer);
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
    return Number(this.#base[i] + Atomics.load(this.#slots, i));
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

/** A worker that listens, and the priority it got. */
interface StartedWorker {
  worker: Worker;
  port: number;
  priority: ThreadPriority;
}

/** Start a worker and wait until it listens (its log records written meanwhile). */
async function startWorker(data: OscWorkerData): Promise<StartedWorker> {
  const worker = new Worker(path.join(__dirname, 'osc-worker.js'), { workerData: data });
  return new Promise<StartedWorker>((resolve, reject) => {
    const onMessage = (m: FromWorker): void => {
      if (m.op === 'log') return logFromWorker(m);
      if (m.op !== 'listening' && m.op !== 'failed') return;
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
      if (m.op === 'listening') resolve({ worker, port: m.port, priority: m.priority });
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
}

/** A log record of the worker, written by this thread's logger (the one the entry point configured). */
function logFromWorker(m: Extract<FromWorker, { op: 'log' }>): void {
  getLogger(m.name)[m.level](m.message, m.meta);
}
