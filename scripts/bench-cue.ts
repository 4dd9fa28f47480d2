/**
 * `npm run bench:cue` — OSC GO → first packet of the cue at a Follow client (p50/p99), for an armed cue (loaded
 * before GO: media open, index loaded, in-point prefetched) and an unarmed one (a cue list cue whose media is not
 * open; its index is on disk; the file's and the index's pages dropped from the page cache just before the GO, so
 * "not yet open" is a cold read). The server is a `cuemux serve` child process; OSC goes over real UDP, and Follow
 * over the Unix socket to a Follow client in a process of its own, as a player.
 *
 * Peers, measured in the same run on the same files and in-points, each in a player process of its own
 * (scripts/bench/open-peer.ts), prepared as the figure they are set against: for armed GOs, a player that opened the
 * file before the GO too and at the GO seeks and reads the first video packet (warm page cache, as the server's);
 * for unarmed GOs, a player that opens the file at the GO with its pages dropped first (cold, as the server's).
 * Also measures the Ping offset estimate against the true offset (0: same machine) over UDS and TCP.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { MediaClient } from '../src/clients/media-client';
import { monoNs, monoToUnixNs } from '../src/common/time-source';
import type { FollowEvent } from '../src/generated/cuemux/v1/media_server';
import { hd1080 } from './bench-media';
import { CLI, runBench, startBenchServer, withScratch } from './bench/harness';
import { watchMachine } from './bench/machine';
import { openPeerLine, runOpenPeer } from './bench/open-peer';
import { Osc } from './bench/osc';
import { dropPageCache, residentBytes } from './bench/page-cache';
import { pct } from './bench/stats';

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

  const paths = files.map((f) => path.join(root, f));
  const machine = watchMachine();
  process.stdout.write(`${machine.startLine}\n`);
  const cold = (file: string): string[] => [file, `${file}.idx`];
  process.stderr.write('bench:cue: peers (player processes opening the file themselves: pre-opened, then cold)...\n');
  // The peers run in processes of their own, as players do: their FFmpeg allocations (and the collections they cause)
  // are not left in this process, which is the Follow client timed below. The pre-opened peer takes the armed GOs'
  // files and in-points in the same order; the cold one the unarmed GOs'.
  const peerArmed = await runOpenPeer(Array.from({ length: ARMED_ROUNDS }, (_, i) => ({ file: paths[i % ROUNDS], at: ins[i % ROUNDS], prep: 'pre-opened' as const })));
  const peerCold = await runOpenPeer(paths.map((file, i) => ({ file, at: ins[i], prep: 'cold' as const })));

  const socket = path.join(scratch, 'cuemux.sock');
  const server = await startBenchServer(['--socket', socket, '--listen', '127.0.0.1:0', '--media-root', root, '--osc-port', '0',
    '--cue-list', cueList, '--idle-close-ms', '0']);
  const oscPort = server.oscPort as number;
  const tcp = server.tcp as string;
  const osc = await Osc.open(oscPort);
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
    /** Bytes of the file and its index still in the page cache just after each drop (fincore), as a check. */
    const resident: number[] = [];
    // From the last cue back: a GO arms the cue after it, which then is always one already measured.
    for (let i = ROUNDS - 1; i >= 0; i--) {
      // Cold: the file's and its index's pages dropped (the files are hard links of one: every GO reads it cold).
      dropPageCache(cold(paths[i]));
      resident.push(residentBytes(cold(paths[i])) ?? NaN);
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
    const ratio = (peer: number, ours: number): string => `${f2(peer / ours)}x`;
    const mb = (b: number): string => (b / 1e6).toFixed(1);
    const lines = [
      '',
      `File: 1080p25 H.264 + AAC, 120 s, ${mb((await fsp.stat(paths[0])).size)} MB (${ROUNDS} hard links, index on disk); ${ROUNDS} random in-points ` +
        `(${ARMED_ROUNDS} armed GOs, ${ROUNDS} unarmed); server: cuemux serve (child process)`,
      `Peer of armed GOs: ${openPeerLine('pre-opened')}`,
      `Peer of unarmed GOs: ${openPeerLine('cold')}`,
      `Page cache before each unarmed GO (after the drop; file + index): max ${mb(Math.max(...resident))} MB resident (fincore)`,
      `OSC GO -> first packet at a Follow client, armed cue:   p50 ${f2(pct(armed, 50))} ms, p99 ${f2(pct(armed, 99))} ms, max ${f2(Math.max(...armed))} ms` +
        `  (target p99 <= 5: ${pct(armed, 99) <= 5 ? 'PASS' : 'MISS'})`,
      `  peer, pre-opened (seek + first packet):             p50 ${f2(pct(peerArmed, 50))} ms, p99 ${f2(pct(peerArmed, 99))} ms, max ${f2(Math.max(...peerArmed))} ms` +
        `  (peer / armed: ${ratio(pct(peerArmed, 50), pct(armed, 50))} at p50, ${ratio(pct(peerArmed, 99), pct(armed, 99))} at p99)`,
      `OSC GO -> first packet at a Follow client, unarmed cue, cold: p50 ${f2(pct(unarmed, 50))} ms, p99 ${f2(pct(unarmed, 99))} ms, max ${f2(Math.max(...unarmed))} ms` +
        `  (target p99 <= 40: ${pct(unarmed, 99) <= 40 ? 'PASS' : 'MISS'})`,
      `  peer, cold (open + seek + first packet):                  p50 ${f2(pct(peerCold, 50))} ms, p99 ${f2(pct(peerCold, 99))} ms, max ${f2(Math.max(...peerCold))} ms` +
        `  (peer / unarmed: ${ratio(pct(peerCold, 50), pct(unarmed, 50))} at p50, ${ratio(pct(peerCold, 99), pct(unarmed, 99))} at p99)`,
      `Ping offset estimate (best of 8 pings, 200 estimates; against the exact offset, same machine): UDS error p50 ${f2(pct(uds.err, 50))} us, p99 ${f2(pct(uds.err, 99))} us, ` +
        `round trip p50 ${f2(pct(uds.rtt, 50))} us; TCP error p50 ${f2(pct(tcpPing.err, 50))} us, p99 ${f2(pct(tcpPing.err, 99))} us, round trip p50 ${f2(pct(tcpPing.rtt, 50))} us`,
      machine.endLine(),
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n${JSON.stringify({ peerArmed, peerCold, armed, unarmed, resident, pingUds: uds, pingTcp: tcpPing })}\n`);
  } finally {
    follower.stop();
    osc.close();
    await server.stop();
  }
}

if (process.argv[2] === FOLLOW_MODE) runBench('bench:cue follower', () => followProcess(process.argv[3], process.argv[4]));
else runBench('bench:cue', () => withScratch('cuemux-bench-cue-', main));
