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
 * Node's timers fire on whole milliseconds, so a delay asked below 1 ms comes out at about 1 ms: the relay measures
 * the delays it gave (scheduled to delivered) and reports them with its counts on SIGTERM. Sleeping the last
 * fraction of a millisecond with Atomics.wait was tried and measured no better on this shared 2-vCPU VM (load
 * average 16-20, relay at nice -15, 800 chunks asked 0.2-2 ms: p50 1.33-1.51 ms against 1.16-1.18 ms with plain
 * timers, p99 11.6-16.6 ms against 11.2-25.9 ms): the tail is the machine's scheduling, not the timers' granularity.
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

async function relayMain(config: RelayConfig): Promise<void> {
  const stats: RelayStats = { tcpConnections: 0, tcpChunks: 0, tcpLost: 0, udpDatagrams: 0, udpDropped: 0, delayP50Ms: 0, delayP99Ms: 0, delayMaxMs: 0 };
  // Delays given, a bounded sample (the first 200,000): enough for a 99th percentile.
  const given: number[] = [];
  const delay = (): number => config.minDelayMs + Math.random() * (config.maxDelayMs - config.minDelayMs);
  const lost = (): boolean => Math.random() < config.loss;
  /** Run `fn` at `due` (ms on nowMs), counting the delay from now (the chunk's arrival). */
  const deliver = (due: number, fn: () => void): void => {
    const t0 = nowMs();
    setTimeout(() => {
      if (given.length < 200_000) given.push(nowMs() - t0);
      fn();
    }, Math.max(0, due - t0));
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
