/**
 * bench:sync's show, shared by its two modes (sinks, real outputs): the cue's media and FFmpeg's decode of it, the
 * server's show clock as one ClockState, and one armed cue fired over OSC and played to its end while the CPU of
 * each process is counted.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MediaClient } from '../../src/clients/media-client';
import { audioF32, syncClip, videoFramemd5 } from '../bench-media';
import { CLI } from './harness';
import { cpuSeconds } from './machine';
import type { Osc } from './osc';
import { readF32, readFramemd5, type RefVideo } from './reference';

/** The players' and the devices' sample rate, Hz. */
export const SAMPLE_RATE = 48000;
/** Audio channels of the cue and the players. */
export const CHANNELS = 2;
/** The cue's in-point, s from the media's start. */
export const IN_POINT = 2;

/** Options of a bench:sync run (its command line). */
export interface SyncOptions {
  /** Cue length, s. */
  seconds: number;
  /** The video players' display rate, ticks/s. */
  fps: number;
  /** 320x180 video instead of 1080p. */
  small: boolean;
  /** Node options of each player process (profiling). */
  nodeArgs: string[];
}

/** The show clock from one ClockState (it runs at a constant rate for the whole cue; the generation is checked). */
export interface Clock {
  generation: bigint;
  positionSeconds: number;
  anchorNs: bigint;
  rate: number;
}

/** The clock's position at CLOCK_MONOTONIC instant `mono`, s. */
export const clockAt = (c: Clock, mono: bigint): number => c.positionSeconds + (c.rate * Number(mono - c.anchorNs)) / 1e9;

/** The CLOCK_MONOTONIC instant at which the clock reaches `position` s. */
export const monoAt = (c: Clock, position: number): bigint => c.anchorNs + BigInt(Math.round(((position - c.positionSeconds) * 1e9) / c.rate));

/** The server's show clock (GetStatus over gRPC). */
export async function serverClock(client: MediaClient): Promise<Clock> {
  const c = (await client.getStatus()).show?.clock;
  if (c === undefined) throw new Error('GetStatus carries no show clock');
  return { generation: BigInt(c.generation), positionSeconds: c.positionSeconds, anchorNs: BigInt(c.anchorMonotonicNs), rate: c.rate };
}

/** The cue's media under a media root of the run, and FFmpeg's decode of it. */
export interface SyncMedia {
  /** The cached media file. */
  file: string;
  /** The media root the servers serve (the file linked in as `cue.mp4`, indexed). */
  root: string;
  refV: RefVideo;
  /** FFmpeg's decoded samples, 48 kHz interleaved float32. */
  refA: Float32Array;
  /** The file's start time, s. */
  start: number;
  /** Media time of FFmpeg's first decoded sample, s. */
  refFirst: number;
}

/** The media for a `seconds` s cue (320x180 when `small`), under `run`/media, indexed. */
export async function prepareSyncMedia(run: string, small: boolean, seconds: number): Promise<SyncMedia> {
  process.stderr.write('bench:sync: media and FFmpeg\'s decode of it (cached after the first run)...\n');
  const file = await syncClip(small, seconds + IN_POINT + 3);
  const refV = await readFramemd5(await videoFramemd5(file), 'cue');
  const refA = await readF32(await audioF32(file));
  const probe = (args: string[]): number => Number(spawnSync('ffprobe', ['-v', 'error', ...args, '-of', 'csv=p=0', file], { encoding: 'utf8' }).stdout.trim().split('\n')[0]);
  const start = probe(['-show_entries', 'format=start_time']) || 0;
  const refFirst = probe(['-select_streams', 'a:0', '-show_frames', '-read_intervals', '%+#1', '-show_entries', 'frame=pts_time']);
  const root = path.join(run, 'media');
  await fsp.mkdir(root);
  await fsp.link(file, path.join(root, 'cue.mp4')).catch(() => fsp.copyFile(file, path.join(root, 'cue.mp4')));
  const built = spawnSync(process.execPath, [CLI, 'index', 'build', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (built.status !== 0) throw new Error('index build failed');
  return { file, root, refV, refA, start, refFirst };
}

/** What {@link playCue} measured. */
export interface CuePlay {
  /** Clock position of the GO (the cue's in-point plays there), s. */
  goAt: number;
  /** The clock right after the GO, and at the end (the same generation unless something moved it). */
  clock: Clock;
  clockAfter: Clock;
  /** Media time of the cue at clock position `c`, s. */
  mediaAt: (c: number) => number;
  /** Share of one core each process used while the cue played, %. */
  cpu: Record<string, number>;
}

/**
 * Wait until `followers` players follow an output (failing when `alive()` says one died), load cue B (`seconds` s
 * from the in-point), start the clock, GO 2 s later, and return once the clock is past the cue's end. The CPU of
 * `pids` is counted from the GO to the end.
 */
export async function playCue(client: MediaClient, osc: Osc, media: SyncMedia, seconds: number, followers: number, alive: () => boolean,
  pids: Record<string, number>): Promise<CuePlay> {
  for (;;) {
    const st = await client.getStatus();
    if (st.clients.filter((c) => c.output !== '').length >= followers) break;
    if (!alive()) throw new Error('a player exited before it was following (its stderr is above)');
    await sleep(50);
  }
  // Armed before the GO (loaded: media open, players prepared), as a show runs a long cue.
  await osc.request('/cuemux/cue/load', 'B', 'cue.mp4', String(IN_POINT), String(IN_POINT + seconds));
  await osc.request('/cuemux/clock/play');
  const goAt = (await serverClock(client)).positionSeconds + 2;
  await osc.request('/cuemux/cue/go', 'B', String(goAt));
  const clock = await serverClock(client);
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const t0 = process.hrtime.bigint();
  process.stderr.write(`bench:sync: playing a ${seconds} s cue of ${path.basename(media.file)}...\n`);
  for (;;) {
    const st = await osc.request('/cuemux/status') as { data: { clock: { positionSeconds: number } } };
    if (st.data.clock.positionSeconds > goAt + seconds + 0.3) break;
    if (!alive()) throw new Error('a player exited during the cue (its stderr is above)');
    await sleep(500);
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (100 * (cpuSeconds(pid) - cpu0[k])) / wall]));
  const clockAfter = await serverClock(client);
  return { goAt, clock, clockAfter, mediaAt: (c) => media.start + IN_POINT + (c - goAt), cpu };
}

/** The line that warns when the clock changed generation during the cue, or none. */
export function generationWarning(p: CuePlay): string[] {
  return p.clockAfter.generation !== p.clock.generation
    ? [`WARNING: the clock changed generation during the cue (${p.clock.generation} → ${p.clockAfter.generation}): figures after that are not comparable`] : [];
}

/**
 * Offset d, in samples, at which `frames` frames of `got` (frame i's channel c at `got[base + i·stride + c]`, c <
 * CHANNELS) equal FFmpeg's samples from frame `want` + d, searched nearest to `hint` first, within ±`search` of it;
 * null when none.
 */
export function blockOffset(got: Float32Array, base: number, stride: number, frames: number, ref: Float32Array, want: number, search: number, hint: number): number | null {
  const matches = (r: number): boolean => {
    if (r < 0 || (r + frames) * CHANNELS > ref.length) return false;
    for (let i = 0; i < frames; i++) {
      for (let c = 0; c < CHANNELS; c++) if (got[base + i * stride + c] !== ref[(r + i) * CHANNELS + c]) return false;
    }
    return true;
  };
  for (let d = 0; d <= search; d++) {
    if (matches(want + hint + d)) return hint + d;
    if (d > 0 && matches(want + hint - d)) return hint - d;
  }
  return null;
}

/** Whether `frames` frames of `got` (as in {@link blockOffset}) are all zero. */
export function blockSilent(got: Float32Array, base: number, stride: number, frames: number): boolean {
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < CHANNELS; c++) if (got[base + i * stride + c] !== 0) return false;
  }
  return true;
}
