/**
 * FFmpeg's own decode of a file, the reference the benchmarks judge the players against: the MD5 of every decoded
 * picture (`ffmpeg -f framemd5`, see videoFramemd5 in ../bench-media) and the decoded samples (float32, see audioF32).
 */
import { promises as fsp } from 'node:fs';

/** FFmpeg's decoded frames of a video stream, in presentation order. */
export interface RefVideo {
  /** Short name of the file (for messages). */
  tag: string;
  /** Presentation time of each frame, s. */
  pts: number[];
  /** MD5 of each frame (framemd5). */
  md5: string[];
}

/** Parse an `ffmpeg -f framemd5` file of one video stream. */
export async function readFramemd5(file: string, tag: string): Promise<RefVideo> {
  const text = await fsp.readFile(file, 'utf8');
  let tb: [number, number] | null = null;
  const frames: Array<[number, string]> = [];
  for (const line of text.split('\n')) {
    const m = /^#tb 0: (\d+)\/(\d+)/.exec(line);
    if (m !== null) tb = [Number(m[1]), Number(m[2])];
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(',').map((s) => s.trim());
    if (tb === null) throw new Error(`${file}: no time base before the first frame`);
    frames.push([(Number(f[2]) * tb[0]) / tb[1], f[5]]);
  }
  frames.sort((a, b) => a[0] - b[0]);
  return { tag, pts: frames.map((f) => f[0]), md5: frames.map((f) => f[1]) };
}

/** Index of the frame shown at media time `m`: the last one with pts at or before it (-1: none). */
export function frameAt(ref: RefVideo, m: number): number {
  let lo = 0;
  let hi = ref.pts.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ref.pts[mid] <= m + 1e-9) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/** FFmpeg's decoded samples of an audio stream at 48 kHz, interleaved float32. */
export interface RefAudio {
  tag: string;
  samples: Float32Array;
  /** Media time of the first sample, s. */
  first: number;
  channels: number;
}

/** Read a raw f32le file. */
export async function readF32(file: string): Promise<Float32Array> {
  const b = await fsp.readFile(file);
  const copy = new Uint8Array(b.length - (b.length % 4));
  copy.set(b.subarray(0, copy.length));
  return new Float32Array(copy.buffer);
}
