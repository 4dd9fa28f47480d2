/**
 * The messages between a {@link WorkerFollower} (presenting thread), its follow thread (`follow-thread.ts`, which reads
 * the Follow stream: see follow-relay.ts) and its decode worker (`decode-worker.ts`). Everything crosses by structured
 * clone, except pictures, whose planes are in a shared slot (see frame-pool.ts), and audio blocks, whose samples are
 * transferred.
 */
import type { MessagePort } from 'node:worker_threads';
import type { DecodedVideoFrame } from '../ffmpeg/types';
import type { ClockState, CueLoaded, CueStarted, CueStopped, FollowEvent } from '../generated/cuemux/v1/media_server';
import type { LogLevel } from '../common/logger';
import type { MediaClientOptions } from '../clients/media-client';
import type { FrameSlotPoolStats } from './frame-pool';
import type { RtGuardStats } from './rt-guard';
import type { OutputFollowerOptions, PrerollAdopted, TimedAudio, TimedPicture } from './follower';

/** What the decode worker is started with (`workerData`). */
export interface DecodeWorkerData {
  /** The follower's options. */
  options: OutputFollowerOptions;
  /** The follow thread's relay of the Follow stream (FromFollowThreadToDecoder; ToFollowThreadFromDecoder back). Transferred. */
  follow: MessagePort;
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

/** What the follow thread is started with (`workerData`). */
export interface FollowThreadData {
  /** The server(s), as MediaClient takes them (`unix:PATH` or `HOST:PORT`); several (a main and its backup): the master's. */
  targets: string[];
  /** The MediaClient options (TLS and token over TCP; PEM as text or bytes, so they clone). */
  client?: MediaClientOptions;
  /** The decode worker's side of the relay. Transferred. */
  decoder: MessagePort;
  /** Where the show's events go to the presenting thread ({@link FromFollowThread}). Transferred. */
  presenter: MessagePort;
}

/** Follow thread → decode worker: the Follow stream, in order. */
export type FromFollowThreadToDecoder =
  | { type: 'event'; event: FollowEvent }
  | { type: 'reconnect'; error: ClientErrorData; attempt: number }
  /** The follow ended: by a stop (both null), or for good. */
  | { type: 'end'; clientError: ClientErrorData | null; error: string | null };

/** Decode worker → follow thread: follow now (FFmpeg is loaded), with these FollowRequest fields. */
export interface ToFollowThreadFromDecoder {
  type: 'start';
  output: string;
  leadSeconds?: number;
  prepare?: boolean;
}

/**
 * Follow thread → presenting thread: the show's events, as soon as they are read (`receivedNs`: CLOCK_MONOTONIC ns of
 * the read). The decode worker does not post these.
 */
export type FromFollowThread =
  | { type: 'clock'; state: ClockState }
  | { type: 'loaded'; cue: CueLoaded }
  | { type: 'started'; cue: CueStarted; receivedNs: bigint }
  | { type: 'stopped'; cue: CueStopped }
  | { type: 'unloaded'; cueId: string }
  | { type: 'adopted'; adopted: PrerollAdopted }
  | { type: 'reconnect'; error: ClientErrorData; attempt: number }
  | { type: 'log'; level: LogLevel; name: string; message: string; meta?: Record<string, unknown> };

/** A MediaClientError as it crosses threads. */
export interface ClientErrorData {
  method: string;
  code: number;
  details: string;
  errorCode: string | undefined;
}

/** Worker → presenting thread. */
export type FromWorker =
  | {
    type: 'picture';
    /** The picture's place (its `frame` is sent as `frame` + `slot` + `planes`). */
    timed: Omit<TimedPicture, 'frame'>;
    frame: Omit<DecodedVideoFrame, 'planes'>;
    slot: number;
    buffer: SharedArrayBuffer;
    /** Plane lengths in bytes, back to back in the slot. */
    planes: number[];
    /** Reconnects the decoder had seen when it gave the picture (a preroll's numbers belong to its call). */
    call: number;
  }
  /** The block's samples' ArrayBuffer is transferred (moved, not copied): the worker keeps no view of it. `call`: as a picture's. */
  | { type: 'audio'; audio: TimedAudio; call: number }
  | { type: 'prepared'; cueId: string; preroll: number }
  /** FFmpeg is loaded: the worker follows next. */
  | { type: 'ready' }
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

/** Presenting thread → follow thread (its parentPort): stop following. */
export interface ToFollowThread {
  type: 'stop';
}

/** Presenting thread → decode worker. */
export type ToWorker =
  | { type: 'release'; slot: number }
  | { type: 'stop' };
