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
 * (FFmpeg's decode, whose first sample is at media time `firstSeconds`). A period the player read at a slewed rate
 * (`slew` ≠ 0: it is drawing the device back to the clock, e.g. after a failover's new master) is interpolated between
 * FFmpeg's samples: each of its samples must lie between FFmpeg's two around its read position (one sample of slack
 * each side for the rounding of `media_seconds`). Returns the samples checked per channel.
 */
export function checkRenderedPeriods(rendered: SyncRecord[], out: Float32Array, ref: Float32Array, firstSeconds: number, channels: number): number {
  let checked = 0;
  for (const r of rendered) {
    if (Number(r.extra.underrun) > 0) continue;
    const at = Number(r.extra.device_sample) * channels;
    const count = Number(r.extra.samples);
    const slew = Number(r.extra.slew ?? 0);
    if (slew === 0) {
      const from = Math.round((Number(r.extra.media_seconds) - firstSeconds) * 48000) * channels;
      for (let i = 0; i < count * channels; i++) {
        if (out[at + i] !== ref[from + i]) assert.fail(`sample ${i} of the period at device sample ${Number(r.extra.device_sample)}: ${out[at + i]} != FFmpeg's ${ref[from + i]}`);
      }
    } else {
      const start = (Number(r.extra.media_seconds) - firstSeconds) * 48000;
      for (let i = 0; i < count; i++) {
        const k = Math.floor(start + i * (1 + slew));
        for (let ch = 0; ch < channels; ch++) {
          const around = [k - 1, k, k + 1, k + 2].map((j) => ref[j * channels + ch]);
          const v = out[at + i * channels + ch];
          if (!(v >= Math.min(...around) - 1e-6 && v <= Math.max(...around) + 1e-6)) {
            assert.fail(`sample ${i} (channel ${ch}) of the period at device sample ${Number(r.extra.device_sample)}, read at slew ${slew}: ${v} is not between FFmpeg's samples around it (${around.join(', ')})`);
          }
        }
      }
    }
    checked += count;
  }
  return checked;
}
