/**
 * The players' resampler takes a decoder's frames as FFmpeg gave them (planar too, no copy in JavaScript) and any other
 * frame's interleaved `data` (copied, de-interleaved for a planar graph): both give `ffmpeg -af aresample=48000 -f
 * f32le`'s bytes. (test/ffmpeg-decode.test.ts checks the resampler against FFmpeg on more formats.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { rejectsWith } from './support/check';
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

  // 44.1 kHz fltp and s16 through FFmpeg's graph; 48 kHz fltp copied, no graph (float at the output's rate and layout).
  for (const [name, format] of [['m4a-aac', 'fltp'], ['flac', 's16'], ['mp4-h264-aac', 'fltp']] as const) {
    it(`${name} (${format}): FFmpeg's bytes both ways`, async function () {
      const file = corpus[name];
      const ffmpeg = await promisify(execFile)('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:a:0', '-af', 'aresample=48000', '-f', 'f32le', '-'],
        { encoding: 'buffer', maxBuffer: 1 << 28 });
      const decoded = await decodeAudio(file);
      assert.equal(decoded[0].format, format);
      assert.ok(decoded.every((f) => nativeAudioFrame(f) !== undefined), 'the decoder\'s frames carry their FFmpeg frame');
      // Before anything reads their `data`: the resampler reads FFmpeg's frames themselves.
      const asDecoded = await resample(decoded);
      // Plain objects: the resampler copies their interleaved data into frames of its own.
      const plain = decoded.map((f): DecodedAudioFrame => ({
        kind: 'audio', pts: f.pts, bestEffortPts: f.bestEffortPts, sampleRate: f.sampleRate, channels: f.channels,
        channelLayout: f.channelLayout, format: f.format, dataFormat: f.dataFormat, samples: f.samples, data: f.data,
      }));
      assert.ok(plain.every((f) => nativeAudioFrame(f) === undefined));
      const ref = ffmpeg.stdout;
      assert.ok(ref.length > 48000 * 4, `${name}: FFmpeg gave ${ref.length} bytes`);
      for (const [how, bytes] of [['as decoded', asDecoded], ['by data', await resample(plain)]] as const) {
        assert.equal(bytes.length, ref.length, `${name} ${how}: byte count`);
        assert.ok(bytes.equals(ref), `${name} ${how}: the same bytes as ffmpeg -af aresample=48000 -f f32le`);
      }
    });
  }

  it('float at the output rate (no graph): the same errors as through FFmpeg\'s graph', async function () {
    const rs = await openAudioResampler({ sampleRate: 48000, channels: 2, channelLayout: '', format: 'fltp' }, {}, 'cue 8 audio');
    const frame: DecodedAudioFrame = {
      kind: 'audio', pts: 0, bestEffortPts: 0, sampleRate: 44100, channels: 2, channelLayout: 'stereo', format: 'fltp', dataFormat: 'flt', samples: 4, data: Buffer.alloc(32),
    };
    await rejectsWith(rs.convert(frame), 'INVALID_ARGUMENT', /cue 8 audio: frame is 44100 Hz/);
    await rejectsWith(rs.convert({ ...frame, sampleRate: 48000, data: Buffer.alloc(16) }), 'INVALID_ARGUMENT', /holds 16 bytes, 32 expected/);
    const data = Buffer.alloc(32);
    data.writeUInt32LE(0x7fc00001, 4); // a NaN with a payload: copied bit for bit
    const out = await rs.convert({ ...frame, sampleRate: 48000, data });
    assert.ok(Buffer.from(out.buffer).equals(data));
    assert.equal((await rs.flush()).length, 0);
    await rejectsWith(rs.convert({ ...frame, sampleRate: 48000 }), 'WRONG_STATE', /after flush/);
    await Promise.all([rs.close(), rs.close()]);
    await rejectsWith(rs.convert({ ...frame, sampleRate: 48000 }), 'CLOSED', /after close/);
  });
});
