/**
 * Benchmark media, generated with ffmpeg once and cached with the test media (.cache/test-media).
 */
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
