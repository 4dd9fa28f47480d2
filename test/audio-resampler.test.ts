/**
 * The players' resampler takes a decoder's frames as FFmpeg gave them (planar too, no copy in JavaScript) and any other
 * frame's interleaved `data` (copied, de-interleaved for a planar graph): both give `ffmpeg -af aresample=48000 -f
 * f32le`'s bytes. (test/ffmpeg-decode.test.ts checks the resampler against FFmpeg on more formats.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ensureCorpus } from './support/media';
import { openDecoder, decoderConfigFromParams } from '../src/ffmpeg/decoder';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { nativeAudioFrame } from '../src/ffmpeg/frames';
import { openAudioResampler } from '../src/ffmpeg/resampler';
import type { DecodedAudioFrame, DecodedFrame } from '../src/ffmpeg/types';

/** Every frame of `file`'s first audio stream, from our demuxer and decoder. */
async function decodeAudio(file: string): Promise<DecodedAudioFrame[]> {
  const d = await openDemuxer(file);
  const s = d.info.streams.find((x) => x.codecType === 'audio');
  assert.ok(s !== undefined, `${file} has an audio stream`);
  const dec = await openDecoder(decoderConfigFromParams(s), `${file} audio`);
  const out: DecodedFrame[] = [];
  try {
    for (let p = await d.readPacket(); p !== null; p = await d.readPacket()) {
      if (p.stream === s.index) out.push(...await dec.decode({ data: p.data, pts: p.pts, dts: p.dts, duration: p.duration, flags: p.flags }));
    }
    out.push(...await dec.flush());
  } finally {
    await dec.close();
    await d.close();
  }
  return out.filter((f): f is DecodedAudioFrame => f.kind === 'audio');
}

/** All of `frames` through one resampler to 48 kHz float32, as bytes. */
async function resample(frames: DecodedAudioFrame[]): Promise<Buffer> {
  const f = frames[0];
  const rs = await openAudioResampler({ sampleRate: f.sampleRate, channels: f.channels, channelLayout: f.channelLayout, format: f.format }, {}, 'test');
  const chunks: Float32Array[] = [];
  for (const x of frames) chunks.push(await rs.convert(x));
  chunks.push(await rs.flush());
  await rs.close();
  return Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
}

describe('Audio resampler: decoder frames as FFmpeg gave them, other frames by their data', function () {
  let corpus: Awaited<ReturnType<typeof ensureCorpus>>;
  before(async function () {
    this.timeout(10 * 60_000);
    corpus = await ensureCorpus();
  });

  for (const [name, format] of [['m4a-aac', 'fltp'], ['flac', 's16']] as const) {
    it(`${name} (${format}): FFmpeg's bytes both ways`, async function () {
      const file = corpus[name];
      const ffmpeg = await promisify(execFile)('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:a:0', '-af', 'aresample=48000', '-f', 'f32le', '-'],
        { encoding: 'buffer', maxBuffer: 1 << 28 });
      const decoded = await decodeAudio(file);
      assert.equal(decoded[0].format, format);
      assert.ok(decoded.every((f) => nativeAudioFrame(f) !== undefined), 'the decoder\'s frames carry their FFmpeg frame');
      // Plain objects: the resampler copies their interleaved data into frames of its own.
      const plain = decoded.map((f): DecodedAudioFrame => ({
        kind: 'audio', pts: f.pts, bestEffortPts: f.bestEffortPts, sampleRate: f.sampleRate, channels: f.channels,
        channelLayout: f.channelLayout, format: f.format, dataFormat: f.dataFormat, samples: f.samples, data: f.data,
      }));
      assert.ok(plain.every((f) => nativeAudioFrame(f) === undefined));
      const ref = ffmpeg.stdout;
      assert.ok(ref.length > 48000 * 4, `${name}: FFmpeg gave ${ref.length} bytes`);
      for (const [how, bytes] of [['as decoded', await resample(decoded)], ['by data', await resample(plain)]] as const) {
        assert.equal(bytes.length, ref.length, `${name} ${how}: byte count`);
        assert.ok(bytes.equals(ref), `${name} ${how}: the same bytes as ffmpeg -af aresample=48000 -f f32le`);
      }
    });
  }
});
