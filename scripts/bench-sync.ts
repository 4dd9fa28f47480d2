/**
 * `npm run bench:sync` — how closely the reference players present on the show clock over a long cue, judged from
 * outside. A `cuemux serve`, a `cuemux play-audio` and two `cuemux play-video` run as separate processes; one cue
 * (1080p25 H.264 + pink-noise AAC, 5 minutes by default) is loaded, fired over OSC and plays to its end. The clock is
 * the server's (its ClockState anchor on CLOCK_MONOTONIC, read over gRPC), never a player's; the reference is
 * FFmpeg's own decode of the file.
 * - video: each player's hash sink (the MD5 of every presented picture, at its presentation instant) against
 *   `ffmpeg -f framemd5` for the media time the clock maps that instant to: wrong pictures; tick lateness
 *   (presentation instant − display instant, the display instants checked to lie on one grid of the tick period);
 *   display slots of that grid with nothing presented (skipped ticks), counted as failures of their own;
 * - audio: the samples the player's WAV sink received, by their position in the file (device sample k plays at the
 *   device's start + k / 48000 s), against FFmpeg's decoded samples at the media time the clock asks for then: each
 *   10 ms block's offset from where it belongs (p50/p99/max), blocks silent or not FFmpeg's at any nearby offset;
 * - CPU of each process (share of one core, from /proc/PID/stat).
 * The peer, in the same run on the same cue: the same video player under the same scheduling (SCHED_FIFO presenting
 * thread where allowed) with the same hash sink, ticking on Node timers alone (`--spin-ms 0`), which is how a player
 * built on setTimeout/setInterval presents.
 *
 * `--outputs real` (in the default run after the sinks, on a server of its own) plays the same cue into a JACK server
 * and an SDL window on Xvfb, with aplay and ffplay reading the same players' FIFO sinks as peers: see
 * bench/sync-real.ts.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { MediaClient } from '../src/clients/media-client';
import { readSyncLog } from '../src/players/sync-log';
import { CLI, runBench, startBenchServer, withScratch } from './bench/harness';
import { schedulingOf, watchMachine } from './bench/machine';
import { Osc } from './bench/osc';
import { readTicks, wavSamples, type Tick } from './bench/presented';
import { spawnNode, type NodeChild } from './bench/procs';
import { frameAt, type RefVideo } from './bench/reference';
import { runRealOutputs } from './bench/sync-real';
import { blockOffset, blockSilent, CHANNELS, clockAt, generationWarning, playCue, prepareSyncMedia, SAMPLE_RATE, type Clock, type SyncMedia, type SyncOptions } from './bench/sync-show';
import { ms, passIf, pct } from './bench/stats';

const USAGE = `Usage: npm run bench:sync -- [--outputs sinks,real] [--seconds N] [--fps RATE] [--small]
  --outputs LIST  sinks (WAV and hash sinks), real (JACK dummy server and an SDL window on Xvfb, with aplay and ffplay
                  reading FIFOs as peers), or both one after the other (default sinks,real)
  --seconds N     cue length in seconds (default 300)
  --fps RATE      the video players' display rate (default 60)
  --small         320x180 video instead of 1080p (a quick run)
  --profile DIR   write a V8 CPU profile of each player into DIR (node --cpu-prof)
  --keep DIR      copy the players' outputs and logs (hash logs, sync logs, the WAV, the window observer's record)
                  into DIR, to look at a miss
`;

/** Audio is judged in blocks of this many device samples (10 ms). */
const BLOCK = 480;
/** How far from where the clock puts it a block of samples is looked for in FFmpeg's decode (1 s). */
const SEARCH = SAMPLE_RATE;

/** A video player's figures over the cue. */
interface VideoFigures {
  /** Ticks presented inside the cue. */
  ticks: number;
  /** Of those, pictures not FFmpeg's frame for the clock (black included). */
  wrong: number;
  /** Display slots inside the cue with nothing presented. */
  skipped: number;
  /** Ticks whose display instant is off the player's tick grid (should be 0). */
  offGrid: number;
  /** Presentation instant − display instant of each tick, s. */
  late: number[];
  /** The first wrong ticks, for the report. */
  examples: string[];
}

/**
 * Judge a video player's ticks: every tick whose clock falls inside [from, to) against FFmpeg's frame for the media
 * time `mediaAt(clock)`, and the display grid (period `periodNs`) for slots left out.
 */
function judgeVideo(ticks: Tick[], ref: RefVideo, clock: Clock, from: number, to: number, mediaAt: (c: number) => number, periodNs: number): VideoFigures {
  const inside = ticks.filter((t) => {
    const c = clockAt(clock, t.mono);
    return c >= from && c < to;
  });
  const f: VideoFigures = { ticks: inside.length, wrong: 0, skipped: 0, offGrid: 0, late: [], examples: [] };
  if (inside.length === 0) return f;
  const due0 = inside[0].due;
  let lastSlot = -1;
  for (const t of inside) {
    const c = clockAt(clock, t.mono);
    const frame = frameAt(ref, mediaAt(c));
    const want = frame < 0 ? null : ref.md5[frame];
    if (t.md5 !== want) {
      f.wrong++;
      if (f.examples.length < 5) f.examples.push(`clock ${c.toFixed(4)}: showed ${t.md5 === null ? 'black' : ref.md5.indexOf(t.md5) >= 0 ? `frame ${ref.md5.indexOf(t.md5)}` : 'an unknown picture'}, FFmpeg's frame ${frame}`);
    }
    f.late.push(Number(t.mono - t.due) / 1e9);
    const exact = Number(t.due - due0) / periodNs;
    const slot = Math.round(exact);
    if (Math.abs(exact - slot) * periodNs > 2000) f.offGrid++;
    if (lastSlot >= 0 && slot > lastSlot + 1) f.skipped += slot - lastSlot - 1;
    lastSlot = Math.max(lastSlot, slot);
  }
  return f;
}

/** The audio player's figures over the cue. */
interface AudioFigures {
  blocks: number;
  /** Offset of each block found in FFmpeg's samples from where the clock puts it, in samples (+: late media). */
  offsets: number[];
  /** Blocks all silence. */
  silent: number;
  /** Blocks not FFmpeg's at any offset within ±1 s (partly silent: samples not decoded in time; or altered). */
  unmatched: number;
}

/**
 * Judge the samples the sink received: block k·BLOCK of `wav` plays at `deviceStartNs + k·BLOCK / rate`; FFmpeg's
 * samples `ref` (first one at media time `refFirst`) are expected there for `mediaAt(clock)`.
 */
function judgeAudio(wav: Float32Array, ref: Float32Array, refFirst: number, deviceStartNs: bigint, clock: Clock, from: number, to: number, mediaAt: (c: number) => number): AudioFigures {
  const res: AudioFigures = { blocks: 0, offsets: [], silent: 0, unmatched: 0 };
  const frames = Math.floor(wav.length / CHANNELS);
  for (let k = 0; k + BLOCK <= frames; k += BLOCK) {
    const at = deviceStartNs + BigInt(Math.round((k * 1e9) / SAMPLE_RATE));
    const end = deviceStartNs + BigInt(Math.round(((k + BLOCK) * 1e9) / SAMPLE_RATE));
    const c = clockAt(clock, at);
    if (c < from || clockAt(clock, end) > to) continue;
    res.blocks++;
    const want = Math.round((mediaAt(c) - refFirst) * SAMPLE_RATE);
    // The nearest offset (up to ±1 s, e.g. periods a sink dropped shift everything after them) whose samples match.
    const found = blockOffset(wav, k * CHANNELS, CHANNELS, BLOCK, ref, want, SEARCH, 0);
    if (found !== null) res.offsets.push(found);
    else if (blockSilent(wav, k * CHANNELS, CHANNELS, BLOCK)) res.silent++;
    else res.unmatched++;
  }
  return res;
}

/** The sinks mode (`--outputs sinks`): play-audio to a WAV sink, play-video and its timers-only peer to hash sinks; the report's lines. */
async function runSinks(run: string, media: SyncMedia, o: SyncOptions): Promise<string[]> {
  const { seconds, fps } = o;
  const { refV, refA, refFirst } = media;
  const machine = watchMachine();
  const socket = path.join(run, 'cuemux.sock');
  const server = await startBenchServer(['--socket', socket, '--media-root', media.root, '--osc-port', '0', '--state-file', 'none']);
  const file = (n: string): string => path.join(run, n);
  const player = (args: string[]): NodeChild => spawnNode([...o.nodeArgs, CLI, ...args]);
  const audio = player(['play-audio', '--socket', socket, '--output', 'audio', '--sink', `wav:${file('audio.wav')}`, '--sync-log', file('audio.jsonl')]);
  const video = player(['play-video', '--socket', socket, '--output', 'video', '--fps', String(fps), '--sink', `hash:${file('video-hash.jsonl')}`, '--sync-log', file('video.jsonl')]);
  // The peer: the same player, options and sink, on timers alone; its scheduling is the player's (read back below).
  const timers = player(['play-video', '--socket', socket, '--output', 'video', '--fps', String(fps), '--sink', `hash:${file('timers-hash.jsonl')}`, '--sync-log', file('timers.jsonl'), '--spin-ms', '0']);
  const players = [audio, video, timers];
  const client = new MediaClient(socket);
  const osc = await Osc.open(server.oscPort as number);
  try {
    const pids = { server: server.child.pid as number, 'play-audio': audio.child.pid as number, 'play-video': video.child.pid as number, 'play-video --spin-ms 0 (peer)': timers.child.pid as number };
    const play = await playCue(client, osc, media, seconds, 3, () => players.every((p) => p.child.exitCode === null), pids);
    const { goAt, clock, mediaAt, cpu } = play;
    // Read while they run: the presenting thread raises its priority once it starts.
    const sched = { 'play-video': schedulingOf(video.child.pid as number), 'play-video --spin-ms 0 (peer)': schedulingOf(timers.child.pid as number), 'play-audio': schedulingOf(audio.child.pid as number) };
    const stopNs = process.hrtime.bigint();
    for (const p of players) p.child.kill('SIGTERM');
    const codes = await Promise.all(players.map((p) => p.exited));
    if (codes.some((c) => c !== 0)) throw new Error(`a player exited with ${codes.join(', ')}`);

    process.stderr.write('bench:sync: judging against FFmpeg...\n');
    const periodNs = 1e9 / fps;
    // The cue's first and last display period are left out: a tick there straddles the cue's edge.
    const from = goAt + 1 / fps;
    const to = goAt + seconds - 1 / fps;
    const v = judgeVideo(await readTicks(file('video-hash.jsonl'), file('video.jsonl')), refV, clock, from, to, mediaAt, periodNs);
    const vt = judgeVideo(await readTicks(file('timers-hash.jsonl'), file('timers.jsonl')), refV, clock, from, to, mediaAt, periodNs);
    // The device's start: where its sample 0 plays (each audio sync-log line says which device sample it wrote and
    // when that plays; they agree to the nanosecond's rounding).
    const lines = (await readSyncLog(file('audio.jsonl'))).filter((r) => typeof r.extra.device_sample === 'number');
    if (lines.length === 0) throw new Error('the audio player logged no period of the cue');
    const starts = lines.map((r) => r.monoNs - BigInt(Math.round((Number(r.extra.device_sample) * 1e9) / SAMPLE_RATE)));
    const deviceStart = starts[0];
    const startSpreadNs = Number(starts.reduce((a, b) => (b > a ? b : a)) - starts.reduce((a, b) => (b < a ? b : a)));
    const wav = await wavSamples(file('audio.wav'));
    // What the sink received against the device time it covers (up to the SIGTERM): a shortfall is periods it dropped.
    const wavSeconds = wav.length / CHANNELS / SAMPLE_RATE;
    const deviceSeconds = Number(stopNs - deviceStart) / 1e9;
    const a = judgeAudio(wav, refA, refFirst, deviceStart, clock, goAt + 0.01, goAt + seconds - 0.01, mediaAt);
    const absMs = a.offsets.map((o) => Math.abs(o) / SAMPLE_RATE);
    // Drift: the median offset of the last blocks (10 s, or a quarter of a short run) against that of the first ones,
    // over the time between.
    const span = Math.min(Math.round((10 * SAMPLE_RATE) / BLOCK), Math.floor(a.offsets.length / 4));
    const drift = span > 0
      ? (pct(a.offsets.slice(-span), 50) - pct(a.offsets.slice(0, span), 50)) / SAMPLE_RATE / ((a.offsets.length - span) * BLOCK / SAMPLE_RATE) : NaN;
    const max = (xs: number[]): number => (xs.length === 0 ? NaN : Math.max(...xs));
    const vLine = (label: string, f: VideoFigures): string => `${label} tick lateness p50 ${ms(pct(f.late, 50))} ms  p99 ${ms(pct(f.late, 99))} ms  max ${ms(max(f.late))} ms; ` +
      `${f.ticks} ticks presented, ${f.wrong} not FFmpeg's frame for the clock, ${f.skipped} display slots skipped${f.offGrid > 0 ? `, ${f.offGrid} off the tick grid` : ''}`;
    const vOk = (f: VideoFigures): boolean => pct(f.late, 99) <= 0.001 && f.wrong === 0 && f.skipped === 0 && f.ticks > 0;
    const out = [
      `bench:sync (sinks) — ${seconds} s cue of ${path.basename(media.file)}, video at ${fps} ticks/s`,
      `Peer: the same play-video (same hash sink, same output, same run) ticking on Node timers alone (--spin-ms 0), scheduled as the player: presenting thread ${sched['play-video --spin-ms 0 (peer)']} (play-video ${sched['play-video']}, play-audio ${sched['play-audio']})`,
      `Judged from outside: pictures by MD5 against ffmpeg -f framemd5, samples in the WAV against FFmpeg's decode, both at the media time the server's clock (ClockState anchor) maps their instant to`,
      machine.startLine,
      `audio  offset of each 10 ms block of the WAV from where the clock puts it: p50 ${ms(pct(absMs, 50))} ms  p99 ${ms(pct(absMs, 99))} ms  max ${ms(max(absMs))} ms ` +
        `(${a.blocks} blocks: ${a.offsets.filter((o) => Math.abs(o) <= 1).length} within ±1 sample, ${a.silent} silent, ${a.unmatched} not FFmpeg's within ±1 s; drift ${(drift * 1e6).toFixed(2)} µs/s; ` +
        `device start agreed by all ${lines.length} sync-log lines within ${startSpreadNs} ns)   target p99 ≤ 1 ms, none silent or wrong: ${passIf(pct(absMs, 99) <= 0.001 && a.silent === 0 && a.unmatched === 0 && a.blocks > 0)}`,
      `       the WAV holds ${wavSeconds.toFixed(3)} s of samples for ${deviceSeconds.toFixed(3)} s of device time up to the players' stop (a shortfall is periods the sink dropped)`,
      `video  ${vLine('play-video:', v)}   target p99 ≤ 1 ms, 0 wrong, 0 skipped: ${passIf(vOk(v))}`,
      `peer   ${vLine('timers only:', vt)}   play-video p99 lateness is ${(pct(vt.late, 99) / pct(v.late, 99)).toFixed(1)}× lower`,
      ...(v.examples.length > 0 ? [`  play-video's first wrong ticks: ${v.examples.join('; ')}`] : []),
      ...(vt.examples.length > 0 ? [`  the peer's first wrong ticks: ${vt.examples.join('; ')}`] : []),
      ...generationWarning(play),
      `CPU (% of one core): ${Object.entries(cpu).map(([k, c]) => `${k} ${c.toFixed(1)}`).join(', ')}`,
      machine.endLine(),
    ];
    return out;
  } finally {
    client.close();
    osc.close();
    for (const p of players) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await server.stop();
  }
}

async function main(run: string): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    process.stdout.write(USAGE);
    return;
  }
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const profile = opt('--profile');
  const o: SyncOptions = {
    seconds: Number(opt('--seconds') ?? 300), fps: Number(opt('--fps') ?? 60), small: argv.includes('--small'),
    nodeArgs: profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.resolve(profile)],
  };
  if (!(o.seconds > 0) || !(o.fps > 0)) throw new Error('--seconds and --fps must be positive');
  const outputs = (opt('--outputs') ?? 'sinks,real').split(',');
  if (outputs.length === 0 || outputs.some((x) => x !== 'sinks' && x !== 'real')) throw new Error(`--outputs: expected sinks, real or sinks,real, got ${opt('--outputs')}`);
  await fsp.chmod(run, 0o700);
  const media = await prepareSyncMedia(run, o.small, o.seconds);
  try {
    // One after the other (each on a server of its own), so neither loads the machine under the other.
    for (const mode of outputs) {
      const dir = path.join(run, mode);
      await fsp.mkdir(dir);
      const lines = mode === 'sinks' ? await runSinks(dir, media, o) : await runRealOutputs(dir, media, o);
      process.stdout.write(`${lines.join('\n')}\n`);
    }
  } finally {
    const keep = opt('--keep');
    if (keep !== undefined) await fsp.cp(run, keep, { recursive: true, filter: (src) => src !== media.root && path.extname(src) !== '.sock' && !src.endsWith('.fifo') });
  }
}

runBench('bench:sync', () => withScratch('cuemux-bench-sync-', main));
