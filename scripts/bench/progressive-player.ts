/**
 * bench:progressive's player: a real `cuemux play-video` process following a cue GO'd on the file while it is being
 * written, judged from outside. Its hash sink (the MD5 of every presented picture) joined with its sync log gives,
 * for each display tick, what it showed and when; the server's show clock maps that instant to the cue's media time;
 * FFmpeg's decode of the final file (`-f framemd5`) says which frame that is. How far behind the writer it plays is
 * the media time the writer's file held at the tick's instant (its size then, and ffprobe's packet positions in the
 * final file) minus the media time presented.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { CLI } from './harness';
import { readTicks } from './presented';
import { frameAt, readFramemd5, type RefVideo } from './reference';
import { clockAt, type Clock } from './sync-show';
import type { RefPacket } from './packet-reference';

/** The display rate the player ticks at (Hz): the file's frame rate, one tick a frame. */
export const PLAYER_FPS = 25;

/** A running play-video with its outputs. */
export interface CuePlayer {
  readonly child: ChildProcess;
  /** Its hash sink's file (one line a presented picture). */
  readonly hashFile: string;
  /** Its sync log (one line a tick: instant, lateness). */
  readonly syncFile: string;
  /** Its stderr so far (log level info: it says when a cue is prepared). */
  stderr(): string;
  /** SIGTERM, then its exit code (0 when its logs are complete). */
  stop(): Promise<number | null>;
}

/** Start `cuemux play-video` following output `output` of the server on `socket`, writing its logs into `dir`. */
export function startCuePlayer(socket: string, output: string, dir: string): CuePlayer {
  const hashFile = path.join(dir, 'player-hash.jsonl');
  const syncFile = path.join(dir, 'player-sync.jsonl');
  const child = spawn(process.execPath, [CLI, '--log-level', 'info', 'play-video', '--socket', socket, '--output', output, '--fps', String(PLAYER_FPS),
    '--sink', `hash:${hashFile}`, '--sync-log', syncFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child, hashFile, syncFile, stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Whether `p` has logged that cue `cue` is prepared (its preroll decoded). */
export function preparedCue(p: CuePlayer, cue: string): boolean {
  return p.stderr().split('\n').some((l) => l.includes('"cue prepared"') && l.includes(`"cue":${JSON.stringify(cue)}`));
}

/** FFmpeg's decode of the first video stream of `file` (framemd5 with its own timestamps), written beside `out`. */
export function framemd5Of(file: string, out: string): Promise<RefVideo> {
  return new Promise((resolve, reject) => {
    execFile('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-copyts', '-i', file, '-map', '0:v:0', '-c:v', 'rawvideo', '-enc_time_base', '-1', '-fps_mode', 'passthrough',
      '-f', 'framemd5', out], (err, _o, stderr) => (err ? reject(new Error(`ffmpeg framemd5 of ${file}: ${stderr || err.message}`)) : resolve(readFramemd5(out, path.basename(file)))));
  });
}

/**
 * The media time (s) of the video the writer's file held when it was `bytes` long: the latest presentation time of
 * a video packet wholly written by then (ffprobe's packets of the final file; -Infinity before the first).
 */
export function writtenMediaSeconds(packets: readonly RefPacket[], videoStream: number): (bytes: number) => number {
  const ends: number[] = [];
  const times: number[] = [];
  let latest = -Infinity;
  for (const p of [...packets].filter((q) => q.stream === videoStream && q.pos !== null && q.ptsSeconds !== null)
    .sort((a, b) => (a.pos as number) - (b.pos as number))) {
    latest = Math.max(latest, p.ptsSeconds as number);
    ends.push((p.pos as number) + p.size);
    times.push(latest);
  }
  return (bytes) => {
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid] <= bytes) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? -Infinity : times[lo - 1];
  };
}

/** What the player showed over the cue, judged. */
export interface PlayerFigures {
  /** Ticks whose instant the clock maps inside the cue (after its first frame's span, before its last one's end). */
  ticks: number;
  /** Of those, ticks that showed another picture than FFmpeg's frame for the clock (black, a held or other frame). */
  wrong: number;
  /** Of the wrong ticks: black, the picture of the tick before held (a frame late), another picture. */
  kinds: { black: number; held: number; other: number };
  /** The first wrong ticks, for the report. */
  examples: string[];
  /** For each judged tick, the writer's media time then minus the time of the frame shown (the clock's for black), s. */
  behind: number[];
  /** Ticks the player logged in all. */
  logged: number;
}

/**
 * Judge the player's ticks: a cue GO'd at clock `goAt` plays media time `start + (clock - goAt)` for `duration` s;
 * `writtenAt(mono)` is the writer's media time at a CLOCK_MONOTONIC instant.
 */
export async function judgeCuePlayer(p: CuePlayer, ref: RefVideo, clock: Clock, goAt: number, start: number, duration: number,
  writtenAt: (mono: bigint) => number): Promise<PlayerFigures> {
  const ticks = await readTicks(p.hashFile, p.syncFile);
  const f: PlayerFigures = { ticks: 0, wrong: 0, kinds: { black: 0, held: 0, other: 0 }, examples: [], behind: [], logged: ticks.length };
  const lastFrame = ref.pts[ref.pts.length - 1];
  let before: string | null = null;
  for (const t of ticks) {
    const previous = before;
    before = t.md5;
    const m = start + clockAt(clock, t.mono) - goAt;
    // Inside the cue: from its first frame to the start of the last one (whose span's end the file does not say).
    if (m < ref.pts[0] || m >= lastFrame || m >= start + duration) continue;
    f.ticks++;
    const want = frameAt(ref, m);
    if (t.md5 !== ref.md5[want]) {
      f.wrong++;
      if (t.md5 === null) f.kinds.black++;
      else if (t.md5 === previous) f.kinds.held++;
      else f.kinds.other++;
      const shown = t.md5 === null ? 'black' : ref.md5.indexOf(t.md5) >= 0 ? `frame ${ref.md5.indexOf(t.md5)}` : 'a picture not of the file';
      if (f.examples.length < 5) f.examples.push(`media ${m.toFixed(3)} s: showed ${shown}, FFmpeg's frame ${want}`);
    }
    // Behind by what it showed (a held picture is further behind than the clock); black counts as the clock's time.
    const shownAt = t.md5 === null ? -1 : ref.md5.indexOf(t.md5);
    f.behind.push(writtenAt(t.mono) - (shownAt >= 0 ? ref.pts[shownAt] : m));
  }
  return f;
}
