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
 * --prepare on|off and --worker-rt-priority N (passed to the players, to compare runs), --seed N, --keep DIR (copy the logs and what the judge needs there),
 * --judge DIR (judge a kept run again, e.g. after changing this judge), --quick (30 GOs, 2 restarts, one phase at
 * 60: a smoke run), --video-node-flags "FLAGS" (Node flags for the play-video processes, to diagnose them, e.g.
 * "--cpu-prof --cpu-prof-dir=DIR" or "--trace-gc": their stdout then goes to pN-video.out beside their logs).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { closeSync, openSync, promises as fsp, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MediaClient } from '../src/clients/media-client';
import { monoNs } from '../src/common/time-source';
import { encodeMessage } from '../src/wire/osc-codec';
import { frameAt, readF32, readFramemd5, type RefAudio, type RefVideo } from './bench/reference';
import { FollowClient, PeerB, type FollowLine } from './bench-go-procs';
import { audioF32, goDnxhd, goH264, videoFramemd5 } from './bench-media';
import { CLI, reniceAll, runBench, SERVER_NICE, startBenchServer, withScratch } from './bench/harness';
import { watchSteal } from './bench/machine';
import { errorMessage } from '../src/common/errors';
import { NS, type CueDef, type Go, type Options, type PlayerRun } from './bench-go-model';
import { report, type ReportInput } from './bench-go-report';

/** An armed cue is loaded at least this long before its GO. */
const ARM_NS = 1_500_000_000n;

// ------------------------------------------------------------------------------------------------------------------
// Small tools

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


/** A set of players while they run. */
interface Players extends PlayerRun {
  video: ChildProcess;
  audio: ChildProcess;
  exited: Promise<unknown>;
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
    workerRtPriority: opt('--worker-rt-priority') ?? null,
    seed: Number(opt('--seed') ?? 20261206),
    keep: opt('--keep') ?? null,
    videoNodeFlags: (opt('--video-node-flags') ?? '').split(' ').filter((f) => f !== ''),
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
  if (opts.workerRtPriority !== null) playerExtra.push('--worker-rt-priority', opts.workerRtPriority);
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
  // As on a show machine (docs/systemd/cuemux.service): before, at the benchmark's nice 0 beside the players' decoders,
  // its GOs reached the Follow client p99 20-60 ms after the datagram in full runs (b1389f2, ba4965d).
  reniceAll(server.child.pid as number, SERVER_NICE);
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
    const files = { vhash: f('video-hash.jsonl'), vsync: f('video-sync.jsonl'), vlog: f('video.log'), async: f('audio-sync.jsonl'), awav: f('audio.wav'), alog: f('audio.log'), vfirst: f('video-first.jsonl') };
    const spawnPlayer = (args: string[], logFile: string, nodeFlags: string[] = []): ChildProcess => {
      const fd = openSync(logFile, 'w');
      const out = nodeFlags.length > 0 ? openSync(logFile.replace(/\.log$/, '.out'), 'w') : 'ignore';
      // Info lines (JSON): the player says when it has a cue prepared, which the report sets beside each GO.
      const c = spawn(process.execPath, [...nodeFlags, CLI, '--log-level', 'info', '--log-format', 'json', ...args], { stdio: ['ignore', out, fd] });
      closeSync(fd);
      if (typeof out === 'number') closeSync(out);
      track(c.pid);
      c.once('exit', () => live.delete(c.pid as number));
      return c;
    };
    await waitOutputs(1, 0);
    const video = spawnPlayer(['play-video', '--socket', socket, '--output', 'video', '--fps', String(fps), '--sink', `hash:${files.vhash}`, '--sync-log', files.vsync, '--first-pictures', files.vfirst, ...playerExtra], files.vlog, opts.videoNodeFlags);
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

const judgeDir = process.argv.indexOf('--judge');
if (judgeDir >= 0) runBench('bench:go', () => judgeKept(process.argv[judgeDir + 1]));
else runBench('bench:go', () => withScratch('cuemux-bench-go-', main));
