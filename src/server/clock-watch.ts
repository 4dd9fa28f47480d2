/**
 * The show clock on gRPC: the ClockState message, and the WatchClock stream (current state at once, then every
 * change, and the unchanged state again as a heartbeat so a player notices a dead connection).
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { ClockState, WatchClockRequest } from '../generated/cuemux/v1/media_server';
import { snapshotTimecode, type ClockSnapshot, type ShowClock } from '../show/show-clock';

/** Default heartbeat interval of WatchClock and Follow, in ms. */
export const DEFAULT_HEARTBEAT_MS = 1000;

/** The API message of a clock snapshot of the show `showId` (ShowClock.showId). */
export function clockStateMessage(s: ClockSnapshot, showId: string): ClockState {
  return {
    showId,
    generation: BigInt(s.generation), state: s.state, rate: s.rate, positionSeconds: s.positionSeconds, timecode: snapshotTimecode(s),
    anchorMonotonicNs: s.anchorMonoNs, anchorUnixNs: s.anchorUnixNs, timecodeRate: s.timecodeRate.name, source: s.source,
  };
}

/** Resolve when `call` ends for any reason (cancelled by the client, closed, failed, or finished). */
export function callEnded(call: ServerWritableStream<unknown, unknown>): Promise<void> {
  if (call.cancelled || call.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      for (const e of ['cancelled', 'close', 'error', 'finish'] as const) call.off(e, done);
      resolve();
    };
    for (const e of ['cancelled', 'close', 'error', 'finish'] as const) call.once(e, done);
  });
}

/** Heartbeat interval (ms) asked by a request: `seconds` absent or 0 gives the default; bounded to 10 ms..60 s. */
export function heartbeatMs(seconds: number | undefined): number {
  if (seconds === undefined || seconds === 0 || !Number.isFinite(seconds)) return DEFAULT_HEARTBEAT_MS;
  return Math.min(60_000, Math.max(10, Math.round(seconds * 1000)));
}

/** Run one WatchClock call until the client goes away. */
export async function watchClock(call: ServerWritableStream<WatchClockRequest, ClockState>, clock: ShowClock): Promise<void> {
  const send = (): void => {
    if (!call.cancelled && !call.destroyed) call.write(clockStateMessage(clock.snapshot, clock.showId));
  };
  // Clock changes are rare and tiny: written without waiting for 'drain' (a stalled client only buffers a few).
  const onChange = (): void => send();
  clock.on('change', onChange);
  const timer = setInterval(send, heartbeatMs(call.request.heartbeatSeconds));
  timer.unref();
  send();
  try {
    await callEnded(call);
  } finally {
    clock.off('change', onChange);
    clearInterval(timer);
  }
}
