/**
 * What a follower is to the players: the events it emits (the clock, cues, decoded pictures and audio), its
 * counters, and its options. Two implementations: `OutputFollower` (`output-follower.ts`, decoding on the
 * calling thread) and `WorkerFollower` (`worker-follower.ts`, decoding in a worker thread). This module loads no
 * FFmpeg, so a presenting thread that decodes elsewhere does not either.
 */
import { TypedEmitter } from '../common/typed-emitter';
import type { DecodedFrame, ResamplerOutput } from '../ffmpeg/types';
import type { ClockState, CueLoaded, CueStarted, CueStopped } from '../generated/cuemux/v1/media_server';
import type { MediaClientError } from '../clients/media-client';
import type { PlayerPicture } from './frame-pool';
import { PresentedPosition } from './presented-position';

/** A decoded picture with its place on the cue's timeline. */
export interface TimedPicture {
  /** The cue it belongs to. */
  cueId: string;
  /** The segment (CueStarted.segment) it was decoded for. */
  segment: number;
  /** The clock generation its packets were planned for. */
  generation: bigint;
  /**
   * The preroll (CuePreroll number) it was decoded from, before a segment adopted it: then `segment` and `generation`
   * mean nothing until the 'adopted' event names them. 0 for a segment's picture.
   */
  preroll: number;
  /** Stream index in the cue's media. */
  stream: number;
  /** The picture (from a `WorkerFollower`, lent from a pool: `retain()` it to keep it past the event). */
  frame: PlayerPicture;
  /** Presentation time in media seconds (the media's own timeline). */
  mediaSeconds: number;
  /** Duration in seconds (from the packet; 1 / frame rate when the packet has none). */
  durationSeconds: number;
}

/**
 * True for a picture wholly before media instant `from` (s): decoder pre-roll, never presented. The picture covering
 * `from` is not: it is what is shown there (FFmpeg shows the last frame at or before a time).
 */
export function endsBefore(p: Pick<TimedPicture, 'mediaSeconds' | 'durationSeconds'>, from: number): boolean {
  return p.mediaSeconds + p.durationSeconds <= from + 1e-9;
}

/** A block of converted audio (interleaved float32) with its place on the cue's timeline. */
export interface TimedAudio {
  /** The cue it belongs to. */
  cueId: string;
  /** The segment it was decoded for. */
  segment: number;
  /** The clock generation its packets were planned for. */
  generation: bigint;
  /** The preroll it was decoded from before a segment adopted it (as {@link TimedPicture.preroll}); 0 for a segment's. */
  preroll: number;
  /** Stream index in the cue's media. */
  stream: number;
  /** Interleaved samples at the follower's output rate and channel count. */
  samples: Float32Array;
  /** Media time of the first sample, in seconds. */
  mediaSeconds: number;
}

/** Events of an `OutputFollower`. */
export interface OutputFollowerEvents extends Record<string, unknown[]> {
  /** The show clock (first, on every change, and as a heartbeat). */
  clock: [ClockState];
  /** A cue was loaded on this output. */
  loaded: [CueLoaded];
  /**
   * A cue segment was placed on the clock; with the CLOCK_MONOTONIC instant (ns) the follower read it off the Follow
   * stream (a WorkerFollower: on its follow thread), which a player's GO trace reports (see VideoPlayer).
   */
  started: [CueStarted, bigint];
  /** A cue stopped (nothing of it is presented from `clockSeconds` on). */
  stopped: [CueStopped];
  /** A cue was unloaded. */
  unloaded: [string];
  /** Every decoded frame as the decoder gave it (before any conversion), for checks and diagnostics. */
  decoded: [TimedFrameRaw];
  /**
   * A decoded picture (video streams). A preroll's pictures wholly before the cue's in-point (decoder pre-roll, from
   * the keyframe on) are not given: nothing presents them.
   */
  picture: [TimedPicture];
  /** Converted audio (audio streams, when the follower converts audio). */
  audio: [TimedAudio];
  /** The Follow stream broke and is being re-established (attempt from 1). */
  reconnect: [MediaClientError, number];
  /**
   * A segment adopted a preroll: the pictures and audio given so far with `preroll` set are that segment's, in that
   * generation (those given from now on carry the segment).
   */
  adopted: [PrerollAdopted];
  /** The follower is ready to decode (FFmpeg loaded, its threads started) and is about to follow. */
  ready: [];
  /** Every packet of a cue's preroll is decoded: its in-point is ready for a GO. */
  prepared: [{ cueId: string; preroll: number }];
}

/** A segment adopted a cue's preroll (FollowPackets.preroll). */
export interface PrerollAdopted {
  /** The cue. */
  cueId: string;
  /** The preroll adopted. */
  preroll: number;
  /** The segment that adopted it. */
  segment: number;
  /** The generation of the segment's packets. */
  generation: bigint;
  /** CLOCK_MONOTONIC instant (ns) the follower read the adopting batch off the Follow stream. */
  receivedNs: bigint;
}

/**
 * What a presenter needs of a follower: its events. An `OutputFollower` (decoding on the calling thread) or a
 * `WorkerFollower` (decoding in a worker thread) both are one.
 */
export type FollowerSource = Pick<TypedEmitter<OutputFollowerEvents>, 'on' | 'off'> & {
  /** Where a video presenter publishes its clock position for the decoder (and reads the packets it skipped). */
  readonly presented?: PresentedPosition;
  /**
   * Emit now, synchronously, the events that have arrived from another thread and wait for this thread's event loop
   * (a `WorkerFollower`'s follow thread and decode worker); absent when events are emitted as they happen. A presenter
   * calls it at each tick, so that a GO posted while its thread waited out the tick's last milliseconds is shown at
   * that tick.
   */
  poll?(): void;
};

/** What every follower keeps and says: the clock and its counters (see `OutputFollower`, `WorkerFollower`). */
export abstract class FollowerBase extends TypedEmitter<OutputFollowerEvents> {
  /** The latest clock state. */
  protected lastClock: ClockState | null = null;
  /** Packets received. */
  protected packets = 0;
  /** Packets the decoder rejected. */
  protected failures = 0;
  /**
   * The presenter's clock position, shared with the decoder (see OutputFollower's skipping of intra-only pictures
   * whose time has passed), and the count of packets skipped.
   */
  readonly presented: PresentedPosition;

  /** `presented`: the shared memory of another thread's follower (a decode worker's is its presenter's). */
  constructor(presented?: SharedArrayBuffer) {
    super();
    this.presented = new PresentedPosition(presented);
  }

  /** The latest clock state, null before the first. */
  get clock(): ClockState | null {
    return this.lastClock;
  }

  /** Packets received so far. */
  get packetsReceived(): number {
    return this.packets;
  }

  /** Packets the decoder rejected (each is logged). */
  get decodeFailures(): number {
    return this.failures;
  }

  /**
   * Follow until `signal` aborts (resolves) or the server refuses the Follow for good (rejects with a
   * MediaClientError, e.g. INVALID_ARGUMENT for a bad output name). Server restarts are ridden out.
   */
  abstract run(signal: AbortSignal): Promise<void>;
}

/** A decoded frame with the cue, segment, generation and stream it belongs to. */
export interface TimedFrameRaw {
  /** The cue. */
  cueId: string;
  /** The segment. */
  segment: number;
  /** The clock generation. */
  generation: bigint;
  /** The preroll it was decoded from (0 = the segment's). */
  preroll: number;
  /** Stream index. */
  stream: number;
  /** The frame, as decoded. */
  frame: DecodedFrame;
}

/** Options of `OutputFollower`. */
export interface OutputFollowerOptions {
  /** The output to follow. */
  output: string;
  /** Which streams of the output to decode: `video` or `audio` streams. */
  kind: 'video' | 'audio';
  /** Lead window asked of the server, in seconds (default: the server's, 0.5 s). */
  leadSeconds?: number;
  /**
   * Decoder threads (default 0: FFmpeg's choice, and one for a preroll of light intra-only video, see
   * decoderThreadsFor; the lead window hides the frame-thread delay once a cue plays).
   */
  decoderThreads?: number;
  /** Audio conversion of decoded audio (default 48000 Hz float32, the stream's channels). */
  audioOutput?: ResamplerOutput;
  /** Prepare armed cues from their prerolls (FollowRequest.prepare; default false). */
  prepare?: boolean;
}
