/**
 * Who may drive the show over OSC, and how much: an allow-list of sender networks (CIDR), per-sender token buckets
 * for messages and bytes per second, and warnings that name the sender at most once per interval (a flood must not
 * become a flood of log lines). Used by the OSC endpoint before a datagram is even decoded. Also the shared-secret
 * connections ({@link OscConnections}) the router asks of senders that are not on this machine.
 */
import * as net from 'node:net';
import { CuemuxError } from '../common/errors';
import { sameSecret } from '../common/secret-file';

/** The default allow-list: this machine only. */
export const LOOPBACK_ALLOW: readonly string[] = ['127.0.0.0/8', '::1'];

/** One parsed allow-list entry. */
interface Cidr {
  text: string;
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parse `a.b.c.d[/n]` or `ipv6[/n]`; a bare address is a single host. */
export function parseCidr(text: string): Cidr {
  const t = text.trim();
  const slash = t.indexOf('/');
  const address = slash < 0 ? t : t.slice(0, slash);
  const v = net.isIP(address);
  if (v === 0) throw new CuemuxError('INVALID_ARGUMENT', `OSC allow-list entry ${JSON.stringify(text)} is not an IP address or CIDR (e.g. 192.168.1.0/24, 10.0.0.5, ::1)`);
  const max = v === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : t.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
    throw new CuemuxError('INVALID_ARGUMENT', `OSC allow-list entry ${JSON.stringify(text)}: the prefix length must be 0-${max}`);
  }
  return { text: t, address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** A list of CIDRs from a comma-separated string or an array of them; throws INVALID_ARGUMENT naming a bad one. */
export function parseAllowList(value: string | readonly string[]): string[] {
  const parts = (typeof value === 'string' ? value.split(',') : value).map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new CuemuxError('INVALID_ARGUMENT', 'the OSC allow-list is empty (give at least one CIDR, e.g. 127.0.0.1/32)');
  return parts.map((p) => parseCidr(p).text);
}

/** Sender networks allowed to send OSC. IPv4-mapped IPv6 senders (`::ffff:a.b.c.d`, a dual-stack socket) match IPv4 entries. */
export class AllowList {
  readonly #list = new net.BlockList();
  readonly #cache = new Map<string, boolean>();
  /** The entries as given. */
  readonly entries: readonly string[];

  constructor(entries: readonly string[]) {
    this.entries = entries.map((e) => parseCidr(e).text);
    for (const e of this.entries) {
      const c = parseCidr(e);
      this.#list.addSubnet(c.address, c.prefix, c.family);
    }
  }

  /** True when `address` (as a UDP socket reports it) is allowed. */
  allows(address: string): boolean {
    const known = this.#cache.get(address);
    if (known !== undefined) return known;
    const v = net.isIP(address);
    const ok = v !== 0 && this.#list.check(address, v === 4 ? 'ipv4' : 'ipv6');
    if (this.#cache.size >= 4096) this.#cache.clear(); // a scan from many addresses must not grow this
    this.#cache.set(address, ok);
    return ok;
  }

  /** True when every entry is a loopback network (the list lets nobody else in). */
  get loopbackOnly(): boolean {
    return this.entries.every((e) => {
      const c = parseCidr(e);
      return c.family === 'ipv4' ? c.prefix >= 8 && c.address.startsWith('127.') : c.prefix === 128 && c.address === '::1';
    });
  }
}

/** True for a host that only this machine can reach (127.x, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
}

/** A token bucket: `rate` tokens per second, holding at most one second's worth. */
class Bucket {
  tokens: number;
  lastMs: number;

  constructor(readonly rate: number, nowMs: number) {
    this.tokens = rate;
    this.lastMs = nowMs;
  }

  refill(nowMs: number): void {
    if (nowMs > this.lastMs) this.tokens = Math.min(this.rate, this.tokens + ((nowMs - this.lastMs) / 1000) * this.rate);
    this.lastMs = nowMs;
  }

  /** Take `n` tokens after refilling; false (nothing taken) when there are fewer. */
  take(n: number, nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

/** Per-sender budgets. */
export interface SenderBudgetOptions {
  /** Messages per second per sender (a bundle counts each message); the burst is one second's worth. */
  messagesPerSecond: number;
  /** Datagram bytes per second per sender; the burst is one second's worth. */
  bytesPerSecond: number;
}

/** Most senders tracked at once; beyond, senders share one pair of buckets (a scan cannot grow the map). */
const MAX_SENDERS = 1024;
const SHARED = '*';

/**
 * Per-sender (per IP address) message and byte budgets. A datagram is taken whole or dropped whole: its bytes and
 * its message count must both be available.
 */
export class SenderBudgets {
  readonly #options: SenderBudgetOptions;
  readonly #senders = new Map<string, { messages: Bucket; bytes: Bucket }>();

  constructor(options: SenderBudgetOptions) {
    for (const [k, v] of Object.entries(options)) {
      if (!(Number.isFinite(v) && v >= 1)) throw new CuemuxError('INVALID_ARGUMENT', `OSC ${k} must be a number >= 1, got ${String(v)}`);
    }
    this.#options = options;
  }

  #buckets(sender: string, nowMs: number): { messages: Bucket; bytes: Bucket } {
    let b = this.#senders.get(sender);
    if (b !== undefined) return b;
    if (this.#senders.size >= MAX_SENDERS) {
      // Senders idle for a second have full buckets: forgetting them changes nothing.
      for (const [k, v] of this.#senders) if (k !== SHARED && nowMs - v.messages.lastMs > 1000) this.#senders.delete(k);
    }
    const key = this.#senders.size >= MAX_SENDERS ? SHARED : sender;
    b = this.#senders.get(key);
    if (b === undefined) {
      b = { messages: new Bucket(this.#options.messagesPerSecond, nowMs), bytes: new Bucket(this.#options.bytesPerSecond, nowMs) };
      this.#senders.set(key, b);
    }
    return b;
  }

  /** Take `bytes` from the sender's byte budget; false (nothing taken) when over budget. */
  takeBytes(sender: string, bytes: number, nowMs = Date.now()): boolean {
    return this.#buckets(sender, nowMs).bytes.take(bytes, nowMs);
  }

  /** Take `count` messages from the sender's message budget; false (nothing taken) when over budget. */
  takeMessages(sender: string, count: number, nowMs = Date.now()): boolean {
    return this.#buckets(sender, nowMs).messages.take(count, nowMs);
  }
}

/** True for a sender address (as a UDP socket reports it) on this machine: 127.0.0.0/8, ::1, or either IPv4-mapped. */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase();
  const v4 = a.startsWith('::ffff:') ? a.slice('::ffff:'.length) : a;
  return (net.isIPv4(v4) && v4.startsWith('127.')) || a === '::1';
}

/** Fewest characters of the OSC shared secret: it is typed into consoles, but must not be guessed in a few tries. */
export const MIN_OSC_SECRET_LENGTH = 8;

/** Options of {@link OscConnections}. */
export interface OscConnectionOptions {
  /** The shared secret a sender must give in `/cuemux/connect <secret>`. */
  secret: string;
  /** A connection lasts this long after the sender's last message, in ms. */
  idleMs: number;
  /** Most senders connected at once (default 64); beyond, the one heard from least recently is dropped. */
  maxConnections?: number;
  /** Wrong secrets accepted from one sender address per minute before its attempts are refused unchecked (default 10). */
  maxFailuresPerMinute?: number;
}

/** A sender: IP address and UDP port. */
interface Sender {
  address: string;
  port: number;
}

/**
 * Senders connected with the OSC shared secret, QLab-passcode style: `/cuemux/connect <secret>` connects the sender
 * (its address and port: UDP has no connection, and another program on the same machine must not inherit it) until
 * it has been silent for `idleMs`. Bounded: at most `maxConnections` senders (the least recently heard is dropped
 * for a new one: only holders of the secret can connect, so this is their own churn, e.g. one-shot senders), and
 * wrong secrets are limited per address (a guesser gets `maxFailuresPerMinute` tries a minute, not the 2,000
 * messages a second of its budget).
 */
export class OscConnections {
  readonly #secret: string;
  readonly #idleMs: number;
  readonly #max: number;
  readonly #maxFailures: number;
  /** `address:port` → last heard (ms); Map order is least recently heard first (a touch moves a sender last). */
  readonly #connected = new Map<string, number>();
  readonly #failures = new Map<string, { count: number; sinceMs: number }>();

  constructor(options: OscConnectionOptions) {
    if (options.secret.length < MIN_OSC_SECRET_LENGTH) {
      throw new CuemuxError('INVALID_ARGUMENT', `the OSC secret must have at least ${MIN_OSC_SECRET_LENGTH} characters`);
    }
    if (!(Number.isInteger(options.idleMs) && options.idleMs >= 1)) throw new CuemuxError('INVALID_ARGUMENT', `OSC connection idle time must be a whole number of ms >= 1, got ${options.idleMs}`);
    this.#secret = options.secret;
    this.#idleMs = options.idleMs;
    this.#max = options.maxConnections ?? 64;
    this.#maxFailures = options.maxFailuresPerMinute ?? 10;
  }

  /** Senders connected now. */
  get count(): number {
    return this.#connected.size;
  }

  /** Most senders connected at once. */
  get max(): number {
    return this.#max;
  }

  /** How long a connection lasts after the sender's last message, in ms. */
  get idleMs(): number {
    return this.#idleMs;
  }

  /**
   * Connect `from` if `offered` is the secret (compared in constant time). Returns the sender dropped to make room,
   * if any.
   *
   * @throws CuemuxError PERMISSION_DENIED for a wrong secret; RESOURCE_EXHAUSTED when the sender's address gave too
   *   many wrong ones this minute (then the secret is not even compared).
   */
  connect(from: Sender, offered: string, nowMs = Date.now()): { dropped: string | null } {
    const key = `${from.address}:${from.port}`;
    const failures = this.#failures.get(from.address);
    if (failures !== undefined && nowMs - failures.sinceMs >= 60_000) this.#failures.delete(from.address);
    const recent = this.#failures.get(from.address);
    if (recent !== undefined && recent.count >= this.#maxFailures) {
      throw new CuemuxError('RESOURCE_EXHAUSTED', `${from.address} gave ${recent.count} wrong OSC secrets within a minute: /cuemux/connect is refused `
        + `from it for ${Math.ceil((recent.sinceMs + 60_000 - nowMs) / 1000)} s (budget: ${this.#maxFailures} wrong secrets per minute)`);
    }
    if (!sameSecret(offered, this.#secret)) {
      if (recent === undefined) {
        if (this.#failures.size >= 1024) this.#failures.clear(); // the allow-list bounds the senders; this bounds the map
        this.#failures.set(from.address, { count: 1, sinceMs: nowMs });
      } else {
        recent.count++;
      }
      throw new CuemuxError('PERMISSION_DENIED', `/cuemux/connect from ${key}: wrong secret (the server's --osc-secret-file holds it)`);
    }
    this.#failures.delete(from.address);
    this.#expire(nowMs);
    let dropped: string | null = null;
    this.#connected.delete(key);
    if (this.#connected.size >= this.#max) {
      dropped = this.#connected.keys().next().value ?? null;
      if (dropped !== null) this.#connected.delete(dropped);
    }
    this.#connected.set(key, nowMs);
    return { dropped };
  }

  /** True when `from` is connected; its connection is then renewed (any message keeps it). */
  touch(from: Sender, nowMs = Date.now()): boolean {
    const key = `${from.address}:${from.port}`;
    const last = this.#connected.get(key);
    if (last === undefined) return false;
    this.#connected.delete(key);
    if (nowMs - last > this.#idleMs) return false;
    this.#connected.set(key, nowMs);
    return true;
  }

  /** End `from`'s connection; true when it was connected. */
  disconnect(from: Sender): boolean {
    return this.#connected.delete(`${from.address}:${from.port}`);
  }

  /** Drop connections idle for longer than idleMs (least recently heard first, so the scan stops at the first live one). */
  #expire(nowMs: number): void {
    for (const [key, last] of this.#connected) {
      if (nowMs - last <= this.#idleMs) break;
      this.#connected.delete(key);
    }
  }
}
