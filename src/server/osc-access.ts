/**
 * Who may drive the show over OSC, and how much: an allow-list of sender networks (CIDR), per-sender token buckets
 * for messages and bytes per second, and warnings that name the sender at most once per interval (a flood must not
 * become a flood of log lines). Used by the OSC endpoint before a datagram is even decoded.
 */
import * as net from 'node:net';
import { CuemuxError } from '../common/errors';

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
