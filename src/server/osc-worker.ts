/**
 * The OSC thread (a worker started by osc-thread.ts): the UDP socket and everything that judges a datagram before the
 * show sees it, off the show's event loop. It runs the endpoint (osc-endpoint.ts: allow-list, per-sender budgets,
 * decoding, bundle scheduling), checks the shared-secret connection of each message when it falls due, answers
 * unknown addresses, `/cuemux/connect`, `/cuemux/disconnect` and `/cuemux/thump` itself, and passes every other
 * message to the main thread, whose replies it caps per datagram, bounds to one datagram and sends.
 *
 * Thump is answered here only while the main thread beats the shared heartbeat (see STALL_BOUND_MS in
 * osc-thread.ts); past the bound the reply is an error naming the stall, so a console's heartbeat keeps meaning
 * "show control is alive", not "this thread is alive".
 *
 * Bundle times are compared with this thread's own pairing of the wall and monotonic clocks (time-source.ts), which
 * agrees with the main thread's within a few µs (measured between processes, the same method); the instant an action
 * refers to is still converted on the main thread, exactly as before.
 */
import * as dgram from 'node:dgram';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { CuemuxError, errorMessage, errorStack, isCuemuxError } from '../common/errors';
import { getLogger, setLogSink } from '../common/logger';
import { RateLimitedLog } from '../common/rate-limited-log';
import { monoNs } from '../common/time-source';
import { encodeMessage } from '../wire/osc-codec';
import { AllowList, isLoopbackAddress, OscConnections } from './osc-access';
import { argString, replyAddress } from './osc-args';
import { datagramOf, OscEndpoint, type DatagramInfo, type OscPeer, type OscRequest } from './osc-endpoint';
import { raiseCallingThread } from './osc-priority';
import { boundedAddress, boundedReply, errorReply, MAX_REPLIES_PER_DATAGRAM, type ReplyBody } from './osc-reply';
import { SLOT, type FromWorker, type OscWorkerData, type ToWorker } from './osc-thread';

const CONNECT = '/cuemux/connect';
const DISCONNECT = '/cuemux/disconnect';
const THUMP = '/cuemux/thump';

/** Most datagrams whose replies are counted at once (each holds a few numbers until its messages are answered). */
const MAX_TRACKED_DATAGRAMS = 65_536;

/** Update subscribers heard from here are reported to the main thread at most this often, in ms (their TTL is 61 s). */
const SEEN_EVERY_MS = 1000;

const log = getLogger('osc');

/** A datagram whose messages are being answered: the endpoint's count, and how many the main thread still owes. */
interface Tracked {
  id: number;
  info: DatagramInfo;
  delivered: number;
  pending: number;
}

class OscWorker {
  readonly #port: MessagePort;
  readonly #data: OscWorkerData;
  readonly #endpoint: OscEndpoint;
  readonly #slots: BigInt64Array;
  readonly #connections: OscConnections | null;
  readonly #routes: ReadonlySet<string>;
  readonly #tracked = new Map<number, Tracked>();
  readonly #warnings = new RateLimitedLog();
  #subscribers: ReadonlySet<string> = new Set();
  readonly #seen = new Set<string>();
  #seenTimer: NodeJS.Timeout | null = null;
  #repliesNotSent = 0;

  constructor(port: MessagePort, data: OscWorkerData, endpoint: OscEndpoint) {
    this.#port = port;
    this.#data = data;
    this.#endpoint = endpoint;
    this.#slots = new BigInt64Array(data.shared);
    this.#connections = data.secret === null ? null : new OscConnections({ secret: data.secret, idleMs: data.connectIdleMs });
    this.#routes = new Set(data.routes);
    endpoint.on('request', (req) => this.#request(req));
    endpoint.on('invalid', (error, from, address) => {
      // At most one line per sender and kind of refusal per 10 s: a flood of bad datagrams is not a flood of log lines.
      this.#warnings.log(`invalid ${from.address} ${error.code}`, (suppressed) => log.warn('OSC message refused',
        { from: `${from.address}:${from.port}`, error: error.message.slice(0, 400), ...(suppressed > 0 ? { suppressedSinceLast: suppressed } : {}) }));
      this.#reply(from, address ?? '/cuemux/invalid', { status: 'error', error: error.message, code: error.code }, undefined);
    });
    endpoint.on('handled', () => this.#publish());
    port.on('message', (m: ToWorker) => {
      try {
        this.#fromMain(m);
      } catch (e) {
        log.error(`OSC thread: internal error handling ${m.op}: ${errorStack(e)}`);
      }
    });
    this.#publish();
  }

  #post(m: FromWorker): void {
    this.#port.postMessage(m);
  }

  #fromMain(m: ToWorker): void {
    switch (m.op) {
      case 'reply': {
        const t = m.datagram === null ? undefined : this.#tracked.get(m.datagram);
        if (t !== undefined) t.pending--;
        this.#reply(m.from, m.address, JSON.parse(m.body) as ReplyBody, t);
        if (t !== undefined) this.#release(t);
        return;
      }
      case 'push':
        for (const peer of m.peers) this.#send(peer, m.address, m.json);
        return;
      case 'subscribers':
        this.#subscribers = new Set(m.keys);
        return;
      case 'close':
        void this.#close();
        return;
      case 'crash':
        setImmediate(() => {
          throw new Error('OSC thread crash asked by a test (crashForTest)');
        });
        return;
      default:
    }
  }

  async #close(): Promise<void> {
    if (this.#seenTimer !== null) clearTimeout(this.#seenTimer);
    await this.#endpoint.close();
    this.#publish();
    // Nothing else holds this thread's event loop: it ends, and the main thread's Worker emits 'exit'.
    this.#port.unref();
  }

  #publish(): void {
    const e = this.#endpoint;
    const s = this.#slots;
    Atomics.store(s, SLOT.notAllowed, BigInt(e.counters.notAllowed));
    Atomics.store(s, SLOT.overBudget, BigInt(e.counters.overBudget));
    Atomics.store(s, SLOT.overBudgetMessages, BigInt(e.counters.overBudgetMessages));
    Atomics.store(s, SLOT.scheduleRefused, BigInt(e.counters.scheduleRefused));
    Atomics.store(s, SLOT.scheduled, BigInt(e.scheduled));
    Atomics.store(s, SLOT.scheduledBytes, BigInt(e.scheduledBytes));
    Atomics.store(s, SLOT.repliesNotSent, BigInt(this.#repliesNotSent));
    Atomics.store(s, SLOT.connections, BigInt(this.#connections?.count ?? 0));
    if (e.duty !== null) {
      Atomics.store(s, SLOT.dutySleeps, BigInt(e.duty.sleeps));
      Atomics.store(s, SLOT.dutySleptUs, BigInt(Math.round(e.duty.sleptMs * 1000)));
    }
  }

  #track(req: OscRequest): Tracked | undefined {
    const info = datagramOf(req);
    if (info === undefined) return undefined;
    let t = this.#tracked.get(info.id);
    if (t === undefined) {
      // A main thread that never answers must not grow this: the oldest datagram is forgotten (its replies uncapped).
      if (this.#tracked.size >= MAX_TRACKED_DATAGRAMS) this.#tracked.delete(this.#tracked.keys().next().value as number);
      t = { id: info.id, info, delivered: 0, pending: 0 };
      this.#tracked.set(info.id, t);
    }
    t.delivered++;
    return t;
  }

  #release(t: Tracked): void {
    if (t.pending <= 0 && t.delivered >= t.info.messages) this.#tracked.delete(t.id);
  }

  #replyPeer(from: OscPeer): OscPeer {
    return this.#data.replyPort === null ? from : { address: from.address, port: this.#data.replyPort };
  }

  #request(req: OscRequest): void {
    const t = this.#track(req);
    try {
      this.#checkConnected(req);
      const peer = this.#replyPeer(req.from);
      const key = `${peer.address}:${peer.port}`;
      if (this.#subscribers.has(key)) this.#markSeen(key);
      if (!this.#routes.has(req.address)) {
        throw new CuemuxError('NOT_FOUND', `unknown OSC address ${req.address} (known: ${[...this.#routes].join(' ')})`);
      }
      const data = this.#answer(req, key);
      if (data === undefined) {
        if (t !== undefined) t.pending++;
        const args = req.args.map((a) => (Buffer.isBuffer(a) ? new Uint8Array(a) : a));
        this.#post({ op: 'request', req: { ...req, args }, datagram: t?.id ?? -1 });
        return;
      }
      this.#reply(req.from, req.address, { status: 'ok', data }, t);
    } catch (e) {
      this.#reply(req.from, req.address, errorReply(e, req, this.#warnings, log), t);
    } finally {
      if (t !== undefined) this.#release(t);
    }
  }

  /** The data of a reply this thread gives itself, or undefined when the main thread must answer. */
  #answer(req: OscRequest, replyKey: string): unknown {
    switch (req.address) {
      case THUMP: {
        const ageMs = Number(monoNs() - Atomics.load(this.#slots, SLOT.heartbeatMonoNs)) / 1e6;
        if (ageMs > this.#data.stallBoundMs) {
          throw new CuemuxError('WRONG_STATE', `show control stalled: the server's main thread has not run for ${Math.round(ageMs)} ms `
            + `(more than ${this.#data.stallBoundMs} ms); /cuemux/thump is answered again once it runs`);
        }
        return 'thump';
      }
      case CONNECT: {
        const offered = argString(req, 0, 'secret');
        const c = this.#connections;
        // Without a secret there is nothing to connect to, but a console set up to always connect gets its "ok".
        if (c === null) return { connected: true, secretRequired: false };
        // Checked for loopback senders too (they need no connection): a console tried on this machine learns
        // whether its secret is right.
        const { dropped } = c.connect(req.from, offered);
        if (dropped !== null) log.info(`OSC connection of ${dropped} dropped: ${c.max} senders are connected and it was heard from least recently`);
        log.info(`OSC sender ${req.from.address}:${req.from.port} connected`);
        this.#publish();
        return { connected: true, secretRequired: !isLoopbackAddress(req.from.address), idleSeconds: c.idleMs / 1000 };
      }
      case DISCONNECT: {
        const was = this.#connections?.disconnect(req.from) ?? false;
        // Its update subscription goes with it: a sender that said goodbye is not pushed to any more.
        if (this.#subscribers.has(replyKey)) this.#post({ op: 'unsubscribe', key: replyKey });
        this.#publish();
        return { disconnected: was };
      }
      default:
        return undefined;
    }
  }

  /**
   * With a secret, a sender that is not on this machine must be connected for anything but /cuemux/connect and
   * /cuemux/disconnect; any message it sends renews its connection. Checked when the message falls due (a timed
   * bundle's at its time): a bundle of [connect, go] works for a sender whose port changes with every datagram.
   *
   * @throws CuemuxError('PERMISSION_DENIED') saying what to send.
   */
  #checkConnected(req: OscRequest): void {
    const c = this.#connections;
    if (c === null || isLoopbackAddress(req.from.address) || req.address === CONNECT || req.address === DISCONNECT) return;
    if (c.touch(req.from)) return;
    const idle = c.idleMs % 3_600_000 === 0 ? `${c.idleMs / 3_600_000} h` : `${Math.round(c.idleMs / 1000)} s`;
    throw new CuemuxError('PERMISSION_DENIED', `${req.from.address}:${req.from.port} is not connected: send ${CONNECT} <secret> first (the secret of the `
      + `server's --osc-secret-file; senders not on the server's machine need it). A connection lasts ${idle} after the sender's last message; a `
      + `sender whose port changes with every message sends ${CONNECT} in the same bundle as each command`);
  }

  #markSeen(key: string): void {
    this.#seen.add(key);
    this.#seenTimer ??= setTimeout(() => {
      this.#seenTimer = null;
      this.#post({ op: 'seen', keys: [...this.#seen] });
      this.#seen.clear();
    }, SEEN_EVERY_MS).unref();
  }

  #reply(from: OscPeer, address: string, body: ReplyBody, t: Tracked | undefined): void {
    if (t !== undefined) {
      // A bundle of many messages gets at most MAX_REPLIES_PER_DATAGRAM replies (no amplification); its messages
      // all run. The last reply sent says so.
      const info = t.info;
      if (info.replies >= MAX_REPLIES_PER_DATAGRAM) {
        this.#repliesNotSent++;
        this.#publish();
        return;
      }
      info.replies++;
      if (info.replies === MAX_REPLIES_PER_DATAGRAM && info.messages > MAX_REPLIES_PER_DATAGRAM) {
        const note = `at most ${MAX_REPLIES_PER_DATAGRAM} replies per datagram: the other ${info.messages - MAX_REPLIES_PER_DATAGRAM} messages of this one run unanswered`;
        body = { ...body, repliesCapped: note };
        this.#warnings.log(`capped ${from.address}`, (suppressed) => log.warn(`OSC datagram from ${from.address}:${from.port} holds ${info.messages} messages: ${note}`
          + `${suppressed > 0 ? ` (${suppressed} more such datagrams since the last warning)` : ''}`));
      }
    }
    this.#send(this.#replyPeer(from), replyAddress(boundedAddress(address)), boundedReply(address, body));
  }

  #send(to: OscPeer, address: string, json: string): void {
    this.#endpoint.send(to, address, [{ type: 's', value: json }]).catch((e: unknown) => {
      if (isCuemuxError(e, 'CLOSED')) return;
      log.warn('OSC reply not sent', { to: `${to.address}:${to.port}`, address, error: errorMessage(e) });
    });
  }
}

/** Longest wait for the warm-up thump's reply, in ms (it takes well under 10 ms; a lost one only costs this). */
const WARM_UP_TIMEOUT_MS = 500;

/**
 * One `/cuemux/thump` from this thread through the bound socket and back before the thread says it listens. A fresh
 * thread compiles each function of the path (read, admit, decode, answer, encode, send) at its first use, on this
 * thread: without this, a console's first thump after every server start paid for it (see the README's soak notes for
 * the figures). Only to a loopback address the allow-list admits, and not with --osc-reply-port (the reply would go to
 * that port, someone else's): then the first console's thump is the first use, as before.
 */
async function warmUp(endpoint: OscEndpoint, data: OscWorkerData): Promise<void> {
  const host = endpoint.address.host;
  const target = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  if (data.replyPort !== null || !isLoopbackAddress(target) || !new AllowList(data.allow).allows(target)) return;
  const socket = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, target, () => resolve());
    });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, WARM_UP_TIMEOUT_MS);
      socket.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.send(encodeMessage(THUMP, []), endpoint.address.port, target);
    });
  } catch (e) {
    log.debug(`OSC thread warm-up thump not sent: ${errorMessage(e)}`);
  } finally {
    socket.close();
  }
}

async function main(port: MessagePort, data: OscWorkerData): Promise<void> {
  // This thread's log records are written by the main thread's logger (the one the entry point configured); debug
  // records stay here (one per refused datagram under a flood would cross to the main thread).
  setLogSink((level, name, message, meta) => {
    if (level === 'debug') return;
    const m: FromWorker = { op: 'log', level, name, message, meta };
    try {
      port.postMessage(m);
    } catch {
      port.postMessage({ ...m, meta: JSON.parse(JSON.stringify(meta ?? {})) as Record<string, unknown> });
    }
  });
  let endpoint: OscEndpoint;
  try {
    // The busy-share bound always: at normal priority too it keeps a flood from taking this thread's core whole.
    endpoint = await OscEndpoint.open({ host: data.host, port: data.port, allow: data.allow, budgets: data.budgets, maxScheduled: data.maxScheduled, duty: {} });
  } catch (e) {
    port.postMessage({ op: 'failed', code: isCuemuxError(e) ? e.code : 'INTERNAL', message: errorMessage(e) } satisfies FromWorker);
    port.unref();
    return;
  }
  new OscWorker(port, data, endpoint);
  // Raised after the bind (a bind failure needs no priority) and before the first datagram is read.
  const priority = raiseCallingThread(data.priority);
  await warmUp(endpoint, data);
  port.postMessage({ op: 'listening', port: endpoint.address.port, priority } satisfies FromWorker);
}

if (parentPort !== null) void main(parentPort, workerData as OscWorkerData);
