/**
 * The decode worker's entry point (run by {@link WorkerFollower} with `new Worker`, never imported): an
 * {@link OutputFollower} on the follow thread's relay of the Follow stream (follow-relay.ts) decodes there, and posts
 * what it decodes to the presenting thread, pictures through a {@link FrameSlotPool}; the show's events (clock, cues,
 * the GO) reach the presenting thread from the follow thread, not from here. Its own log lines are posted too, so the
 * player's one log gets them.
 */
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as os from 'node:os';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { getLogger, postingSink, setLogSink, type Logger } from '../common/logger';
import { MediaClientError } from '../clients/media-client';
import type { ClientErrorData, DecodeWorkerData, FromWorker, ToWorker, WorkerStats } from './decode-worker-messages';
import { clientErrorData, relayedFollow } from './follow-relay';
import { copyPlanes, FrameSlotPool } from './frame-pool';
import type { DecodedVideoFrame } from '../ffmpeg/types';
import { OutputFollower } from './output-follower';
import { totalLength } from './pipe-output';
import { errorStack } from '../common/errors';
import { RtGuard } from './rt-guard';
import { SlotAllocator } from './slot-allocator';

/** Nice value of the decode worker's own thread when allowed (root, CAP_SYS_NICE): above the decoders' 0. */
const WORKER_NICE = -5;

/** Bytes of pictures decoded between two scavenges at least: under one 1080p 4:2:0 picture (3,110,400 bytes), so 1080p keeps a scavenge a picture. */
const SCAVENGE_BYTES = 3_000_000;

/**
 * Size of the spare slots made at warm start, bytes: a 1080p 4:2:2 8-bit picture (1920 × 1080 × 2; the pool rounds
 * spares up to 64 KiB), which 1080p H.264 (4:2:0) and DNxHD/ProRes 8-bit pictures fit; larger pictures get spares of their own
 * size once the first is decoded.
 */
const WARM_SLOT_BYTES = 1920 * 1080 * 2;

/** How often packet and failure counts are posted, ms. */
const STATS_MS = 1000;

/**
 * A scavenge (minor collection) of this thread's heap, or null when V8 does not offer one.
 *
 * Why: every decoded picture counts against V8's external-memory limit twice (beamcoder reports the frame's buffers,
 * and each plane's Buffer counts its whole AVBuffer again: about 6 MB for 1080p), and past 64 MB of it V8 starts a
 * full mark-compact. Frames die young but the little JavaScript a frame allocates never fills the young generation,
 * so only mark-compacts freed them. Measured with --trace-gc in bench:go (60 ticks/s): this thread ran a mark-compact
 * every 60-100 ms, with marking steps up to 40 ms and a mutator utilisation of 0.35-0.6, and the GO's CueStarted, the
 * preroll's adoption and the pictures waited behind them (held ticks, late first pictures). A scavenge right after a
 * picture is handed on frees its frame and external memory: 300 1080p frames decoded took 33 mark-compacts without,
 * 7 with, at 0.26 ms a scavenge (p50, --no-parallel-scavenge as the player runs).
 */
function minorCollector(): (() => void) | null {
  try {
    // The flag is read when a context is created: a new context gets `gc`, the process's other contexts do not.
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    if (typeof gc !== 'function') return null;
    return () => (gc as (o: { type: 'minor' }) => void)({ type: 'minor' });
  } catch {
    return null;
  }
}

/** A picture's fields, without its planes or methods (what a message carries beside the pool slot). */
function pictureMeta(f: DecodedVideoFrame): Omit<DecodedVideoFrame, 'planes'> {
  return {
    kind: f.kind, pts: f.pts, bestEffortPts: f.bestEffortPts, duration: f.duration, width: f.width, height: f.height,
    format: f.format, keyFrame: f.keyFrame, sampleAspectRatio: f.sampleAspectRatio,
  };
}

function main(port: NonNullable<typeof parentPort>, data: DecodeWorkerData): void {
  const post = (m: FromWorker): void => data.events.postMessage(m);
  setLogSink(postingSink((r) => post({ type: 'log', ...r })));
  try {
    // On Linux a thread's nice value is its own, inherited from its creator: the presenting thread raised itself
    // before starting us (without real-time scheduling's reset-on-fork, its nice value would be ours). This thread
    // feeds FFmpeg and hands its pictures on: a little above FFmpeg's decoding threads (which libuv's pool creates, at
    // nice 0), so a new cue's first packets do not wait for a decoder's time slice.
    os.setPriority(WORKER_NICE);
  } catch {
    try {
      os.setPriority(0); // not allowed to raise: normal priority
    } catch {
      // Lowering to 0 from a negative value needs no privilege; from a positive one it does: keep it then.
    }
  }
  // This thread read the GO off the server and handed it on before the follow thread did (follow-relay.ts); it still
  // feeds a new cue's first packets to FFmpeg. At nice -5 it waited for a CPU behind FFmpeg's
  // decoding threads and the machine's other work: bench:go --quick (60 ticks/s), the 200 ms before each GO's
  // CueStarted read held p50 14.3 ms, p90 92.5 ms, max 123 ms runnable but not running (/proc/thread-self/schedstat,
  // CUEMUX_TRACE_WORKER=1), and the worker read CueStarted p99 80 ms after the datagram; at SCHED_FIFO 5 (the
  // --worker-rt-priority option), the same kind of run: p50 0.9, p90 3.0 ms, read p99 17.9 ms. Not the default: in
  // full bench:go runs back to back (session 15) FIFO 5 left 1 and 3 prepared armed GOs over 2 ticks against 8 at
  // nice -5, but the players skipped 22 and 33 display slots against 2 and had 39 and 77 audio xruns against 4 (the
  // presenting threads wait on normal-priority work a real-time worker starves, as V8's helper threads). Guarded as
  // the presenting thread is; threads it creates start at normal scheduling (SCHED_RESET_ON_FORK).
  // Raised once FFmpeg is loaded (at 'ready', below): loading it is a long stretch without waiting, which the guard
  // would take for a loop. If the presenting thread's own guard puts it back to normal scheduling (it is looping), this
  // thread stays above it for that spell: it waits on the server and the decoders, so it cannot hold a core for long.
  const fifo = data.realtimePriority ?? 0;
  let guard: RtGuard | null = null;
  const follower = new OutputFollower(relayedFollow(data.follow), data.options, data.presented);
  // The pool's new slots come ready from a thread of its own (slot-allocator.ts): mapping a slot's memory here held
  // this thread, which feeds the decoders, for ~9 ms a 1080p picture.
  const allocator = new SlotAllocator((buffers) => pool.supply(buffers));
  const pool = new FrameSlotPool({ request: (bytes, count) => allocator.request(bytes, count) });
  const stop = new AbortController();
  port.on('message', (m: ToWorker) => {
    if (m.type === 'release') pool.release(m.slot);
    else stop.abort();
  });
  const trace = process.env.CUEMUX_TRACE_WORKER === '1' ? workerTrace() : null;
  const log = getLogger('decode-worker');
  if (trace !== null) follower.on('started', (cue) => log.info('GO read by the decode worker', { cue: cue.cueId, segment: cue.segment, ...trace() }));
  // The block's samples are the resampler's own ArrayBuffer (resampler.ts): moved, not copied twice (serialised, then
  // deserialised). Most of postMessage's cost is per message, though: 9 % of this thread's busy samples with the move
  // (play-audio, one 48 kHz AAC cue), 13 % with copies in bench:multi. Moved at once: the follower reads nothing of a
  // block after emitting it (OutputFollower#emitAudio counts its frames first). A block that cannot be moved is copied.
  // Follow calls before this one (see FromWorker's `call`).
  let call = 0;
  follower.on('reconnect', () => call++);
  follower.on('audio', (audio) => {
    const m: FromWorker = { type: 'audio', audio, call };
    try {
      data.events.postMessage(m, audio.samples.buffer instanceof ArrayBuffer ? [audio.samples.buffer] : []);
    } catch {
      post(m);
    }
  });
  follower.on('ready', () => {
    // Warm start: spares for the first pictures, before the first cue's come (their size is a guess: see WARM_SLOT_BYTES).
    // An audio player has no pictures (its blocks are moved, not pooled): none for it.
    if (data.options.kind === 'video') pool.warm(WARM_SLOT_BYTES);
    if (fifo > 0 && guard === null) guard = workerRealtime(fifo, log);
    post({ type: 'ready' });
  });
  follower.on('prepared', (p) => post({ type: 'prepared', ...p }));
  follower.on('picture', (p) => {
    const { frame, ...timed } = p;
    const meta = pictureMeta(frame);
    if (frame.copyTo !== undefined && frame.planeLengths !== undefined && frame.byteLength !== undefined) {
      // FFmpeg copies its frame into the slot: no Buffer is made of the frame's memory (released on 'decoded', below).
      const slot = pool.acquire(frame.byteLength);
      frame.copyTo(new Uint8Array(slot.buffer));
      post({ type: 'picture', timed, frame: meta, slot: slot.id, buffer: slot.buffer, planes: [...frame.planeLengths], call });
      return;
    }
    const slot = pool.acquire(totalLength(frame.planes));
    const lengths = copyPlanes(frame.planes, slot.buffer);
    post({ type: 'picture', timed, frame: meta, slot: slot.id, buffer: slot.buffer, planes: lengths, call });
  });
  const scavenge = minorCollector();
  /** Pictures decoded since the last release, released then (each handed on, if it was, synchronously when decoded). */
  const decoded: DecodedVideoFrame[] = [];
  /** Bytes of the pictures decoded since the last scavenge. */
  let unscavenged = 0;
  follower.on('decoded', (d) => {
    // Every decoded picture (a preroll's before the in-point too, which are not handed on), once the decode that gave
    // it has returned: its frame goes back to FFmpeg, then one scavenge for the little JavaScript they left.
    // Why release: a picture's memory counted against V8's external-memory limit until a collection finalized its
    // frame, and past 64 MB of it V8 runs a mark-compact. bench:go --quick with --trace-gc (the first 60 ticks/s
    // player, 20 s; both runs with other work on the machine): this thread ran 61 mark-compacts (3-26 ms pauses)
    // without releases, 12 with them.
    if (d.frame.kind !== 'video') return;
    decoded.push(d.frame);
    unscavenged += d.frame.byteLength ?? totalLength(d.frame.planes);
    if (decoded.length > 1) return;
    setImmediate(() => {
      for (const f of decoded.splice(0)) f.release?.();
      // A scavenge once a 1080p picture's worth has been decoded, not after every picture: for small pictures it was
      // the cost (bench:multi's 320x180 players, multi5's --trace-gc: 26 scavenges a second, p50 1.2 ms each on full
      // CPUs) with nothing to gain, their memory being far from the limits that start a mark-compact.
      if (unscavenged < SCAVENGE_BYTES) return;
      unscavenged = 0;
      scavenge?.();
    });
  });
  const stats = (): WorkerStats => ({ packets: follower.packetsReceived, decodeFailures: follower.decodeFailures, pool: pool.stats, ...(guard === null ? {} : { rtGuard: guard.stats }) });
  const ticker = setInterval(() => post({ type: 'stats', stats: stats() }), STATS_MS);
  const done = (clientError: ClientErrorData | null, error: string | null): void => {
    clearInterval(ticker);
    post({ type: 'done', stats: stats(), clientError, error });
    guard?.close();
    void allocator.close();
    // Not close(): the thread ends by itself once idle, after 'done' has left.
    port.unref();
    data.events.unref();
    data.follow.unref();
  };
  follower.run(stop.signal).then(
    () => done(null, null),
    (e: unknown) => done(e instanceof MediaClientError ? clientErrorData(e) : null, errorStack(e)),
  );
}

if (parentPort !== null) main(parentPort, workerData as DecodeWorkerData);

/**
 * Diagnosis only (CUEMUX_TRACE_WORKER=1): every 20 ms this thread's scheduler statistics (/proc/thread-self/schedstat:
 * ns on a CPU, ns runnable but waiting for one) and its event loop's utilisation; the returned function says what the
 * last ~200 ms held, to tell a GO read late because this thread was busy from one read late because it waited for a CPU.
 */
function workerTrace(): () => Record<string, number> {
  const samples: { at: number; cpu: number; wait: number; elu: ReturnType<typeof performance.eventLoopUtilization> }[] = [];
  // A diagnostic never ends playback: a kernel without schedstat (or any read error) turns it off.
  let off = false;
  const sample = (): void => {
    if (off) return;
    try {
      const [cpu, wait] = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
      samples.push({ at: performance.now(), cpu, wait, elu: performance.eventLoopUtilization() });
      if (samples.length > 11) samples.shift();
    } catch {
      off = true;
    }
  };
  sample();
  setInterval(sample, 20).unref();
  return (): Record<string, number> => {
    sample();
    if (off || samples.length === 0) return { unavailable: 1 };
    const a = samples[0];
    const b = samples[samples.length - 1];
    const elu = performance.eventLoopUtilization(b.elu, a.elu);
    return { spanMs: b.at - a.at, cpuMs: (b.cpu - a.cpu) / 1e6, runqueueMs: (b.wait - a.wait) / 1e6, loopBusy: elu.utilization };
  };
}

/** This thread at SCHED_FIFO `priority` with its guard, or null (at nice -5 as set before) with a warning saying why. */
function workerRealtime(priority: number, log: Logger): RtGuard | null {
  const { guard, error } = RtGuard.raise(priority, 'decode worker');
  if (guard === null) log.warn(`the decode worker runs at normal scheduling, not SCHED_FIFO ${priority} (${error}): a GO may wait for a CPU behind decoding`);
  return guard;
}
