/**
 * A userspace network relay for machines in network namespaces (this kernel has no netem): one runs in each machine
 * of a star (see ./netns), listens on the other machines' service addresses there and forwards TCP connections and
 * UDP datagrams across the links to them, each chunk (both ways) delayed by a random time in [min, max] ms (jitter)
 * and 1 in `1/loss` lost; an unshaped route passes what arrives from a link on to the machine's own server:
 *
 * - UDP: a lost datagram is dropped.
 * - TCP: a byte stream cannot lose bytes; a lost segment is retransmitted by the kernel, so the chunk (and, the stream
 *   being ordered, everything behind it) arrives `lossPenaltyMs` later (default 10 ms: a tail-loss probe or fast
 *   retransmission at these round trips; a timeout retransmission, at least 200 ms on Linux, would be worse).
 *
 * Node's timers fire on whole milliseconds, so the relay wakes up to 1.5 ms early and sleeps the rest precisely
 * ({@link DueQueue}); it measures the delays it gave (arrival to delivery) and reports them with its counts on SIGTERM.
 *
 * Run as a script: `node relay.js CONFIG_JSON` (a {@link RelayConfig}); it prints `ready` once listening, and its
 * {@link RelayStats} as one JSON line when stopped with SIGTERM.
 */
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as os from 'node:os';
import { createInterface } from 'node:readline';
import { runBench } from './harness';

/** One forwarding rule: connections (datagrams) to `listen` (`ip:port`) go to `to`. */
export interface RelayRoute {
  proto: 'tcp' | 'udp';
  listen: string;
  to: string;
  /** Delay and lose this route's traffic (both ways); false: pass it on at once (default true). */
  shaped?: boolean;
}

/** What the relay does to the traffic. */
export interface RelayConfig {
  routes: RelayRoute[];
  /** One-way delay, ms: uniform in [minDelayMs, maxDelayMs] per chunk. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Share of chunks lost, 0..1 (default 0). */
  loss: number;
  /** Extra delay of a lost TCP chunk (its retransmission), ms (default 10). */
  lossPenaltyMs?: number;
}

/** What the relay did (printed at its end). */
export interface RelayStats {
  tcpConnections: number;
  tcpChunks: number;
  tcpLost: number;
  udpDatagrams: number;
  udpDropped: number;
  /** Delays given, scheduled to delivered, ms: median, 99th percentile and largest (lost TCP chunks included). */
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
}

const split = (a: string): [string, number] => {
  const i = a.lastIndexOf(':');
  return [a.slice(0, i), Number(a.slice(i + 1))];
};
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * Work due at instants in ms (on {@link nowMs}), run in order of due time, each as close to it as this process can:
 * Node's timers fire on whole milliseconds and late (a 0.3 ms delay asked of setTimeout came out at 1.1-2 ms), so a
 * timer wakes the queue up to {@link WAKE_EARLY_MS} early and the rest is slept precisely with Atomics.wait (a futex
 * wait with a sub-millisecond timeout; no spinning, so four relays on a 2-CPU machine take no CPU from the machines).
 * Blocking the event loop for that last fraction of a millisecond only holds chunks in the kernel's buffers, as a
 * network would.
 */
class DueQueue {
  readonly #items: Array<{ due: number; seq: number; fn: () => void }> = [];
  readonly #sleeper = new Int32Array(new SharedArrayBuffer(4));
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;

  /** Run `fn` at `due` (ms on nowMs); work due at the same instant runs in the order it was pushed. */
  push(due: number, fn: () => void): void {
    const item = { due, seq: this.#seq++, fn };
    // Kept sorted by (due, seq); chunks mostly arrive in due order, so the insertion point is near the end.
    let i = this.#items.length;
    while (i > 0 && this.#items[i - 1].due > due) i--;
    this.#items.splice(i, 0, item);
    this.#schedule();
  }

  #schedule(): void {
    const first = this.#items[0];
    if (first === undefined) return;
    const wakeAt = first.due - WAKE_EARLY_MS;
    if (this.#timer !== null && this.#timerAt <= wakeAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = wakeAt;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#run();
    }, Math.max(0, Math.floor(wakeAt - nowMs())));
  }

  #run(): void {
    for (;;) {
      const first = this.#items[0];
      if (first === undefined) return;
      const wait = first.due - nowMs();
      // More than the early margin away (a timer that fired early): the timer again.
      if (wait > WAKE_EARLY_MS) break;
      if (wait > 0) Atomics.wait(this.#sleeper, 0, 0, wait);
      this.#items.shift();
      first.fn();
    }
    this.#schedule();
  }
}

/** How long before a chunk's due time the relay's timer wakes, ms: Node timers fire on whole ms, up to ~1 ms late. */
const WAKE_EARLY_MS = 1.5;

async function relayMain(config: RelayConfig): Promise<void> {
  const stats: RelayStats = { tcpConnections: 0, tcpChunks: 0, tcpLost: 0, udpDatagrams: 0, udpDropped: 0, delayP50Ms: 0, delayP99Ms: 0, delayMaxMs: 0 };
  // Delays given, a bounded sample (the first 200,000): enough for a 99th percentile.
  const given: number[] = [];
  const delay = (): number => config.minDelayMs + Math.random() * (config.maxDelayMs - config.minDelayMs);
  const lost = (): boolean => Math.random() < config.loss;
  const queue = new DueQueue();
  /** Run `fn` at `due` (ms on nowMs), counting the delay from now (the chunk's arrival). */
  const deliver = (due: number, fn: () => void): void => {
    const t0 = nowMs();
    queue.push(due, () => {
      if (given.length < 200_000) given.push(nowMs() - t0);
      fn();
    });
  };
  /** One direction of a TCP connection: chunks in order, each at max(the one before, now + delay [+ penalty]). */
  const pipe = (from: net.Socket, to: net.Socket, shape: boolean): void => {
    let last = 0;
    from.on('data', (chunk: Buffer) => {
      if (!shape) {
        to.write(chunk);
        return;
      }
      stats.tcpChunks++;
      let due = Math.max(last, nowMs() + delay());
      if (lost()) {
        stats.tcpLost++;
        due += config.lossPenaltyMs ?? 10;
      }
      last = due;
      deliver(due, () => {
        if (!to.destroyed) to.write(chunk);
      });
    });
    from.on('end', () => (shape ? deliver(last, () => to.end()) : to.end()));
  };
  const closers: Array<() => void> = [];
  for (const r of config.routes) {
    const [lh, lp] = split(r.listen);
    const [th, tp] = split(r.to);
    const shape = r.shaped !== false;
    if (r.proto === 'tcp') {
      const server = net.createServer((client) => {
        stats.tcpConnections++;
        const upstream = net.connect(tp, th);
        client.setNoDelay(true);
        upstream.setNoDelay(true);
        pipe(client, upstream, shape);
        pipe(upstream, client, shape);
        const kill = (): void => {
          client.destroy();
          upstream.destroy();
        };
        client.on('error', kill).on('close', kill);
        upstream.on('error', kill).on('close', kill);
      });
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(lp, lh, resolve));
      closers.push(() => server.close());
    } else {
      const sock = dgram.createSocket('udp4');
      // One upstream socket per client address, so replies find their way back.
      const upstreams = new Map<string, dgram.Socket>();
      sock.on('message', (msg, from) => {
        stats.udpDatagrams++;
        if (shape && lost()) {
          stats.udpDropped++;
          return;
        }
        const key = `${from.address}:${from.port}`;
        let up = upstreams.get(key);
        if (up === undefined) {
          const u = dgram.createSocket('udp4');
          u.on('message', (reply) => {
            stats.udpDatagrams++;
            if (shape && lost()) stats.udpDropped++;
            else deliver(nowMs() + (shape ? delay() : 0), () => sock.send(reply, from.port, from.address));
          });
          upstreams.set(key, (up = u));
        }
        const u = up;
        deliver(nowMs() + (shape ? delay() : 0), () => u.send(msg, tp, th));
      });
      await new Promise<void>((resolve) => sock.bind(lp, lh, resolve));
      closers.push(() => sock.close());
    }
  }
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    for (const c of closers) c();
    const s = [...given].sort((a, b) => a - b);
    const at = (p: number): number => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]);
    Object.assign(stats, { delayP50Ms: at(50), delayP99Ms: at(99), delayMaxMs: s.length === 0 ? 0 : s[s.length - 1] });
    process.stdout.write(`${JSON.stringify(stats)}\n`, () => process.exit(0));
  });
}

/** Several relays' stats summed (the delays: the worst relay's); null when none has any. */
export function sumRelayStats(all: ReadonlyArray<RelayStats | null>): RelayStats | null {
  const xs = all.filter((x): x is RelayStats => x !== null);
  if (xs.length === 0) return null;
  const sum = (k: keyof RelayStats): number => xs.reduce((n, x) => n + x[k], 0);
  const max = (k: keyof RelayStats): number => Math.max(...xs.map((x) => x[k]));
  return { tcpConnections: sum('tcpConnections'), tcpChunks: sum('tcpChunks'), tcpLost: sum('tcpLost'), udpDatagrams: sum('udpDatagrams'), udpDropped: sum('udpDropped'),
    delayP50Ms: max('delayP50Ms'), delayP99Ms: max('delayP99Ms'), delayMaxMs: max('delayMaxMs') };
}

/** A relay process started with {@link startRelay}. */
export interface Relay {
  /** Its process id (for its CPU time). */
  pid: number;
  /** SIGTERM it and resolve with what it did (idempotent). */
  stop(): Promise<RelayStats | null>;
}

/** Start the relay in namespace `ns` (`ip netns exec`), resolved once it listens. */
export function startRelay(ns: string, config: RelayConfig): Promise<Relay> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, __filename, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
  // The relay stands for a network, which takes no CPU from the machines: it runs before them (nice -15, above the
  // servers' -10; needs root; at the benchmark's own nice on a shared machine, it was starved and held a master's
  // heartbeats past 300 ms).
  try {
    os.setPriority(child.pid as number, -15);
  } catch {
    // not permitted: it runs at the benchmark's priority
  }
  let statsLine: RelayStats | null = null;
  let onStats: (s: RelayStats | null) => void = () => undefined;
  const ended = new Promise<RelayStats | null>((resolve) => { onStats = resolve; });
  child.once('exit', () => onStats(statsLine));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the relay exited ${String(code)} before it was ready`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'ready') {
        resolve({
          pid: child.pid as number,
          stop: () => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return ended;
          },
        });
      } else if (line.startsWith('{')) statsLine = JSON.parse(line) as RelayStats;
    });
  });
}

if (require.main === module) runBench('relay', () => relayMain(JSON.parse(process.argv[2]) as RelayConfig));
