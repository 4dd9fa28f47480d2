/**
 * `cuemux play-audio` and `cuemux play-video`: the reference players. Each follows one output of a running server,
 * decodes what it receives and presents it in sync with the show clock until SIGTERM/SIGINT (or `--duration`).
 * A server that is not up yet, or restarts, is waited for: the player keeps presenting what it has and resumes.
 */
import * as v8 from 'node:v8';
import { CuemuxError } from '../common/errors';
import { getLogger } from '../common/logger';
import * as grpc from '@grpc/grpc-js';
import { clockPositionAt, clockPositionRemote, type ClockAt } from '../clients/clock-position';
import { MediaClient, MediaClientError } from '../clients/media-client';
import { monoToUnixNs } from '../common/time-source';
import { openAudioSink, type AudioSink } from '../players/audio-sinks';
import { parseDeviceSpec, type AudioDevice } from '../players/audio-device';
import { openAudioDevice } from '../players/open-audio-device';
import { AudioPlayer } from '../players/audio-player';
import { SyncLog } from '../players/sync-log';
import { FirstPictureLog } from '../players/first-picture-log';
import { openVideoSink, type VideoSink } from '../players/video-sinks';
import { DEFAULT_WINDOW, openVideoWindow } from '../players/video-window';
import { RtGuard } from '../players/rt-guard';
import { raisePresentingThread } from '../players/thread-priority';
import { VideoPlayer } from '../players/video-player';
import { WorkerFollower } from '../players/worker-follower';
import type { CliIo } from './cli-io';
import { connectionOptions, serverTargets } from './server-target';
import { findMaster } from '../clients/server-choice';
import { connectionValues } from './client-options';
import { helpText, parseCommand, usageError, type CommandSpec } from './options';
import { PLAY_AUDIO, PLAY_VIDEO } from './play-options';
import { ExitCode, type ExitCodeValue } from './exit-codes';

const log = getLogger('play');

/** How often a player on another machine re-estimates the offset to the server's wall clock, ms. */
const OFFSET_REFRESH_MS = 10_000;

/**
 * The show position of a clock state at a CLOCK_MONOTONIC instant of this process. Over a Unix socket the server
 * shares this machine's monotonic clock: exact. Over TCP the server may be another machine: its anchors are mapped
 * through the wall clocks, with the offset estimated by Ping (the fastest of 8 round trips) and refreshed every 10 s.
 */
function clockMapping(clients: readonly MediaClient[], target: string, signal: AbortSignal): ClockAt {
  if (target.startsWith('unix:')) return (s, monoNs) => clockPositionAt(s, monoNs);
  let offsetNs = 0n;
  const refresh = (): void => {
    // Several servers (a main and its backup): the master's offset, the one whose anchors the player follows.
    const pick = clients.length === 1 ? Promise.resolve(0) : findMaster(clients).then((i) => i ?? 0);
    pick.then((i) => clients[i].estimateClockOffset(8, { timeout: 3000 })).then((r) => {
      offsetNs = r.offsetNs;
      log.info('wall clock offset to the server', { offsetMs: Number(r.offsetNs) / 1e6, roundTripMs: Number(r.roundTripNs) / 1e6 });
    }, () => undefined); // unreachable for now: keep the last estimate, the next refresh tries again
  };
  refresh();
  const timer = setInterval(refresh, OFFSET_REFRESH_MS).unref();
  signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  return (s, monoNs) => clockPositionRemote(s, offsetNs, monoToUnixNs(monoNs));
}

/** The option table of play-`kind`. */
export function playSpec(kind: 'audio' | 'video'): CommandSpec {
  return kind === 'audio' ? PLAY_AUDIO : PLAY_VIDEO;
}

/** Run `cuemux play-audio` (`kind` audio) or `cuemux play-video`. */
export async function runPlayCommand(io: CliIo, kind: 'audio' | 'video', args: string[]): Promise<ExitCodeValue> {
  const spec = playSpec(kind);
  const otherKind = kind === 'audio' ? 'video' : 'audio';
  // An option of the other player gets a message saying so, not "unknown option" (unless help is asked for).
  const asked = args.slice(0, args.includes('--') ? args.indexOf('--') : args.length);
  for (const a of asked.includes('--help') || asked.includes('-h') ? [] : asked) {
    const name = /^--([^=]+)/.exec(a)?.[1];
    if (name !== undefined && !spec.options.some((o) => o.name === name) && playSpec(otherKind).options.some((o) => o.name === name)) {
      throw usageError(spec, `--${name} is an option of play-${otherKind}, not play-${kind}`);
    }
  }
  // `--window` alone (last, or before another option) is the default window.
  const options = parseCommand(spec, kind === 'video' ? args.map((a, i) => (a === '--window' && (i + 1 >= args.length || args[i + 1].startsWith('-')) ? `--window=${DEFAULT_WINDOW}` : a)) : args);
  if (options === 'help') {
    io.out(helpText(spec));
    return ExitCode.OK;
  }
  const str = (name: string): string | undefined => options.string(name);
  const num = (name: string): number | undefined => options.number(name);
  const connection = connectionValues(options);
  const targets = serverTargets(connection);
  const target = targets.join(',');
  const clientOptions = connectionOptions(connection);
  const output = str('output') ?? kind;
  const lead = num('lead');
  const duration = num('duration') ?? null;
  const audio = kind === 'audio';
  let sampleRate = (audio ? num('rate') : undefined) ?? 48000;
  const channels = (audio ? num('channels') : undefined) ?? 2;
  const periodMs = (audio ? num('period-ms') : undefined) ?? 10;
  let periodFrames = Math.round((sampleRate * periodMs) / 1000);
  if (periodFrames < 16) throw usageError(spec, `--period-ms ${periodMs} is under 16 samples at ${sampleRate} Hz`);
  const writeAheadMs = (audio ? num('write-ahead-ms') : undefined) ?? 20;
  const ppm = (audio ? num('device-ppm') : undefined) ?? 0;
  // A real device (--device) sets the rate and the period, and has its own crystal.
  const deviceText = audio ? str('device') : undefined;
  const deviceSpec = deviceText === undefined ? null : parseDeviceSpec(deviceText, `cuemux-${output}`);
  for (const o of deviceSpec === null ? [] : ['period-ms', 'device-ppm']) if (options.has(o)) throw usageError(spec, `--${o} is for the modelled device, not --device ${deviceText}`);
  if (audio && deviceSpec === null && options.strings('device-connect').length > 0) throw usageError(spec, '--device-connect needs --device');
  const fps = (audio ? undefined : options.rate('fps')) ?? { num: 60, den: 1 };
  const spinMs = (audio ? undefined : num('spin-ms')) ?? 2;
  // Polling for most of a period would keep a real-time thread on a core for good, starving the decoder.
  const tickMs = (1000 * fps.den) / fps.num;
  if (kind === 'video' && spinMs >= tickMs / 2) {
    throw usageError(spec, `--spin-ms ${spinMs} must be under half the display period (${(tickMs / 2).toFixed(3)} ms at --fps ${str('fps') ?? '60'})`);
  }
  const nice = num('nice') ?? -10;
  const rtPriority = num('rt-priority') ?? 10;
  const prepare = str('prepare') ?? 'on';
  if (prepare !== 'on' && prepare !== 'off') throw usageError(spec, `--prepare must be on or off, got "${prepare}"`);
  const atEnd = (audio ? undefined : str('at-end')) ?? 'black';
  if (atEnd !== 'black' && atEnd !== 'hold') throw usageError(spec, `--at-end must be black or hold, got "${atEnd}"`);
  const threads = (audio ? undefined : num('threads')) ?? 0;

  // A scavenge of the presenting thread's heap waits for V8's helper threads, which run at normal priority: a real-time
  // presenting thread then waits on the decoders (priority inversion; bench:sync tick lateness p99 2.7-2.9 ms with
  // parallel scavenges, 0.06-0.5 ms without). That heap is small (the pictures are in the worker's pool), so one
  // thread scavenges it in well under a millisecond. The flag is read at each scavenge, so setting it now is safe.
  v8.setFlagsFromString('--no-parallel-scavenge');
  // Open every destination before playing: a bad path fails now, at the console, not at the first cue.
  const sinkSpecs = options.strings('sink');
  const windowSpec = audio ? undefined : str('window');
  const windowScale = (audio ? undefined : str('window-scale')) ?? 'linear';
  if (windowScale !== 'linear' && windowScale !== 'nearest') throw usageError(spec, `--window-scale must be linear or nearest, got "${windowScale}"`);
  let window: ReturnType<typeof openVideoWindow> | null = null;
  let stopPlaying: (() => void) | null = null;
  let guard: RtGuard | null = null;
  const specs = sinkSpecs.length > 0 ? sinkSpecs : ['null'];
  const audioSinks: AudioSink[] = [];
  const videoSinks: VideoSink[] = [];
  let syncLog: SyncLog | null = null;
  let firstPictures: FirstPictureLog | null = null;
  let device: AudioDevice | null = null;
  const clients = targets.map((t) => new MediaClient(t, clientOptions));
  try {
    if (deviceSpec !== null) {
      device = await openAudioDevice(deviceSpec, { channels, connect: options.strings('device-connect'), sampleRate: options.has('rate') ? sampleRate : undefined, rtPriority });
      const d = device.description;
      if (options.has('rate') && d.sampleRate !== sampleRate) throw usageError(spec, `--rate ${sampleRate}: the device runs at ${d.sampleRate} Hz`);
      sampleRate = d.sampleRate;
      periodFrames = d.periodFrames;
      if ((writeAheadMs * sampleRate) / 1000 + 2 * periodFrames > d.bufferFrames / 2) {
        throw usageError(spec, `--write-ahead-ms ${writeAheadMs} does not fit the device's buffer (${d.bufferFrames} frames at ${sampleRate} Hz)`);
      }
      const latency = device.stats.latencyFrames;
      log.info(`audio device ${d.kind} "${d.name}" open: ${d.sampleRate} Hz, ${d.periodFrames}-frame periods, output latency ${latency.max} frames (${(latency.max * 1000 / d.sampleRate).toFixed(2)} ms)`, {
        device: d.kind, client: d.name, server: d.server, sampleRate: d.sampleRate, periodFrames: d.periodFrames,
        periodMs: (d.periodFrames * 1000) / d.sampleRate, latencyFrames: latency, latencyMs: (latency.max * 1000) / d.sampleRate,
        ports: d.ports.map((p) => `${p.name} -> ${p.connections.join(',') || '(none)'}`),
      });
    }
    for (const spec of specs) {
      if (kind === 'audio') audioSinks.push(await openAudioSink(spec, { sampleRate, channels, name: `play-audio ${output}` }));
      else videoSinks.push(await openVideoSink(spec, { fps, name: `play-video ${output}` }));
    }
    if (windowSpec !== undefined) {
      // Closing the window stops the player as a signal does.
      window = openVideoWindow(windowSpec, { name: output, scale: windowScale, onClosed: () => stopPlaying?.() });
      videoSinks.push(window);
    }
    const syncLogFile = str('sync-log');
    if (syncLogFile !== undefined) syncLog = await SyncLog.open(syncLogFile);
    const firstPicturesFile = kind === 'video' ? str('first-pictures') : undefined;
    if (firstPicturesFile !== undefined) firstPictures = await FirstPictureLog.open(firstPicturesFile);
    // After the sinks (their files opened libuv's pool threads at normal priority) and before the decode worker
    // (it sets its own thread: nice -5, or SCHED_FIFO below this one when asked): threads created later start at normal priority.
    const priority = raisePresentingThread(rtPriority, nice);
    if (priority.problems.length > 0) {
      log.warn(`the presenting thread runs at ${priority.realtime > 0 ? `SCHED_FIFO ${priority.realtime}` : `nice ${priority.nice}`}, not what was asked (${priority.problems.join('; ')}): ticks may be late when decoding loads the machine; run as root or with CAP_SYS_NICE, or pass --rt-priority 0 --nice 0 to silence this`);
    }
    // Decoding runs in a worker thread: its allocations and collections never pause the thread that presents.
    // The decode worker reads the GO off the server. Real-time only when asked (decode-worker.ts has the A/B: GOs read
    // sooner, but more display slots skipped and audio xruns), and always below the presenting thread: never when that
    // one runs at normal scheduling (a worker above it would delay its ticks).
    const asked = num('worker-rt-priority') ?? 0;
    const workerPriority = priority.realtime <= 1 ? 0 : Math.min(priority.realtime - 1, asked);
    if (asked > 0 && workerPriority !== asked) {
      log.warn(priority.realtime <= 1
        ? `--worker-rt-priority ${asked}: the decode worker runs at normal scheduling, as the presenting thread does (a worker above it would delay its ticks)`
        : `--worker-rt-priority ${asked}: the decode worker runs at SCHED_FIFO ${workerPriority}, below the presenting thread's ${priority.realtime}`);
    }
    const follower = new WorkerFollower(targets, {
      output, kind, leadSeconds: lead, decoderThreads: kind === 'video' ? threads : 1, audioOutput: { sampleRate, channels },
      prepare: prepare === 'on',
    }, clientOptions, workerPriority);
    follower.on('reconnect', (e, attempt) => {
      if (attempt === 1 || attempt % 20 === 0) log.warn(`no server at ${target} (${e.details || e.message}): retrying`, { attempt });
    });
    follower.on('loaded', (c) => log.info(`cue ${c.cueId} loaded`, { media: c.media?.path, streams: c.streams }));
    follower.on('prepared', (p) => log.info('cue prepared', { cue: p.cueId, preroll: p.preroll }));
    const stop = new AbortController();
    const clockAt = clockMapping(clients, targets[0], stop.signal);
    const player = kind === 'audio'
      ? new AudioPlayer(follower, { sampleRate, channels, periodFrames, sinks: audioSinks, syncLog, device, devicePpm: ppm, writeAheadNs: BigInt(Math.round(writeAheadMs * 1e6)), clockAt })
      : new VideoPlayer(follower, { fps, sinks: videoSinks, syncLog, spinNs: BigInt(Math.round(spinMs * 1e6)), clockAt, atEnd, firstPictures });
    const onSignal = (): void => stop.abort();
    stopPlaying = onSignal;
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    const timer = duration === null ? null : setTimeout(onSignal, duration * 1000);
    // Warm start: the decode worker loads FFmpeg before it follows, and the player says it follows only then, so the
    // first GO of a fresh player costs what any other does.
    const ready = new Promise<void>((resolve) => follower.once('ready', resolve));
    const running = follower.run(stop.signal);
    try {
      await Promise.race([ready, running]);
      // Guarded from here on (its start-up would count as a loop); CUEMUX_RT_GUARD=off runs without (to compare runs).
      guard = priority.realtime > 0 && process.env.CUEMUX_RT_GUARD !== 'off' ? RtGuard.start(priority.realtime) : null;
      io.err(`cuemux play-${kind}: following output "${output}" at ${target}\n`);
      // Said before the first tick, and for a second reason: winston loads its formats lazily, on a first line. Left to
      // the first cue's "loaded" line, that loading held the presenting thread 12-34 ms (video) and up to 120 ms (audio).
      log.info(`play-${kind} presenting`, {
        output, target, ...(kind === 'video' ? { fps: `${fps.num}/${fps.den}`, atEnd } : { sampleRate, channels, periodMs: (periodFrames * 1000) / sampleRate, device: device === null ? 'none' : `${device.description.kind}:${device.description.name}` }),
        schedFifo: priority.realtime, workerSchedFifoAsked: workerPriority, nice: priority.nice, sinks: specs, prepare,
      });
      player.start();
      await running;
    } catch (e) {
      // Only what a retry cannot fix gets here (e.g. a bad output name): the server's message says what is wrong.
      if (e instanceof MediaClientError) throw new CuemuxError(e.code === grpc.status.INVALID_ARGUMENT ? 'INVALID_ARGUMENT' : 'INTERNAL', `the server at ${target} refused to follow output "${output}": ${e.details}`);
      throw e;
    } finally {
      player.stop();
      device?.close(); // now: frames it takes from here on are not underruns of the show
      guard?.close();
      if (timer !== null) clearTimeout(timer);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      io.err(`cuemux play-${kind}: ${JSON.stringify({ ...player.stats, packets: follower.packetsReceived, decodeFailures: follower.decodeFailures, ...(device === null ? {} : { device: device.stats }), ...(window === null ? {} : { window: window.stats }), ...(guard === null ? {} : { rtGuard: guard.stats }), ...(follower.workerGuardStats === null ? {} : { workerRtGuard: follower.workerGuardStats }) })}\n`);
    }
    return ExitCode.OK;
  } finally {
    for (const c of clients) c.close();
    device?.close();
    guard?.close();
    await Promise.all([...audioSinks.map((s) => s.close()), ...videoSinks.map((s) => s.close()), syncLog?.close(), firstPictures?.close()]);
  }
}
