/**
 * The OSC socket: one bound UDP socket speaking OSC for show control. Datagrams read together are handled cheapest
 * sender first (osc-fair-queue.ts: a console before a flood), each sender's in order. It admits a datagram (sender
 * allow-list, then per-sender byte and message budgets, checked before and after decoding so a flood costs no
 * decoding), decodes it
 * with the codec (src/wire/osc-codec.ts), and delivers each message as a 'request' event: bare messages at once,
 * bundled ones at their bundle's time, to the millisecond, from one queue and one timer. A datagram is accepted or
 * refused as a whole. Replies are sent from the same socket. What a request means is the router's job
 * (osc-control.ts, with the argument helpers of osc-args.ts). The server runs it on the OSC thread (osc-worker.ts),
 * so that a flood of datagrams is read and refused off the show's event loop.
 *
 * Nothing a peer sends can throw out of the socket handler or crash the process: a malformed datagram becomes one
 * 'invalid' event carrying a CuemuxError('INVALID_ARGUMENT') that names the sender and what is wrong, and listener
 * exceptions (thrown or rejected) are logged and swallowed by the typed emitter.
 */
import * as dgram from 'node:dgram';
import { CuemuxError, errorStack } from '../common/errors';
import { getLogger } from '../common/logger';
import { RateLimitedLog } from '../common/rate-limited-log';
import { monoNs, unixNs } from '../common/time-source';
import { TypedEmitter, type Listener } from '../common/typed-emitter';
import { decodeDatagram, encodeMessage, type DecodedMessage, type OscSendArg, type OscValue } from '../wire/osc-codec';
import { DutyBound, type DutyBoundOptions } from './osc-duty';
import { FairQueue } from './osc-fair-queue';
import { AllowList, LOOPBACK_ALLOW, SenderBudgets, type SenderBudgetOptions } from './osc-access';

/** Requested UDP receive buffer of the OSC socket, in bytes (the kernel grants at most net.core.rmem_max). */
const OSC_RECEIVE_BUFFER_BYTES = 4 << 20;

const log = getLogger('osc-endpoint');

/** A UDP peer. */
export interface OscPeer {
  /** IP address (or, for {@link OscEndpoint.send}, a host name). */
  address: string;
  /** UDP port. */
  port: number;
}

/** One OSC message as the router sees it: a decoded message, who sent it and when it is due. */
export interface OscRequest {
  /** The OSC address, e.g. `/cuemux/cue/go`. Always starts with '/'. */
  address: string;
  /** The arguments, one per letter of {@link types}. */
  args: OscValue[];
  /** The OSC type tags without the leading comma, e.g. `'if'`; `''` when there are no arguments. */
  types: string;
  /** Who sent it (where a reply goes). */
  from: OscPeer;
  /**
   * The enclosing bundle's time in nanoseconds since the Unix epoch (exact to the nanosecond, from the NTP timetag);
   * null for a bare message or a bundle marked "immediately".
   */
  timetagUnixNs: bigint | null;
  /** The bundle's time had already passed when the datagram arrived (the message is delivered at once). */
  late: boolean;
}

/** Options of {@link OscEndpoint.open}. */
export interface OscEndpointOptions {
  /** Address to bind, e.g. `0.0.0.0`, `127.0.0.1`, `::` (a host containing ':' gets an IPv6 socket). */
  host: string;
  /** UDP port; 0 picks a free one (see {@link OscEndpoint.address}). */
  port: number;
  /** Most messages waiting for their bundle time at once; a bundle that would exceed it is refused. Default 1024. */
  maxScheduled?: number;
  /**
   * Most datagram bytes held by messages waiting for their bundle time; a bundle that would exceed it is refused.
   * Default 4 MiB.
   */
  maxScheduledBytes?: number;
  /** Latest bundle time accepted, in ms after arrival. Default 24 h. */
  maxAheadMs?: number;
  /**
   * Sender networks (CIDR, or single addresses) whose datagrams are read; others are dropped unanswered, with a
   * rate-limited warning naming the sender. Default loopback only: 127.0.0.0/8 and ::1.
   */
  allow?: readonly string[];
  /** Per-sender budgets (token buckets, one second of burst). Default 2000 messages/s and 1 MiB/s. */
  budgets?: SenderBudgetOptions;
  /**
   * Bound the socket handler's busy share (osc-duty.ts): past it the thread sleeps for the rest of the window. For a
   * thread at real-time priority (the OSC thread); default none.
   */
  duty?: DutyBoundOptions;
}

/** What the endpoint dropped or refused so far (for status replies and tests). */
export interface OscEndpointCounters {
  /** Datagrams from senders outside the allow-list (dropped unanswered). */
  notAllowed: number;
  /** Datagrams over their sender's message or byte budget (dropped unanswered). */
  overBudget: number;
  /** Messages in those datagrams, where they could be counted (over the message budget). */
  overBudgetMessages: number;
  /** Bundles refused because the queue of timed messages was full (count or bytes). */
  scheduleRefused: number;
}

/** The datagram a request came in: its message count, and the replies sent to it so far (see {@link datagramOf}). */
export interface DatagramInfo {
  /** The datagram's number on this endpoint (1, 2, ...): names it across threads. */
  readonly id: number;
  /** Messages the datagram held. */
  readonly messages: number;
  /** Replies sent for it so far (the router counts them to cap replies per datagram). */
  replies: number;
  /** The cap was reported for it (once per datagram). */
  capReported: boolean;
}

const datagrams = new WeakMap<OscRequest, DatagramInfo>();

/** The datagram `req` came in (shared by every message of a bundle), or undefined for a request made elsewhere. */
export function datagramOf(req: OscRequest): DatagramInfo | undefined {
  return datagrams.get(req);
}

/** Events of {@link OscEndpoint}: name → listener arguments. */
export interface OscEndpointEvents {
  /** A message is due: at once for a bare message, at the bundle's time for a bundled one. */
  request: [req: OscRequest];
  /**
   * A datagram was refused as a whole (none of its messages is delivered): malformed (INVALID_ARGUMENT), too far
   * ahead (INVALID_ARGUMENT) or over the scheduling limit (RESOURCE_EXHAUSTED). `address` is the OSC address
   * concerned when it could be read (for an error reply), else null.
   */
  invalid: [error: CuemuxError, from: OscPeer, address: string | null];
  /** A datagram was handled or timed messages were delivered: the counters and the queue may have changed. */
  handled: [];
}

/** A listener; a returned promise that rejects is logged like a thrown exception (see {@link Listener}). */
export type OscListener<A extends unknown[]> = Listener<A>;

/**
 * Datagrams read but not yet handled at which the endpoint handles them all at once. libuv reads at most 32 datagrams
 * per readable event, and the thread handles one per turn at real-time priority, faster than a sender on the same
 * cores fills the socket: a bound all the same, so the queue's memory never depends on that.
 */
const MAX_INBOX = 64;

const DEFAULT_MAX_SCHEDULED = 1024;
const DEFAULT_MAX_SCHEDULED_BYTES = 4 << 20;
/** Default per-sender budgets: far above what a console sends (a busy one: tens of messages a second). */
export const DEFAULT_OSC_BUDGETS: SenderBudgetOptions = { messagesPerSecond: 2000, bytesPerSecond: 1 << 20 };
const DEFAULT_MAX_AHEAD_MS = 24 * 3600 * 1000;
const NS_PER_MS = 1_000_000n;

/** A bundled message waiting for its time. */
interface Scheduled {
  dueNs: bigint;
  seq: number;
  req: OscRequest;
  /** Its share of its datagram's bytes (counted against maxScheduledBytes). */
  bytes: number;
}

/**
 * A bound UDP socket speaking OSC. Bare messages are delivered as 'request' on arrival; bundled ones at their bundle's
 * time (at once, marked late, if it has passed). A datagram is accepted or refused as a whole ('invalid').
 */
export class OscEndpoint {
  /** The address actually bound (the real port when 0 was asked). */
  readonly address: { host: string; port: number };
  readonly #socket: dgram.Socket;
  readonly #events = new TypedEmitter<OscEndpointEvents>({ owner: 'OSC endpoint' });
  readonly #maxScheduled: number;
  readonly #maxScheduledBytes: number;
  readonly #maxAheadNs: bigint;
  readonly #allow: AllowList;
  readonly #budgets: SenderBudgets;
  readonly #warnings = new RateLimitedLog();
  /** The busy-share bound (null: none). */
  readonly duty: DutyBound | null;
  #scheduledBytes = 0;
  /** What was dropped or refused so far. */
  readonly counters: OscEndpointCounters = { notAllowed: 0, overBudget: 0, overBudgetMessages: 0, scheduleRefused: 0 };
  /** Waiting messages sorted by (dueNs, seq): seq keeps arrival order among equal times. */
  #queue: Scheduled[] = [];
  #seq = 0;
  #datagramIds = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Datagrams read and not yet handled (see {@link MAX_INBOX}), and the pending call that handles them. */
  readonly #inbox = new FairQueue<{ datagram: Buffer; from: OscPeer }>();
  #drainSoon: NodeJS.Immediate | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;

  private constructor(socket: dgram.Socket, host: string, options: OscEndpointOptions) {
    this.#socket = socket;
    this.address = { host, port: socket.address().port };
    this.#maxScheduled = options.maxScheduled ?? DEFAULT_MAX_SCHEDULED;
    this.#maxScheduledBytes = options.maxScheduledBytes ?? DEFAULT_MAX_SCHEDULED_BYTES;
    this.#allow = new AllowList(options.allow ?? LOOPBACK_ALLOW);
    this.#budgets = new SenderBudgets(options.budgets ?? DEFAULT_OSC_BUDGETS);
    this.#maxAheadNs = BigInt(Math.round(options.maxAheadMs ?? DEFAULT_MAX_AHEAD_MS)) * NS_PER_MS;
    this.duty = options.duty === undefined ? null : new DutyBound(options.duty);
    // Read now, handled one per turn of the loop after its reads (setImmediate), cheapest sender first
    // (osc-fair-queue.ts): a console's datagram read with a flood's is not handled after the whole flood.
    socket.on('message', (datagram, rinfo) => {
      this.#inbox.push(rinfo.address, { datagram, from: { address: rinfo.address, port: rinfo.port } });
      if (this.#inbox.size >= MAX_INBOX) this.#drain(true);
      else this.#drainSoon ??= setImmediate(() => this.#drain());
    });
    // UDP errors (e.g. ICMP unreachable reported on some platforms) concern one datagram: log, keep serving.
    socket.on('error', (e) => log.warn(`OSC socket error on ${this.address.host}:${this.address.port}: ${e.message}`));
  }

  /**
   * Bind a UDP socket (udp6 when `host` contains ':') and start receiving.
   *
   * @throws CuemuxError INVALID_ARGUMENT (bad port or host), RESOURCE_EXHAUSTED (port in use), PERMISSION_DENIED.
   */
  static async open(options: OscEndpointOptions): Promise<OscEndpoint> {
    const { host, port } = options;
    if (!Number.isInteger(port) || port < 0 || port > 65_535) {
      throw new CuemuxError('INVALID_ARGUMENT', `OSC port must be an integer from 0 to 65535, got ${String(port)}`);
    }
    for (const [name, value] of [['maxScheduled', options.maxScheduled], ['maxScheduledBytes', options.maxScheduledBytes], ['maxAheadMs', options.maxAheadMs]] as const) {
      if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
        throw new CuemuxError('INVALID_ARGUMENT', `OSC ${name} must be a number >= 0, got ${String(value)}`);
      }
    }
    // Checked before binding: a bad allow-list or budget is a start-up error, not a crash on the first datagram.
    new AllowList(options.allow ?? LOOPBACK_ALLOW);
    new SenderBudgets(options.budgets ?? DEFAULT_OSC_BUDGETS);
    // A 4 MiB receive buffer (the kernel caps it at net.core.rmem_max, 4 MiB here): with the default 208 KiB, 400
    // small datagrams sent back to back by one sender made the kernel drop 144, a console's thump among them, before
    // the per-sender budgets (which apply after the read) could refuse anything.
    const socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: OSC_RECEIVE_BUFFER_BYTES });
    await new Promise<void>((resolve, reject) => {
      const failed = (e: NodeJS.ErrnoException): void => {
        socket.off('listening', listening);
        socket.close();
        const where = `cannot listen for OSC on ${host}:${port}: ${e.message}`;
        reject(e.code === 'EADDRINUSE' ? new CuemuxError('RESOURCE_EXHAUSTED', `${where} (another program uses this port)`, { cause: e })
          : e.code === 'EACCES' || e.code === 'EPERM' ? new CuemuxError('PERMISSION_DENIED', where, { cause: e })
            : new CuemuxError('INVALID_ARGUMENT', where, { cause: e }));
      };
      const listening = (): void => {
        socket.off('error', failed);
        resolve();
      };
      socket.once('error', failed);
      socket.once('listening', listening);
      socket.bind(port, host);
    });
    // Pair the wall clock with the monotonic one now (time-source measures it at first use, up to a few ms), not
    // while the first datagram waits.
    unixNs();
    const endpoint = new OscEndpoint(socket, host, options);
    log.info('OSC listening', { host, port: endpoint.address.port });
    return endpoint;
  }

  /** Subscribe to an event. Listener exceptions and rejections are logged, never propagated. */
  on<E extends keyof OscEndpointEvents>(event: E, listener: OscListener<OscEndpointEvents[E]>): this {
    this.#events.on(event, listener);
    return this;
  }

  /** Subscribe for the next occurrence only. */
  once<E extends keyof OscEndpointEvents>(event: E, listener: OscListener<OscEndpointEvents[E]>): this {
    this.#events.once(event, listener);
    return this;
  }

  /** Unsubscribe a listener given to {@link on} or {@link once}. */
  off<E extends keyof OscEndpointEvents>(event: E, listener: OscListener<OscEndpointEvents[E]>): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Messages waiting for their bundle time. */
  get scheduled(): number {
    return this.#queue.length;
  }

  /** Datagram bytes held by messages waiting for their bundle time. */
  get scheduledBytes(): number {
    return this.#scheduledBytes;
  }

  /** The allow-list in effect. */
  get allowList(): readonly string[] {
    return this.#allow.entries;
  }

  /**
   * Send one message to `to` (a reply, typically to `req.from` at {@link replyAddress}). Resolves once the datagram
   * is handed to the OS (UDP: delivery is not confirmed).
   *
   * @throws CuemuxError CLOSED after {@link close}; INVALID_ARGUMENT for a bad peer, address or argument.
   */
  async send(to: OscPeer, address: string, args: readonly OscSendArg[] = []): Promise<void> {
    if (this.#closed) throw new CuemuxError('CLOSED', `cannot send OSC ${address}: the endpoint is closed`);
    if (typeof to?.address !== 'string' || to.address === '' || !Number.isInteger(to.port) || to.port < 1 || to.port > 65_535) {
      throw new CuemuxError('INVALID_ARGUMENT', `cannot send OSC ${address}: bad destination ${JSON.stringify(to)}`);
    }
    const bytes = encodeMessage(address, args);
    await new Promise<void>((resolve, reject) => {
      this.#socket.send(bytes, to.port, to.address, (e) => {
        if (!e) return resolve();
        reject(this.#closed
          ? new CuemuxError('CLOSED', `cannot send OSC ${address}: the endpoint closed`, { cause: e })
          : new CuemuxError('INTERNAL', `cannot send OSC ${address} to ${to.address}:${to.port}: ${e.message}`, { cause: e }));
      });
    });
  }

  /**
   * Stop receiving, drop messages waiting for their bundle time and release the port. Idempotent: every call
   * returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#closed = true;
      if (this.#drainSoon !== null) clearImmediate(this.#drainSoon);
      this.#drainSoon = null;
      this.#inbox.clear();
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      if (this.#queue.length > 0) log.info(`OSC endpoint closing: ${this.#queue.length} scheduled messages dropped`);
      this.#queue = [];
      this.#scheduledBytes = 0;
      this.#socket.close(() => {
        log.info('OSC stopped', { port: this.address.port });
        resolve();
      });
    });
    return this.#closing;
  }

  /** The sender allowed and within its byte budget (checked before decoding: a flood costs no decoding). */
  #admit(datagram: Buffer, from: OscPeer): boolean {
    if (!this.#allow.allows(from.address)) {
      this.counters.notAllowed++;
      this.#warnings.log(`deny ${from.address}`, (suppressed) => log.warn(`OSC datagram from ${from.address}:${from.port} dropped: the sender is not in the OSC allow-list `
        + `(${this.#allow.entries.join(',')}); allow it with --osc-allow${suppressed > 0 ? ` (${suppressed} more from it dropped since the last warning)` : ''}`,
      { from: `${from.address}:${from.port}`, suppressed }));
      return false;
    }
    if (!this.#budgets.takeBytes(from.address, datagram.length)) {
      this.#overBudget(from, 'bytes', datagram.length, 0);
      return false;
    }
    return true;
  }

  #overBudget(from: OscPeer, what: 'bytes' | 'messages', bytes: number, messages: number): void {
    this.counters.overBudget++;
    this.counters.overBudgetMessages += messages;
    this.#warnings.log(`budget ${from.address}`, (suppressed) => log.warn(`OSC datagram from ${from.address}:${from.port} dropped: over the sender's `
      + `${what === 'bytes' ? 'bytes per second (--osc-rate-bytes)' : 'messages per second (--osc-rate-messages)'} budget`
      + `${suppressed > 0 ? ` (${suppressed} more over budget since the last warning)` : ''}`, { from: `${from.address}:${from.port}`, bytes, messages, suppressed }));
  }

  /**
   * Handle the next datagram read, of the cheapest sender, its busy time charged to it; the next one in the next turn
   * of the loop (`all`: every one waiting, now). One per turn, because a reply is sent from process.nextTick (dgram's
   * address lookup): handling a whole batch in one task held a console's reply until the batch was done, and a turn
   * between datagrams also reads what arrived meanwhile (a console's thump) into the queue.
   */
  #drain(all = false): void {
    if (this.#drainSoon !== null) clearImmediate(this.#drainSoon);
    this.#drainSoon = null;
    for (let next = this.#inbox.shift(); next !== undefined; next = all ? this.#inbox.shift() : undefined) {
      const { datagram, from } = next.item;
      const startNs = monoNs();
      try {
        this.#receive(datagram, from);
      } catch (e) {
        // Only a bug of ours can land here; the socket keeps serving.
        log.error(`internal error handling a datagram from ${from.address}:${from.port}: ${errorStack(e)}`);
      }
      this.#events.safeEmit('handled');
      this.#inbox.charge(next.sender, Number(monoNs() - startNs));
      this.duty?.spent(startNs);
    }
    if (this.#inbox.size > 0 && !this.#closed) this.#drainSoon = setImmediate(() => this.#drain());
  }

  #receive(datagram: Buffer, from: OscPeer): void {
    if (this.#closed) return;
    if (!this.#admit(datagram, from)) return;
    const arrivedNs = unixNs();
    let messages: DecodedMessage[];
    try {
      messages = decodeDatagram(datagram);
    } catch (e) {
      const error = e as CuemuxError;
      const address = (error.details.address as string | null | undefined) ?? null;
      return this.#invalid(new CuemuxError('INVALID_ARGUMENT', `${error.message} (from ${from.address}:${from.port})`,
        { cause: error, details: { address } }), from, address);
    }
    if (!this.#budgets.takeMessages(from.address, messages.length)) {
      this.#overBudget(from, 'messages', datagram.length, messages.length);
      return;
    }
    const info: DatagramInfo = { id: ++this.#datagramIds, messages: messages.length, replies: 0, capReported: false };
    // Deliver what fell due before this datagram first, so delivery order follows bundle time.
    this.#runDue();
    let future = 0;
    for (const m of messages) {
      if (m.timetagUnixNs === null || m.timetagUnixNs <= arrivedNs) continue;
      if (m.timetagUnixNs - arrivedNs > this.#maxAheadNs) {
        const aheadMs = Number((m.timetagUnixNs - arrivedNs) / NS_PER_MS);
        return this.#invalid(new CuemuxError('INVALID_ARGUMENT', `OSC bundle for ${m.address} is timed ${aheadMs} ms ahead, more than the `
          + `${Number(this.#maxAheadNs / NS_PER_MS)} ms accepted (from ${from.address}:${from.port}); check the sender's clock`,
        { details: { address: m.address, aheadMs } }), from, m.address);
      }
      future++;
    }
    const share = Math.ceil(datagram.length / messages.length);
    if (future > 0 && (this.#queue.length + future > this.#maxScheduled || this.#scheduledBytes + future * share > this.#maxScheduledBytes)) {
      const address = messages[0].address;
      this.counters.scheduleRefused++;
      const budget = this.#queue.length + future > this.#maxScheduled
        ? `${future} more messages would exceed the ${this.#maxScheduled} waiting for their time (budget --osc-max-scheduled)`
        : `${future * share} more bytes would exceed the ${this.#maxScheduledBytes} bytes of timed messages waiting (budget: timed bundle bytes)`;
      return this.#invalid(new CuemuxError('RESOURCE_EXHAUSTED', `OSC bundle refused: ${budget} (from ${from.address}:${from.port})`,
        { details: { address } }), from, address);
    }
    for (const m of messages) {
      const req: OscRequest = { address: m.address, args: m.args, types: m.types, from, timetagUnixNs: m.timetagUnixNs, late: false };
      datagrams.set(req, info);
      if (m.timetagUnixNs === null || m.timetagUnixNs <= arrivedNs) {
        req.late = m.timetagUnixNs !== null && m.timetagUnixNs < arrivedNs;
        this.#events.safeEmit('request', req);
        if (this.#closed) return; // a listener closed us
      } else {
        this.#scheduledBytes += share;
        this.#schedule({ dueNs: m.timetagUnixNs, seq: this.#seq++, req, bytes: share });
      }
    }
    this.#arm();
  }

  #invalid(error: CuemuxError, from: OscPeer, address: string | null): void {
    if (!this.#events.safeEmit('invalid', error, from, address)) log.warn(error.message);
    else log.debug(error.message);
  }

  #schedule(item: Scheduled): void {
    // Binary search for the first entry due later: equal times keep arrival order.
    let lo = 0;
    let hi = this.#queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#queue[mid].dueNs <= item.dueNs) lo = mid + 1;
      else hi = mid;
    }
    this.#queue.splice(lo, 0, item);
  }

  /** Deliver every message whose time has come. */
  #runDue(): void {
    if (this.#queue.length === 0) return;
    const now = unixNs();
    let n = 0;
    while (n < this.#queue.length && this.#queue[n].dueNs <= now) n++;
    if (n === 0) return;
    const due = this.#queue.splice(0, n);
    for (const item of due) this.#scheduledBytes -= item.bytes;
    for (const item of due) {
      if (this.#closed) return;
      this.#events.safeEmit('request', item.req);
    }
  }

  /** (Re)arm the one timer for the earliest waiting message. */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#closed || this.#queue.length === 0) return;
    const remainingNs = this.#queue[0].dueNs - unixNs();
    // setTimeout has ms granularity and may wake early: on waking, anything not yet due waits for the remainder.
    // Bundle times are compared with the process's one wall clock (time-source's unixNs: the monotonic clock plus an
    // offset measured once), the clock osc-control also converts a bundle time with, so "due" here and the instant
    // the action refers to agree to the nanosecond. Waking at least once a second bounds a long wait's re-arm error.
    const delayMs = remainingNs <= 0n ? 0 : Math.min(1000, Math.ceil(Number(remainingNs) / 1e6));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#runDue();
      this.#arm();
      this.#events.safeEmit('handled');
    }, delayMs);
    // The bound socket keeps the process alive while the endpoint is open; the timer alone must not.
    this.#timer.unref();
  }
}
