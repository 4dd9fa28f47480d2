/**
 * An {@link OutputFollower} that runs in worker threads: the same events, on the presenting thread, with the Follow
 * stream read on one (the follow thread: the show's events come from there as soon as they are read, see
 * follow-relay.ts) and the decoding (and its garbage) on another (the decode worker). Pictures arrive as views of
 * shared pool slots ({@link PlayerPicture}): a listener that keeps one past the event must `retain()` it and call the
 * release it returns when done.
 *
 * The `decoded` event (raw frames, for checks) is not carried across: use an in-process OutputFollower for that.
 */
import * as path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { getLogger } from '../common/logger';
import type { MediaClientOptions } from '../clients/media-client';
import type { DecodeWorkerData, FollowThreadData, FromFollowThread, FromWorker, ToFollowThread, ToWorker, WorkerStats } from './decode-worker-messages';
import { clientErrorOf } from './follow-relay';
import { sharedPicture, type FrameSlotPoolStats } from './frame-pool';
import { FollowerBase, type OutputFollowerOptions } from './follower';
import { PrerollAdoptions } from './preroll-adoptions';
import type { RtGuardStats } from './rt-guard';

/** How long a stopped worker may take to finish before it is terminated, ms. */
const STOP_GRACE_MS = 3000;

/** Follows an output and decodes its packets in a worker thread; one per player process. */
export class WorkerFollower extends FollowerBase {
  readonly #data: Omit<DecodeWorkerData, 'events' | 'follow'>;
  readonly #follow: Omit<FollowThreadData, 'decoder' | 'presenter'>;
  /** The ports the show's events (from the follow thread) and the decoded ones (from the decode worker) arrive on, while they run. */
  #ports: { show: MessagePort; decoded: MessagePort } | null = null;
  /** Handles one event from the decode worker, while it runs. */
  #handle: ((m: FromWorker) => void) | null = null;
  /** Adoptions heard from the follow thread: the decoder's pictures of an adopted preroll are the segment's. */
  readonly #adoptions = new PrerollAdoptions();
  /** Follow calls before this one (reconnects heard from the follow thread). */
  #calls = 0;
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
    this.#data = { options, presented: this.presented.buffer, realtimePriority };
    this.#follow = { targets: typeof target === 'string' ? [target] : [...target], client };
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
    const relay = new MessageChannel(); // follow thread ↔ decode worker
    const show = new MessageChannel(); // follow thread → this thread
    const decoded = new MessageChannel(); // decode worker → this thread
    const followData: FollowThreadData = { ...this.#follow, decoder: relay.port1, presenter: show.port2 };
    const followThread = new Worker(path.join(__dirname, 'follow-thread.js'), { workerData: followData, transferList: [relay.port1, show.port2] });
    const workerData: DecodeWorkerData = { ...this.#data, follow: relay.port2, events: decoded.port2 };
    const worker = new Worker(path.join(__dirname, 'decode-worker.js'), { workerData, transferList: [relay.port2, decoded.port2] });
    const send = (m: ToWorker): void => {
      try {
        worker.postMessage(m);
      } catch {
        // the worker is gone: its pool went with it
      }
    };
    const stopFollowing = (): void => {
      try {
        followThread.postMessage({ type: 'stop' } satisfies ToFollowThread);
      } catch {
        // gone already
      }
    };
    return new Promise<void>((resolve, reject) => {
      let outcome: { error: Error | null } | null = null;
      let killer: NodeJS.Timeout | null = null;
      // Workers asked to stop, or done, end by themselves once idle; one still busy in native code is stopped.
      const terminateSoon = (): void => {
        killer ??= setTimeout(() => {
          void worker.terminate();
          void followThread.terminate();
        }, STOP_GRACE_MS).unref();
      };
      const onAbort = (): void => {
        stopFollowing();
        send({ type: 'stop' });
        terminateSoon();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      const handle = (m: FromWorker): void => {
        if (m.type === 'done') {
          this.#takeStats(m.stats);
          outcome = { error: m.clientError !== null ? clientErrorOf(m.clientError) : m.error !== null ? new Error(`decode worker: ${m.error}`) : null };
          stopFollowing();
          terminateSoon();
          return;
        }
        this.#onMessage(m, send);
      };
      const handleShow = (m: FromFollowThread): void => this.#onShow(m);
      this.#ports = { show: show.port1, decoded: decoded.port1 };
      this.#handle = handle;
      show.port1.on('message', handleShow);
      decoded.port1.on('message', handle);
      // A follow thread that fails ends the decode worker's relay (its port closes): the worker then says 'done'.
      followThread.on('error', (e) => {
        outcome ??= { error: new Error(`follow thread failed: ${e.stack ?? e.message}`) };
        send({ type: 'stop' });
        terminateSoon();
      });
      let followExited = false;
      followThread.on('exit', () => {
        followExited = true;
        // What it posted last may still wait on its port.
        this.#pollShow();
        show.port1.close();
      });
      worker.on('error', (e) => {
        outcome ??= { error: new Error(`decode worker failed: ${e.stack ?? e.message}`) };
        stopFollowing();
      });
      worker.on('exit', (code) => {
        // Its port is not its parentPort: what it posted last may still wait there ('done' among it).
        this.poll();
        this.#ports = null;
        this.#handle = null;
        decoded.port1.close();
        stopFollowing();
        signal.removeEventListener('abort', onAbort);
        const finish = (): void => {
          if (killer !== null) clearTimeout(killer);
          const o = outcome ?? { error: signal.aborted ? null : new Error(`decode worker exited (code ${code}) before the follow ended`) };
          if (o.error === null) resolve();
          else reject(o.error);
        };
        // Settled once the follow thread is gone too (it ends once the decode worker's relay is closed, or is terminated).
        if (followExited) finish();
        else {
          terminateSoon();
          followThread.once('exit', finish);
        }
      });
    });
  }

  /**
   * Emit now, synchronously, the events the follow thread and the decode worker have posted and this thread's event
   * loop has not delivered yet (see FollowerSource.poll): the show's first, then the decoded. The video presenter
   * calls it at each tick.
   *
   * Why: the presenting thread waits out the last 2 ms before each tick without its event loop (a futex wait, then
   * polling the clock), and presents; a GO's CueStarted and adoption posted then were seen after that tick, and the
   * prepared picture was shown one tick later (bench:go, 60 ticks/s: see the README's bench:go figures).
   */
  poll(): void {
    this.#pollShow();
    const port = this.#ports?.decoded;
    const handle = this.#handle;
    if (port === undefined || handle === null) return;
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) handle(m.message as FromWorker);
  }

  #pollShow(): void {
    const port = this.#ports?.show;
    if (port === undefined) return;
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) this.#onShow(m.message as FromFollowThread);
  }

  /** One of the show's events, from the follow thread. */
  #onShow(m: FromFollowThread): void {
    switch (m.type) {
      case 'clock':
        this.lastClock = m.state;
        this.safeEmit('clock', m.state);
        break;
      case 'loaded': this.safeEmit('loaded', m.cue); break;
      case 'started': this.safeEmit('started', m.cue, m.receivedNs); break;
      case 'stopped': this.safeEmit('stopped', m.cue); break;
      case 'unloaded':
        this.#adoptions.forget(m.cueId);
        this.safeEmit('unloaded', m.cueId);
        break;
      case 'adopted':
        this.#adoptions.adopted(m.adopted);
        this.safeEmit('adopted', m.adopted);
        break;
      case 'reconnect':
        this.#calls++;
        this.#adoptions.clear();
        this.safeEmit('reconnect', clientErrorOf(m.error), m.attempt);
        break;
      case 'log': getLogger(m.name)[m.level](m.message, m.meta); break;
    }
  }

  #takeStats(s: WorkerStats): void {
    this.#workerGuard = s.rtGuard ?? null;
    this.packets = s.packets;
    this.failures = s.decodeFailures;
    this.#pool = s.pool;
  }

  #onMessage(m: Exclude<FromWorker, { type: 'done' }>, send: (m: ToWorker) => void): void {
    switch (m.type) {
      case 'audio':
        // A preroll's block from an earlier Follow call: its preroll is gone (numbers start again on a new call).
        if (m.audio.preroll !== 0 && m.call < this.#calls) break;
        this.safeEmit('audio', this.#adoptions.relabel(m.audio));
        break;
      case 'ready': this.safeEmit('ready'); break;
      case 'prepared': this.safeEmit('prepared', { cueId: m.cueId, preroll: m.preroll }); break;
      case 'stats': this.#takeStats(m.stats); break;
      case 'log': getLogger(m.name)[m.level](m.message, m.meta); break;
      case 'picture': {
        const slot = m.slot;
        const { picture, release } = sharedPicture(m.frame, m.buffer, m.planes, () => send({ type: 'release', slot }));
        // The follower's own hold ends with the event: listeners that keep the picture have retained it.
        try {
          if (m.timed.preroll === 0 || m.call >= this.#calls) this.safeEmit('picture', this.#adoptions.relabel({ ...m.timed, frame: picture }));
        } finally {
          release();
        }
        break;
      }
    }
  }
}
