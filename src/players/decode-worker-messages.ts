/**
 * The messages between a {@link WorkerFollower} (presenting thread) and its decode worker (`decode-worker.ts`).
 * Everything crosses by structured clone, except pictures, whose planes are in a shared slot (see frame-pool.ts), and
 * audio blocks, whose samples are transferred.
 */
import type { MessagePort } from 'node:worker_threads';
import type { DecodedVideoFrame } from '../ffmpeg/types';
import type { ClockState, CueLoaded, CueStarted, CueStopped } from '../generated/cuemux/v1/media_server';
import type { LogLevel } from '../common/logger';
import type { MediaClientOptions } from '../clients/media-client';
import type { FrameSlotPoolStats } from './frame-pool';
import type { RtGuardStats } from './rt-guard';
import type { OutputFollowerOptions, PrerollAdopted, TimedAudio, TimedPicture } from './follower';

/** What the worker is started with (`workerData`). */
export interface DecodeWorkerData {
  /** The server(s), as MediaClient takes them (`unix:PATH` or `HOST:PORT`); several (a main and its backup): the master's. */
  targets: string[];
  /** The follower's options. */
  options: OutputFollowerOptions;
  /** The worker's MediaClient options (TLS and token over TCP; PEM as text or bytes, so they clone). */
  client?: MediaClientOptions;
  /** The presenter's PresentedPosition memory (presented-position.ts: its clock position, the packets skipped). */
  presented?: SharedArrayBuffer;
  /**
   * Where the worker posts its events ({@link FromWorker}): a port of its own, which the presenting thread can also
   * read synchronously at a tick (WorkerFollower#poll), unlike the worker's parentPort. Transferred.
   */
  events: MessagePort;
  /**
   * SCHED_FIFO priority of the worker's own thread, under a real-time guard (rt-guard.ts); 0 or absent: normal
   * scheduling at nice -5 (when allowed).
   */
  realtimePriority?: number;
}

/** A MediaClientError as it crosses threads. */
export interface ClientErrorData {
  method: string;
  code: number;
  details: string;
  errorCode: string | undefined;
}

/** Worker → presenting thread. */
export type FromWorker =
  | { type: 'clock'; state: ClockState }
  | { type: 'loaded'; cue: CueLoaded }
  /** `receivedNs`: CLOCK_MONOTONIC ns the worker read it off the Follow stream. */
  | { type: 'started'; cue: CueStarted; receivedNs: bigint }
  | { type: 'stopped'; cue: CueStopped }
  | { type: 'unloaded'; cueId: string }
  | {
    type: 'picture';
    /** The picture's place (its `frame` is sent as `frame` + `slot` + `planes`). */
    timed: Omit<TimedPicture, 'frame'>;
    frame: Omit<DecodedVideoFrame, 'planes'>;
    slot: number;
    buffer: SharedArrayBuffer;
    /** Plane lengths in bytes, back to back in the slot. */
    planes: number[];
  }
  /** The block's samples' ArrayBuffer is transferred (moved, not copied): the worker keeps no view of it. */
  | { type: 'audio'; audio: TimedAudio }
  | { type: 'adopted'; adopted: PrerollAdopted }
  | { type: 'prepared'; cueId: string; preroll: number }
  /** FFmpeg is loaded: the worker follows next. */
  | { type: 'ready' }
  | { type: 'reconnect'; error: ClientErrorData; attempt: number }
  | { type: 'log'; level: LogLevel; name: string; message: string; meta?: Record<string, unknown> }
  | { type: 'stats'; stats: WorkerStats }
  /** The follow ended: by a stop (error null), or for good (the error a retry cannot fix). */
  | { type: 'done'; stats: WorkerStats; clientError: ClientErrorData | null; error: string | null };

/** The worker's counters, sent every second and at the end. */
export interface WorkerStats {
  packets: number;
  decodeFailures: number;
  pool: FrameSlotPoolStats;
  /** The worker thread's real-time guard, when it runs at SCHED_FIFO. */
  rtGuard?: RtGuardStats;
}

/** Presenting thread → worker. */
export type ToWorker =
  | { type: 'release'; slot: number }
  | { type: 'stop' };
