/**
 * bench:index's show-like media (issue 13, item 5), generated with ffmpeg once and cached with the test media.
 */
import { makeMedia } from '../../test/support/media';
import { goH264 } from '../bench-media';

/** A single large MP4: 60 s of 1080p25 H.264 (open GOPs, 3 B-frames, 12 Mb/s) + AAC stereo (~93 MB, 4,313 packets); bench:go's file. */
export function largeMp4(): Promise<string> {
  return goH264();
}

/**
 * A long Matroska file: 20 minutes of 568x320 25 fps H.264 (2 B-frames, a keyframe every 2 s) + AAC stereo 48 kHz
 * (86,251 packets: 30,000 video, 56,251 audio).
 */
export function longMkv(): Promise<string> {
  return makeMedia('bench-index-320p25-h264-aac-1200s.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=568x320:rate=25', '-f', 'lavfi', '-i',
    'sine=f=440:sample_rate=48000', '-t', '1200', '-ac', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '2', '-g', '50',
    '-b:v', '400k', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k']);
}
