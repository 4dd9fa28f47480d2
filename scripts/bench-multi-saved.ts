/**
 * bench:multi's run record (./bench-multi): what the judge needs besides the players' logs and the judge's Follow
 * lines (follow.jsonl), written beside them in the scratch directory as run.json, so that `--judge DIR` judges a
 * kept run (`--keep`) again without playing the show: a judge change checked on the same logs, or a run's wrong
 * ticks and dry periods looked at next to the commands that preceded them.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { expectedAt, frameNames, ShowClock, Timeline, type Show } from './bench-go-analysis';
import type { FollowLine } from './bench-go-procs';
import { syncClip, videoFramemd5 } from './bench-media';
import { feedLeads, readFeed } from './bench-multi-feed';
import { report, type ReportInput } from './bench-multi-report';
import { commandsApplied, readAudioPlayer, readVideoPlayer, type PlayerLogs } from './bench/multi-judge';
import { readFramemd5 } from './bench/reference';

/** A player of the run: its label, kind and log files (names inside the run's directory). */
export interface SavedPlayer {
  label: string;
  kind: 'video' | 'audio';
  hash: string;
  sync: string;
  /** Its stderr (the audio player's exit stats give its xruns); absent in records of older runs. */
  log?: string;
}

/** The report's input without what is read from the logs (players, show) and with the CPU table as plain objects. */
export type SavedRun = Omit<ReportInput, 'logs' | 'show' | 'expected' | 'cpu' | 'feed'> & {
  cpu: Record<string, Record<string, number>>;
  players: SavedPlayer[];
  /** The cues' ids (every one a cue of the same clip). */
  cues: string[];
};

const RUN_FILE = 'run.json';
const FOLLOW_FILE = 'follow.jsonl';
/** The master's audio feed (./bench-multi-feed), absent in older kept runs. */
export const FEED_FILE = 'feed-audio.jsonl';

/** The show's clip (320x180 H.264 + AAC, 120 s; cached after the first run) and FFmpeg's frame MD5s of it. */
export async function showClip(): Promise<{ clip: string; ref: Awaited<ReturnType<typeof readFramemd5>> }> {
  const clip = await syncClip(true, 120);
  return { clip, ref: await readFramemd5(await videoFramemd5(clip), 'clip') };
}

/** Write the run record and the judge's Follow lines into `dir`. CLOCK_MONOTONIC instants (bigint) as "123n", NaN as "NaN" (JSON has neither). */
export async function saveRun(dir: string, run: SavedRun, follow: readonly FollowLine[]): Promise<void> {
  await fsp.writeFile(path.join(dir, FOLLOW_FILE), follow.map((l) => JSON.stringify(l)).join('\n'));
  await fsp.writeFile(path.join(dir, RUN_FILE), JSON.stringify(run, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : Number.isNaN(v) ? 'NaN' : v), 1));
}

/** Judge the run in `dir` (its run.json, follow.jsonl and players' logs): the report's lines. */
export async function judgeRun(dir: string, ref?: Awaited<ReturnType<typeof readFramemd5>>): Promise<string[]> {
  const text = await fsp.readFile(path.join(dir, RUN_FILE), 'utf8').catch(() => {
    throw new Error(`${path.join(dir, RUN_FILE)}: no run record there (a run kept with --keep writes one)`);
  });
  const run = JSON.parse(text, (_k, v: unknown) => (v === 'NaN' ? NaN : typeof v === 'string' && /^-?\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v)) as SavedRun;
  const follow = (await fsp.readFile(path.join(dir, FOLLOW_FILE), 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as FollowLine);
  const r = ref ?? (await showClip()).ref;
  const show: Show = { clock: new ShowClock(follow), timeline: new Timeline(follow), video: new Map(run.cues.map((c) => [c, r])), audio: new Map(), frameNames: frameNames([r]) };
  const expected = (s: Show, mono: bigint): string | null => expectedAt(s, s.clock.at(mono))?.md5 ?? null;
  const logs: PlayerLogs[] = [];
  for (const p of run.players) {
    logs.push(p.kind === 'video' ? await readVideoPlayer(p.label, path.join(dir, p.hash), path.join(dir, p.sync)) : await readAudioPlayer(p.label, path.join(dir, p.sync), p.log === undefined ? undefined : path.join(dir, p.log)));
  }
  const cpu = new Map(Object.entries(run.cpu).map(([m, byProc]) => [m, new Map(Object.entries(byProc))]));
  const feed = feedLeads(await readFeed(path.join(dir, FEED_FILE)));
  return report({ ...run, cpu, logs, show, expected, applied: commandsApplied(run.commands, follow), feed });
}
