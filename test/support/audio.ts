/**
 * Audio references for the player tests: FFmpeg's own decode of a stream, the samples of a float WAV file, and the
 * check that every period a player rendered holds exactly FFmpeg's samples of its media time.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SyncRecord } from '../../src/players/sync-log';

const run = promisify(execFile);

/** ffmpeg's decode of audio stream `stream` of `file`, resampled to 48 kHz float32 interleaved. */
export async function ffmpegSamples(file: string, stream: number): Promise<Float32Array> {
  const { stdout } = await run('ffmpeg', ['-v', 'error', '-i', file, '-map', `0:${stream}`, '-af', 'aresample=48000', '-f', 'f32le', '-'],
    { encoding: 'buffer', maxBuffer: 1 << 30 });
  const b = Buffer.from(stdout);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

/** The samples of a float WAV file written by the wav sink: the benchmarks' reader (one reader for both). */
export { wavSamples } from '../../scripts/bench/presented';

/**
 * Check that each rendered period of a player's sync log (`device_sample`, `media_seconds`, `samples`; periods with
 * missing samples skipped) holds in `out` (the device output, `channels` interleaved) exactly the samples of `ref`
 * (FFmpeg's decode, whose first sample is at media time `firstSeconds`). Returns the samples checked per channel.
 */
export function checkRenderedPeriods(rendered: SyncRecord[], out: Float32Array, ref: Float32Array, firstSeconds: number, channels: number): number {
  let checked = 0;
  for (const r of rendered) {
    if (Number(r.extra.underrun) > 0) continue;
    const at = Number(r.extra.device_sample) * channels;
    const from = Math.round((Number(r.extra.media_seconds) - firstSeconds) * 48000) * channels;
    const count = Number(r.extra.samples);
    for (let i = 0; i < count * channels; i++) {
      if (out[at + i] !== ref[from + i]) assert.fail(`sample ${i} of the period at device sample ${Number(r.extra.device_sample)}: ${out[at + i]} != FFmpeg's ${ref[from + i]}`);
    }
    checked += count;
  }
  return checked;
}
