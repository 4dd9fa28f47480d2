/**
 * `npm run bench:go` — GO → first in-sync picture and GO → first in-sync audio sample, as an audience sees them.
 *
 * A `cuemux serve`, a `cuemux play-video` (one phase at 50 ticks/s, one at 60) and a `cuemux play-audio` run as
 * separate processes with a cue list of 1080p25 H.264 (3 B-frames, open GOPs, a keyframe every 2 s) and 1080p25
 * DNxHD cues whose in-points are on keyframes, on frames between them, between frames, on an open-GOP leading
 * B-frame and on a GOP's last frame. With the clock running, GOs are fired over UDP OSC at random spacing: armed (the
 * cue loaded at least 1.5 s before) and unarmed (`/cuemux/cue/unload` first, so the GO loads it without prefetch),
 * including the first GO of freshly started players. Each phase ends with a looping cue (its seams) and an auto-follow
 * chain (its transitions).
 *
 * Judged from outside: the video player's hash sink (the MD5 of every presented picture) against `ffmpeg -f framemd5`
 * of the file, for the media time the show clock maps each tick's CLOCK_MONOTONIC instant to (the cue's place from
 * CueStarted as a Follow client received it, the clock from its ClockState); the audio player's WAV against FFmpeg's
 * decoded samples at each device instant. Peers, in the same run: (a) the GO → first packet at that Follow client
 * (today's bench:cue), (b) a player process that opens the file itself at GO (FFmpeg open + seek + decode to the
 * in-point frame), asked between GOs while the players play, over UDP too.
 *
 * Beside each GO the report sets what the players' own logs say (when they had the cue prepared), to explain a miss,
 * never to judge one. Every figure is printed with its ratio to a peer, the run's steal time and the CPU the other
 * processes on the machine took meanwhile; the targets come last, each with PASS or MISS.
 *
 * Options: --gos N (GOs per phase, default 105), --restarts N (fresh players per phase, default 6), --fps 50,60,
 * --prepare on|off (passed to the players), --seed N, --keep DIR (copy the logs and what the judge needs there),
 * --judge DIR (judge a kept run again, e.g. after changing this judge), --quick (30 GOs, 2 restarts, one phase at
 * 60: a smoke run).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { closeSync, openSync, promises as fsp, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MediaClient } from '../src/clients/media-client';
import { monoNs } from '../src/common/time-source';
import { encodeMessage } from '../src/wire/osc-codec';
import {
  byPeriod, checkAudioLine, frameNames, judgeAudioGo, judgeTicks, judgeVideoGo, readAudioLines, ShowClock, Timeline,
  type AudioGo, type AudioLine, type Show, type VideoGo, type Win, type WrongTick,
} from './bench-go-analysis';
import { readTicks, wavSamples, type Tick } from './bench/presented';
import { frameAt, readF32, readFramemd5, type RefAudio, type RefVideo } from './bench/reference';
import { FollowClient, PeerB, type FollowLine, type PeerDone } from './bench-go-procs';
import { audioF32, goDnxhd, goH264, videoFramemd5 } from './bench-media';
import { CLI, runBench, startBenchServer, withScratch } from './bench/harness';
import { watchSteal } from './bench/machine';
import { errorMessage } from '../src/common/errors';

const SAMPLE_RATE = 48000;
const PERIOD_FRAMES = 480; // play-audio's default 10 ms periods
/** An armed cue is loaded at least this long before its GO. */
const ARM_NS = 1_500_000_000n;

// ------------------------------------------------------------------------------------------------------------------
// Small tools

const NS = (seconds: number): bigint => BigInt(Math.round(seconds * 1e9));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const sleepUntil = (mono: bigint): Promise<void> => sleep(Number(mono - monoNs()) / 1e6);
const maxBig = (...xs: bigint[]): bigint => xs.reduce((a, b) => (b > a ? b : a));

/** Clock ticks per second of /proc times. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system, all threads) of a live process so far, s; 0 when it is gone. */
function cpuOf(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The machine's busy and total CPU time so far, s (all CPUs; busy = all but idle and iowait). */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: (total - f[3] - f[4]) / CLK_TCK, total: total / CLK_TCK };
}

/** A seeded PRNG, so every run plays the same show. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** OSC over UDP: send a message, await its /cuemux/reply/... JSON. */
class Osc {
  readonly #s = dgram.createSocket('udp4');
  readonly #port: number;
  readonly #waiting = new Map<string, (json: Record<string, unknown>) => void>();

  constructor(port: number) {
    this.#port = port;
    this.#s.on('message', (buf) => {
      const address = buf.subarray(0, buf.indexOf(0)).toString();
      const json = JSON.parse(buf.subarray(buf.indexOf('{'), buf.lastIndexOf('}') + 1).toString()) as Record<string, unknown>;
      const w = this.#waiting.get(address);
      this.#waiting.delete(address);
      w?.(json);
    });
  }

  async bind(): Promise<void> {
    await new Promise<void>((r) => this.#s.bind(0, '127.0.0.1', r));
  }

  /** Send `address` with string arguments; `sent` receives the CLOCK_MONOTONIC instant the datagram left. */
  send(address: string, args: string[], sent?: (mono: bigint) => void): Promise<Record<string, unknown>> {
    const datagram = encodeMessage(address, args.map((value) => ({ type: 's' as const, value })));
    const reply = address.replace('/cuemux/', '/cuemux/reply/');
    const p = new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${address} ${args.join(' ')}`)), 30_000);
      this.#waiting.set(reply, (json) => {
        clearTimeout(t);
        if (json.status !== 'ok') reject(new Error(`${address} ${args.join(' ')}: ${String(json.error)}`));
        else resolve(json);
      });
    });
    // The time starts once the datagram is encoded: it is the datagram leaving the controller.
    const at = monoNs();
    this.#s.send(datagram, this.#port, '127.0.0.1');
    sent?.(at);
    return p;
  }

  close(): void {
    this.#s.close();
  }
}

// ------------------------------------------------------------------------------------------------------------------
// The show

/** A cue of the list, with what the benchmark knows of it. */
interface CueDef {
  id: string;
  file: 'h264' | 'dnxhd';
  /** In-point, s from the media's start. */
  in: number;
  out: number;
  what: string;
  loop?: boolean;
  follow?: boolean;
}

/** The media, FFmpeg's decode of them and their start times. */
async function references(): Promise<{ media: Record<'h264' | 'dnxhd', string>; refV: Record<'h264' | 'dnxhd', RefVideo>; refA: Record<'h264' | 'dnxhd', RefAudio>; start: Record<'h264' | 'dnxhd', number> }> {
  const media = { h264: await goH264(), dnxhd: await goDnxhd() };
  const refPaths = { h264: await videoFramemd5(media.h264), dnxhd: await videoFramemd5(media.dnxhd), ah264: await audioF32(media.h264), adnxhd: await audioF32(media.dnxhd) };
  const refV = { h264: await readFramemd5(refPaths.h264, 'h264'), dnxhd: await readFramemd5(refPaths.dnxhd, 'dnxhd') };
  const probeNum = (file: string, args: string[]): number => Number(run('ffprobe', ['-v', 'error', ...args, '-of', 'csv=p=0', file]).trim().split('\n')[0]);
  const start = { h264: probeNum(media.h264, ['-show_entries', 'format=start_time']) || 0, dnxhd: probeNum(media.dnxhd, ['-show_entries', 'format=start_time']) || 0 };
  const firstAudio = (file: string): number => probeNum(file, ['-select_streams', 'a:0', '-show_frames', '-read_intervals', '%+#1', '-show_entries', 'frame=pts_time']);
  const refA: Record<'h264' | 'dnxhd', RefAudio> = {
    h264: { tag: 'h264 audio', samples: await readF32(refPaths.ah264), first: firstAudio(media.h264), channels: 2 },
    dnxhd: { tag: 'dnxhd audio', samples: await readF32(refPaths.adnxhd), first: firstAudio(media.dnxhd), channels: 2 },
  };
  return { media, refV, refA, start };
}

/** The cue list's cues from the files' frames: in-points of every kind the issue names. */
function planCues(h264: RefVideo, keyFrames: number[], leading: Map<number, number>, lastBefore: Map<number, number>, dnx: RefVideo,
  start: { h264: number; dnxhd: number }, random: () => number): CueDef[] {
  const fh = h264.pts[1] - h264.pts[0];
  const fd = dnx.pts[1] - dnx.pts[0];
  const h = (frame: number, plus = 0): number => h264.pts[frame] + plus * fh - start.h264;
  const d = (frame: number, plus = 0): number => dnx.pts[frame] + plus * fd - start.dnxhd;
  const kf = (k: number): number => keyFrames[Math.min(k, keyFrames.length - 1)];
  const len = (): number => Math.round((0.8 + 1.6 * random()) * 100) / 100;
  const rot: Array<Omit<CueDef, 'out'>> = [
    { id: 'K', file: 'h264', in: h(kf(4)), what: `on a keyframe (frame ${kf(4)})` },
    { id: 'L', file: 'h264', in: h(leading.get(kf(7)) as number), what: `on an open-GOP leading B-frame (frame ${leading.get(kf(7))}, decoded after keyframe ${kf(7)})` },
    { id: 'M', file: 'h264', in: h(kf(10) + 33, 0.4), what: `between frames ${kf(10) + 33} and ${kf(10) + 34}, mid-GOP` },
    { id: 'B', file: 'h264', in: h(kf(21) + 31), what: `on frame ${kf(21) + 31}, mid-GOP` },
    { id: 'P', file: 'h264', in: h(kf(10) + 1), what: `on frame ${kf(10) + 1}, the one after a keyframe` },
    { id: 'E', file: 'h264', in: h(12, 0.3), what: 'between frames 12 and 13, first GOP' },
    { id: 'G', file: 'h264', in: h(lastBefore.get(kf(23)) as number), what: `on frame ${lastBefore.get(kf(23))}, a GOP's last in decode order before keyframe ${kf(23)}` },
    { id: 'D1', file: 'dnxhd', in: d(75), what: 'DNxHD on frame 75' },
    { id: 'D2', file: 'dnxhd', in: d(187, 0.08), what: 'DNxHD between frames 187 and 188' },
    { id: 'D3', file: 'dnxhd', in: d(300, 0.5), what: 'DNxHD between frames 300 and 301' },
    { id: 'D4', file: 'dnxhd', in: d(529), what: 'DNxHD on frame 529' },
  ];
  const round = (x: number): number => Math.round(x * 1e6) / 1e6;
  const cues: CueDef[] = rot.map((c) => ({ ...c, in: round(c.in), out: round(c.in + len()) }));
  cues.push(
    { id: 'LOOP', file: 'h264', in: round(h(432, 0.5)), out: round(h(452, 0.5)), loop: true, what: 'a loop from between frames 432/433 to between 452/453' },
    { id: 'C1', file: 'h264', in: round(h(750, 0.5)), out: round(h(775)), what: 'chain head, between frames 750/751 to frame 775' },
    { id: 'C2', file: 'dnxhd', in: round(d(137, 0.5)), out: round(d(157, 0.5)), follow: true, what: 'auto-follows C1: DNxHD between frames' },
    { id: 'C3', file: 'h264', in: round(h(leading.get(kf(25)) as number)), out: round(h(1265, 0.5)), follow: true,
      what: `auto-follows C2: H.264 from an open-GOP leading B-frame (${leading.get(kf(25))})` },
  );
  return cues;
}

/** A set of players (one play-video and one play-audio, started together) as the judge needs it. */
interface PlayerRun {
  tag: string;
  fps: number;
  files: { vhash: string; vsync: string; vlog: string; async: string; awav: string; alog: string };
  startMono: bigint;
  endMono: bigint;
  /** CPU time of each process, s (read as they are stopped). */
  cpu: { video: number; audio: number };
}

/** A set of players while they run. */
interface Players extends PlayerRun {
  video: ChildProcess;
  audio: ChildProcess;
  exited: Promise<unknown>;
}

/** One GO. */
interface Go {
  i: number;
  cue: string;
  armed: boolean;
  fresh: boolean;
  special: 'loop' | 'chain' | null;
  fps: number;
  players: PlayerRun;
  send: bigint;
  /** When its cue was last loaded (armed GOs). */
  loaded: bigint | null;
  peerVideo: { ms: number; done: PeerDone } | null;
  peerAudio: { ms: number; done: PeerDone } | null;
  error: string | null;
  /** Cues loaded on the server (armed or playing) 0.25 s after the GO: what a preparing player keeps ready. */
  loadedCues: number | null;
  /** When its cue was unloaded for it (unarmed GOs). */
  unloaded: bigint | null;
}

interface Options {
  gos: number;
  restarts: number;
  fps: number[];
  prepare: string | null;
  seed: number;
  keep: string | null;
}

function parseOptions(argv: string[]): Options {
  const opt = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  const o: Options = {
    gos: Number(opt('--gos') ?? (quick ? 30 : 105)),
    restarts: Number(opt('--restarts') ?? (quick ? 2 : 6)),
    fps: (opt('--fps') ?? (quick ? '60' : '50,60')).split(',').map(Number),
    prepare: opt('--prepare') ?? null,
    seed: Number(opt('--seed') ?? 20261206),
    keep: opt('--keep') ?? null,
  };
  if (!(o.gos >= 4 && o.restarts >= 1 && o.restarts <= o.gos && o.fps.every((f) => f > 0))) throw new Error(`bad options: ${argv.join(' ')}`);
  return o;
}

// ------------------------------------------------------------------------------------------------------------------
// The run

/** Child processes alive, by pid: an interrupted run ends them (its own, by pid) before it removes its scratch folder. */
const live = new Set<number>();

function track(pid: number | undefined): void {
  if (pid !== undefined) live.add(pid);
}

async function main(scratch: string): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  // Interrupted (Ctrl-C, SIGTERM): end this run's processes and remove the scratch folder, as withScratch does on
  // any other way out.
  const interrupted = (signal: NodeJS.Signals): void => {
    for (const pid of live) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(scratch, { recursive: true, force: true });
    process.stderr.write(`bench:go: ${signal}: stopped, scratch folder removed\n`);
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const say = (s: string): void => {
    process.stderr.write(`bench:go: ${s}\n`);
  };
  const tree = `${run('git', ['-C', path.resolve(CLI, '..', '..'), 'rev-parse', '--short', 'HEAD']).trim()}` +
    ` + ${run('git', ['-C', path.resolve(CLI, '..', '..'), 'status', '--porcelain', '--untracked-files=no']).trim().split('\n').filter((l) => l !== '').length} files changed`;
  say('media and FFmpeg references (cached after the first run)...');
  const { media, refV, refA, start } = await references();
  // Keyframes, each one's open-GOP leading picture (the next packet in decode order, presented before it) and the
  // frame decoded just before it (a GOP's last), from the packets in file order.
  const packets = run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', media.h264]).trim().split('\n')
    .map((l) => l.split(',')).map(([pts, flags]) => ({ frame: frameAt(refV.h264, Number(pts) + 1e-7), key: flags.startsWith('K') }));
  const keyFrames: number[] = [];
  const leading = new Map<number, number>();
  const lastBefore = new Map<number, number>();
  packets.forEach((p, i) => {
    if (!p.key) return;
    keyFrames.push(p.frame);
    if (i + 1 < packets.length && packets[i + 1].frame < p.frame) leading.set(p.frame, packets[i + 1].frame);
    if (i > 0) lastBefore.set(p.frame, packets[i - 1].frame);
  });
  const random = rng(opts.seed);
  const cues = planCues(refV.h264, keyFrames, leading, lastBefore, refV.dnxhd, start, random);
  const cueOf = new Map(cues.map((c) => [c.id, c]));
  const rotation = cues.filter((c) => c.loop !== true && c.follow !== true && !c.id.startsWith('C'));

  const root = path.join(scratch, 'media');
  const logs = path.join(scratch, 'logs');
  await fsp.mkdir(root);
  await fsp.mkdir(logs);
  const names = { h264: 'h264.mp4', dnxhd: 'dnxhd.mov' };
  for (const k of ['h264', 'dnxhd'] as const) {
    await fsp.link(media[k], path.join(root, names[k])).catch(() => fsp.copyFile(media[k], path.join(root, names[k])));
  }
  const built = spawnSync(process.execPath, [CLI, 'index', 'build', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) throw new Error('index build failed');
  const cueList = path.join(scratch, 'cues.json');
  await fsp.writeFile(cueList, JSON.stringify({
    version: 1, name: 'bench:go',
    cues: cues.map((c) => ({ id: c.id, media: names[c.file], in: c.in, out: c.out, ...(c.loop === true ? { loop: true } : {}), ...(c.follow === true ? { follow: true } : {}) })),
  }, null, 1));
  // Page cache: every file read once now and nothing dropped, so the players' server and peer (b) both read from
  // memory (the same state for both).
  for (const f of await fsp.readdir(root)) await fsp.readFile(path.join(root, f));
  const cueFile = (id: string): string => path.join(root, names[(cueOf.get(id) as CueDef).file]);
  const cueMedia = (id: string): number => {
    const c = cueOf.get(id) as CueDef;
    return start[c.file] + c.in;
  };

  say('peer (b) process (warming FFmpeg and each file once)...');
  const peer = await PeerB.start([
    { file: path.join(root, names.h264), media: 3.3, kind: 'video' }, { file: path.join(root, names.h264), media: 3.3, kind: 'audio' },
    { file: path.join(root, names.dnxhd), media: 3.3, kind: 'video' }, { file: path.join(root, names.dnxhd), media: 3.3, kind: 'audio' },
  ]);
  track(peer.pid);
  const help = run(process.execPath, [CLI, 'play-video', '--help']);
  const playerExtra = opts.prepare !== null && help.includes('--prepare') ? ['--prepare', opts.prepare] : [];
  if (opts.prepare !== null && playerExtra.length === 0) say(`the players have no --prepare option: "--prepare ${opts.prepare}" ignored`);

  const socket = path.join(scratch, 'cuemux.sock');
  // The players' log lines carry wall-clock times (ms): mapped onto CLOCK_MONOTONIC with this offset.
  const wallMinusMono = BigInt(Date.now()) * 1_000_000n - monoNs();
  const steal = watchSteal();
  const t0 = monoNs();
  const machine0 = machineCpu();
  const peer0 = cpuOf(peer.pid);
  const self0 = process.cpuUsage();
  const server = await startBenchServer(['--socket', socket, '--media-root', root, '--osc-port', '0', '--cue-list', cueList, '--state-file', 'none']);
  track(server.child.pid);
  const osc = new Osc(server.oscPort as number);
  await osc.bind();
  const client = new MediaClient(socket);
  const follow = await FollowClient.start(socket, 'video');
  track(follow.pid);
  const gos: Go[] = [];
  const allPlayers: Players[] = [];
  const busyUntil = new Map<string, bigint>();
  let lastRunEnd = 0n;
  let current: Players | null = null;
  const cpu = { server: 0, follow: 0, peer: 0, bench: 0 };

  const outputsFollowed = async (): Promise<{ video: number; audio: number }> => {
    const st = await client.getStatus();
    return { video: st.clients.filter((c) => c.output === 'video').length, audio: st.clients.filter((c) => c.output === 'audio').length };
  };
  const waitOutputs = async (video: number, audio: number): Promise<void> => {
    for (let k = 0; ; k++) {
      const n = await outputsFollowed();
      if (n.video === video && n.audio === audio) return;
      if (k > 600) throw new Error(`players did not connect: ${JSON.stringify(n)}`);
      await sleep(25);
    }
  };
  const startPlayers = async (fps: number): Promise<Players> => {
    const tag = `p${allPlayers.length + 1}-${fps}`;
    const f = (n: string): string => path.join(logs, `${tag}-${n}`);
    const files = { vhash: f('video-hash.jsonl'), vsync: f('video-sync.jsonl'), vlog: f('video.log'), async: f('audio-sync.jsonl'), awav: f('audio.wav'), alog: f('audio.log') };
    const spawnPlayer = (args: string[], logFile: string): ChildProcess => {
      const fd = openSync(logFile, 'w');
      // Info lines (JSON): the player says when it has a cue prepared, which the report sets beside each GO.
      const c = spawn(process.execPath, [CLI, '--log-level', 'info', '--log-format', 'json', ...args], { stdio: ['ignore', 'ignore', fd] });
      closeSync(fd);
      track(c.pid);
      c.once('exit', () => live.delete(c.pid as number));
      return c;
    };
    await waitOutputs(1, 0);
    const video = spawnPlayer(['play-video', '--socket', socket, '--output', 'video', '--fps', String(fps), '--sink', `hash:${files.vhash}`, '--sync-log', files.vsync, ...playerExtra], files.vlog);
    const audio = spawnPlayer(['play-audio', '--socket', socket, '--output', 'audio', '--sink', `wav:${files.awav}`, '--sync-log', files.async, ...playerExtra], files.alog);
    const exited = Promise.all([video, audio].map((c) => new Promise((r) => c.once('exit', r))));
    const p: Players = { tag, fps, video, audio, exited, files, startMono: monoNs(), endMono: 0n, cpu: { video: 0, audio: 0 } };
    allPlayers.push(p);
    await waitOutputs(2, 1);
    p.startMono = monoNs();
    return p;
  };
  const stopPlayers = async (p: Players): Promise<void> => {
    p.endMono = monoNs();
    p.cpu = { video: cpuOf(p.video.pid), audio: cpuOf(p.audio.pid) };
    p.video.kill('SIGTERM');
    p.audio.kill('SIGTERM');
    const t = setTimeout(() => {
      p.video.kill('SIGKILL');
      p.audio.kill('SIGKILL');
    }, 10_000);
    await p.exited;
    clearTimeout(t);
  };
  const waitAllEnded = (): Promise<void> => sleepUntil(lastRunEnd + 300_000_000n);
  /** Unload a cue so that its GO is unarmed (the server may have pre-armed it as the next cue of the list). */
  const lastUnload = new Map<string, bigint>();
  const unload = async (cue: string): Promise<void> => {
    lastUnload.set(cue, monoNs());
    const st = await osc.send('/cuemux/status', []) as { data?: { cues?: Array<{ id: string }> } };
    if (!(st.data?.cues ?? []).some((c) => c.id === cue)) return;
    await osc.send('/cuemux/cue/unload', [cue]).catch((e: unknown) => {
      if (!(e instanceof Error && /is not loaded/.test(e.message))) throw e;
    });
  };

  // GO `cue` now; then the chores between GOs: load the cues planned next, and peer (b) on this GO's in-point.
  const fire = (cue: string, armed: boolean, fresh: boolean, special: Go['special'], fps: number, loaded: bigint | null): Go => {
    let send = 0n;
    const go: Go = { i: gos.length, cue, armed, fresh, special, fps, players: current as Players, send, loaded, peerVideo: null, peerAudio: null, error: null, loadedCues: null, unloaded: lastUnload.get(cue) ?? null };
    gos.push(go);
    const reply = osc.send('/cuemux/cue/go', [cue], (at) => {
      send = at;
    });
    go.send = send;
    reply.catch((e: unknown) => {
      go.error = errorMessage(e);
    });
    const c = cueOf.get(cue) as CueDef;
    const length = special === 'chain' ? ['C1', 'C2', 'C3'].reduce((s, id) => s + (cueOf.get(id) as CueDef).out - (cueOf.get(id) as CueDef).in, 0)
      : special === 'loop' ? 5 : c.out - c.in;
    lastRunEnd = maxBig(lastRunEnd, send + NS(length));
    busyUntil.set(cue, send + NS(length + 1.6));
    return go;
  };
  const peerB = async (go: Go): Promise<void> => {
    for (const kind of ['video', 'audio'] as const) {
      const r = await peer.run({ file: cueFile(go.cue), media: cueMedia(go.cue), kind });
      const x = { ms: Number(BigInt(r.done.mono) - r.sendMono) / 1e6, done: r.done };
      if (kind === 'video') go.peerVideo = x;
      else go.peerAudio = x;
    }
  };

  /** A GO planned ahead, armed (loaded now) or not. */
  interface Plan { cue: string; armed: boolean; loaded: bigint | null }
  const plans: Plan[] = [];
  const available = (now: bigint, exclude: readonly string[]): CueDef[] =>
    rotation.filter((c) => (busyUntil.get(c.id) ?? 0n) <= now && !plans.some((p) => p.cue === c.id) && !exclude.includes(c.id));
  const pick = (exclude: readonly string[] = []): CueDef => {
    const a = available(monoNs(), exclude);
    if (a.length === 0) throw new Error('no cue available to GO (all busy)');
    return a[Math.floor(random() * a.length)];
  };
  const plan = async (): Promise<void> => {
    const c = pick();
    const armed = random() < 0.5;
    let loaded: bigint | null = null;
    if (armed) {
      loaded = monoNs();
      await osc.send('/cuemux/cue/load', [c.id]);
    }
    plans.push({ cue: c.id, armed, loaded });
  };

  try {
    await osc.send('/cuemux/clock/play', []);
    let freshArmed = true;
    for (const fps of opts.fps) {
      const freshAt = new Set(Array.from({ length: opts.restarts }, (_, k) => Math.floor((k * opts.gos) / opts.restarts)));
      let nextAt = 0n;
      for (let i = 0; i < opts.gos; i++) {
        let go: Go;
        if (freshAt.has(i)) {
          // Fresh players: nothing is playing, the old players are gone, the new ones have just connected.
          await waitAllEnded();
          if (current !== null) await stopPlayers(current);
          say(`${fps} ticks/s: fresh players (${i}/${opts.gos} GOs of this phase)...`);
          const c = pick();
          let loaded: bigint | null = null;
          if (freshArmed) {
            loaded = monoNs();
            await osc.send('/cuemux/cue/load', [c.id]);
          } else {
            await unload(c.id);
          }
          current = await startPlayers(fps);
          if (freshArmed) await sleepUntil(maxBig(current.startMono, loaded as bigint) + ARM_NS);
          else await sleep(200 + 200 * random());
          go = fire(c.id, freshArmed, true, null, fps, loaded);
          freshArmed = !freshArmed;
        } else {
          while (plans.length < 1) await plan();
          const p = plans.shift() as Plan;
          const at = maxBig(nextAt, p.loaded === null ? 0n : p.loaded + ARM_NS);
          if (!p.armed) {
            await sleepUntil(at - NS(0.1 + 0.2 * random()));
            await unload(p.cue);
          }
          await sleepUntil(at);
          go = fire(p.cue, p.armed, false, null, fps, p.loaded);
        }
        // Between GOs: plan (and load) the next two, then peer (b) on this in-point while the players play.
        await sleepUntil(go.send + 250_000_000n);
        const st = await osc.send('/cuemux/status', []) as { data?: { cues?: unknown[] } };
        go.loadedCues = st.data?.cues?.length ?? null;
        while (plans.length < 2) await plan();
        await sleepUntil(go.send + 500_000_000n);
        await peerB(go);
        nextAt = maxBig(go.send + NS(0.6 + 1.0 * random()), monoNs() + 50_000_000n);
      }
      // Loop seams and auto-follow transitions, with the players of this phase.
      await waitAllEnded();
      say(`${fps} ticks/s: a looping cue and an auto-follow chain...`);
      const loaded = monoNs();
      for (const id of ['LOOP', 'C1', 'C2', 'C3']) await osc.send('/cuemux/cue/load', [id]);
      await sleepUntil(loaded + ARM_NS + 100_000_000n);
      const loop = fire('LOOP', true, false, 'loop', fps, loaded);
      await sleepUntil(loop.send + 4_500_000_000n);
      await osc.send('/cuemux/cue/stop', ['LOOP']);
      await sleep(500);
      const chain = fire('C1', true, false, 'chain', fps, loaded);
      await sleepUntil(chain.send + 500_000_000n);
      await waitAllEnded();
    }
  } finally {
    if (current !== null) await stopPlayers(current);
    const self = process.cpuUsage(self0);
    cpu.server = cpuOf(server.child.pid);
    cpu.follow = cpuOf(follow.pid);
    cpu.peer = cpuOf(peer.pid) - peer0;
    cpu.bench = (self.user + self.system) / 1e6;
    follow.stop();
    peer.stop();
    osc.close();
    client.close();
    await server.stop();
  }
  const wall = Number(monoNs() - t0) / 1e9;
  const stealPct = steal();
  const machine = machineCpu();
  const players = allPlayers.reduce((a, p) => ({ video: a.video + p.cpu.video, audio: a.audio + p.cpu.audio }), { video: 0, audio: 0 });
  const capacity = machine.total - machine0.total;
  const share = (x: number): string => `${((100 * x) / capacity).toFixed(1)}%`;
  const ours = cpu.server + cpu.follow + cpu.peer + cpu.bench + players.video + players.audio;
  const cpuText = `CPU (share of the machine's ${os.cpus().length} vCPUs over the run): play-video ${share(players.video)}, play-audio ${share(players.audio)}, server ${share(cpu.server)}, ` +
    `Follow client ${share(cpu.follow)}, peer (b) ${share(cpu.peer)}, this process ${share(cpu.bench)}; other processes on the machine ${share(Math.max(0, machine.busy - machine0.busy - ours))}; idle ${share(capacity - (machine.busy - machine0.busy))}`;
  const input: ReportInput = { opts, tree, wall, stealPct, cpuText, wallMinusMono, cues, gos, players: allPlayers, follow: follow.lines, refV, refA };
  if (opts.keep !== null) await keep(input, logs, opts.keep);
  say('judging...');
  await report(input);
}

/** Keep a run's logs and what the judge needs in `dir` (`--judge DIR` judges it again). */
async function keep(r: ReportInput, logs: string, dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  await fsp.cp(logs, dir, { recursive: true });
  await fsp.writeFile(path.join(dir, 'follow.jsonl'), r.follow.map((l) => JSON.stringify(l)).join('\n'));
  const big = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? `${v}n` : v);
  const players = r.players.map((p) => ({ tag: p.tag, fps: p.fps, files: p.files, startMono: p.startMono, endMono: p.endMono, cpu: p.cpu }));
  await fsp.writeFile(path.join(dir, 'run.json'), JSON.stringify({
    opts: r.opts, tree: r.tree, wall: r.wall, stealPct: r.stealPct, cpuText: r.cpuText, wallMinusMono: r.wallMinusMono, cues: r.cues, players, gos: r.gos.map((g) => ({ ...g, players: g.players.tag })),
  }, big, 1));
}

/** Judge a run kept with `--keep DIR` again (the references come from the media cache). */
async function judgeKept(dir: string): Promise<void> {
  const unbig = (_k: string, v: unknown): unknown => (typeof v === 'string' && /^-?\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v);
  const kept = JSON.parse(await fsp.readFile(path.join(dir, 'run.json'), 'utf8'), unbig) as Omit<ReportInput, 'follow' | 'refV' | 'refA' | 'gos'> & { gos: Array<Omit<Go, 'players'> & { players: string }> };
  const players = kept.players.map((p) => ({ ...p, files: Object.fromEntries(Object.entries(p.files).map(([k, f]) => [k, path.join(dir, path.basename(f))])) as PlayerRun['files'] }));
  const gos = kept.gos.map((g) => ({ ...g, players: players.find((p) => p.tag === g.players) as PlayerRun }));
  const follow = (await fsp.readFile(path.join(dir, 'follow.jsonl'), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as FollowLine);
  const { refV, refA } = await references();
  await report({ ...kept, players, gos, follow, refV, refA });
}

// ------------------------------------------------------------------------------------------------------------------
// The report

interface Judged {
  go: Go;
  run: Win | null;
  video: VideoGo | null;
  audio: AudioGo | null;
  /** Datagram → first packet at the Follow client, ms. */
  peerA: number | null;
  /** How long before the datagram each player said it had the cue prepared (its log), ms; null: not prepared. */
  preparedMs: { video: number | null; audio: number | null };
}

/** A player's 'cue prepared' / 'cue X loaded' log line, placed on CLOCK_MONOTONIC. */
interface PlayerEvent {
  what: 'prepared' | 'loaded';
  cue: string;
  mono: bigint;
}

/** The 'cue prepared' and 'cue X loaded' lines of a player's log (JSON lines; wall clock ms). */
async function preparedLog(file: string, wallMinusMono: bigint): Promise<PlayerEvent[]> {
  const out: PlayerEvent[] = [];
  for (const line of (await fsp.readFile(file, 'utf8')).split('\n')) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as { message?: string; cue?: string; timestamp?: string };
    const mono = BigInt(Date.parse(o.timestamp ?? '')) * 1_000_000n - wallMinusMono;
    if (o.message === 'cue prepared' && o.cue !== undefined) out.push({ what: 'prepared', cue: o.cue, mono });
    const m = /^cue (\S+) loaded$/.exec(o.message ?? '');
    if (m !== null) out.push({ what: 'loaded', cue: m[1], mono });
  }
  return out;
}

/**
 * How long before `send` the player last said cue `cue` was prepared, ms (log lines have millisecond times), or null
 * when it was not prepared then: never, or loaded again since, or prepared before `since` (the cue's GO before, which
 * used it, or the unload before an unarmed GO).
 */
function preparedBefore(events: readonly PlayerEvent[], cue: string, send: bigint, since: bigint): number | null {
  let last: PlayerEvent | null = null;
  for (const e of events) {
    if (e.cue !== cue || e.mono > send) continue;
    if (e.what === 'loaded') last = null;
    else last = e;
  }
  if (last === null || last.mono < since) return null;
  return Number(send - last.mono) / 1e6;
}

interface ReportInput {
  opts: Options;
  tree: string;
  wall: number;
  stealPct: number;
  cpuText: string;
  /** Wall clock minus CLOCK_MONOTONIC, ns (to place the players' log lines). */
  wallMinusMono: bigint;
  cues: CueDef[];
  gos: Go[];
  players: PlayerRun[];
  follow: FollowLine[];
  refV: Record<'h264' | 'dnxhd', RefVideo>;
  refA: Record<'h264' | 'dnxhd', RefAudio>;
}

/** A figure, ∞ for never, — for no sample. */
const fmt = (x: number, f: (v: number) => string): string => (Number.isNaN(x) ? '—' : Number.isFinite(x) ? f(x) : '∞');
const f0 = (x: number): string => fmt(x, String);
const f1 = (x: number): string => fmt(x, (v) => v.toFixed(1));
const f2 = (x: number): string => fmt(x, (v) => v.toFixed(2));
/** p50/p99/max (nearest rank, as bench-server's pct) of xs; null counts as never: infinite. */
function stats(xs: Array<number | null>): { n: number; p50: number; p99: number; max: number } {
  const v = xs.map((x) => (x === null ? Infinity : x));
  if (v.length === 0) return { n: 0, p50: NaN, p99: NaN, max: NaN };
  // Sorted with a comparison, not by subtraction: ∞ − ∞ is NaN, which would leave an order with several ∞ undefined.
  const sorted = [...v].sort((a, b) => (a === b ? 0 : a < b ? -1 : 1));
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return { n: v.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1] };
}
const triple = (s: ReturnType<typeof stats>, f: (x: number) => string): string => `${f(s.p50)} / ${f(s.p99)} / ${f(s.max)}`;
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—');

async function report(r: ReportInput): Promise<void> {
  const { gos, cues } = r;
  const clock = new ShowClock(r.follow);
  const timeline = new Timeline(r.follow);
  const show: Show = {
    clock, timeline,
    video: new Map(cues.map((c) => [c.id, r.refV[c.file]])),
    audio: new Map(cues.map((c) => [c.id, r.refA[c.file]])),
    frameNames: frameNames([r.refV.h264, r.refV.dnxhd]),
  };
  const ticksOf = new Map<PlayerRun, Tick[]>();
  const audioOf = new Map<PlayerRun, { lines: AudioLine[]; periods: Map<number, AudioLine[]>; wav: Float32Array | null }>();
  const statsLine = new Map<PlayerRun, { video: string; audio: string }>();
  const prepOf = new Map<PlayerRun, { video: PlayerEvent[]; audio: PlayerEvent[] }>();
  for (const p of r.players) {
    ticksOf.set(p, await readTicks(p.files.vhash, p.files.vsync));
    const lines = await readAudioLines(p.files.async);
    audioOf.set(p, { lines, periods: byPeriod(lines, PERIOD_FRAMES), wav: await wavSamples(p.files.awav).catch(() => null) });
    prepOf.set(p, { video: await preparedLog(p.files.vlog, r.wallMinusMono), audio: await preparedLog(p.files.alog, r.wallMinusMono) });
    const last = async (f: string): Promise<string> => (await fsp.readFile(f, 'utf8')).split('\n').filter((l) => l.startsWith('cuemux play-')).pop() ?? '(no stats line)';
    statsLine.set(p, { video: await last(p.files.vlog), audio: await last(p.files.alog) });
  }
  // Each GO's run: the first CueStarted of its cue received after its datagram.
  const used = new Set<Win>();
  const judged: Judged[] = gos.map((go, k) => {
    const run = timeline.wins.find((w) => w.first && w.cue === go.cue && w.mono >= go.send && !used.has(w)) ?? null;
    if (run !== null) used.add(run);
    const limit = k + 1 < gos.length && gos[k + 1].players === go.players ? gos[k + 1].send : go.players.endMono;
    const period = 1e9 / go.players.fps;
    const video = run === null ? null : judgeVideoGo(show, ticksOf.get(go.players) as Tick[], run, go.send, limit, period);
    const a = audioOf.get(go.players);
    const audio = run === null || a === undefined ? null : judgeAudioGo(show, a.lines, a.periods, run, go.send, limit, a.wav, PERIOD_FRAMES, SAMPLE_RATE);
    const pk = run === null ? undefined : r.follow.find((l) => l.e === 'packets' && l.cue === go.cue && l.seg === run.seg && BigInt(l.mono) >= go.send);
    const prev = [...gos.slice(0, k)].reverse().find((g) => g.cue === go.cue && g.players === go.players);
    const since = maxBig(prev?.send ?? 0n, go.armed ? 0n : go.unloaded ?? 0n);
    const prep = prepOf.get(go.players);
    return {
      go, run, video, audio, peerA: pk === undefined ? null : Number(BigInt(pk.mono) - go.send) / 1e6,
      preparedMs: { video: preparedBefore(prep?.video ?? [], go.cue, go.send, since), audio: preparedBefore(prep?.audio ?? [], go.cue, go.send, since) },
    };
  });
  // Out-of-sync ticks: every tick outside the GOs' pending spans.
  const wrong: Array<WrongTick & { players: PlayerRun }> = [];
  let judgedTicks = 0;
  let skippedSlots = 0;
  let clockDiff = 0;
  for (const p of r.players) {
    const ticks = ticksOf.get(p) as Tick[];
    for (const t of ticks) if (timeline.activeAt(clock.at(t.mono)).length > 0) clockDiff = Math.max(clockDiff, Math.abs(t.clock - clock.at(t.mono)));
    const pending = judged.filter((j) => j.go.players === p && j.video !== null).map((j) => [j.go.send, (j.video as VideoGo).pendingUntil] as [bigint, bigint]);
    const w = judgeTicks(show, ticks, pending, 1e9 / p.fps);
    judgedTicks += w.judged;
    skippedSlots += w.skipped;
    for (const x of w.wrong) wrong.push({ ...x, players: p });
  }
  // Seams: segments that no datagram started (loop passes, auto-follow starts).
  const goRuns = new Set(judged.map((j) => j.run).filter((w): w is Win => w !== null));
  const seams = timeline.wins.filter((w) => !goRuns.has(w));
  const seamWrong = { loop: 0, follow: 0, loopTicks: 0, followTicks: 0, loopSeams: 0, followSeams: 0, audioBad: 0, audioPeriods: 0, detail: [] as string[] };
  for (const s of seams) {
    const kind = s.cue === 'LOOP' ? 'loop' : 'follow';
    const p = r.players.find((x) => x.startMono <= s.mono && s.mono <= x.endMono);
    if (p === undefined) continue;
    if (kind === 'loop') seamWrong.loopSeams++;
    else seamWrong.followSeams++;
    const period = 1 / p.fps;
    const inWindow = (c: number): boolean => c >= s.clock - 2 * period && c < s.clock + 3 * period;
    const n = (ticksOf.get(p) as Tick[]).filter((t) => inWindow(clock.at(t.mono))).length;
    const bad = wrong.filter((w) => w.players === p && inWindow(w.clock));
    if (kind === 'loop') {
      seamWrong.loopTicks += n;
      seamWrong.loop += bad.length;
    } else {
      seamWrong.followTicks += n;
      seamWrong.follow += bad.length;
    }
    for (const b of bad.slice(0, 2)) seamWrong.detail.push(`${kind} seam of ${s.cue} seg ${s.seg} at clock ${s.clock.toFixed(3)}: tick at ${(b.clock - s.clock) * 1e3 >= 0 ? '+' : ''}${((b.clock - s.clock) * 1e3).toFixed(1)} ms showed ${b.shown}, FFmpeg's ${b.expected}${b.held ? ' (player: held)' : ''}`);
    // Audio: the periods of the new segment's first 30 ms.
    const a = audioOf.get(p);
    if (a !== undefined) {
      const lines = a.lines.filter((l) => l.cue === s.cue && l.seg === s.seg).slice(0, 3);
      for (const l of lines) {
        seamWrong.audioPeriods++;
        const why = a.wav === null ? 'no WAV' : checkSeamLine(show, l, s, a.periods, a.wav);
        if (why !== null) {
          seamWrong.audioBad++;
          if (seamWrong.detail.length < 12) seamWrong.detail.push(`audio at the ${kind} seam of ${s.cue} seg ${s.seg}: ${why}`);
        }
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  const out: string[] = [];
  const put = (s = ''): void => {
    out.push(s);
  };
  const nGos = gos.length;
  const loaded = stats(gos.map((g) => g.loadedCues ?? null).filter((x) => x !== null));
  put('');
  put(`bench:go — tree ${r.tree}; ${os.cpus().length} vCPUs; whole run ${r.wall.toFixed(0)} s; steal time (CPU time the hypervisor gave to other guests) ${r.stealPct.toFixed(1)}%`);
  put(r.cpuText);
  put(`Processes: cuemux serve; play-video (--fps ${r.opts.fps.join(' then ')}; presenting thread SCHED_FIFO 10 as by default, decoding at normal priority) and play-audio, both restarted ` +
    `${r.opts.restarts}× per phase${r.opts.prepare !== null ? `, --prepare ${r.opts.prepare}` : ''}; peer (a) a Follow client process; peer (b) a process of its own at normal priority (nice 0, as the players' decoders), not decoding the non-reference pictures before the in-point, as the players do not.`);
  put('Page cache: every media file read once before the run and nothing dropped: the server and peer (b) read from memory alike. Peer (b) was asked 0.5 s after each GO, between GOs, while the players played.');
  put('Cues (H.264: 1080p25, 3 B-frames, open GOPs, a keyframe every 2 s, 12 Mb/s, AAC; DNxHD 36: 1080p25 intra, PCM):');
  for (const c of cues) put(`  ${c.id.padEnd(5)} ${c.file.padEnd(6)} ${c.in.toFixed(3).padStart(7)}–${c.out.toFixed(3).padEnd(7)} s  ${c.what}${c.loop === true ? ' (loops)' : ''}`);
  put(`GOs: ${nGos} (${gos.filter((g) => g.armed).length} armed, ${gos.filter((g) => !g.armed).length} unarmed, ${gos.filter((g) => g.fresh).length} the first of fresh players)` +
    `; cues loaded on the server 0.25 s after a GO: p50 ${f0(loaded.p50)}, max ${f0(loaded.max)}` +
    `; failed GOs: ${gos.filter((g) => g.error !== null).length}; GOs with no CueStarted seen: ${judged.filter((j) => j.run === null).length}. ` +
    `Clock: ${clock.generations} generation(s); players' clock vs the ClockState's at their instants (ticks with a cue on): max ${(clockDiff * 1e6).toFixed(1)} µs.`);
  put('');
  put('Video — datagram → first in-sync picture (the tick whose MD5 is FFmpeg\'s frame for its clock); ticks = display slots after the datagram, 1 = the first');
  put('  kind                        n   ticks p50/p99/max     ms p50/p99/max            never   peer (a) 1st packet ms p50/p99   ×(a) p50   peer (b) open+decode ms p50/p99   ×(b) p50');
  const kinds: Array<[string, (g: Go) => boolean]> = [
    ['armed', (g) => g.armed && !g.fresh && g.special === null], ['armed, fresh player', (g) => g.armed && g.fresh],
    ['unarmed', (g) => !g.armed && !g.fresh], ['unarmed, fresh player', (g) => !g.armed && g.fresh],
  ];
  const vrow = (label: string, js: Judged[]): void => {
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    const ms = stats(js.map((j) => j.video?.ms ?? null));
    const a = stats(js.map((j) => j.peerA));
    const b = stats(js.map((j) => j.go.peerVideo?.ms ?? null).filter((x) => x !== null));
    put(`  ${label.padEnd(26)} ${String(t.n).padStart(3)}   ${triple(t, f0).padEnd(18)} ${triple(ms, f1).padEnd(24)} ${String(js.filter((j) => j.video?.ticks == null).length).padStart(5)}   ` +
      `${`${f2(a.p50)} / ${f2(a.p99)}`.padEnd(29)} ${ratio(ms.p50, a.p50).padStart(9)}   ${`${f1(b.p50)} / ${f1(b.p99)}`.padEnd(32)} ${ratio(ms.p50, b.p50).padStart(8)}`);
  };
  for (const fps of r.opts.fps) {
    put(` at ${fps} ticks/s:`);
    for (const [label, f] of kinds) vrow(label, judged.filter((j) => j.go.fps === fps && f(j.go)));
    vrow('loop / chain heads (armed)', judged.filter((j) => j.go.fps === fps && j.go.special !== null));
  }
  const pre = judged.flatMap((j) => j.video?.pre ?? []);
  const count = (k: string): number => pre.filter((x) => x === k).length;
  put(`  Ticks between a datagram and its first in-sync picture: ${pre.length} (held ${count('held')}, black ${count('black')}, the cue under it in sync ${count('under')}, ` +
    `wrong: a frame of the GO'd cue's file not for the clock ${count('wrong-new')}, any other ${count('wrong')})`);
  put(`  Out-of-sync ticks after a GO's first in-sync picture (all ticks with a cue on, ${judgedTicks} judged): ${wrong.length}` +
    (wrong.length > 0 ? ` (showing: the picture of the tick before ${wrong.filter((w) => w.kind === 'repeated').length}, black ${wrong.filter((w) => w.kind === 'black').length}, ` +
      `the cue under it ${wrong.filter((w) => w.kind === 'under').length}, another frame ${wrong.filter((w) => w.kind === 'other').length}; held by the player's own account: ${wrong.filter((w) => w.held).length}; display slots the player skipped, the picture before staying on screen: ${wrong.filter((w) => w.skipped).length} of ${skippedSlots} skipped; at 50: ${wrong.filter((w) => w.players.fps === 50).length}, at 60: ${wrong.filter((w) => w.players.fps === 60).length})` : ''));
  if (wrong.length > 0) {
    const byCue = new Map<string, number>();
    for (const w of wrong) byCue.set(w.cue, (byCue.get(w.cue) ?? 0) + 1);
    put(`  Out-of-sync ticks by cue: ${[...byCue].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ')}`);
  }
  put(`  Loop seams: ${seamWrong.loopSeams} seams, ${seamWrong.loopTicks} ticks within −2/+3 ticks of them, ${seamWrong.loop} wrong; auto-follow transitions: ${seamWrong.followSeams}, ${seamWrong.followTicks} ticks, ${seamWrong.follow} wrong; ` +
    `audio periods at those seams not in sync: ${seamWrong.audioBad} of ${seamWrong.audioPeriods}`);
  put('');
  put('Audio — datagram → the cue\'s first sample at the device, and → its first in-sync sample (WAV samples = FFmpeg\'s for the clock at their device instant)');
  put('  kind                        n   1st sample ms p50/p99/max   in-sync ms p50/p99/max    1st period not in sync   samples not FFmpeg\'s (player: underrun)   ×(a) p50   peer (b) ms p50/p99   ×(b) p50');
  const arow = (label: string, js: Judged[]): void => {
    const first = stats(js.map((j) => j.audio?.firstMs ?? null));
    const sync = stats(js.map((j) => j.audio?.syncMs ?? null));
    const a = stats(js.map((j) => j.peerA));
    const b = stats(js.map((j) => j.go.peerAudio?.ms ?? null).filter((x) => x !== null));
    put(`  ${label.padEnd(26)} ${String(first.n).padStart(3)}   ${triple(first, f1).padEnd(25)} ${triple(sync, f1).padEnd(25)} ${String(js.filter((j) => j.audio?.firstOk !== true).length).padStart(6)}` +
      `                   ${`${js.reduce((s, j) => s + (j.audio?.bad ?? 0), 0)} (${js.reduce((s, j) => s + (j.audio?.underrun ?? 0), 0)})`.padStart(20)}                 ${ratio(sync.p50, a.p50).padStart(9)}   ${`${f1(b.p50)} / ${f1(b.p99)}`.padEnd(20)} ${ratio(sync.p50, b.p50).padStart(8)}`);
  };
  for (const [label, f] of kinds) arow(label, judged.filter((j) => j.go.special === null && f(j.go)));
  arow('loop / chain heads (armed)', judged.filter((j) => j.go.special !== null));
  put('');
  put('Per cue (video, both rates): armed ticks p50/max · unarmed ms p50/max · peer (b) ms p50');
  for (const c of cues.filter((x) => x.follow !== true)) {
    const js = judged.filter((j) => j.go.cue === c.id);
    if (js.length === 0) continue;
    const ar = stats(js.filter((j) => j.go.armed).map((j) => j.video?.ticks ?? null));
    const un = stats(js.filter((j) => !j.go.armed).map((j) => j.video?.ms ?? null));
    const pb = stats(js.map((j) => j.go.peerVideo?.ms ?? null).filter((x) => x !== null));
    put(`  ${c.id.padEnd(5)} armed n ${String(ar.n).padStart(2)} ticks ${ar.n > 0 ? `${f0(ar.p50)}/${f0(ar.max)}` : '—'}`.padEnd(34) +
      `unarmed n ${String(un.n).padStart(2)} ms ${un.n > 0 ? `${f1(un.p50)}/${f1(un.max)}` : '—'}`.padEnd(30) + `peer (b) ${f1(pb.p50)}   ${c.what}`);
  }
  const misses = judged.filter((j) => j.go.armed && (j.video?.ticks == null || j.video.ticks > 2));
  // Armed GOs over another cue still playing, and over nothing.
  const over = (j: Judged): boolean => j.run !== null && timeline.activeAt(j.run.clock).some((w) => w.cue !== j.go.cue);
  put('');
  for (const [label, prepared] of [['prepared before the datagram by the video player\'s own log', true], ['not prepared by then (its log)', false]] as const) {
    const js = judged.filter((j) => j.go.armed && (j.preparedMs.video !== null) === prepared);
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    put(`Armed GOs ${label}: ${js.length}, ticks p50/p99/max ${triple(t, f0)}, ${js.filter((j) => (j.video?.ticks ?? Infinity) > 2).length} over 2 ticks` +
      (prepared ? ` (prepared p50 ${f0(Math.round(stats(js.map((j) => j.preparedMs.video)).p50))} ms before)` : ''));
  }
  // How each armed GO's cue came to be loaded: loaded (CueLoaded) since its previous run began, or still loaded
  // from that run (which an armed or an unarmed GO started).
  const how = (j: Judged): string => {
    const prev = [...judged.slice(0, j.go.i)].reverse().find((x) => x.go.cue === j.go.cue);
    const from = prev?.run?.mono ?? 0n;
    const anew = r.follow.some((l) => l.e === 'loaded' && l.cue === j.go.cue && BigInt(l.mono) > from && BigInt(l.mono) < j.go.send);
    return anew ? 'loaded anew for it' : prev?.go.armed === true ? 'still loaded since an armed GO of it' : 'still loaded since an unarmed GO of it';
  };
  const hows = new Map<string, Judged[]>();
  for (const j of judged.filter((x) => x.go.armed)) hows.set(how(j), [...(hows.get(how(j)) ?? []), j]);
  put(`Armed GOs by how their cue was loaded: ${[...hows].map(([h, js]) => {
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    return `${h} ${js.length} (ticks p50/p99 ${f0(t.p50)}/${f0(t.p99)}, prepared by the video player ${js.filter((j) => j.preparedMs.video !== null).length})`;
  }).join('; ')}`);
  for (const [label, prepared] of [['prepared before the datagram by the audio player\'s own log', true], ['not prepared by the audio player', false]] as const) {
    const js = judged.filter((j) => j.go.armed && j.go.special === null && (j.preparedMs.audio !== null) === prepared);
    const sync = stats(js.map((j) => j.audio?.syncMs ?? null));
    put(`Armed GOs ${label}: ${js.length}, first period not in sync ${js.filter((j) => j.audio?.firstOk !== true).length}, in-sync sample ms p50/p99 ${f1(sync.p50)}/${f1(sync.p99)}`);
  }
  const unPrepared = judged.filter((j) => !j.go.armed && (j.preparedMs.video !== null || j.preparedMs.audio !== null)).length;
  if (unPrepared > 0) put(`Unarmed GOs whose cue a player said was prepared (should be none): ${unPrepared}`);
  for (const [label, pickOver] of [['over another cue still playing', true], ['with nothing else playing', false]] as const) {
    const js = judged.filter((j) => j.go.armed && over(j) === pickOver);
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    put(`Armed GOs ${label}: ${js.length}, ticks p50/p99/max ${triple(t, f0)}, ${js.filter((j) => (j.video?.ticks ?? Infinity) > 2).length} over 2 ticks; ` +
      `audio first period not in sync ${js.filter((j) => j.audio?.firstOk !== true).length}`);
  }
  put(`Armed GOs not in sync by the 2nd tick: ${misses.length} of ${judged.filter((j) => j.go.armed).length}${misses.length > 0 ? '; the first ones, with what the ticks after the datagram showed:' : ''}`);
  const shownMisses = [...misses.slice(0, 8), ...misses.slice(8).filter((j) => j.go.fresh || j.go.special !== null).slice(0, 6)];
  for (const j of shownMisses) {
    const v = j.video;
    put(`  GO ${j.go.i} ${j.go.cue} (${j.go.fps}/s${j.go.fresh ? ', fresh player' : ''}${j.go.special !== null ? `, ${j.go.special}` : ''}): ${v?.ticks == null ? 'never in sync' : `in sync at tick ${v.ticks} (${f1(v.ms as number)} ms, ${v.firstFrame} for in-point ${v.inPointFrame})`}; ` +
      `${j.preparedMs.video === null ? 'not prepared at the GO' : `prepared ${f0(Math.round(j.preparedMs.video))} ms before`} (player's log); ` +
      `before: ${(v?.preText ?? []).slice(0, 4).join('; ')}${(v?.preText.length ?? 0) > 4 ? `; … ${(v?.preText.length ?? 0) - 4} more` : ''}`);
  }
  const wrongPre = judged.filter((j) => (j.video?.pre ?? []).some((k) => k.startsWith('wrong')));
  if (wrongPre.length > 0) {
    put(`GOs with a wrong picture before their first in-sync one: ${wrongPre.length}; e.g.`);
    for (const j of wrongPre.slice(0, 5)) put(`  GO ${j.go.i} ${j.go.cue}${j.go.armed ? ' armed' : ' unarmed'}: ${(j.video?.preText ?? []).filter((t) => t.startsWith('wrong')).slice(0, 3).join('; ')}`);
  }
  if (wrong.length > 0) {
    put(`Out-of-sync ticks, the first ones:`);
    for (const w of wrong.slice(0, 10)) {
      const go = [...gos].reverse().find((g) => g.send <= w.mono);
      put(`  ${w.players.tag} clock ${w.clock.toFixed(3)} (${go === undefined ? '' : `${((Number(w.mono - go.send)) / 1e6).toFixed(0)} ms after GO ${go.i} ${go.cue}`}): cue ${w.cue} showed ${w.shown}, FFmpeg's ${w.expected}${w.held ? ' (player: held)' : ''}${w.skipped ? ' (a skipped slot)' : ''}`);
    }
  }
  if (seamWrong.detail.length > 0) for (const d of seamWrong.detail.slice(0, 8)) put(`  ${d}`);
  const audioBad = judged.filter((j) => j.audio !== null && !j.audio.firstOk);
  if (audioBad.length > 0) {
    put(`Audio GOs whose first period was not in sync: ${audioBad.length}; e.g.`);
    for (const j of audioBad.slice(0, 6)) put(`  GO ${j.go.i} ${j.go.cue}${j.go.armed ? ' armed' : ' unarmed'}${j.go.fresh ? ' (fresh)' : ''}: ${j.audio?.firstWhy}`);
  }
  const peerErr = gos.filter((g) => g.peerVideo?.done.error !== undefined || g.peerAudio?.done.error !== undefined);
  const peerWrong = gos.filter((g) => {
    const d = g.peerVideo?.done;
    if (d === undefined || d.md5 === null) return false;
    const ref = show.video.get(g.cue) as RefVideo;
    const run = judged[g.i].run;
    return run !== null && ref.md5[frameAt(ref, run.media)] !== d.md5;
  });
  put(`Peer (b): ${gos.filter((g) => g.peerVideo !== null).length} video and ${gos.filter((g) => g.peerAudio !== null).length} audio decodes; errors ${peerErr.length}; ` +
    `video frames not FFmpeg's in-point frame ${peerWrong.length}; seeks back past an open-GOP leading picture ${gos.filter((g) => (g.peerVideo?.done.reseeks ?? 0) > 0).length}`);
  // The players' own counters at exit, summed over the player processes of the run.
  const sum = (kind: 'video' | 'audio'): string => {
    const total = new Map<string, number>();
    for (const p of r.players) {
      const line = statsLine.get(p)?.[kind] ?? '';
      const json = line.slice(line.indexOf('{'));
      if (!json.startsWith('{')) continue;
      for (const [k, v] of Object.entries(JSON.parse(json) as Record<string, unknown>)) if (typeof v === 'number') total.set(k, (total.get(k) ?? 0) + v);
    }
    return [...total].map(([k, v]) => `${k} ${v}`).join(', ');
  };
  put(`Players' own counters at exit (all ${r.players.length} of each): play-video ${sum('video')}; play-audio ${sum('audio')}`);

  // Targets.
  put('');
  put('Targets:');
  const target = (name: string, value: string, ok: boolean): void => put(`  ${ok ? 'PASS' : 'MISS'}  ${name}: ${value}`);
  for (const fps of r.opts.fps) {
    const a = stats(judged.filter((j) => j.go.fps === fps && j.go.armed).map((j) => j.video?.ticks ?? null));
    target(`armed GOs (fresh players included) at ${fps} ticks/s: first in-sync picture p99 ≤ 2 ticks after the datagram`,
      `p50 ${f0(a.p50)}, p99 ${f0(a.p99)}, max ${f0(a.max)} ticks (n ${a.n}; ${judged.filter((j) => j.go.fps === fps && j.go.armed && (j.video?.ticks ?? Infinity) > 2).length} over 2)`, a.p99 <= 2);
  }
  target('out-of-sync ticks after a GO\'s first in-sync picture, all runs', `${wrong.length} of ${judgedTicks}`, wrong.length === 0);
  target('wrong (stale or out-of-sync) pictures between a datagram and its first in-sync picture', `${count('wrong') + count('wrong-new')} ticks in ${wrongPre.length} GOs`, count('wrong') + count('wrong-new') === 0);
  for (const [label, armed] of [['armed', true], ['unarmed', false]] as const) {
    const au = judged.filter((j) => j.go.armed === armed);
    const bad = au.reduce((s, j) => s + (j.audio?.bad ?? 0), 0);
    const unverifiable = au.reduce((s, j) => s + (j.audio?.unverifiable ?? 0), 0);
    const underrun = au.reduce((s, j) => s + (j.audio?.underrun ?? 0), 0);
    if (armed) {
      target(`audio of ${label} GOs in sync from its first period`, `${au.filter((j) => j.audio?.firstOk !== true).length} of ${au.length} GOs not`, au.every((j) => j.audio?.firstOk === true));
      target(`samples missing or wrong at ${label} GOs (the first 0.5 s of each cue, against FFmpeg)`,
        `${bad} (the players counted ${underrun} underrun samples; ${unverifiable} periods mixed with an incomplete one, not checked)`, bad === 0 && underrun === 0);
    } else {
      // An unarmed GO's audio is decoded after the GO: the issue asks for silence until then, never stale samples.
      target(`samples at ${label} GOs neither FFmpeg's nor the silence of samples not decoded yet (the first 0.5 s of each cue)`,
        `${Math.max(0, bad - underrun)} (${bad} not FFmpeg's, of which ${underrun} silence the players counted as underrun; ${au.filter((j) => j.audio?.firstOk !== true).length} of ${au.length} GOs start with silence)`, bad - underrun <= 0);
    }
  }
  const un = judged.filter((j) => !j.go.armed);
  const up = stats(un.map((j) => j.video?.ms ?? null));
  const low = stats(un.map((j) => j.video?.readyAfterMs ?? null));
  const pb = stats(un.map((j) => j.go.peerVideo?.ms ?? null).filter((x) => x !== null));
  target('unarmed GOs: datagram → in-point frame ready, p50 ≤ peer (b)\'s (the same cues)',
    `p50 ${f1(up.p50)} ms at the first in-sync tick (${f1(low.p50)} ms at the tick before) vs peer (b) ${f1(pb.p50)} ms: ${ratio(up.p50, pb.p50)}`, up.p50 <= pb.p50);
  target('unarmed GOs: datagram → in-point frame ready, p99 ≤ peer (b)\'s (the same cues)',
    `p99 ${f1(up.p99)} ms (${f1(low.p99)} ms at the tick before) vs peer (b) ${f1(pb.p99)} ms: ${ratio(up.p99, pb.p99)}`, up.p99 <= pb.p99);
  const unWrong = un.filter((j) => (j.video?.pre ?? []).some((k) => k.startsWith('wrong'))).length;
  target('unarmed GOs in sync from their first shown frame', `${unWrong} of ${un.length} showed a frame out of sync first`, unWrong === 0);
  target('wrong ticks at loop seams', `${seamWrong.loop} of ${seamWrong.loopTicks} ticks at ${seamWrong.loopSeams} seams`, seamWrong.loop === 0 && seamWrong.loopSeams > 0);
  target('wrong ticks at auto-follow transitions', `${seamWrong.follow} of ${seamWrong.followTicks} ticks at ${seamWrong.followSeams} transitions`, seamWrong.follow === 0 && seamWrong.followSeams > 0);
  put('');
  process.stdout.write(`${out.join('\n')}\n`);
}

/** An audio line at a seam: in sync against its own segment's place on the clock. */
function checkSeamLine(show: Show, l: AudioLine, seg: Win, periods: ReadonlyMap<number, AudioLine[]>, wav: Float32Array): string | null {
  return checkAudioLine(show, l, seg, periods.get(Math.floor(l.deviceSample / PERIOD_FRAMES)) ?? [l], wav, SAMPLE_RATE).why;
}

const judgeDir = process.argv.indexOf('--judge');
if (judgeDir >= 0) runBench('bench:go', () => judgeKept(process.argv[judgeDir + 1]));
else runBench('bench:go', () => withScratch('cuemux-bench-go-', main));
