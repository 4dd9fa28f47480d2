/**
 * bench:go's model: the cues, players and GOs as the run records them and the judge reads them (scripts/bench-go.ts
 * runs the show, scripts/bench-go-report.ts judges and prints it).
 */
import type { PeerDone } from './bench-go-procs';

export const SAMPLE_RATE = 48000;
export const PERIOD_FRAMES = 480; // play-audio's default 10 ms periods

/** Seconds to ns. */
export const NS = (seconds: number): bigint => BigInt(Math.round(seconds * 1e9));

/** A cue of the list, with what the benchmark knows of it. */
export interface CueDef {
  id: string;
  file: 'h264' | 'dnxhd';
  /** In-point, s from the media's start. */
  in: number;
  out: number;
  what: string;
  loop?: boolean;
  follow?: boolean;
}

/** A set of players (one play-video and one play-audio, started together) as the judge needs it. */
export interface PlayerRun {
  tag: string;
  fps: number;
  files: { vhash: string; vsync: string; vlog: string; async: string; awav: string; alog: string; vfirst?: string };
  startMono: bigint;
  endMono: bigint;
  /** CPU time of each process, s (read as they are stopped). */
  cpu: { video: number; audio: number };
}

/** One GO. */
export interface Go {
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

/** The run's options (see the header of scripts/bench-go.ts). */
export interface Options {
  gos: number;
  restarts: number;
  fps: number[];
  prepare: string | null;
  /** --worker-rt-priority passed to the players (null: their default). */
  workerRtPriority: string | null;
  seed: number;
  keep: string | null;
  /** Node flags for the play-video processes (diagnostics; default none). */
  videoNodeFlags: string[];
}
