/**
 * `cuemux play-audio` and `cuemux play-video`: the reference players. Each follows one output of a running server,
 * decodes what it receives and presents it in sync with the show clock until SIGTERM/SIGINT (or `--duration`).
 * A server that is not up yet, or restarts, is waited for: the player keeps presenting what it has and resumes.
 */
import * as v8 from 'node:v8';
import { parseArgs } from 'node:util';
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import * as grpc from '@grpc/grpc-js';
import { clockPositionAt, clockPositionRemote, type ClockAt } from '../clients/clock-position';
import { MediaClient, MediaClientError } from '../clients/media-client';
import { monoToUnixNs } from '../common/time-source';
import { openAudioSink, type AudioSink } from '../players/audio-sinks';
import { AudioPlayer } from '../players/audio-player';
import { SyncLog } from '../players/sync-log';
import { openVideoSink, type VideoSink } from '../players/video-sinks';
import { raisePresentingThread } from '../players/thread-priority';
import { VideoPlayer } from '../players/video-player';
import { WorkerFollower } from '../players/worker-follower';
import type { CliIo } from './cli-io';
import { serverTarget } from './server-target';
import { ExitCode, type ExitCodeValue } from './exit-codes';

const log = getLogger('play');

const COMMON = `  --socket PATH        the server's Unix socket (default $CUEMUX_SOCKET or the server's default)
  --target HOST:PORT   connect over TCP instead
  --output NAME        the output to follow (default: %OUTPUT%)
  --lead S             packets this many seconds ahead of the clock (default: the server's, 0.5)
  --sync-log FILE      one JSON line per presented %UNIT%: {mono_ns, pts_seconds, clock_seconds, ...}
  --duration S         stop after S seconds (default: until SIGTERM/SIGINT)
  --rt-priority N      SCHED_FIFO priority of the presenting thread, 1..99, or 0 for normal scheduling
                       (default 10; needs root, CAP_SYS_NICE or an RLIMIT_RTPRIO, else the player says so and
                       uses --nice); decoding runs in another thread at normal priority
  --nice N             nice value of the presenting thread, -20..19 (default -10; same privileges), which
                       applies when real-time scheduling is off or refused
  --prepare on|off     prepare armed cues before their GO: decoders open and the in-point decoded from the
                       server's preroll, so a GO is presented at the next tick (default on)`;

/** Usage of `cuemux play-audio`. */
export const PLAY_AUDIO_USAGE = `Usage: cuemux play-audio [options]

Follows an output, decodes its audio, converts it to the device format and plays it sample-accurately on the show
clock, slewing for small drift and relocating only on discontinuities.

${COMMON.replace('%OUTPUT%', 'audio').replace('%UNIT%', 'audio period (per cue)')}
  --sink SPEC          wav:FILE | raw:FILE (a FIFO, a file, or - for stdout: f32le) | null (default null);
                       may be repeated. e.g. mkfifo /tmp/a && aplay -t raw -f FLOAT_LE -r 48000 -c 2 /tmp/a
  --rate HZ            device sample rate (default 48000)
  --channels N         device channels (default 2)
  --period-ms MS       device period (default 10)
  --write-ahead-ms MS  render each period this long before the device plays it (default 20)
  --device-ppm N       model a device crystal N ppm slow (negative: fast); for testing the slew (default 0)
`;

/** Usage of `cuemux play-video`. */
export const PLAY_VIDEO_USAGE = `Usage: cuemux play-video [options]

Follows an output (a layer), decodes its video and, at each display tick, presents the frame whose time span covers
the show clock (repeating or dropping frames as the rates require; black when no cue is on).

${COMMON.replace('%OUTPUT%', 'video').replace('%UNIT%', 'display tick')}
  --sink SPEC          y4m:FILE | raw:FILE (a FIFO or a file; a reader may come and go) | hash:FILE (frame-hash
                       log, JSON lines with the MD5 of each presented picture) | null (default null); may be repeated.
                       e.g. mkfifo /tmp/v && ffplay -f yuv4mpegpipe /tmp/v
  --fps RATE           display ticks per second: 60, 50, 25, 29.97, 30000/1001... (default 60)
  --spin-ms MS         poll the clock this long before each tick instead of sleeping (default 2; 0 = timers only)
  --threads N          decoder threads (default 0: FFmpeg's choice)
  --at-end black|hold  after a cue's end: black, or hold its last frame until another cue plays or it is stopped
                       (default black)
`;

/** How often a player on another machine re-estimates the offset to the server's wall clock, ms. */
const OFFSET_REFRESH_MS = 10_000;

/**
 * The show position of a clock state at a CLOCK_MONOTONIC instant of this process. Over a Unix socket the server
 * shares this machine's monotonic clock: exact. Over TCP the server may be another machine: its anchors are mapped
 * through the wall clocks, with the offset estimated by Ping (the fastest of 8 round trips) and refreshed every 10 s.
 */
function clockMapping(client: MediaClient, target: string, signal: AbortSignal): ClockAt {
  if (target.startsWith('unix:')) return (s, monoNs) => clockPositionAt(s, monoNs);
  let offsetNs = 0n;
  const refresh = (): void => {
    client.estimateClockOffset(8, { timeout: 3000 }).then((r) => {
      offsetNs = r.offsetNs;
      log.info('wall clock offset to the server', { offsetMs: Number(r.offsetNs) / 1e6, roundTripMs: Number(r.roundTripNs) / 1e6 });
    }, () => undefined); // unreachable for now: keep the last estimate, the next refresh tries again
  };
  refresh();
  const timer = setInterval(refresh, OFFSET_REFRESH_MS).unref();
  signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  return (s, monoNs) => clockPositionRemote(s, offsetNs, monoToUnixNs(monoNs));
}

/** Parse a positive number option. */
function positive(name: string, v: string | undefined, def: number, integer = false): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new CuemuxError('INVALID_ARGUMENT', `--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${v}"`);
  }
  return n;
}

/** Parse a display rate: `60`, `29.97`, `30000/1001`. */
export function parseFps(v: string): { num: number; den: number } {
  const known: Record<string, [number, number]> = { '23.976': [24000, 1001], '29.97': [30000, 1001], '59.94': [60000, 1001], '47.952': [48000, 1001] };
  const k = known[v];
  if (k !== undefined) return { num: k[0], den: k[1] };
  const m = /^(\d+)(?:\/(\d+))?$/.exec(v);
  const num = m === null ? NaN : Number(m[1]);
  const den = m === null ? NaN : Number(m[2] ?? '1');
  if (!(num > 0 && den > 0 && num / den <= 1000)) throw new CuemuxError('INVALID_ARGUMENT', `--fps must be like 60, 29.97 or 30000/1001 (at most 1000), got "${v}"`);
  return { num, den };
}

/** Run `cuemux play-audio` (`kind` audio) or `cuemux play-video`. */
export async function runPlayCommand(io: CliIo, kind: 'audio' | 'video', args: string[]): Promise<ExitCodeValue> {
  const { values } = parseArgs({
    args, strict: true, allowPositionals: false,
    options: {
      socket: { type: 'string' }, target: { type: 'string' }, output: { type: 'string' }, lead: { type: 'string' },
      'sync-log': { type: 'string' }, duration: { type: 'string' }, sink: { type: 'string', multiple: true },
      rate: { type: 'string' }, channels: { type: 'string' }, 'period-ms': { type: 'string' }, 'write-ahead-ms': { type: 'string' },
      'device-ppm': { type: 'string' }, fps: { type: 'string' }, 'spin-ms': { type: 'string' }, threads: { type: 'string' }, nice: { type: 'string' },
      'rt-priority': { type: 'string' }, prepare: { type: 'string' }, 'at-end': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    io.out(kind === 'audio' ? PLAY_AUDIO_USAGE : PLAY_VIDEO_USAGE);
    return ExitCode.OK;
  }
  const wrongKind = kind === 'audio' ? ['fps', 'spin-ms', 'threads', 'at-end'] : ['rate', 'channels', 'period-ms', 'write-ahead-ms', 'device-ppm'];
  for (const k of wrongKind) {
    if ((values as Record<string, unknown>)[k] !== undefined) throw new CuemuxError('INVALID_ARGUMENT', `--${k} is an option of play-${kind === 'audio' ? 'video' : 'audio'}, not play-${kind}`);
  }
  const target = serverTarget(values);
  const output = values.output ?? kind;
  const lead = values.lead === undefined ? undefined : positive('lead', values.lead, 0);
  const duration = values.duration === undefined ? null : positive('duration', values.duration, 0);
  const sampleRate = positive('rate', values.rate, 48000, true);
  const channels = positive('channels', values.channels, 2, true);
  const periodMs = positive('period-ms', values['period-ms'], 10);
  const periodFrames = Math.round((sampleRate * periodMs) / 1000);
  if (periodFrames < 16) throw new CuemuxError('INVALID_ARGUMENT', `--period-ms ${periodMs} is under 16 samples at ${sampleRate} Hz`);
  const writeAheadMs = positive('write-ahead-ms', values['write-ahead-ms'], 20);
  const ppm = values['device-ppm'] === undefined ? 0 : Number(values['device-ppm']);
  if (!Number.isInteger(ppm) || Math.abs(ppm) > 10_000) throw new CuemuxError('INVALID_ARGUMENT', `--device-ppm must be an integer within ±10000, got "${values['device-ppm']}"`);
  const fps = parseFps(values.fps ?? '60');
  const spinMs = values['spin-ms'] === undefined ? 2 : Number(values['spin-ms']);
  if (!(spinMs >= 0 && spinMs <= 20)) throw new CuemuxError('INVALID_ARGUMENT', `--spin-ms must be 0..20, got "${values['spin-ms']}"`);
  // Polling for most of a period would keep a real-time thread on a core for good, starving the decoder.
  const tickMs = (1000 * fps.den) / fps.num;
  if (kind === 'video' && spinMs >= tickMs / 2) {
    throw new CuemuxError('INVALID_ARGUMENT', `--spin-ms ${spinMs} must be under half the display period (${(tickMs / 2).toFixed(3)} ms at --fps ${values.fps ?? '60'})`);
  }
  const nice = values.nice === undefined ? -10 : Number(values.nice);
  if (!Number.isInteger(nice) || nice < -20 || nice > 19) throw new CuemuxError('INVALID_ARGUMENT', `--nice must be an integer -20..19, got "${values.nice}"`);
  const rtPriority = values['rt-priority'] === undefined ? 10 : Number(values['rt-priority']);
  if (!Number.isInteger(rtPriority) || rtPriority < 0 || rtPriority > 99) throw new CuemuxError('INVALID_ARGUMENT', `--rt-priority must be an integer 0..99, got "${values['rt-priority']}"`);
  const prepare = values.prepare ?? 'on';
  if (prepare !== 'on' && prepare !== 'off') throw new CuemuxError('INVALID_ARGUMENT', `--prepare must be on or off, got "${prepare}"`);
  const atEnd = values['at-end'] ?? 'black';
  if (atEnd !== 'black' && atEnd !== 'hold') throw new CuemuxError('INVALID_ARGUMENT', `--at-end must be black or hold, got "${atEnd}"`);
  const threads = values.threads === undefined ? 0 : Number(values.threads);
  if (!Number.isInteger(threads) || threads < 0 || threads > 64) throw new CuemuxError('INVALID_ARGUMENT', `--threads must be an integer 0..64, got "${values.threads}"`);

  // A scavenge of the presenting thread's heap waits for V8's helper threads, which run at normal priority: a real-time
  // presenting thread then waits on the decoders (priority inversion; bench:sync tick lateness p99 2.7-2.9 ms with
  // parallel scavenges, 0.06-0.5 ms without). That heap is small (the pictures are in the worker's pool), so one
  // thread scavenges it in well under a millisecond. The flag is read at each scavenge, so setting it now is safe.
  v8.setFlagsFromString('--no-parallel-scavenge');
  // Open every destination before playing: a bad path fails now, at the console, not at the first cue.
  const specs = values.sink ?? ['null'];
  const audioSinks: AudioSink[] = [];
  const videoSinks: VideoSink[] = [];
  let syncLog: SyncLog | null = null;
  const client = new MediaClient(target);
  try {
    for (const spec of specs) {
      if (kind === 'audio') audioSinks.push(await openAudioSink(spec, { sampleRate, channels, name: `play-audio ${output}` }));
      else videoSinks.push(await openVideoSink(spec, { fps, name: `play-video ${output}` }));
    }
    if (values['sync-log'] !== undefined) syncLog = await SyncLog.open(values['sync-log']);
    // After the sinks (their files opened libuv's pool threads at normal priority) and before the decode worker
    // (it sets its own thread back to normal): only the presenting thread is raised.
    const priority = raisePresentingThread(rtPriority, nice);
    if (priority.problems.length > 0) {
      log.warn(`the presenting thread runs at ${priority.realtime > 0 ? `SCHED_FIFO ${priority.realtime}` : `nice ${priority.nice}`}, not what was asked (${priority.problems.join('; ')}): ticks may be late when decoding loads the machine; run as root or with CAP_SYS_NICE, or pass --rt-priority 0 --nice 0 to silence this`);
    }
    // Decoding runs in a worker thread: its allocations and collections never pause the thread that presents.
    const follower = new WorkerFollower(target, {
      output, kind, leadSeconds: lead, decoderThreads: kind === 'video' ? threads : 1, audioOutput: { sampleRate, channels },
      prepare: prepare === 'on',
    });
    follower.on('reconnect', (e, attempt) => {
      if (attempt === 1 || attempt % 20 === 0) log.warn(`no server at ${target} (${e.details || e.message}): retrying`, { attempt });
    });
    follower.on('loaded', (c) => log.info(`cue ${c.cueId} loaded`, { media: c.media?.path, streams: c.streams }));
    follower.on('prepared', (p) => log.info('cue prepared', { cue: p.cueId, preroll: p.preroll }));
    const stop = new AbortController();
    const clockAt = clockMapping(client, target, stop.signal);
    const player = kind === 'audio'
      ? new AudioPlayer(follower, { sampleRate, channels, periodFrames, sinks: audioSinks, syncLog, devicePpm: ppm, writeAheadNs: BigInt(Math.round(writeAheadMs * 1e6)), clockAt })
      : new VideoPlayer(follower, { fps, sinks: videoSinks, syncLog, spinNs: BigInt(Math.round(spinMs * 1e6)), clockAt, atEnd });
    const onSignal = (): void => stop.abort();
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    const timer = duration === null ? null : setTimeout(onSignal, duration * 1000);
    // Warm start: the decode worker loads FFmpeg before it follows, and the player says it follows only then, so the
    // first GO of a fresh player costs what any other does.
    const ready = new Promise<void>((resolve) => follower.once('ready', resolve));
    const running = follower.run(stop.signal);
    try {
      await Promise.race([ready, running]);
      io.err(`cuemux play-${kind}: following output "${output}" at ${target}\n`);
      // Said before the first tick, and for a second reason: winston loads its formats lazily, on a first line. Left to
      // the first cue's "loaded" line, that loading held the presenting thread 12-34 ms (video) and up to 120 ms (audio).
      log.info(`play-${kind} presenting`, {
        output, target, ...(kind === 'video' ? { fps: `${fps.num}/${fps.den}`, atEnd } : { sampleRate, channels, periodMs }),
        schedFifo: priority.realtime, nice: priority.nice, sinks: specs, prepare,
      });
      player.start();
      await running;
    } catch (e) {
      // Only what a retry cannot fix gets here (e.g. a bad output name): the server's message says what is wrong.
      if (e instanceof MediaClientError) throw new CuemuxError(e.code === grpc.status.INVALID_ARGUMENT ? 'INVALID_ARGUMENT' : 'INTERNAL', `the server at ${target} refused to follow output "${output}": ${e.details}`);
      throw e;
    } finally {
      player.stop();
      if (timer !== null) clearTimeout(timer);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      io.err(`cuemux play-${kind}: ${JSON.stringify({ ...player.stats, packets: follower.packetsReceived, decodeFailures: follower.decodeFailures })}\n`);
    }
    return ExitCode.OK;
  } finally {
    client.close();
    await Promise.all([...audioSinks.map((s) => s.close()), ...videoSinks.map((s) => s.close()), syncLog?.close()]);
  }
}
