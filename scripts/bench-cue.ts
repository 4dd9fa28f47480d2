/**
 * `npm run bench:cue` — OSC GO → first packet of the cue at a Follow client (p50/p99), for an armed cue (loaded
 * before GO: media open, index loaded, in-point prefetched) and an unarmed one (a cue list cue whose media is not
 * open; its index is on disk). The server is a `cuemux serve` child process; OSC goes over real UDP, and Follow over
 * the Unix socket to a Follow client in a process of its own, as a player. The peer, measured in the same run on the
 * same file and in-points, is what a player does today at GO: open the file with FFmpeg, seek to the in-point and
 * read the first video packet (in-process beamcoder).
 * Also measures the Ping offset estimate against the true offset (0: same machine) over UDS and TCP.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { MediaClient } from '../src/clients/media-client';
import { monoNs, monoToUnixNs } from '../src/common/time-source';
import { openDemuxer } from '../src/ffmpeg/beamcoder-adapter';
import type { FollowEvent } from '../src/generated/cuemux/v1/media_server';
import { encodeMessage } from '../src/wire/osc-codec';
import { hd1080 } from './bench-media';
import { CLI, pct, runBench, startBenchServer, watchSteal, withScratch } from './bench-server';

/** Files (and unarmed cues): each unarmed GO needs a file that is not open. */
const ROUNDS = 40;
/** Armed GOs: more samples than files (a file is closed between its uses); with 200, p99 was the second-worst sample and swung 2.7-6.1 ms between runs. */
const ARMED_ROUNDS = 600;

/** A seeded PRNG so every run uses the same in-points. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** OSC over UDP: send a message, await its /cuemux/reply/... JSON. */
class Osc {
  readonly #s = dgram.createSocket('udp4');
  readonly #port: number;
  #waiting = new Map<string, (json: Record<string, unknown>) => void>();

  constructor(port: number) {
    this.#port = port;
    this.#s.on('message', (buf) => {
      // Replies carry one JSON string; the address names the request.
      const end = buf.indexOf(0);
      const address = buf.subarray(0, end).toString();
      const start = buf.indexOf('{');
      const stop = buf.lastIndexOf('}');
      const json = JSON.parse(buf.subarray(start, stop + 1).toString()) as Record<string, unknown>;
      this.#waiting.get(address)?.(json);
    });
  }

  async bind(): Promise<void> {
    await new Promise<void>((r) => this.#s.bind(0, '127.0.0.1', r));
  }

  send(address: string, ...args: string[]): void {
    this.sendEncoded(Osc.encode(address, ...args));
  }

  /** The datagram of a message with string arguments. */
  static encode(address: string, ...args: string[]): Uint8Array {
    return encodeMessage(address, args.map((value) => ({ type: 's' as const, value })));
  }

  /** Send a datagram from {@link encode}. */
  sendEncoded(datagram: Uint8Array): void {
    this.#s.send(datagram, this.#port, '127.0.0.1');
  }

  request(address: string, ...args: string[]): Promise<Record<string, unknown>> {
    const reply = address.replace('/cuemux/', '/cuemux/reply/');
    const p = new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${address}`)), 30_000);
      this.#waiting.set(reply, (json) => {
        clearTimeout(t);
        this.#waiting.delete(reply);
        if (json.status !== 'ok') reject(new Error(`${address} ${args.join(' ')}: ${String(json.error)}`));
        else resolve(json);
      });
    });
    this.send(address, ...args);
    return p;
  }

  close(): void {
    this.#s.close();
  }
}

/** argv[2] of the Follow client's own process. */
const FOLLOW_MODE = '--follow-process';

/**
 * The Follow client process, a player's view: follows `output` and prints, for each cue, `<cue id> <monotonic ns>`
 * at the arrival of its first packets (after "ready" once the stream is up). It runs apart from the process that
 * sends the GOs, as a player runs apart from show control: neither one's work (OSC replies, timers, collections)
 * lands on the other's event loop. Both read CLOCK_MONOTONIC, so the times compare across the two.
 */
async function followProcess(target: string, output: string): Promise<void> {
  const client = new MediaClient(target);
  const seen = new Set<string>();
  let ready = false;
  for await (const e of client.follow({ output }) as AsyncIterable<FollowEvent>) {
    if (!ready) {
      ready = true;
      process.stdout.write('ready\n');
    }
    if (e.event?.$case === 'packets' && !seen.has(e.event.value.cueId)) {
      const at = monoNs();
      seen.add(e.event.value.cueId);
      process.stdout.write(`${e.event.value.cueId} ${at}\n`);
    }
  }
}

/** The Follow client process, seen from here: "first packets of cue X" waiters fed by its lines. */
class Follower {
  readonly #child: ChildProcess;
  readonly #arrived = new Map<string, bigint>();
  readonly #waiting = new Map<string, (at: bigint) => void>();

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /** Start the process and resolve once its Follow stream is up. */
  static start(target: string, output: string): Promise<Follower> {
    const child = spawn(process.execPath, [__filename, FOLLOW_MODE, target, output], { stdio: ['ignore', 'pipe', 'inherit'] });
    const f = new Follower(child);
    return new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the Follow client process exited ${String(code)}`)));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        if (line === 'ready') {
          resolve(f);
          return;
        }
        const [cue, ns] = line.split(' ');
        const w = f.#waiting.get(cue);
        if (w === undefined) f.#arrived.set(cue, BigInt(ns));
        else {
          f.#waiting.delete(cue);
          w(BigInt(ns));
        }
      });
    });
  }

  /** When the first packets of `cue` arrived at the Follow client (monotonic ns). */
  firstPacketOf(cue: string): Promise<bigint> {
    const at = this.#arrived.get(cue);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve) => this.#waiting.set(cue, resolve));
  }

  stop(): void {
    this.#child.kill();
  }
}

async function peerFirstPacket(file: string, inSeconds: number): Promise<number> {
  const t = monoNs();
  const d = await openDemuxer(file);
  try {
    const v = d.info.streams.find((s) => s.codecType === 'video');
    if (v === undefined) throw new Error('no video');
    await d.seek(v.index, Math.floor((inSeconds * v.timeBase.den) / v.timeBase.num));
    for (let p = await d.readPacket(); p !== null; p = await d.readPacket()) if (p.stream === v.index) break;
  } finally {
    await d.close();
  }
  return Number(monoNs() - t) / 1e6;
}

/** argv[2] of the peer's own process. */
const PEER_MODE = '--peer-process';

/** The peer process: each [file, in-point] in turn, after one warm-up; prints the times (ms) as JSON. */
async function peerProcess(rounds: Array<[string, number]>): Promise<void> {
  await peerFirstPacket(rounds[0][0], 1); // warm FFmpeg and the page cache
  const ms: number[] = [];
  for (const [file, at] of rounds) ms.push(await peerFirstPacket(file, at));
  process.stdout.write(JSON.stringify(ms));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(scratch: string): Promise<void> {
  process.stderr.write('bench:cue: preparing media (cached after the first run)...\n');
  const hd = await hd1080();
  const root = path.join(scratch, 'media');
  await fsp.mkdir(root);
  const files = Array.from({ length: ROUNDS }, (_, i) => `show-${String(i).padStart(2, '0')}.mp4`);
  await fsp.copyFile(hd, path.join(root, files[0]));
  for (const f of files.slice(1)) await fsp.link(path.join(root, files[0]), path.join(root, f));
  const b = spawnSync(process.execPath, [CLI, 'index', 'build', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (b.status !== 0) throw new Error('index build failed');
  const random = rng(20261121);
  const ins = files.map(() => Math.round(random() * 110 * 100) / 100);
  // Unarmed cues: one per file, so each GO finds its media closed (idle close 0 ms) with the index on disk.
  const cueList = path.join(scratch, 'cues.json');
  await fsp.writeFile(cueList, JSON.stringify({ version: 1, cues: files.map((f, i) => ({ id: `U${i}`, media: f, in: ins[i], outputs: { video: ['video'] } })) }));

  process.stderr.write('bench:cue: peer (open + seek + first packet in a player process)...\n');
  // The peer runs in a process of its own, as a player does: its FFmpeg allocations (and the collections they cause)
  // are not left in this process, which is the Follow client timed below.
  const peerRun = spawnSync(process.execPath, [__filename, PEER_MODE, JSON.stringify(files.map((f, i) => [path.join(root, f), ins[i]]))],
    { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (peerRun.status !== 0) throw new Error('the peer process failed');
  const peer = JSON.parse(peerRun.stdout) as number[];

  const socket = path.join(scratch, 'cuemux.sock');
  const steal = watchSteal();
  const server = await startBenchServer(['--socket', socket, '--listen', '127.0.0.1:0', '--media-root', root, '--osc-port', '0',
    '--cue-list', cueList, '--idle-close-ms', '0']);
  const oscPort = server.oscPort as number;
  const tcp = server.tcp as string;
  const osc = new Osc(oscPort);
  await osc.bind();
  const follower = await Follower.start(socket, 'video');
  try {
    await osc.request('/cuemux/clock/play');
    const measure = async (id: string): Promise<number> => {
      const first = follower.firstPacketOf(id);
      // GO is the datagram leaving the controller: the time starts after this process has encoded it (osc-js takes
      // 0.1-0.2 ms between GOs, which is no part of what a player waits for).
      const go = Osc.encode('/cuemux/cue/go', id);
      const t = monoNs();
      osc.sendEncoded(go);
      const at = await first;
      // Packets of a cue can only follow its GO: an earlier arrival would be a fault of this benchmark, not a time.
      if (at < t) throw new Error(`cue ${id}: first packets arrived ${Number(t - at) / 1e6} ms before its GO was sent`);
      return Number(at - t) / 1e6;
    };
    // Warm-up (JIT, connection) on one cue of each kind, not counted.
    await osc.request('/cuemux/cue/load', 'W', files[0], '5');
    await measure('W');
    await osc.request('/cuemux/cue/unload');
    process.stderr.write('bench:cue: armed cues...\n');
    const armed: number[] = [];
    for (let i = 0; i < ARMED_ROUNDS; i++) {
      const f = i % ROUNDS;
      await osc.request('/cuemux/cue/load', `A${i}`, files[f], String(ins[f]));
      await sleep(20);
      armed.push(await measure(`A${i}`));
      await osc.request('/cuemux/cue/unload');
      await sleep(20);
    }
    process.stderr.write('bench:cue: unarmed cues...\n');
    const unarmed: number[] = [];
    // From the last cue back: a GO arms the cue after it, which then is always one already measured.
    for (let i = ROUNDS - 1; i >= 0; i--) {
      unarmed.push(await measure(`U${i}`));
      await sleep(50); // let the background arming of the next cue finish before unloading it
      await osc.request('/cuemux/cue/unload');
      await sleep(30); // idle close (0 ms) of the media
    }
    process.stderr.write('bench:cue: Ping offset estimates...\n');
    const ping = async (target: string): Promise<{ rtt: number[]; err: number[] }> => {
      const c = new MediaClient(target);
      const rtt: number[] = [];
      const err: number[] = [];
      for (let i = 0; i < 200; i++) {
        const e = await c.estimateClockOffset(8);
        rtt.push(Number(e.roundTripNs) / 1e3);
        // Same machine: the true offset between the two processes' wall clocks is known exactly, as both are the
        // shared monotonic clock plus each process's own offset (the server reports its pair in PingResponse).
        const truth = (e.serverUnixNs - e.serverMonotonicNs) - (monoToUnixNs(0n) - 0n);
        err.push(Math.abs(Number(e.offsetNs - truth)) / 1e3);
      }
      c.close();
      return { rtt, err };
    };
    const uds = await ping(socket);
    const tcpPing = await ping(tcp);

    const f2 = (x: number): string => x.toFixed(2);
    const lines = [
      '',
      `File: 1080p25 H.264 + AAC, 120 s (${ROUNDS} hard links, index on disk); ${ROUNDS} random in-points (${ARMED_ROUNDS} armed GOs, ${ROUNDS} unarmed); server: cuemux serve (child process)`,
      `Peer, a player opening the file itself at GO (beamcoder open + seek + first video packet): p50 ${f2(pct(peer, 50))} ms, p99 ${f2(pct(peer, 99))} ms`,
      `OSC GO -> first packet at a Follow client, armed cue:   p50 ${f2(pct(armed, 50))} ms, p99 ${f2(pct(armed, 99))} ms, max ${f2(Math.max(...armed))} ms` +
        `  (target p99 <= 5: ${pct(armed, 99) <= 5 ? 'PASS' : 'MISS'}; ${f2(pct(peer, 50) / pct(armed, 50))}x faster than the peer at p50)`,
      `OSC GO -> first packet at a Follow client, unarmed cue: p50 ${f2(pct(unarmed, 50))} ms, p99 ${f2(pct(unarmed, 99))} ms, max ${f2(Math.max(...unarmed))} ms` +
        `  (target p99 <= 40: ${pct(unarmed, 99) <= 40 ? 'PASS' : 'MISS'}; ${f2(pct(peer, 50) / pct(unarmed, 50))}x the peer at p50)`,
      `Ping offset estimate (best of 8 pings, 200 estimates; against the exact offset, same machine): UDS error p50 ${f2(pct(uds.err, 50))} us, p99 ${f2(pct(uds.err, 99))} us, ` +
        `round trip p50 ${f2(pct(uds.rtt, 50))} us; TCP error p50 ${f2(pct(tcpPing.err, 50))} us, p99 ${f2(pct(tcpPing.err, 99))} us, round trip p50 ${f2(pct(tcpPing.rtt, 50))} us`,
      `Machine: steal time (CPU time the hypervisor gave to other guests) while the server ran: ${steal().toFixed(1)}%`,
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n${JSON.stringify({ peer, armed, unarmed, pingUds: uds, pingTcp: tcpPing })}\n`);
  } finally {
    follower.stop();
    osc.close();
    await server.stop();
  }
}

if (process.argv[2] === FOLLOW_MODE) runBench('bench:cue follower', () => followProcess(process.argv[3], process.argv[4]));
else if (process.argv[2] === PEER_MODE) runBench('bench:cue peer', () => peerProcess(JSON.parse(process.argv[3]) as Array<[string, number]>));
else runBench('bench:cue', () => withScratch('cuemux-bench-cue-', main));
