/**
 * bench:sync's real-output mode (`--outputs real`): the same show with the players on real outputs, judged from
 * outside them. A JACK server of its own on the `dummy` driver and an Xvfb display; `play-audio --device jack` and
 * `play-video --window` (SDL2) follow the cue.
 * - audio: a recorder JACK client (./jack) connected to the player's ports takes what the device consumed in every
 *   cycle, with the cycle's first frame and start on JACK's own frame time; each sample departs at its cycle's start +
 *   its offset in the cycle + the playback latency JACK reports for the system's playback port. Per cycle, the
 *   offset (samples) at which the samples equal FFmpeg's decode for the clock's media time at their departure:
 *   |departure − clock| p50/p99/max; slewed (interpolated), silent and unmatched cycles counted.
 * - video: an X client of its own (./x-display, window-observer.py) takes the X server's damage reports for the
 *   window and reads its pixels back at each: the instant each new picture was in the window, and the picture,
 *   8x8-averaged, identified against FFmpeg's decode scaled to the window (nearest frame by error, PSNR reported).
 *   Lateness at the window: the instant a frame first appeared − the display tick it was due at (the first tick of
 *   the player's grid at or after the clock reaches the frame's time); frames never seen, and pictures that are not
 *   FFmpeg's or go backwards, counted.
 * Peers in the same run, on the same players' outputs (same processes, same ticks and periods, same scheduling):
 * play-audio's `raw:` FIFO sink read by `aplay -D jack` (alsa-lib's jack PCM, Debian libasound2-plugins) into the same
 * JACK server, recorded by the same recorder; play-video's `y4m:` FIFO sink read by `ffplay` into a window on the same
 * display, watched by the same observer. Their offset is what a technician piping the players into those programs
 * gets: their buffers' latency, which nothing compensates.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaClient } from '../../src/clients/media-client';
import { makeMedia } from '../../test/support/media';
import { CLI, startBenchServer } from './harness';
import { JackRecorder, startJackd, type Recording } from './jack';
import { schedulingOf, watchMachine } from './machine';
import { Osc } from './osc';
import { readTicks, type Tick } from './presented';
import { spawnNode, type NodeChild } from './procs';
import { frameAt } from './reference';
import { ms, passIf, pct } from './stats';
import { blockOffset, blockSilent, CHANNELS, clockAt, generationWarning, IN_POINT, monoAt, playCue, SAMPLE_RATE, type Clock, type CuePlay, type SyncMedia, type SyncOptions } from './sync-show';
import { observeWindows, startDisplay, type WindowChange } from './x-display';

/** JACK frames per cycle (5.33 ms at 48 kHz). */
const PERIOD = 256;
/** Both windows: 384x216 (1080p / 5), side by side. */
const WIN = { w: 384, h: 216 };
/** Pictures are compared averaged over squares of this many pixels (48x27 of them). */
const BLOCK_PX = 8;
const THUMB_BYTES = (WIN.w / BLOCK_PX) * (WIN.h / BLOCK_PX) * 3;
/** The window titles: play-video's (`cuemux OUTPUT`) and ffplay's. */
const OUR_TITLE = 'cuemux video';
const FFPLAY_TITLE = 'cuemux-bench-ffplay';
/**
 * A window picture is FFmpeg's frame when its block-averaged PSNR against it is at least this (dB): measured 43 dB for
 * both windows on the 180p cue, 20-22 dB against the neighbouring frames.
 */
const MIN_PSNR_DB = 35;
/** A picture is looked for among the frames from this many before the one for the clock to 5 after (5 s at 25 fps: ffplay lagged by up to 1 s in 50 s under load). */
const LOOK_BACK = 125;
/** How far (samples) around the previous cycle's offset a cycle's samples are looked for in FFmpeg's decode (1.5 s). */
const SEARCH = Math.round(1.5 * SAMPLE_RATE);

/**
 * FFmpeg's decode of `media` as the windows show it, 8x8-averaged: scaled to 384x216 (limited range, SDL's matrix;
 * swscale's bilinear, as the renderer's linear filter) then averaged over 8x8 squares, rgb24,
 * one {@link THUMB_BYTES} record per frame in presentation order. Cached beside the media.
 */
export function windowThumbs(media: string): Promise<string> {
  const height = Number(spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=height', '-of', 'csv=p=0', media], { encoding: 'utf8' }).stdout.trim());
  // SDL's YUV conversion (ffplay's too): BT.601 up to 576 lines, BT.709 above. With the other matrix the 180p cue's
  // pictures matched at 25 dB instead of 43 (their neighbouring frames 20-22 dB).
  const matrix = height > 576 ? 'bt709' : 'bt601';
  return makeMedia(`${path.basename(media)}.win${WIN.w}x${WIN.h}-b${BLOCK_PX}.rgb`, ['-i', media, '-map', '0:v:0', '-fps_mode', 'passthrough', '-vf',
    `scale=${WIN.w}:${WIN.h}:flags=bilinear:in_color_matrix=${matrix}:in_range=tv,format=rgb24,scale=${WIN.w / BLOCK_PX}:${WIN.h / BLOCK_PX}:flags=area`, '-f', 'rawvideo']);
}

/** Audio figures of one player's JACK ports. */
interface JackAudio {
  cycles: number;
  /** Offset of each matched cycle (samples): + the samples departing are later media than the clock asks for. */
  offsets: number[];
  exact: number;
  slewed: number;
  silent: number;
  unmatched: number;
}

/**
 * Judge input pair `pair` of the recording: each cycle wholly inside [from, to) of the clock (at its departures)
 * against FFmpeg's samples for the clock's media time.
 */
function judgeJack(rec: Recording, pair: number, media: SyncMedia, clock: Clock, latencyFrames: number, from: number, to: number, mediaAt: (c: number) => number): JackAudio {
  const f: JackAudio = { cycles: 0, offsets: [], exact: 0, slewed: 0, silent: 0, unmatched: 0 };
  const frameNs = 1e9 / SAMPLE_RATE;
  let hint = 0;
  for (const cy of rec.cycles) {
    if (cy.at < 0) continue;
    const dep = cy.monoNs + BigInt(Math.round(latencyFrames * frameNs));
    const c0 = clockAt(clock, dep);
    if (c0 < from || clockAt(clock, dep + BigInt(Math.round(cy.frames * frameNs))) > to) continue;
    f.cycles++;
    const want = Math.round((mediaAt(c0) - media.refFirst) * SAMPLE_RATE);
    const base = cy.at * rec.inputs + pair * CHANNELS;
    const d = blockOffset(rec.samples, base, rec.inputs, cy.frames, media.refA, want, SEARCH, hint);
    if (d !== null) {
      f.exact++;
      f.offsets.push(d);
      hint = d;
      continue;
    }
    if (blockSilent(rec.samples, base, rec.inputs, cy.frames)) {
      f.silent++;
      continue;
    }
    // A slewed stretch (the player interpolates while it catches up with the clock, its read position moving by up to
    // 0.5 % a sample) is not bit-exact: it is placed in pieces of 32 frames (a JACK cycle may hold the end of one and
    // the start of an exact stretch), each at the nearest d within a period of the last offset at which its every
    // sample lies within FFmpeg's k+d-1 .. k+d+2 (pink noise: a wrong d fails on a few samples of 32); the cycle's
    // offset is its first piece's.
    const between = (first: number, n: number, off: number): boolean => {
      if (want + off + first < 1 || (want + off + first + n + 2) * CHANNELS > media.refA.length) return false;
      for (let i = first; i < first + n; i++) {
        for (let ch = 0; ch < CHANNELS; ch++) {
          let lo = Infinity;
          let hi = -Infinity;
          for (let j = -1; j <= 2; j++) {
            const r = media.refA[(want + off + i + j) * CHANNELS + ch];
            lo = Math.min(lo, r);
            hi = Math.max(hi, r);
          }
          const x = rec.samples[base + i * rec.inputs + ch];
          if (!(x >= lo - 1e-7 && x <= hi + 1e-7)) return false;
        }
      }
      return true;
    };
    const place = (first: number, n: number): number | null => {
      for (let m = 0; m <= PERIOD; m++) {
        const d = [hint + m, hint - m].find((off) => between(first, n, off));
        if (d !== undefined) return d;
      }
      return null;
    };
    const pieces: Array<number | null> = [];
    for (let first = 0; first < cy.frames; first += 32) pieces.push(place(first, Math.min(32, cy.frames - first)));
    const s = pieces.every((d) => d !== null) ? pieces[0] : null;
    if (s !== null) {
      f.slewed++;
      f.offsets.push(s);
    } else f.unmatched++;
  }
  return f;
}

/** Video figures of one window. */
interface WindowVideo {
  /** Frames of FFmpeg's decode due inside the judged span. */
  frames: number;
  /** Of those, never seen in the window. */
  missing: number;
  /** Window pictures not FFmpeg's (no frame within the PSNR bound), or going back to an earlier frame. */
  wrong: number;
  backwards: number;
  /** First appearance − the frame's display tick (ours only), s. */
  late: number[];
  /** First appearance − the instant the clock reaches the frame's time, s. */
  offset: number[];
  /** `late` and `offset` with the X server's own timestamp of the first appearance instead (whole ms, + 0.5 ms). */
  lateServer: number[];
  offsetServer: number[];
  /** PSNR of each identified picture against FFmpeg's, dB. */
  psnr: number[];
}

/** How long after the X server's own timestamp of a report the observer read it, ms (the stamp is whole ms, 32 bits). */
function readDelayMs(c: WindowChange): number {
  return (Number((c.monoNs / 1_000_000n) % 4294967296n) - c.serverMs + 4294967296) % 4294967296;
}

/**
 * The X server's own instant of a report on CLOCK_MONOTONIC (Xvfb's clock; whole ms, truncated: + 0.5 ms). It can be
 * early by the rest of the server's dispatch round, as the observer's instant can be late by its own wait: the two
 * bracket the picture's arrival.
 */
function serverInstant(c: WindowChange): bigint {
  return (c.monoNs / 1_000_000n - BigInt(readDelayMs(c))) * 1_000_000n + 500_000n;
}

/** Sum of squared differences of two pictures, given up once above `bound` (then some value above it). */
function sse(a: Uint8Array, b: Uint8Array, bound: number): number {
  let se = 0;
  for (let i = 0; i < a.length && se <= bound; i++) {
    const e = a[i] - b[i];
    se += e * e;
  }
  return se;
}

/** PSNR (dB) of a sum of squared differences over `n` bytes; 99 for identical pictures. */
const psnrOf = (se: number, n: number): number => (se === 0 ? 99 : 10 * Math.log10((255 * 255 * n) / se));

/**
 * Judge a window's changes: each picture identified as FFmpeg's frame (best PSNR among the frames around the one for
 * the clock at the change), each frame due in [from, to) by its first appearance; `grid` is our player's display grid
 * (its first tick's display instant and the tick period), null for a peer without one.
 */
function judgeWindow(changes: WindowChange[], thumbs: Uint8Array, media: SyncMedia, play: CuePlay, from: number, to: number,
  grid: { firstNs: bigint; periodNs: number } | null): WindowVideo {
  const { refV } = media;
  const f: WindowVideo = { frames: 0, missing: 0, wrong: 0, backwards: 0, late: [], offset: [], lateServer: [], offsetServer: [], psnr: [] };
  const firstSeen = new Map<number, WindowChange>();
  let last = -1;
  for (const ch of changes) {
    const c = clockAt(play.clock, ch.monoNs);
    if (c < from - 0.5 || c > to + 2) continue;
    const e = frameAt(refV, play.mediaAt(c));
    let best = -1;
    let bestSe = Infinity;
    for (let n = Math.max(0, e - LOOK_BACK); n <= Math.min(refV.pts.length - 1, e + 5); n++) {
      const se = sse(ch.thumb, thumbs.subarray(n * THUMB_BYTES, (n + 1) * THUMB_BYTES), bestSe);
      if (se < bestSe || (se === bestSe && Math.abs(n - e) < Math.abs(best - e))) [best, bestSe] = [n, se];
    }
    const bestDb = psnrOf(bestSe, THUMB_BYTES);
    if (best < 0 || bestDb < MIN_PSNR_DB) {
      if (c >= from && c < to) f.wrong++;
      continue;
    }
    f.psnr.push(bestDb);
    if (best < last) {
      f.backwards++;
      continue;
    }
    last = best;
    if (!firstSeen.has(best)) firstSeen.set(best, ch);
  }
  for (let n = 0; n < refV.pts.length; n++) {
    // The clock reaches frame n's time at T.
    const clockOfFrame = play.goAt + (refV.pts[n] - media.start - IN_POINT);
    if (clockOfFrame < from || clockOfFrame >= to) continue;
    f.frames++;
    const seen = firstSeen.get(n);
    if (seen === undefined) {
      f.missing++;
      continue;
    }
    const T = monoAt(play.clock, clockOfFrame);
    for (const [at, late, offset] of [[seen.monoNs, f.late, f.offset], [serverInstant(seen), f.lateServer, f.offsetServer]] as const) {
      offset.push(Number(at - T) / 1e9);
      if (grid !== null) {
        // The first display tick at or after T on the player's grid (a tick it skipped counts: the frame was due there).
        const k = Math.ceil(Number(T - grid.firstNs) / grid.periodNs - 1e-6);
        late.push((Number(at - grid.firstNs) - k * grid.periodNs) / 1e9);
      }
    }
  }
  return f;
}

/** `[min, max]` of a list, for messages. */
const max = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => (b > a ? b : a)));

/** A program of the run (not a Node player) with its stderr in a file. */
function spawnLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv, log: string): { child: ChildProcess; exited: Promise<number | null> } {
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  return { child, exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGTERM' ? 0 : null)))) };
}

/** The real-output mode (see the file's comment); the report's lines. */
export async function runRealOutputs(run: string, media: SyncMedia, o: SyncOptions): Promise<string[]> {
  const missing = ['jackd', 'Xvfb', 'aplay', 'ffplay', 'python3'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length > 0) throw new Error(`--outputs real needs ${missing.join(', ')} (Debian jackd2, xvfb, alsa-utils with libasound2-plugins, ffmpeg, python3-numpy)`);
  process.stderr.write('bench:sync: FFmpeg\'s decode scaled to the window (cached after the first run)...\n');
  const thumbs = new Uint8Array(await fsp.readFile(await windowThumbs(media.file)));
  if (thumbs.length !== media.refV.pts.length * THUMB_BYTES) throw new Error(`the window reference has ${thumbs.length / THUMB_BYTES} frames, framemd5 ${media.refV.pts.length}`);
  const file = (n: string): string => path.join(run, n);
  const machine = watchMachine();
  const jackName = `cuemux-bench-sync-${process.pid}`;
  const jack = await startJackd(jackName, SAMPLE_RATE, PERIOD);
  const cleanups: Array<() => Promise<void> | void> = [() => jack.stop()];
  const x = await startDisplay(2 * WIN.w, WIN.h);
  cleanups.push(() => x.stop());
  const env = { ...process.env, JACK_DEFAULT_SERVER: jackName, DISPLAY: x.display };
  const children: Array<{ name: string; child: ChildProcess; exited: Promise<number | null> }> = [];
  try {
    for (const f of ['audio.fifo', 'video.fifo']) if (spawnSync('mkfifo', [file(f)]).status !== 0) throw new Error(`mkfifo ${file(f)} failed`);
    const socket = file('cuemux.sock');
    const server = await startBenchServer(['--socket', socket, '--media-root', media.root, '--osc-port', '0', '--state-file', 'none']);
    cleanups.push(() => server.stop());
    const player = (name: string, args: string[]): NodeChild => {
      const fd = openSync(file(`${name}.log`), 'a');
      const p = spawnNode([...o.nodeArgs, CLI, '--log-level', 'info', ...args], ['ignore', 'ignore', fd], env);
      closeSync(fd);
      children.push({ name, ...p });
      return p;
    };
    const audio = player('play-audio', ['play-audio', '--socket', socket, '--output', 'audio', '--device', 'jack:cuemux-bench-audio',
      '--sink', `raw:${file('audio.fifo')}`, '--sync-log', file('audio.jsonl')]);
    const video = player('play-video', ['play-video', '--socket', socket, '--output', 'video', '--fps', String(o.fps), '--window', `${WIN.w}x${WIN.h}+0+0`,
      '--window-scale', 'linear', '--sink', `y4m:${file('video.fifo')}`, '--sink', `hash:${file('video-hash.jsonl')}`, '--sync-log', file('video.jsonl')]);
    // The peers as the README pipes the players into them, aplay through alsa-lib's jack PCM to the same server.
    const aplayArgs = ['-q', '-D', 'jack', '-t', 'raw', '-f', 'FLOAT_LE', '-r', String(SAMPLE_RATE), '-c', String(CHANNELS), file('audio.fifo')];
    const aplay = spawnLogged('aplay', aplayArgs, env, file('aplay.log'));
    children.push({ name: 'aplay', ...aplay });
    const ffplayArgs = ['-hide_banner', '-loglevel', 'error', '-nostats', '-an', '-sn', '-window_title', FFPLAY_TITLE, '-x', String(WIN.w), '-y', String(WIN.h),
      '-left', String(WIN.w), '-top', '0', '-noborder', '-f', 'yuv4mpegpipe', '-i', file('video.fifo')];
    const ffplay = spawnLogged('ffplay', ffplayArgs, env, file('ffplay.log'));
    children.push({ name: 'ffplay', ...ffplay });
    const alive = (): boolean => children.every((c) => c.child.exitCode === null && c.child.signalCode === null);

    // The recorder: inputs 1-2 from play-audio's ports, 3-4 from aplay's (alsa-lib names its client aplay.P.PID.N),
    // connected once each client is active.
    const recorder = new JackRecorder('cuemux-bench-recorder', jackName, 2 * CHANNELS);
    cleanups.push(() => recorder.close());
    const sources = (): string[] | null => {
      const all = recorder.ports();
      const ours = ['cuemux-bench-audio:out_1', 'cuemux-bench-audio:out_2'];
      const theirs = all.filter((p) => new RegExp(`^aplay\\.P\\.${aplay.child.pid}\\.\\d+:out_00[01]$`).test(p)).sort();
      return ours.every((p) => all.includes(p)) && theirs.length === 2 ? [...ours, ...theirs] : null;
    };
    const done = new Set<number>();
    let connected = false;
    for (let i = 0; i < 300 && !connected; i++) {
      if (!alive()) throw new Error(`a process of the run exited: ${children.filter((c) => c.child.exitCode !== null).map((c) => `${c.name} (see ${file(`${c.name}.log`)})`).join(', ')}`);
      const s = sources();
      s?.forEach((p, k) => {
        try {
          if (!done.has(k)) recorder.connect(p, k);
          done.add(k);
        } catch {
          // aplay's client registers its ports before it is activated; a connection waits for that.
        }
      });
      connected = done.size === 2 * CHANNELS;
      if (!connected) await sleep(100);
    }
    if (!connected) throw new Error(`the players' JACK ports did not all appear in 30 s: ${recorder.ports().join(', ')}`);
    const latency = recorder.latency('system:playback_1').max;
    const observer = await observeWindows(x.display, file('windows.bin'), [OUR_TITLE, FFPLAY_TITLE], WIN.w, WIN.h, BLOCK_PX);
    cleanups.push(() => { if (observer.child.exitCode === null) observer.child.kill('SIGKILL'); });
    const pids: Record<string, number> = {
      server: server.child.pid as number, 'play-audio': audio.child.pid as number, 'play-video': video.child.pid as number,
      aplay: aplay.child.pid as number, ffplay: ffplay.child.pid as number, jackd: jack.child.pid as number, Xvfb: x.child.pid as number,
      'window observer': observer.child.pid as number,
    };
    const client = new MediaClient(socket);
    const osc = await Osc.open(server.oscPort as number);
    cleanups.push(() => { client.close(); osc.close(); });
    const play = await playCue(client, osc, media, o.seconds, 2, alive, pids);
    const sched = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, schedulingOf(pid)]));
    const xruns = recorder.xruns;
    const recording = recorder.stop();
    const watched = await observer.stop();
    for (const c of children) c.child.kill('SIGTERM');
    // Our players must stop cleanly; the peers are stopped by the signal (aplay exits 1, ffplay 123 on SIGTERM).
    const codes = await Promise.all(children.map((c) => c.exited));
    const bad = children.filter((c, k) => (c.name === 'play-audio' || c.name === 'play-video') && codes[k] !== 0);
    if (bad.length > 0) throw new Error(`${bad.map((c) => `${c.name} exited ${String(c.child.exitCode)}`).join(', ')} (logs in ${run}: --keep DIR keeps them)`);

    process.stderr.write('bench:sync: judging what JACK and the X server received against FFmpeg...\n');
    const from = play.goAt + 0.5;
    const to = play.goAt + o.seconds - 0.05;
    const ours = judgeJack(recording, 0, media, play.clock, latency, from, to, play.mediaAt);
    const peerA = judgeJack(recording, 1, media, play.clock, latency, from, to, play.mediaAt);
    const ticks: Tick[] = await readTicks(file('video-hash.jsonl'), file('video.jsonl'));
    if (ticks.length === 0) throw new Error('play-video logged no tick');
    const grid = { firstNs: ticks.reduce((a, t) => (t.due < a ? t.due : a), ticks[0].due), periodNs: 1e9 / o.fps };
    const v = judgeWindow(watched.changes.filter((c) => c.window === 0), thumbs, media, play, from, to, grid);
    const pv = judgeWindow(watched.changes.filter((c) => c.window === 1), thumbs, media, play, from, to, null);
    // The player's own figure, for comparison: tick → SDL_RenderPresent returned, from its sync log.
    const presentNs = ticks.flatMap((t) => (typeof t.extra?.present_ns === 'number' ? [t.extra.present_ns / 1e9] : []));
    const windowLine = (await fsp.readFile(file('play-video.log'), 'utf8')).split('\n').find((l) => l.includes('video window open'));
    const renderer = windowLine === undefined ? 'its log has no window line' : (JSON.parse(windowLine.slice(windowLine.indexOf('{'))) as { message: string }).message;

    // How long after the X server's own timestamp of each report the observer read it (the server's clock is
    // CLOCK_MONOTONIC in whole ms, truncated: 0-1 ms is "at once").
    const readDelay = watched.changes.map(readDelayMs);
    const absMs = (f: JackAudio): number[] => f.offsets.map((d) => Math.abs(d) / SAMPLE_RATE);
    const aLine = (f: JackAudio): string => `|departure − clock| p50 ${ms(pct(absMs(f), 50))} ms  p99 ${ms(pct(absMs(f), 99))} ms  max ${ms(max(absMs(f)))} ms ` +
      `(${f.cycles} JACK cycles: ${f.exact} bit-exact, ${f.offsets.filter((d) => Math.abs(d) <= 1).length} within ±1 sample, ${f.slewed} slewed, ${f.silent} silent, ${f.unmatched} not FFmpeg's within ±1.5 s)`;
    const aOk = (f: JackAudio): boolean => f.cycles > 0 && pct(absMs(f), 99) <= 0.001 && f.silent === 0 && f.unmatched === 0;
    const signedMs = (f: JackAudio): string => ms(-pct(f.offsets, 50) / SAMPLE_RATE);
    const vCounts = (f: WindowVideo): string => `${f.frames} frames due: ${f.missing} never in the window, ${f.wrong} pictures not FFmpeg's, ${f.backwards} going back; ` +
      `PSNR against FFmpeg scaled, 8x8-averaged: p50 ${pct(f.psnr, 50).toFixed(1)} dB, min ${Math.min(...f.psnr).toFixed(1)} dB`;
    const vOk = v.frames > 0 && pct(v.late, 99) <= 0.001 && v.missing === 0 && v.wrong === 0 && v.backwards === 0;
    const ratio = (peer: number, ours: number): string => (ours > 0 ? `${(peer / ours).toFixed(1)}×` : 'infinitely');
    const dist = (xs: number[]): string => `p50 ${ms(pct(xs, 50))} ms  p99 ${ms(pct(xs, 99))} ms  max ${ms(max(xs))} ms`;
    return [
      `bench:sync (real outputs) — ${o.seconds} s cue of ${path.basename(media.file)}: play-audio --device jack into jackd's dummy driver (${SAMPLE_RATE} Hz, ${PERIOD}-frame cycles, ` +
        `playback latency ${latency} frames, ${jack.realtime ? 'real-time' : 'no real-time'}); play-video --window ${WIN.w}x${WIN.h} at ${o.fps} ticks/s on Xvfb ${x.display} (${renderer})`,
      `Peers, the same players in the same run: play-audio's raw:FIFO sink read by \`aplay ${aplayArgs.slice(0, -1).join(' ')} FIFO\` into the same JACK server (alsa-lib's jack PCM); ` +
        `play-video's y4m:FIFO sink read by \`ffplay -f yuv4mpegpipe\` into a ${WIN.w}x${WIN.h} window on the same display`,
      `Judged from outside: audio as a recorder JACK client took it from each program's ports, every cycle, departing at the cycle's start (JACK's frame time) + its offset + the playback latency; ` +
        `video by the X server's damage reports for each window (an X client of its own, ${sched['window observer']}) and the window's pixels read back, against FFmpeg's decode scaled to the window; ` +
        `clock = the server's ClockState; span judged ${ms(from - play.goAt)} ms after the GO to the cue's end`,
      machine.startLine,
      `audio  play-audio --device jack: ${aLine(ours)}   target p99 ≤ 1 ms, none silent or wrong: ${passIf(aOk(ours))}`,
      `peer   aplay from the FIFO:      ${aLine(peerA)}; its samples leave ${signedMs(peerA)} ms after their clock time (median); ` +
        `play-audio's p99 is ${ratio(pct(absMs(peerA), 99), pct(absMs(ours), 99))} lower`,
      `video  play-video --window: lateness at the window (a frame's first appearance − its display tick) ${dist(v.late)}; ${vCounts(v)}   target p99 ≤ 1 ms, none missing or wrong: ${passIf(vOk)}`,
      `       first appearance − the clock reaching the frame's time (waiting for the tick included): ${dist(v.offset)}; the player's own figure, tick → SDL_RenderPresent returned: ${dist(presentNs)}`,
      `       the same by the X server's own timestamps of the reports (whole ms): lateness at the window ${dist(v.lateServer)}; first appearance − the clock ${dist(v.offsetServer)}`,
      `peer   ffplay from the FIFO: first appearance − the clock reaching the frame's time ${dist(pv.offset)}; ${vCounts(pv)}; ` +
        `play-video's p99 of that is ${ratio(pct(pv.offset, 99), pct(v.offset, 99))} lower; ` +
        `by the X server's timestamps ${dist(pv.offsetServer)}`,
      `       windows: ${Object.entries(watched.counters).map(([k, c]) => `"${k}" ${c === null ? 'never seen' : `${c.reports} damage reports, ${c.changes} new pictures`}`).join('; ')}; ` +
        `the observer read each report after the X server's timestamp of it (whole ms) by p50 ${pct(readDelay, 50)} ms, p99 ${pct(readDelay, 99)} ms, max ${max(readDelay)} ms; ` +
        `JACK: ${recording.cycles.length} cycles recorded, ${xruns} xruns`,
      ...generationWarning(play),
      `Scheduling (main threads): ${Object.entries(sched).map(([k, s]) => `${k} ${s}`).join(', ')}`,
      `CPU (% of one core): ${Object.entries(play.cpu).map(([k, c]) => `${k} ${c.toFixed(1)}`).join(', ')}`,
      machine.endLine(),
    ];
  } finally {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    for (const f of cleanups.reverse()) await f();
  }
}
