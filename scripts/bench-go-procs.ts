/**
 * bench:go's two peer processes, each a Node process of its own as a player is, and their handles in the benchmark:
 *
 * - the **Follow client** (peer (a), today's `bench:cue` figure): follows an output and prints, as JSON lines, every
 *   clock state, CueStarted, CueStopped, CueLoaded/CueUnloaded and the arrival of each segment's first packets, with
 *   the CLOCK_MONOTONIC instant it received them. The benchmark takes the cues' places on the show clock from it.
 * - **peer (b)**, a player that opens the file itself at GO: on each UDP datagram naming a file, a media time and a
 *   stream kind it opens the file with FFmpeg (beamcoder, in-process), seeks to the keyframe at or before that time
 *   (audio: 0.1 s before it, the decoder pre-roll the server also gives), opens a decoder (video: FFmpeg's thread
 *   count, as play-video's default; audio: one thread) and decodes until the frame covering the time comes out
 *   (skipping, as the players do, the pictures before it that no other picture refers to),
 *   then prints the instant. Where the seek lands past a frame it cannot decode (an open-GOP leading picture before
 *   its keyframe) it seeks 2.5 s further back and goes on: the time counts, as a real player pays it.
 *
 * Run as a script: `node bench-go-procs.js follow <target> <output>` or `node bench-go-procs.js peer <files JSON>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as dgram from 'node:dgram';
import { createInterface } from 'node:readline';
import { MediaClient } from '../src/clients/media-client';
import { monoNs } from '../src/common/time-source';
import { decoderConfigFromParams, openDecoder } from '../src/ffmpeg/decoder';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import type { DecodedFrame } from '../src/ffmpeg/types';
import type { FollowEvent } from '../src/generated/cuemux/v1/media_server';
import { runBench } from './bench/harness';
import { errorMessage } from '../src/common/errors';

// ------------------------------------------------------------------------------------------------------------------
// The Follow client

/** One line of the Follow client: what it received and when (`mono`, ns as a decimal string). */
export type FollowLine =
  | { e: 'ready'; mono: string }
  | { e: 'clock'; mono: string; gen: string; state: string; rate: number; pos: number; anchor: string }
  | { e: 'started'; mono: string; cue: string; seg: number; clock: number; media: number; end: number }
  | { e: 'stopped'; mono: string; cue: string; clock: number; reason: string }
  | { e: 'loaded' | 'unloaded'; mono: string; cue: string }
  | { e: 'packets'; mono: string; cue: string; seg: number; gen: string };

async function followProcess(target: string, output: string): Promise<void> {
  const client = new MediaClient(target);
  const seen = new Set<string>();
  let ready = false;
  const put = (l: FollowLine): void => {
    process.stdout.write(`${JSON.stringify(l)}\n`);
  };
  for await (const ev of client.follow({ output }) as AsyncIterable<FollowEvent>) {
    const mono = String(monoNs());
    if (!ready) {
      ready = true;
      put({ e: 'ready', mono });
    }
    const e = ev.event;
    if (e === undefined) continue;
    switch (e.$case) {
      case 'clock': {
        const s = e.value;
        put({ e: 'clock', mono, gen: String(s.generation), state: s.state, rate: s.rate, pos: s.positionSeconds, anchor: String(s.anchorMonotonicNs) });
        break;
      }
      case 'started': {
        const s = e.value;
        // A cue unloaded and loaded again numbers its segments from 0 again: a new announcement is a new segment.
        for (const k of [...seen]) if (k.startsWith(`${s.cueId}\0${s.segment}\0`)) seen.delete(k);
        put({ e: 'started', mono, cue: s.cueId, seg: s.segment, clock: s.clockSeconds, media: s.mediaSeconds, end: s.endMediaSeconds });
        break;
      }
      case 'stopped':
        put({ e: 'stopped', mono, cue: e.value.cueId, clock: e.value.clockSeconds, reason: e.value.reason });
        break;
      case 'loaded':
        put({ e: 'loaded', mono, cue: e.value.cueId });
        break;
      case 'unloaded':
        put({ e: 'unloaded', mono, cue: e.value.cueId });
        break;
      case 'packets': {
        const p = e.value;
        const key = `${p.cueId}\0${p.segment}\0${p.generation}`;
        if (!seen.has(key)) {
          seen.add(key);
          put({ e: 'packets', mono, cue: p.cueId, seg: p.segment, gen: String(p.generation) });
        }
        break;
      }
      default:
        break;
    }
  }
}

/** The Follow client process, seen from the benchmark: every line it printed, in order. */
export class FollowClient {
  readonly lines: FollowLine[] = [];
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /** Start it on `output` and resolve once its Follow stream is up. */
  static start(target: string, output: string): Promise<FollowClient> {
    const child = spawn(process.execPath, [__filename, 'follow', target, output], { stdio: ['ignore', 'pipe', 'inherit'] });
    const f = new FollowClient(child);
    return new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the Follow client process exited ${String(code)}`)));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const l = JSON.parse(line) as FollowLine;
        f.lines.push(l);
        if (l.e === 'ready') resolve(f);
      });
    });
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid as number;
  }

  stop(): void {
    this.#child.kill();
  }
}

// ------------------------------------------------------------------------------------------------------------------
// Peer (b): a player opening the file itself at GO

/** A job of peer (b): decode `kind` of `file` up to the frame covering media time `media` (s, the media's timeline). */
export interface PeerJob {
  id: number;
  file: string;
  media: number;
  kind: 'video' | 'audio';
}

/** What peer (b) printed for a job. */
export interface PeerDone {
  id: number;
  /** CLOCK_MONOTONIC instant the covering frame came out of the decoder (ns, decimal). */
  mono: string;
  /** MD5 of the video frame's planes (as framemd5 hashes it), null for audio. */
  md5: string | null;
  /** Its pts in seconds. */
  pts: number;
  /** Seeks further back because the first seek landed past an undecodable frame. */
  reseeks: number;
  /** Frames decoded until then. */
  frames: number;
  error?: string;
}

async function decodeTo(job: PeerJob): Promise<Omit<PeerDone, 'id' | 'mono'>> {
  const d = await openDemuxer(job.file);
  try {
    const st = d.info.streams.find((s) => s.codecType === job.kind);
    if (st === undefined) throw new Error(`${job.file}: no ${job.kind} stream`);
    const sec = (t: number): number => (t * st.timeBase.num) / st.timeBase.den;
    const frameSeconds = st.frameRate !== null && st.frameRate.num > 0 ? st.frameRate.den / st.frameRate.num : 0.04;
    const m0 = job.media;
    let from = job.kind === 'audio' ? m0 - 0.1 : m0;
    let frames = 0;
    for (let attempt = 0; ; attempt++) {
      await d.seek(st.index, Math.floor((from * st.timeBase.den) / st.timeBase.num));
      const dec = await openDecoder(decoderConfigFromParams(st), `${job.file} stream ${st.index}`, { threads: job.kind === 'video' ? 0 : 1 });
      try {
        let missed = false;
        const covering = (out: DecodedFrame[]): DecodedFrame | null => {
          for (const f of out) {
            frames++;
            if (f.pts === null) continue;
            const t = sec(f.pts);
            const dur = f.kind === 'video' ? (f.duration > 0 ? sec(f.duration) : frameSeconds) : f.samples / f.sampleRate;
            if (t <= m0 + 1e-9 && m0 + 1e-9 < t + dur) return f;
            if (t > m0 + 1e-9) missed = true;
          }
          return null;
        };
        for (;;) {
          const p = await d.readPacket();
          let out: DecodedFrame[] = [];
          if (p === null) out = await dec.flush();
          else if (p.stream === st.index) {
            // As the players do (output-follower.ts): a picture wholly before the time that no other refers to is not
            // decoded (EncodedPacket.unshown), so both sides do the same work.
            const unshown = job.kind === 'video' && p.pts !== null && p.duration > 0 && sec(p.pts + p.duration) <= m0 + 1e-9;
            out = await dec.decode({ data: p.data, pts: p.pts, dts: p.dts, duration: p.duration, flags: p.flags, unshown });
          }
          const hit = covering(out);
          if (hit !== null) {
            let md5: string | null = null;
            if (hit.kind === 'video') {
              const h = createHash('md5');
              for (const plane of hit.planes) h.update(plane);
              md5 = h.digest('hex');
            }
            return { md5, pts: sec(hit.pts as number), reseeks: attempt, frames };
          }
          if (missed || p === null) break;
        }
      } finally {
        await dec.close();
      }
      if (attempt >= 2) throw new Error(`${job.file}: no ${job.kind} frame covers ${m0} s`);
      from -= 2.5;
    }
  } finally {
    await d.close();
  }
}

async function peerProcess(warm: PeerJob[]): Promise<void> {
  // Warm-up, not timed: FFmpeg's libraries, the JIT, each file's demuxer and decoder once.
  for (const j of warm) await decodeTo(j);
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  // One job at a time, in arrival order (the benchmark sends the next after this one's answer anyway).
  let chain = Promise.resolve();
  sock.on('message', (buf) => {
    const job = JSON.parse(buf.toString()) as PeerJob;
    chain = chain.then(async () => {
      let done: PeerDone;
      try {
        const r = await decodeTo(job);
        done = { id: job.id, mono: String(monoNs()), ...r };
      } catch (e) {
        done = { id: job.id, mono: String(monoNs()), md5: null, pts: NaN, reseeks: 0, frames: 0, error: errorMessage(e) };
      }
      process.stdout.write(`${JSON.stringify(done)}\n`);
    });
  });
  process.stdout.write(`${JSON.stringify({ port: sock.address().port })}\n`);
  await new Promise<void>((resolve) => process.stdin.on('end', resolve).resume());
  sock.close();
}

/** Peer (b)'s process, seen from the benchmark. */
export class PeerB {
  readonly #child: ChildProcess;
  readonly #sock = dgram.createSocket('udp4');
  readonly #waiting = new Map<number, (d: PeerDone) => void>();
  #port = 0;
  #next = 1;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /** Start it, warmed on `warm` (not timed), and resolve once it listens. */
  static start(warm: Array<Omit<PeerJob, 'id'>>): Promise<PeerB> {
    const child = spawn(process.execPath, [__filename, 'peer', JSON.stringify(warm.map((w, i) => ({ ...w, id: -1 - i })))],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    const p = new PeerB(child);
    return new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the peer (b) process exited ${String(code)}`)));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const o = JSON.parse(line) as { port?: number } & PeerDone;
        if (o.port !== undefined) {
          p.#port = o.port;
          resolve(p);
          return;
        }
        const w = p.#waiting.get(o.id);
        p.#waiting.delete(o.id);
        w?.(o);
      });
    });
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid as number;
  }

  /** Send a job as one datagram; resolves with the send instant and the answer. */
  run(job: Omit<PeerJob, 'id'>): Promise<{ sendMono: bigint; done: PeerDone }> {
    const id = this.#next++;
    const datagram = Buffer.from(JSON.stringify({ ...job, id }));
    return new Promise((resolve) => {
      let sendMono = 0n;
      this.#waiting.set(id, (done) => resolve({ sendMono, done }));
      sendMono = monoNs();
      this.#sock.send(datagram, this.#port, '127.0.0.1');
    });
  }

  stop(): void {
    this.#sock.close();
    this.#child.stdin?.end();
    this.#child.kill();
  }
}

if (require.main === module) {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'follow') runBench('bench:go Follow client', () => followProcess(a, b));
  else if (mode === 'peer') runBench('bench:go peer (b)', () => peerProcess(JSON.parse(a) as PeerJob[]));
  else {
    process.stderr.write('usage: bench-go-procs.js follow <target> <output> | peer <warm-up jobs JSON>\n');
    process.exit(2);
  }
}
