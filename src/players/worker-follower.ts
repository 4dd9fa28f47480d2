/**
 * An {@link OutputFollower} that runs in a worker thread: the same events, on the presenting thread, with the
 * decoding (and its garbage) on another. Pictures arrive as views of shared pool slots ({@link PlayerPicture}):
 * a listener that keeps one past the event must `retain()` it and call the release it returns when done.
 *
 * The `decoded` event (raw frames, for checks) is not carried across: use an in-process OutputFollower for that.
 */
import * as path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { getLogger } from '../common/logger';
import { MediaClientError, type MediaClientOptions } from '../clients/media-client';
import type { ClientErrorData, DecodeWorkerData, FromWorker, ToWorker, WorkerStats } from './decode-worker-messages';
import { sharedPicture, type FrameSlotPoolStats } from './frame-pool';
import { FollowerBase, type OutputFollowerOptions } from './follower';
import type { RtGuardStats } from './rt-guard';

/** How long a stopped worker may take to finish before it is terminated, ms. */
const STOP_GRACE_MS = 3000;

function clientError(d: ClientErrorData): MediaClientError {
  const metadata = new grpc.Metadata();
  if (d.errorCode !== undefined) metadata.set('cuemux-error-code', d.errorCode);
  return new MediaClientError(d.method, Object.assign(new Error(d.details), { code: d.code, details: d.details, metadata }));
}

/** Follows an output and decodes its packets in a worker thread; one per player process. */
export class WorkerFollower extends FollowerBase {
  readonly #data: Omit<DecodeWorkerData, 'events'>;
  /** The port the worker's events arrive on (see DecodeWorkerData.events), while it runs. */
  #events: MessagePort | null = null;
  /** Handles one event from the worker, while it runs. */
  #handle: ((m: FromWorker) => void) | null = null;
  #pool: FrameSlotPoolStats = { slots: 0, lent: 0, bytes: 0, allocations: 0, allocatedHere: 0, spares: 0 };
  #running = false;
  #workerGuard: RtGuardStats | null = null;

  /**
   * @param target the server, as MediaClient takes it (`unix:PATH` or `HOST:PORT`), or several (a main and its backup:
   *   the follower follows whichever is master, moving when that changes); the worker connects on its own.
   * @param client the worker's MediaClient options (TLS and token for a server over TCP; default none).
   * @param realtimePriority SCHED_FIFO priority of the worker's thread (0: normal scheduling at nice -5; default 0).
   */
  constructor(target: string | readonly string[], options: OutputFollowerOptions, client: MediaClientOptions = {}, realtimePriority = 0) {
    super();
    this.#data = { targets: typeof target === 'string' ? [target] : [...target], options, client, presented: this.presented.buffer, realtimePriority };
  }

  /** The worker thread's real-time guard as last reported (null: the worker runs at normal scheduling). */
  get workerGuardStats(): RtGuardStats | null {
    return this.#workerGuard;
  }

  /** The worker's picture pool (updated every second, and at the end: then `lent` counts pictures never given back). */
  get poolStats(): Readonly<FrameSlotPoolStats> {
    return this.#pool;
  }

  /**
   * Follow until `signal` aborts (resolves) or the server refuses the Follow for good (rejects with a
   * MediaClientError). Rejects with an Error when the worker itself fails. Once per follower. The counters are
   * updated every second, and at the end.
   */
  run(signal: AbortSignal): Promise<void> {
    if (this.#running) return Promise.reject(new Error('WorkerFollower.run() was already called'));
    this.#running = true;
    const channel = new MessageChannel();
    const events = channel.port1;
    const workerData: DecodeWorkerData = { ...this.#data, events: channel.port2 };
    const worker = new Worker(path.join(__dirname, 'decode-worker.js'), { workerData, transferList: [channel.port2] });
    const send = (m: ToWorker): void => {
      try {
        worker.postMessage(m);
      } catch {
        // the worker is gone: its pool went with it
      }
    };
    return new Promise<void>((resolve, reject) => {
      let outcome: { error: Error | null } | null = null;
      let killer: NodeJS.Timeout | null = null;
      // A worker asked to stop, or done, ends by itself once idle; one still busy in native code is stopped.
      const terminateSoon = (): void => {
        killer ??= setTimeout(() => void worker.terminate(), STOP_GRACE_MS).unref();
      };
      const onAbort = (): void => {
        send({ type: 'stop' });
        terminateSoon();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      const handle = (m: FromWorker): void => {
        if (m.type === 'done') {
          this.#takeStats(m.stats);
          outcome = { error: m.clientError !== null ? clientError(m.clientError) : m.error !== null ? new Error(`decode worker: ${m.error}`) : null };
          terminateSoon();
          return;
        }
        this.#onMessage(m, send);
      };
      this.#events = events;
      this.#handle = handle;
      events.on('message', handle);
      worker.on('error', (e) => {
        outcome ??= { error: new Error(`decode worker failed: ${e.stack ?? e.message}`) };
      });
      worker.on('exit', (code) => {
        // Its port is not its parentPort: what it posted last may still wait there ('done' among it).
        this.poll();
        this.#events = null;
        this.#handle = null;
        events.close();
        signal.removeEventListener('abort', onAbort);
        if (killer !== null) clearTimeout(killer);
        const o = outcome ?? { error: signal.aborted ? null : new Error(`decode worker exited (code ${code}) before the follow ended`) };
        if (o.error === null) resolve();
        else reject(o.error);
      });
    });
  }

  /**
   * Emit now, synchronously, the events the worker has posted and this thread's event loop has not delivered yet
   * (see FollowerSource.poll). The video presenter calls it at each tick.
   *
   * Why: the presenting thread waits out the last 2 ms before each tick without its event loop (a futex wait, then
   * polling the clock), and presents; a GO's CueStarted and adoption posted then were seen after that tick, and the
   * prepared picture was shown one tick later (bench:go, 60 ticks/s: see the README's bench:go figures).
   */
  poll(): void {
    const port = this.#events;
    const handle = this.#handle;
    if (port === null || handle === null) return;
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) handle(m.message as FromWorker);
  }

  #takeStats(s: WorkerStats): void {
    this.#workerGuard = s.rtGuard ?? null;
    this.packets = s.packets;
    this.failures = s.decodeFailures;
    this.#pool = s.pool;
  }

  #onMessage(m: Exclude<FromWorker, { type: 'done' }>, send: (m: ToWorker) => void): void {
    switch (m.type) {
      case 'clock':
        this.lastClock = m.state;
        this.safeEmit('clock', m.state);
        break;
      case 'loaded': this.safeEmit('loaded', m.cue); break;
      case 'started': this.safeEmit('started', m.cue, m.receivedNs); break;
      case 'stopped': this.safeEmit('stopped', m.cue); break;
      case 'unloaded': this.safeEmit('unloaded', m.cueId); break;
      case 'audio': this.safeEmit('audio', m.audio); break;
      case 'adopted': this.safeEmit('adopted', m.adopted); break;
      case 'ready': this.safeEmit('ready'); break;
      case 'prepared': this.safeEmit('prepared', { cueId: m.cueId, preroll: m.preroll }); break;
      case 'reconnect': this.safeEmit('reconnect', clientError(m.error), m.attempt); break;
      case 'stats': this.#takeStats(m.stats); break;
      case 'log': getLogger(m.name)[m.level](m.message, m.meta); break;
      case 'picture': {
        const slot = m.slot;
        const { picture, release } = sharedPicture(m.frame, m.buffer, m.planes, () => send({ type: 'release', slot }));
        // The follower's own hold ends with the event: listeners that keep the picture have retained it.
        try {
          this.safeEmit('picture', { ...m.timed, frame: picture });
        } finally {
          release();
        }
        break;
      }
    }
  }
}
