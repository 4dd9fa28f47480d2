/**
 * A corpus of small media files generated with the FFmpeg CLI at test time and cached on disk.
 *
 * Media is generated rather than committed so the repository stays small and every container/codec combination
 * is reproducible from one recipe. Files live in a cache directory so only the first run pays for encoding; the
 * cache is safe to delete at any time.
 *
 * Each cached file name carries a short hash of its ffmpeg arguments: editing a recipe therefore produces a new
 * file instead of silently reusing a stale one (e.g. a clip that no longer has the B-frames a test relies on).
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** Names of the files in the standard corpus; see {@link CORPUS} for what each one is. */
export type CorpusName =
  | 'mp4-h264-aac'
  | 'mov-prores-pcm'
  | 'mkv-vp9-opus'
  | 'ts-h264-mp2'
  | 'wav'
  | 'flac'
  | 'mp3'
  | 'mp4-vfr'
  | 'm4a-aac'
  | 'mp4-h264-only';

/** A stream a corpus file is expected to contain, as ffprobe reports it (`codec_type`, `codec_name`). */
export interface ExpectedStream {
  /** ffprobe's `codec_type`. */
  readonly type: 'video' | 'audio';
  /** ffprobe's `codec_name`, e.g. `h264`, `aac`, `pcm_s16le`. */
  readonly codec: string;
}

/** The recipe for one corpus file. */
export interface CorpusEntry {
  /** File extension including the dot; ffmpeg picks the muxer from it. */
  readonly ext: string;
  /** ffmpeg arguments (inputs, filters, codecs), without the global flags and without the output path. */
  readonly args: readonly string[];
  /** One line saying what the file is for. */
  readonly description: string;
  /** The streams the file must contain, in stream-index order, so tests can check the recipe did what it says. */
  readonly streams: readonly ExpectedStream[];
}

/** Clip length in seconds: long enough for several GOPs, short enough that the corpus builds in seconds. */
const SECONDS = 3;

/** A 320x240 colour-bar-with-counter video source; testsrc2 changes every frame, so no frame is a duplicate. */
function videoSource(rate: number): string[] {
  return ['-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${rate}:duration=${SECONDS}`];
}

/** A stereo sine tone; the source duration (not `-t`) ends it, so audio and video lengths are set independently. */
function audioSource(sampleRate: number, frequency = 440): string[] {
  return ['-f', 'lavfi', '-i', `sine=frequency=${frequency}:sample_rate=${sampleRate}:duration=${SECONDS}`, '-ac', '2'];
}

/**
 * H.264 with a fixed GOP: b-adapt=0 makes x264 always use all 3 B-frames (with its default B-pyramid) instead of
 * deciding per scene, and sc_threshold 0 stops extra keyframes, so keyframes fall exactly every 25 frames.
 * yuv420p is explicit because testsrc2 would otherwise negotiate 4:4:4 and produce a High 4:4:4 stream.
 */
const H264_BFRAMES = [
  '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
  '-bf', '3', '-g', '25', '-sc_threshold', '0', '-x264-params', 'b-adapt=0',
];

/** The standard corpus: one small file per container/codec combination the indexer must handle. */
export const CORPUS: Readonly<Record<CorpusName, CorpusEntry>> = {
  'mp4-h264-aac': {
    ext: '.mp4',
    args: [...videoSource(25), ...audioSource(48000), ...H264_BFRAMES, '-c:a', 'aac', '-b:a', '96k'],
    description: 'MP4, H.264 25 fps with 3 B-frames (pts != dts, negative start dts) + AAC 48 kHz with priming',
    streams: [{ type: 'video', codec: 'h264' }, { type: 'audio', codec: 'aac' }],
  },
  'mov-prores-pcm': {
    ext: '.mov',
    args: [...videoSource(25), ...audioSource(48000), '-c:v', 'prores_ks', '-profile:v', '0', '-c:a', 'pcm_s16le'],
    description: 'QuickTime, ProRes 422 Proxy (intra-only) + PCM s16le 48 kHz, as from an editing suite',
    streams: [{ type: 'video', codec: 'prores' }, { type: 'audio', codec: 'pcm_s16le' }],
  },
  'mkv-vp9-opus': {
    ext: '.mkv',
    args: [
      ...videoSource(25), ...audioSource(48000),
      '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k', '-g', '25',
      '-c:a', 'libopus', '-b:a', '64k',
    ],
    description: 'Matroska, VP9 (1 ms time base, no B-frames) + Opus with pre-skip',
    streams: [{ type: 'video', codec: 'vp9' }, { type: 'audio', codec: 'opus' }],
  },
  'ts-h264-mp2': {
    ext: '.ts',
    args: [...videoSource(25), ...audioSource(48000), ...H264_BFRAMES, '-c:a', 'mp2', '-b:a', '128k'],
    description: 'MPEG-TS, H.264 with B-frames (Annex B, 90 kHz, no packet durations in the container) + MP2',
    streams: [{ type: 'video', codec: 'h264' }, { type: 'audio', codec: 'mp2' }],
  },
  wav: {
    ext: '.wav',
    args: [...audioSource(48000), '-c:a', 'pcm_s16le'],
    description: 'WAV, PCM s16le 48 kHz stereo (packets are arbitrary byte runs, not codec frames)',
    streams: [{ type: 'audio', codec: 'pcm_s16le' }],
  },
  flac: {
    ext: '.flac',
    args: [...audioSource(44100), '-c:a', 'flac'],
    description: 'FLAC 44.1 kHz stereo (parsed frames, 44.1 kHz time base)',
    streams: [{ type: 'audio', codec: 'flac' }],
  },
  mp3: {
    ext: '.mp3',
    args: [...audioSource(44100), '-c:a', 'libmp3lame', '-b:a', '128k'],
    description: 'MP3 44.1 kHz stereo with a LAME/Xing header (encoder delay signalled as skip samples)',
    streams: [{ type: 'audio', codec: 'mp3' }],
  },
  'mp4-vfr': {
    ext: '.mp4',
    args: [
      ...videoSource(30), ...audioSource(48000, 660),
      // Dropping frames on two unrelated cycles (every 5th at phase 2, every 7th at phase 3) leaves gaps of one,
      // two or three frame periods at irregular positions; fps_mode vfr keeps the gaps instead of duplicating.
      '-vf', 'select=not(eq(mod(n\\,5)\\,2)+eq(mod(n\\,7)\\,3))', '-fps_mode', 'vfr',
      // No B-frames here: with reordering x264 invents dts for VFR input and the mp4 sample durations no longer
      // follow the real frame gaps; without them each packet's duration is its true display time.
      '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-bf', '0', '-g', '25',
      '-c:a', 'aac', '-b:a', '96k',
    ],
    description: 'MP4, variable frame rate H.264 (30 fps grid with irregular drops: pts deltas and durations vary) + AAC',
    streams: [{ type: 'video', codec: 'h264' }, { type: 'audio', codec: 'aac' }],
  },
  'm4a-aac': {
    ext: '.m4a',
    args: [...audioSource(44100), '-c:a', 'aac', '-b:a', '96k'],
    description: 'M4A, audio-only AAC 44.1 kHz with priming (edit list) and no video stream',
    streams: [{ type: 'audio', codec: 'aac' }],
  },
  'mp4-h264-only': {
    ext: '.mp4',
    args: [...videoSource(25), ...H264_BFRAMES],
    description: 'MP4, video-only H.264 with B-frames and no audio stream',
    streams: [{ type: 'video', codec: 'h264' }],
  },
};

/** Every corpus name, in the declaration order of {@link CORPUS}. */
export const CORPUS_NAMES: readonly CorpusName[] = Object.keys(CORPUS) as CorpusName[];

let cachedCacheDir: string | undefined;

/**
 * The repository root: the nearest ancestor of this file's directory whose package.json is named "cuemux".
 * Searching by name (not a fixed `../..`) works both from the sources and from the compiled `dist/test/support`.
 */
function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      const parsed: unknown = JSON.parse(readFileSync(pkg, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && 'name' in parsed && parsed.name === 'cuemux') return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(`no package.json named "cuemux" above ${__dirname}; set CUEMUX_TEST_MEDIA to a cache directory`);
    }
    dir = parent;
  }
}

/**
 * The directory generated media is cached in: `$CUEMUX_TEST_MEDIA` if set, else `<repo root>/.cache/test-media`.
 * The directory may not exist yet; {@link makeMedia} creates it.
 */
export function cacheDir(): string {
  const fromEnv = process.env.CUEMUX_TEST_MEDIA;
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  cachedCacheDir ??= path.join(repoRoot(), '.cache', 'test-media');
  return cachedCacheDir;
}

/** Run ffmpeg to completion; reject with its stderr, which is where it says what went wrong. */
function runFfmpeg(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr: Buffer[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // 'error' covers a missing binary (ENOENT); 'close' fires after stderr is fully read, so the message is complete.
    child.on('error', (err) => reject(new Error(`cannot run ffmpeg: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) {
        resolve();
        return;
      }
      const status = signal !== null ? `killed by ${signal}` : `exit code ${String(code)}`;
      const text = Buffer.concat(stderr).toString('utf8').trim();
      reject(new Error(`ffmpeg failed (${status}): ffmpeg ${args.join(' ')}\n${text}`));
    });
  });
}

/** In-flight and finished generations by final path, so concurrent callers in one process share one ffmpeg run. */
const pending = new Map<string, Promise<string>>();

/** Distinguishes temp files of concurrent generations within one process (the pid separates processes). */
let tempCounter = 0;

/** `name.ext` -> `name.<hash>.ext`, the hash covering the arguments so a changed recipe gets a new file. */
function cachedFileName(fileName: string, ffmpegArgs: readonly string[]): string {
  const hash = createHash('sha256').update(JSON.stringify(ffmpegArgs)).digest('hex').slice(0, 10);
  const ext = path.extname(fileName);
  return `${path.basename(fileName, ext)}.${hash}${ext}`;
}

/** Whether a process with this pid exists (signal 0 only checks; EPERM means it exists but is not ours). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Delete temp files for `finalPath` left by killed runs (large benchmark clips would otherwise pile up). Only
 * files whose writer pid is gone are removed, so a concurrent generation in another process is never disturbed.
 */
async function removeStaleTemps(finalPath: string): Promise<void> {
  const suffix = `-${path.basename(finalPath)}`;
  const dir = path.dirname(finalPath);
  for (const name of await fs.readdir(dir)) {
    const m = /^\.tmp-(\d+)-\d+-/.exec(name);
    if (m === null || !name.endsWith(suffix) || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    await fs.rm(path.join(dir, name), { force: true });
  }
}

async function generate(finalPath: string, ffmpegArgs: readonly string[]): Promise<string> {
  // The final name only ever appears through rename, so if it exists it is complete.
  try {
    const st = await fs.stat(finalPath);
    if (st.isFile() && st.size > 0) return finalPath;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const dir = path.dirname(finalPath);
  await fs.mkdir(dir, { recursive: true });
  await removeStaleTemps(finalPath);
  // Same directory (so rename is atomic, never a cross-device copy), hidden, unique per process and call; the
  // real extension stays last because ffmpeg chooses the muxer from it.
  tempCounter += 1;
  const temp = path.join(dir, `.tmp-${process.pid}-${tempCounter}-${path.basename(finalPath)}`);
  try {
    await runFfmpeg([...ffmpegArgs, temp]);
    // Another process may have finished the same file meanwhile; the recipe is the same, so either copy is fine.
    await fs.rename(temp, finalPath);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
  return finalPath;
}

/**
 * Generate `fileName` in {@link cacheDir} with `ffmpeg -v error -nostdin -y <ffmpegArgs> <output>` unless it is
 * already cached, and return its absolute path. The output is written under a temporary name and renamed into
 * place, so a killed run never leaves a partial file that looks complete. The cached name is
 * `<stem>.<hash of args><ext>`. Concurrent calls for the same file share one ffmpeg run; a failed run is not
 * cached, so a later call retries.
 *
 * @example A benchmark clip (1080p25, 2 minutes, H.264 + AAC):
 * ```ts
 * const clip = await makeMedia('bench-1080p25-120s.mp4', [
 *   '-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=25:duration=120',
 *   '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=120',
 *   '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '50', '-c:a', 'aac',
 * ]);
 * ```
 *
 * @param fileName - Base name with the extension that selects the muxer, e.g. `bench-1080p25-120s.mp4`.
 * @param ffmpegArgs - Inputs and output options, without global flags and without the output path.
 * @throws Error with ffmpeg's stderr when ffmpeg fails.
 */
export function makeMedia(fileName: string, ffmpegArgs: readonly string[]): Promise<string> {
  if (fileName !== path.basename(fileName) || path.extname(fileName) === '') {
    return Promise.reject(new Error(`makeMedia: expected a plain file name with an extension, got ${JSON.stringify(fileName)}`));
  }
  let finalPath: string;
  try {
    finalPath = path.join(cacheDir(), cachedFileName(fileName, ffmpegArgs));
  } catch (err) {
    // A promise-returning function should not also throw synchronously (cacheDir throws outside the repo).
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  const existing = pending.get(finalPath);
  if (existing !== undefined) return existing;
  const promise = generate(finalPath, ffmpegArgs);
  pending.set(finalPath, promise);
  // Forget failures so a retry runs ffmpeg again instead of replaying the old rejection.
  void promise.catch(() => pending.delete(finalPath));
  return promise;
}

/** Generate (or reuse) one corpus file and return its absolute path. */
export function ensureMedia(name: CorpusName): Promise<string> {
  const entry = CORPUS[name];
  return makeMedia(`${name}${entry.ext}`, entry.args);
}

/**
 * Generate (or reuse) the whole corpus and return every path by name. At most two ffmpeg runs at a time: test
 * machines have as few as two cores and the encoders are multithreaded already.
 */
export async function ensureCorpus(): Promise<Record<CorpusName, string>> {
  const queue = [...CORPUS_NAMES];
  const result: Partial<Record<CorpusName, string>> = {};
  const worker = async (): Promise<void> => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      result[name] = await ensureMedia(name);
    }
  };
  await Promise.all([worker(), worker()]);
  return result as Record<CorpusName, string>;
}

/**
 * 60 s of 160x120 H.264 + AAC in MP4 (~4,300 packets): long enough for real reads, cheap to make. The AAC has no
 * perceptual noise substitution (`-aac_pns 0`): PNS bands are decoded with a pseudo-random generator whose state
 * runs from the start of the stream, so a decoder started anywhere else (every seek, every cue) differs from a
 * continuous decode in their low bits, and sample-exact comparisons would need the very same start packet.
 */
export function minuteClip(): Promise<string> {
  return makeMedia('av-60s-160x120.mp4', ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-f', 'lavfi', '-i', 'sine=f=440:sample_rate=48000',
    '-t', '60', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-aac_pns', '0', '-b:a', '64k']);
}

/** The minute clip looped to 30 minutes by stream copy (~130k packets, ~40 MB). */
export async function longClip(): Promise<string> {
  return makeMedia('av-30min-160x120.mp4', ['-stream_loop', '29', '-i', await minuteClip(), '-c', 'copy']);
}

/**
 * A copy of the `mkv-vp9-opus` corpus file, in `dir`, whose first video block from the 100th packet on (well past
 * the packets an index build reads first) is rewritten as a laced block holding one frame: its flags byte gets Xiph lacing and its first
 * payload byte becomes the lace count (0: one frame). FFmpeg then returns that packet from one byte further on, so
 * this one block breaks the "payload at pos + a fixed offset" layout that every other block follows: a server must
 * serve the file through FFmpeg's demuxer. Returns the path and the block's pos (as ffprobe reports it).
 */
export async function lacedBlockMkv(dir: string, name = 'mkv-laced.mkv'): Promise<{ file: string; blockPos: number }> {
  const { ffprobePackets } = await import('./ffmpeg-reference');
  const source = await ensureMedia('mkv-vp9-opus');
  const block = (await ffprobePackets(source)).find((p, i) => i >= 100 && p.stream === 0);
  const blockPos = block?.pos ?? null;
  if (blockPos === null) throw new Error(`${source}: no video packet with a position after packet 100`);
  const bytes = await fs.readFile(source);
  // A SimpleBlock's body: track number (1-byte EBML number for track 1), 2-byte timecode, flags, then the payload.
  if (bytes[blockPos] !== 0x81 || (bytes[blockPos + 3] & 0x06) !== 0) throw new Error(`${source}: no unlaced track-1 block at ${blockPos}`);
  bytes[blockPos + 3] |= 0x02;
  bytes[blockPos + 4] = 0;
  const file = path.join(dir, name);
  await fs.writeFile(file, bytes);
  return { file, blockPos };
}

/**
 * 6 s of 1080p25 H.264 (2 B-frames, a keyframe every second, no scene-cut keyframes) + AAC in MP4: a real show
 * picture size that still encodes in a few seconds (ultrafast; `-bf 2` after the preset keeps the B-frames).
 */
export function goClip1080(): Promise<string> {
  return makeMedia('go-1080p25-6s.mp4', ['-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=25:duration=6',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=6',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-bf', '2', '-g', '25', '-sc_threshold', '0',
    '-c:a', 'aac', '-aac_pns', '0', '-b:a', '96k']);
}

/**
 * 8 s of 640x360 25 fps open-GOP H.264 in Matroska: a keyframe every 2 s (non-IDR I-frames after the first, each
 * followed in decode order by leading B-frames that reference the GOP before), 3 B-frames with a B-pyramid.
 */
export function openGopH264Mkv(): Promise<string> {
  return makeMedia('open-gop-h264-360p25-8s.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=8',
    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p',
    '-x264-params', 'open-gop=1:keyint=50:min-keyint=50:bframes=3:b-pyramid=normal:b-adapt=0:scenecut=0']);
}

/** 8 s of 640x360 25 fps HEVC (x265, open GOP: CRA keyframes every 2 s with leading pictures, 3 B-frames) in Matroska. */
export function hevcMkv(): Promise<string> {
  return makeMedia('hevc-360p25-8s.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25:duration=8',
    '-c:v', 'libx265', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p',
    '-x265-params', 'log-level=error:keyint=50:min-keyint=50:bframes=3:open-gop=1:scenecut=0:b-adapt=0']);
}

/** A mono 48 kHz chirp (no two stretches alike, so a sample offset anywhere shows), `seconds` long. */
function chirp(seconds: number): string[] {
  return ['-f', 'lavfi', '-i', `aevalsrc=exprs=0.5*sin(2*PI*(300*t+40*t*t)):s=48000:d=${seconds}`];
}

/** 8 s of mono 48 kHz AAC (no perceptual noise substitution: see {@link minuteClip}) in MP4 (.m4a). */
export function chirpAac(): Promise<string> {
  return makeMedia('chirp-aac-8s.m4a', [...chirp(8), '-c:a', 'aac', '-aac_pns', '0', '-b:a', '128k']);
}

/** 8 s of mono 48 kHz PCM s16le in WAV. */
export function chirpWav(): Promise<string> {
  return makeMedia('chirp-pcm-8s.wav', [...chirp(8), '-c:a', 'pcm_s16le']);
}
