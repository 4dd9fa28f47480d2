/**
 * Benchmark media, generated with ffmpeg once and cached with the test media (.cache/test-media).
 */
import * as path from 'node:path';
import { makeMedia } from '../test/support/media';

const AV_INPUTS = (size: string): string[] => ['-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=25`, '-f', 'lavfi', '-i', 'sine=f=440:sample_rate=48000'];

/** 2 minutes of 1080p25 H.264 (B-frames, 12 Mb/s) + AAC stereo in MP4 (~185 MB, 8,626 packets). */
export function hd1080(): Promise<string> {
  return makeMedia('bench-1080p25-h264-aac-120s.mp4', [...AV_INPUTS('1920x1080'), '-t', '120', '-ac', '2', '-c:v', 'libx264',
    '-preset', 'ultrafast', '-bf', '2', '-g', '50', '-b:v', '12M', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '192k']);
}

/** The same streams remuxed to Matroska. */
export async function hd1080Mkv(): Promise<string> {
  return makeMedia('bench-1080p25-h264-aac-120s.mkv', ['-i', await hd1080(), '-c', 'copy']);
}

/** 10 minutes of AAC stereo at 128 kb/s in .m4a (28k packets). */
export function aac600(): Promise<string> {
  return makeMedia('bench-aac-600s.m4a', ['-f', 'lavfi', '-i', 'sine=f=440:sample_rate=48000', '-t', '600', '-ac', '2', '-c:a', 'aac', '-b:a', '128k']);
}

/** 2 minutes of 320x180 H.264 + AAC. */
export function small120(): Promise<string> {
  return makeMedia('bench-180p25-h264-aac-120s.mp4', [...AV_INPUTS('320x180'), '-t', '120', '-ac', '2', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-bf', '2', '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k']);
}

/** A 2-hour A/V file (~517k packets): the small clip looped 60 times by stream copy. */
export async function twoHours(): Promise<string> {
  return makeMedia('bench-2h-av.mp4', ['-stream_loop', '59', '-i', await small120(), '-c', 'copy']);
}

/**
 * bench:go's H.264: 1 minute of 1080p25 H.264 with open GOPs (a non-IDR keyframe every 2 s, with a leading B-frame
 * after it in decode order that references the GOP before) and 3 B-frames (fixed pattern: b-adapt 0, no scene-cut
 * keyframes), 12 Mb/s, + AAC stereo pink noise (no two stretches alike, so a sample offset shows; no perceptual noise
 * substitution, whose random generator would make a decode started at a cue differ from a continuous one).
 */
export function goH264(): Promise<string> {
  return makeMedia('bench-go-1080p25-h264-opengop-aac-60s.mp4', ['-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=25', '-f', 'lavfi', '-i',
    'anoisesrc=color=pink:seed=7:sample_rate=48000:amplitude=0.3', '-t', '60', '-ac', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '3',
    '-g', '50', '-sc_threshold', '0', '-x264-params', 'open-gop=1:b-adapt=0', '-b:v', '12M', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-aac_pns', '0', '-b:a', '192k']);
}

/**
 * bench:sync's cue: bench:go's H.264 (1080p25, open GOPs, 3 B-frames, 12 Mb/s; pink-noise AAC, so a sample offset
 * shows: no two stretches alike), or the same recipe at 320x180 (`small`), looped by stream copy to at least
 * `seconds` long.
 */
export async function syncClip(small: boolean, seconds: number): Promise<string> {
  const base = small
    ? await makeMedia('bench-sync-180p25-h264-opengop-aac-60s.mp4', ['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25', '-f', 'lavfi', '-i',
      'anoisesrc=color=pink:seed=7:sample_rate=48000:amplitude=0.3', '-t', '60', '-ac', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '3',
      '-g', '50', '-sc_threshold', '0', '-x264-params', 'open-gop=1:b-adapt=0', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-aac_pns', '0', '-b:a', '192k'])
    : await goH264();
  const loops = Math.ceil(seconds / 60);
  return makeMedia(`bench-sync-${small ? '180p' : '1080p'}-${loops}min.mp4`, ['-stream_loop', String(loops - 1), '-i', base, '-c', 'copy']);
}

/** bench:go's intra-frame file: 30 s of 1080p25 DNxHD 36 (8-bit 4:2:2, every frame a keyframe) + PCM s16le stereo white noise in QuickTime. */
export function goDnxhd(): Promise<string> {
  return makeMedia('bench-go-1080p25-dnxhd36-pcm-30s.mov', ['-f', 'lavfi', '-i', 'testsrc=size=1920x1080:rate=25', '-f', 'lavfi', '-i',
    'anoisesrc=color=white:seed=11:sample_rate=48000:amplitude=0.2', '-t', '30', '-ac', '2', '-c:v', 'dnxhd', '-b:v', '36M', '-pix_fmt', 'yuv422p', '-c:a', 'pcm_s16le']);
}

/**
 * FFmpeg's decode of the first video stream of `media`, one `framemd5` line per frame (MD5 of the rawvideo picture in
 * the decoder's pixel format, pts in the stream's own time base: `-copyts -enc_time_base -1`), cached beside the media.
 */
export function videoFramemd5(media: string): Promise<string> {
  return makeMedia(`${path.basename(media)}.framemd5`, ['-copyts', '-i', media, '-map', '0:v:0', '-c:v', 'rawvideo', '-enc_time_base', '-1',
    '-fps_mode', 'passthrough', '-f', 'framemd5']);
}

/** FFmpeg's decode of the first audio stream of `media` at 48 kHz, float32 interleaved (as the players convert it), cached beside the media. */
export function audioF32(media: string): Promise<string> {
  return makeMedia(`${path.basename(media)}.f32`, ['-i', media, '-map', '0:a:0', '-af', 'aresample=48000', '-f', 'f32le']);
}
