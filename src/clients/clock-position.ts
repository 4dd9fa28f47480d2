/**
 * The show position a player presents, computed from a ClockState's anchor: exact on the server's machine (the
 * anchor is CLOCK_MONOTONIC, which every process there shares), and through a Ping-estimated offset elsewhere.
 */
import { monoNs, unixNs } from '../common/time-source';
import type { ClockState } from '../generated/cuemux/v1/media_server';

/** True while the clock moves. */
export function clockRunning(s: ClockState): boolean {
  return s.state !== 'stopped' && s.rate !== 0;
}

/**
 * The show position (seconds) of clock state `s` at CLOCK_MONOTONIC instant `monoNs` (ns) of this process: on the
 * server's machine {@link clockPositionAt}; on another, {@link clockPositionRemote} through the estimated offset.
 */
export type ClockAt = (s: ClockState, monoNs: bigint) => number;

/** Show position (s) of `s` at monotonic instant `atMonoNs` (default now): same machine as the server. */
export function clockPositionAt(s: ClockState, atMonoNs: bigint = monoNs()): number {
  if (!clockRunning(s)) return s.positionSeconds;
  return s.positionSeconds + (s.rate * Number(atMonoNs - s.anchorMonotonicNs)) / 1e9;
}

/**
 * Show position (s) of `s` now on another machine: `offsetNs` is server wall clock minus this machine's (from
 * MediaClient.estimateClockOffset); accuracy is about half the round trip of the ping used.
 */
export function clockPositionRemote(s: ClockState, offsetNs: bigint, atUnixNs: bigint = unixNs()): number {
  if (!clockRunning(s)) return s.positionSeconds;
  return s.positionSeconds + (s.rate * Number(atUnixNs + offsetNs - s.anchorUnixNs)) / 1e9;
}
