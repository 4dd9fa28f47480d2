/**
 * `npm run bench:progressive` (issue 15, item 5): a file written at its real rate by a separate process (`ffmpeg -re
 * -c copy` to fragmented MP4, appended to as it goes) while a real `cuemux play-video` follows a cue on it (loaded on
 * the file's first bytes, GO'd once the player has prepared it), a gRPC reader reads its packets (ReadPackets from the
 * start, following the growth: the packet-level check) and HTTP clients read it through /media (byte ranges,
 * `bytes A-B/*` while it grows) and /preview (fragmented MP4 from the start, following the growth).
 *
 * Measured from outside, against peers in the same run:
 *  - first byte (p50/p99) of /media ranges of the finished file against a plain Node static server (what `send`
 *    does: stat, then a read stream) in a process of its own, measured on their own (no preview in between) from a
 *    client process of their own (scripts/bench/range-pairs.ts), and of
 *    /preview (2 s from a random start) against `ffmpeg -ss S -i FILE -t 2 -c copy -f mp4 -movflags
 *    frag_keyframe+empty_moov pipe:1`;
 *  - play-video: every tick in the cue against FFmpeg's framemd5 of the final file for the media time the server's
 *    clock gives the tick's instant (wrong frames: black, held, another picture), and how far behind the writer it
 *    plays (the media time the writer's file held at the tick's instant, by its size then and ffprobe's packet
 *    positions, minus the media time shown: progressive-player.ts);
 *  - how far the gRPC reader and the HTTP reader stay behind the writer: for every packet (reader) and range (HTTP),
 *    the time from the writer's file reaching its last byte (the file's size, sampled every 5 ms) to the reader
 *    having it, in seconds and in GOPs (2 s);
 *  - bytes the HTTP reader received against the final file size; the server's RSS sampled as the file grows;
 *  - wrong packets: the gRPC reader's packets (file order, fields, bytes) against ffprobe and framemd5 of the final
 *    file, and the growing preview's packets against the final file's.
 * Targets: first byte <= the peers (p50 and p99), play-video within one GOP of the writer (and never ahead of it) with
 * 0 wrong frames, the gRPC and HTTP readers within one GOP, HTTP bytes <= 1.05x the file, no media buffered (live
 * memory after a full GC around 3/4 of the write within LIVE_GROWTH_BYTES of that around 1/4, the least of three probes at each; RSS shown beside
 * it), 0 wrong packets. `--quick`: 10 s written, 500 /media pairs, 30 previews
 * (default 24 s, 2000, 100).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { MediaClient } from '../src/clients/media-client';
import type { Packet } from '../src/generated/cuemux/v1/media_server';
import { hd1080 } from './bench-media';
import { REPO, runBench, startBenchServer, withScratch } from './bench/harness';
import { httpGet } from './bench/http-client';
import { watchMachine } from './bench/machine';
import { gcProbeEnv, liveBytes, probeAfterGc, type GcProbeRecord } from './bench/gc-probe';
import { Osc } from './bench/osc';
import { packetMd5s, probePackets } from './bench/packet-reference';
import { framemd5Of, judgeCuePlayer, preparedCue, startCuePlayer, writtenMediaSeconds } from './bench/progressive-player';
import { passIf, pct } from './bench/stats';
import { serverClock } from './bench/sync-show';

const GOP_SECONDS = 2;
/**
 * "No buffering of media: flat as the file grows", measured: the server's live memory (V8 heap used + external, less
 * compiled code, after two full GCs: scripts/bench/gc-probe.ts) at 3/4 of the write against 1/4, at most this much
 * more. Buffering media would grow with what is written: 9 s of this 12 Mb/s file between the two probes is ~13 MiB,
 * one 2 s GOP ~3 MiB; what does grow with it by design (the index of 1,700 packets, ~60 kB) is far below. RSS is not
 * the measure: it held 159 MiB in the first quarter and 177 MiB in the last of a quiet run with nothing kept
 * (malloc arenas, V8's heap grown once and not yet given back, the page cache of the file's mmap'd reads, freed
 * buffers not yet collected) and is shown beside it.
 */
const LIVE_GROWTH_BYTES = 2 * 2 ** 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
/** CLOCK_MONOTONIC in ms (the clock of the players' logs and of the show clock's anchor). */
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** The writer's file size over time (ms of CLOCK_MONOTONIC, nowMs). */
class SizeLog {
  readonly #t: number[] = [];
  readonly #size: number[] = [];
  add(t: number, size: number): void {
    if (this.#size.length === 0 || size > this.#size[this.#size.length - 1]) {
      this.#t.push(t);
      this.#size.push(size);
    }
  }
  /** When the file first held at least `bytes`. */
  when(bytes: number): number {
    let lo = 0;
    let hi = this.#size.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#size[mid] >= bytes) hi = mid;
      else lo = mid + 1;
    }
    return this.#t[lo];
  }
  /** The file's size at instant `t` (the last size seen at or before it; 0 before the first). */
  sizeAt(t: number): number {
    let lo = 0;
    let hi = this.#t.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#t[mid] <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.#size[lo - 1];
  }
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]) * 1024;
}

/** First stdout byte of `ffmpeg ... pipe:1` (ms), its output read to the end. */
function ffmpegFirstByte(file: string, start: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    let first = -1;
    const p = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-ss', String(start), '-i', file, '-t', '2', '-map', '0', '-c', 'copy', '-f', 'mp4',
      '-movflags', 'frag_keyframe+empty_moov', 'pipe:1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    p.stdout.on('data', () => { if (first < 0) first = nowMs() - t0; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 && first >= 0 ? resolve(first) : reject(new Error(`ffmpeg exited ${String(code)}`))));
  });
}

/** The static peer's port (a process of its own). */
function startStaticPeer(file: string): Promise<{ address: string; stop: () => void }> {
  const child = spawn(process.execPath, [path.join(REPO, 'dist', 'scripts', 'bench', 'static-peer.js'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').once('data', (d: string) => resolve({ address: `127.0.0.1:${(JSON.parse(d) as { port: number }).port}`, stop: () => child.kill() }));
    child.on('error', reject);
  });
}

/** Run scripts/bench/range-pairs.ts in a process of its own: first-byte ms of `pairs` range pairs on `a` and `b`. */
function rangePairsProcess(a: string, b: string, urlPath: string, size: number, pairs: number): Promise<{ a: number[]; b: number[] }> {
  const child = spawn(process.execPath, [path.join(REPO, 'dist', 'scripts', 'bench', 'range-pairs.js'), a, b, urlPath, String(size), String(pairs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`range-pairs exited with ${String(code)}`));
      else resolve(JSON.parse(out) as { a: number[]; b: number[] });
    });
  });
}

const progress = (what: string): void => { process.stderr.write(`bench:progressive: ${what}\n`); };
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
const fmt = (xs: number[]): string => `p50 ${pct(xs, 50).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms`;

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const seconds = quick ? 10 : 24;
  // /media pairs cost ~3 ms each (from a client process of their own since session 17: range-pairs.ts): enough of them for a stable p99. The 99th of 500 is the 5th slowest, and this VM's
  // hiccups hit whichever request is in flight: over three quiet runs of session 14 it swung 4.9-11.5 ms for ours and
  // 5.5-10.3 ms for the peer (ratios 1.79, 0.47, 1.29). With 2000 pairs (session 15, an idle server on a finished
  // file) the 20th slowest: ours 6.6 ms against the peer's 8.1, and over 8 ms 6 of ours against 20 of its.
  // Previews cost ffmpeg's start (~0.1 s) each.
  const mediaPairs = quick ? 500 : 2000;
  const previews = quick ? 30 : 100;
  const source = await hd1080();
  const machine = watchMachine();
  process.stdout.write(`bench:progressive${quick ? ' --quick' : ''}: ${seconds} s of ${path.basename(source)} (1080p25 H.264 12 Mb/s + AAC, GOP ${GOP_SECONDS} s) written at its real rate\n${machine.startLine}\n`);
  await withScratch('cuemux-bench-progressive-', async (dir) => {
    const root = path.join(dir, 'media');
    await fsp.mkdir(root);
    // The server collects its garbage and reports what is left alive on SIGUSR2 (the probe's preload).
    const gcFile = path.join(dir, 'gc.json');
    const savedEnv = { CUEMUX_GC_PROBE: process.env.CUEMUX_GC_PROBE, NODE_OPTIONS: process.env.NODE_OPTIONS };
    Object.assign(process.env, gcProbeEnv(gcFile, process.env.NODE_OPTIONS ?? ''));
    const started = startBenchServer(['--socket', path.join(dir, 's.sock'), '--media-root', root, '--cache-dir', path.join(dir, 'cache'),
      '--osc-port', '0', '--state-file', 'none', '--http', '127.0.0.1:0', '--growing-wait-ms', '2000',
      // A cue on a growing file is prefetched (and its players prepared) once this much past its in-point is written:
      // half a second (the default 1 s) GOes sooner after the first bytes; the preroll itself holds 0.25 s.
      '--prefetch-seconds', '0.5']);
    const server = await started.finally(() => {
      for (const [k, v] of Object.entries(savedEnv)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
    const client = new MediaClient(`unix:${path.join(dir, 's.sock')}`);
    const osc = await Osc.open(server.oscPort as number);
    // The player: a real play-video following output "video", started before the file exists (as at a show).
    const player = startCuePlayer(path.join(dir, 's.sock'), 'video', dir);
    try {
      const alive = (): void => {
        if (player.child.exitCode !== null || player.child.signalCode !== null) throw new Error(`play-video exited (${String(player.child.exitCode)}):\n${player.stderr().slice(-2000)}`);
      };
      while (!(await client.getStatus()).clients.some((c) => c.output === 'video')) {
        alive();
        await sleep(50);
      }
      await osc.request('/cuemux/clock/play');
      const http = server.http as string;
      const pid = server.child.pid as number;
      const file = path.join(root, 'live.mp4');
      // --- the growth: writer, player, HTTP readers, RSS and size sampled ---
      const sizes = new SizeLog();
      const writer = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-re', '-i', source, '-t', String(seconds), '-map', '0', '-c', 'copy', '-flush_packets', '1',
        '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000', '-f', 'mp4', file], { stdio: ['ignore', 'ignore', 'inherit'] });
      let writing = true;
      const writerDone = new Promise<void>((resolve) => writer.on('exit', () => { writing = false; resolve(); }));
      const rss: number[] = [];
      // Live memory after a full GC around 1/4 and 3/4 of the write: three probes 0.4 s apart at each, the least of
      // them kept. One probe at each was the measure until session 15, and what the server had in flight at that
      // instant (a /media chunk of 256 KiB, a preview's muxer output, a Follow batch of up to 128 KiB, the socket
      // buffers behind them) made it swing: +2.4, +7.8 and +2.7 MiB in three quiet runs of one tree, within 2 MiB in
      // session 14's three. Media buffered as the file grows would be in all three probes of the second point.
      // (Six full GCs in all: each takes a few ms of the event loop that feeds the player.)
      const live: GcProbeRecord[] = [];
      const probes = (async () => {
        const t0 = nowMs();
        let seq = 0;
        for (const at of [0.25, 0.75]) {
          const these: GcProbeRecord[] = [];
          for (const dt of [-0.4, 0, 0.4]) {
            await sleep(Math.max(0, t0 + at * seconds * 1000 + dt * 1000 - nowMs()));
            if (writing) these.push(await probeAfterGc(pid, gcFile, ++seq));
          }
          if (these.length > 0) live.push(these.reduce((a, b) => (liveBytes(b) < liveBytes(a) ? b : a)));
        }
      })();
      const sampler = (async () => {
        let n = 0;
        while (writing) {
          if (existsSync(file)) sizes.add(nowMs(), statSync(file).size);
          if (++n % 40 === 0) rss.push(rssBytes(pid));
          await sleep(5);
        }
        sizes.add(nowMs(), statSync(file).size);
      })();
      // Awaited only after the cue has played: a failure before then must not be an unhandled rejection, which ended
      // the process without its finally blocks and left the server and the player running (session 15: a probe read
      // half-written). Marked handled here; the awaits below still throw it.
      for (const p of [probes, sampler]) p.catch(() => undefined);
      while (!existsSync(file) || statSync(file).size < 64 << 10) await sleep(5);
      // The cue: loaded once the file's header is there, GO'd once play-video has prepared it (its preroll decoded).
      const cueDef = JSON.stringify({ id: 'P', media: 'live.mp4', outputs: { video: ['video'] } });
      while (!(await osc.request('/cuemux/cue/load', 'P', cueDef).then(() => true, () => false))) await sleep(50);
      progress('cue loaded on the growing file');
      const preparing = nowMs();
      while (!preparedCue(player, 'P')) {
        alive();
        if (nowMs() - preparing > 30_000) throw new Error(`play-video did not prepare the cue within 30 s:\n${player.stderr().slice(-3000)}`);
        await sleep(20);
      }
      const goAt = (await serverClock(client)).positionSeconds + 0.2;
      await osc.request('/cuemux/cue/go', 'P', String(goAt));
      progress(`GO at clock ${goAt.toFixed(3)} s`);
      const clock = await serverClock(client);
      const goWrittenBytes = statSync(file).size;
      // The gRPC reader (the packet-level check): OpenMedia, then every packet from the start, following the growth.
      let info = null;
      while (info === null) info = await client.openMedia('live.mp4').catch(async () => { await sleep(50); return null; });
      const playerPackets: Packet[] = [];
      const playerLag: number[] = [];
      const reading = (async () => {
        for await (const b of client.readPackets({ mediaId: info.mediaId, startSeconds: -1e9 })) {
          const now = nowMs();
          for (const p of b.packets) {
            playerPackets.push(p);
            if (p.pos !== undefined) playerLag.push((now - sizes.when(Number(p.pos) + p.data.length)) / 1000);
          }
        }
      })();
      // The HTTP reader: 256 KiB ranges from 0 until the complete length.
      const httpLag: number[] = [];
      let httpBytes = 0;
      let unknownLength = 0;
      const httpChunks: Buffer[] = [];
      const reader = (async () => {
        let complete: number | null = null;
        while (complete === null || httpBytes < complete) {
          const r = await httpGet(http, '/media/live.mp4', { headers: { range: `bytes=${httpBytes}-${httpBytes + (256 << 10) - 1}` } });
          if (r.status === 416) {
            complete = Number(/\/(\d+)$/.exec(String(r.headers['content-range']))?.[1]);
            continue;
          }
          if (r.status !== 206) throw new Error(`/media answered ${r.status}: ${r.body.toString()}`);
          const m = /\/(\d+|\*)$/.exec(String(r.headers['content-range']));
          if (m?.[1] === '*') unknownLength++;
          else complete = Number(m?.[1]);
          httpBytes += r.body.length;
          httpChunks.push(r.body);
          if (writing) httpLag.push((nowMs() - sizes.when(httpBytes)) / 1000);
        }
      })();
      // The growing preview, from the start, kept to compare its packets with the final file's.
      const previewFile = path.join(dir, 'preview.mp4');
      const preview = httpGet(http, '/preview/live.mp4?start=0').then(async (r) => { await fsp.writeFile(previewFile, r.body); return r; });
      await writerDone;
      await sampler;
      await probes;
      await Promise.all([reading, reader]);
      const previewResult = await preview;
      if (previewResult.status !== 200) throw new Error(`/preview of the growing file answered ${previewResult.status}: ${previewResult.body.toString().slice(0, 300)}`);
      const finalSize = statSync(file).size;
      // The cue ends once the clock passes the media's end (the file complete): then the player's logs are whole.
      const probe = await probePackets(file);
      const start = Math.min(...probe.map((q) => q.ptsSeconds ?? Infinity));
      const end = Math.max(...probe.map((q) => q.ptsSeconds ?? -Infinity));
      while ((await serverClock(client)).positionSeconds < goAt + end - start + 0.5) {
        alive();
        await sleep(100);
      }
      const playerExit = await player.stop();
      progress(`the cue played to its end; first bytes against the peers (${mediaPairs} /media pairs, ${previews} previews)`);
      // --- first bytes on the finished file, against the peers ---
      const peer = await startStaticPeer(file);
      const mediaFirst: number[] = [];
      const peerFirst: number[] = [];
      const previewFirst: number[] = [];
      const ffmpegFirst: number[] = [];
      try {
        // The /media pairs on their own, before any preview: a preview's end (its muxer and demuxer closed, its
        // buffers collected) would otherwise land in the next /media request of our server and never in the peer's.
        // From a client process of its own (range-pairs.ts says why).
        const pairs = await rangePairsProcess(http, peer.address, '/media/live.mp4', finalSize, mediaPairs);
        mediaFirst.push(...pairs.a);
        peerFirst.push(...pairs.b);
        for (let i = 0; i < previews; i++) {
          const from = Math.random() * (seconds - 3);
          const ours = async (): Promise<void> => { previewFirst.push((await httpGet(http, `/preview/live.mp4?start=${from.toFixed(3)}&end=${(from + 2).toFixed(3)}`)).firstByteMs); };
          const theirs = async (): Promise<void> => { ffmpegFirst.push(await ffmpegFirstByte(file, from)); };
          if (i % 2 === 0) { await ours(); await theirs(); } else { await theirs(); await ours(); }
        }
      } finally {
        peer.stop();
      }
      // --- the player: its ticks against FFmpeg's decode of the final file, and behind the writer ---
      const videoStream = info.streams.find((st) => st.codecType === 'video')?.index ?? 0;
      const writtenAt = writtenMediaSeconds(probe, videoStream);
      const ref = await framemd5Of(file, path.join(dir, 'final.framemd5'));
      const shown = await judgeCuePlayer(player, ref, clock, goAt, start, end - start, (mono) => writtenAt(sizes.sizeAt(Number(mono) / 1e6)));
      // --- wrong packets: the gRPC reader's against ffprobe and framemd5 of the final file; the preview's against framemd5 ---
      progress('judging against FFmpeg');
      const refMd5 = await packetMd5s(file);
      let wrong = Math.abs(probe.length - playerPackets.length);
      for (let i = 0; i < Math.min(probe.length, playerPackets.length); i++) {
        const a = probe[i];
        const b = playerPackets[i];
        if (a.stream !== b.streamIndex || a.pts !== (b.pts === undefined ? null : Number(b.pts)) || a.pos !== (b.pos === undefined ? null : Number(b.pos)) || a.size !== b.data.length) wrong++;
      }
      const gotMd5 = new Map<number, string[]>();
      for (const p of playerPackets) {
        const list = gotMd5.get(p.streamIndex) ?? [];
        list.push(md5(p.data));
        gotMd5.set(p.streamIndex, list);
      }
      for (const [s, list] of refMd5) list.forEach((m, i) => { if (gotMd5.get(s)?.[i] !== m) wrong++; });
      const previewMd5 = await packetMd5s(previewFile);
      let previewWrong = 0;
      for (const [s, list] of refMd5) {
        const got = previewMd5.get(s) ?? [];
        previewWrong += Math.abs(list.length - got.length) + list.filter((m, i) => got[i] !== m).length;
      }
      const httpSame = Buffer.concat(httpChunks).equals(readFileSync(file));
      // --- report ---
      const lagLine = (xs: number[]): string => `p50 ${pct(xs, 50).toFixed(3)} s, p99 ${pct(xs, 99).toFixed(3)} s, max ${Math.max(...xs).toFixed(3)} s `
        + `(${(Math.max(...xs) / GOP_SECONDS).toFixed(2)} GOP, the ${xs.indexOf(Math.max(...xs)) + 1}th of ${xs.length})`;
      const q = Math.max(1, Math.floor(rss.length / 4));
      const rssFirst = pct(rss.slice(0, q), 50);
      const rssLast = pct(rss.slice(-q), 50);
      const rows: Array<[string, string, boolean]> = [
        ['/media first byte (64 KiB range, finished file)', `${fmt(mediaFirst)}; static peer ${fmt(peerFirst)}; ratio p50 ${(pct(mediaFirst, 50) / pct(peerFirst, 50)).toFixed(2)}, p99 ${(pct(mediaFirst, 99) / pct(peerFirst, 99)).toFixed(2)}`,
          pct(mediaFirst, 50) <= pct(peerFirst, 50) && pct(mediaFirst, 99) <= pct(peerFirst, 99)],
        ['/preview first byte (2 s from a random start)', `${fmt(previewFirst)}; ffmpeg -c copy -f mp4 piped ${fmt(ffmpegFirst)}; ratio p50 ${(pct(previewFirst, 50) / pct(ffmpegFirst, 50)).toFixed(2)}, p99 ${(pct(previewFirst, 99) / pct(ffmpegFirst, 99)).toFixed(2)}`,
          pct(previewFirst, 50) <= pct(ffmpegFirst, 50) && pct(previewFirst, 99) <= pct(ffmpegFirst, 99)],
        ['play-video (a cue GO\'d on the growing file) behind the writer', `${lagLine(shown.behind)} over ${shown.ticks} ticks in the cue; GO when ${(goWrittenBytes / 2 ** 20).toFixed(1)} MiB `
          + `(${writtenAt(goWrittenBytes).toFixed(2)} s) were written`, shown.ticks > 0 && Math.max(...shown.behind) <= GOP_SECONDS && Math.min(...shown.behind) >= 0],
        ['play-video wrong frames (hash sink vs FFmpeg\'s decode of the final file)', `${shown.wrong} of ${shown.ticks} ticks in the cue (${shown.kinds.black} black, ${shown.kinds.held} held, ${shown.kinds.other} another picture; `
          + `${shown.logged} ticks logged; exit ${String(playerExit)})`
          + `${shown.examples.length > 0 ? `; first: ${shown.examples.join('; ')}` : ''}`, shown.ticks > 0 && shown.wrong === 0 && playerExit === 0],
        ['gRPC reader (ReadPackets) behind the writer', `${lagLine(playerLag)} over ${playerLag.length} packets`, Math.max(...playerLag) <= GOP_SECONDS],
        ['HTTP /media reader behind the writer', `${lagLine(httpLag)} over ${httpLag.length} ranges while it grew (${unknownLength} answered bytes A-B/*)`, httpLag.length > 0 && Math.max(...httpLag) <= GOP_SECONDS],
        ['HTTP bytes read / file size', `${(httpBytes / finalSize).toFixed(4)} (${httpBytes} / ${finalSize}); bytes equal the file: ${httpSame}`, httpBytes <= 1.05 * finalSize && httpSame],
        ['server memory as the file grew (no media buffered)', `live after a full GC at 1/4 of the write ${mib(live[0] === undefined ? NaN : liveBytes(live[0]))} MiB, at 3/4 `
          + `${mib(live[1] === undefined ? NaN : liveBytes(live[1]))} MiB (least of three probes each; heap less code / external / of it spare message buffers: ${live.map((r) => `${mib(r.heapUsed - r.code)} / ${mib(r.external)} / ${mib(r.spareFrames ?? 0)}`).join(' then ')}) (target: at most ${mib(LIVE_GROWTH_BYTES)} MiB more); RSS first quarter ${mib(rssFirst)} MiB, `
          + `last quarter ${mib(rssLast)} MiB, max ${mib(Math.max(...rss))} MiB (${rss.length} samples)`,
          live.length === 2 && liveBytes(live[1]) - liveBytes(live[0]) <= LIVE_GROWTH_BYTES],
        ['wrong packets (gRPC reader vs ffprobe + framemd5 of the final file)', `${wrong} of ${probe.length}`, wrong === 0],
        ['wrong packets (growing preview vs framemd5 of the final file)', `${previewWrong} (preview ${previewResult.body.length} bytes, first byte ${previewResult.firstByteMs.toFixed(1)} ms)`, previewWrong === 0],
      ];
      for (const [what, figures, ok] of rows) process.stdout.write(`${passIf(ok)}  ${what}: ${figures}\n`);
      process.stdout.write(`${machine.endLine()}\n`);
    } finally {
      await player.stop();
      osc.close();
      client.close();
      await server.stop();
    }
  });
}

if (require.main === module) runBench('bench:progressive', main);

