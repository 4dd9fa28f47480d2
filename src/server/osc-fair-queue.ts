/**
 * The OSC socket's datagrams between reading and handling, served cheapest sender first. The endpoint reads what the
 * kernel holds (libuv reads up to 32 datagrams per readable event) into this queue and handles it in the same turn of
 * the event loop, one datagram at a time, always the oldest of the sender that cost this thread the least lately.
 *
 * Why: the OSC thread bounds its busy share (osc-duty.ts), so under a flood it sleeps and datagrams wait in the socket
 * together; handled in arrival order, a console's `/cuemux/thump` waited for every flood datagram ahead of it and for
 * the sleeps they caused (thump p99 1.51 ms idle, 3.57 ms under the fault suite's 100,000-datagram fuzz, session of
 * issue #12). A console costs this thread a few µs a second; a flood, hundreds of ms: the console goes first. One
 * sender's datagrams keep their order; senders are told apart by address, as the per-sender budgets are (a sender
 * cannot get ahead by changing its port).
 */
import { monoNs } from '../common/time-source';

/** Half-life of a sender's recent cost, in ns: 1 s, the budgets' burst (a console heard seconds ago counts as cheap). */
const COST_HALF_LIFE_NS = 1e9;

/** Most senders whose cost is remembered; beyond, every sender's cost starts again from zero (a scan cannot grow it). */
const MAX_COSTED_SENDERS = 1024;

/** A sender's decayed cost. */
interface Cost {
  /** Busy time spent on its datagrams, in ns, decayed to `atNs`. */
  ns: number;
  atNs: bigint;
}

/** Datagrams waiting to be handled, per sender, served cheapest sender first (see the module's comment). */
export class FairQueue<T> {
  /** Waiting items per sender, each list in arrival order; a sender with none has no entry. */
  readonly #waiting = new Map<string, T[]>();
  readonly #costs = new Map<string, Cost>();
  #size = 0;

  /** Items waiting. */
  get size(): number {
    return this.#size;
  }

  /** Queue `item` from `sender` (an IP address). */
  push(sender: string, item: T): void {
    const list = this.#waiting.get(sender);
    if (list === undefined) this.#waiting.set(sender, [item]);
    else list.push(item);
    this.#size++;
  }

  /** The next item to handle, the oldest of the sender with the least recent cost, or undefined when none waits. */
  shift(): { sender: string; item: T } | undefined {
    if (this.#size === 0) return undefined;
    const now = monoNs();
    let best: string | null = null;
    let bestNs = Infinity;
    for (const sender of this.#waiting.keys()) {
      const ns = this.#costNow(sender, now);
      if (ns < bestNs) {
        best = sender;
        bestNs = ns;
      }
    }
    const sender = best as string;
    const list = this.#waiting.get(sender) as T[];
    const item = list.shift() as T;
    if (list.length === 0) this.#waiting.delete(sender);
    this.#size--;
    return { sender, item };
  }

  /** Add `ns` of busy time to `sender`'s recent cost. */
  charge(sender: string, ns: number): void {
    const now = monoNs();
    const decayed = this.#costNow(sender, now);
    if (!this.#costs.has(sender) && this.#costs.size >= MAX_COSTED_SENDERS) this.#costs.clear();
    this.#costs.set(sender, { ns: decayed + ns, atNs: now });
  }

  /** Drop every waiting item (the costs are kept). */
  clear(): void {
    this.#waiting.clear();
    this.#size = 0;
  }

  #costNow(sender: string, now: bigint): number {
    const c = this.#costs.get(sender);
    if (c === undefined) return 0;
    return c.ns * 2 ** (-Number(now - c.atNs) / COST_HALF_LIFE_NS);
  }
}
