/**
 * Decoding and resampling for the reference players are exact against the ffmpeg tool: every decoded frame of every
 * corpus stream hashes like `ffmpeg -f framemd5` of the decoded stream (framemd5Decode), with the same timestamps,
 * and the resampler's output equals `ffmpeg -af aresample=48000 -f f32le` byte for byte. Plus the error contract.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { ffprobeStreams, framemd5Decode, groupByStream, type FrameMd5 } from './support/ffmpeg-reference';
import { CORPUS_NAMES, ensureCorpus, type CorpusName } from './support/media';
import { md5, rejectsWith } from './support/check';
import { decoderConfigFromParams, openDecoder, type DecoderOptions } from '../src/ffmpeg/decoder';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { openAudioResampler } from '../src/ffmpeg/resampler';
import type {
  DecodedAudioFrame, DecodedFrame, Decoder, DecoderConfig, EncodedPacket, Packet, StreamParams,
} from '../src/ffmpeg/types';

/** Run a tool and return its stdout as bytes. */
function runBytes(bin: string, args: readonly string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout);
    });
  });
}

/**
 * FFmpeg's AV_PKT_DATA_SKIP_SAMPLES side data per stream and packet ordinal, from ffprobe. The adapter's Packet
 * (and so the wire) does not carry side data; the demuxer attaches it to MP3 (LAME delay/padding), MKV Opus
 * (DiscardPadding) and MP4 priming packets. Only the test of the decoder's own `skipSamples` input uses it.
 */
async function skipSamples(file: string): Promise<Map<string, { start: number; end: number }>> {
  const out = await runBytes('ffprobe', ['-v', 'error', '-show_packets', '-of', 'json', file]);
  const parsed = JSON.parse(out.toString('utf8')) as { packets?: Array<Record<string, unknown>> };
  const seen = new Map<number, number>();
  const result = new Map<string, { start: number; end: number }>();
  for (const p of parsed.packets ?? []) {
    const stream = Number(p.stream_index);
    const ordinal = seen.get(stream) ?? 0;
    seen.set(stream, ordinal + 1);
    const side = (p.side_data_list as Array<Record<string, unknown>> | undefined)?.find((s) => s.side_data_type === 'Skip Samples');
    if (side !== undefined) result.set(`${stream}:${ordinal}`, { start: Number(side.skip_samples), end: Number(side.discard_padding) });
  }
  return result;
}

/** The interleaved sample bytes converted to `refFormat`'s packed form, as framemd5Decode hashes them. */
function audioBytes(f: DecodedAudioFrame, refFormat: string | null): Buffer {
  const ref = (refFormat ?? f.format).replace(/p$/, '');
  if (ref === f.dataFormat) return f.data;
  // TS/MP2: ffprobe reports sample_fmt fltp, but the decoder FFmpeg picks for mp2 ("mp2", fixed point) outputs
  // s16p, so framemd5Decode hashes pcm_f32le: s16 -> flt as swresample converts it, x / 32768 (exact).
  if (f.dataFormat === 's16' && ref === 'flt') {
    const out = Buffer.alloc(f.data.length * 2);
    for (let i = 0; i < f.data.length / 2; i++) out.writeFloatLE(f.data.readInt16LE(2 * i) / 32768, 4 * i);
    return out;
  }
  throw new Error(`no conversion from ${f.dataFormat} to ${ref}`);
}

/** `pts` (ticks of `from`) in ticks of `to`, rounded to nearest, halves away from zero (av_rescale's default). */
function rescale(pts: number, from: { num: number; den: number }, to: { num: number; den: number }): number {
  const n = BigInt(pts) * BigInt(from.num) * BigInt(to.den);
  const d = BigInt(from.den) * BigInt(to.num);
  const q = (2n * (n < 0n ? -n : n) + d) / (2n * d);
  return Number(n < 0n ? -q : q);
}

interface Got {
  stream: number;
  pts: number | null;
  size: number;
  md5: string;
  /** The frame's bytes as framemd5Decode would hash them. */
  bytes: Buffer;
  /** The skip-samples side data (from ffprobe) of the packet whose decode returned this frame, fed or not. */
  side: { start: number; end: number } | undefined;
  frame: DecodedFrame;
}

interface DecodeRun {
  params: StreamParams[];
  frames: Got[];
}

/**
 * Read every packet of `file` with the adapter's demuxer and decode every audio/video stream with a decoder built
 * from the stream's parameters, feeding it only what a packet on the wire carries (data, pts, dts, duration, flags;
 * `withSkip` adds ffprobe's skip-samples side data, which the wire does not carry); returns every frame with the md5
 * framemd5Decode would compute for it.
 */
async function decodeFile(
  file: string,
  opts: { withSkip?: boolean; decoder?: DecoderOptions; refFormats?: Map<number, string | null>; only?: 'audio' | 'video' } = {},
): Promise<DecodeRun> {
  const skip = await skipSamples(file);
  const d = await openDemuxer(file);
  const decoders = new Map<number, Decoder>();
  const ordinals = new Map<number, number>();
  const frames: Got[] = [];
  const take = (stream: number, list: DecodedFrame[], side?: { start: number; end: number }): void => {
    for (const frame of list) {
      const bytes = frame.kind === 'video' ? Buffer.concat(frame.planes) : audioBytes(frame, opts.refFormats?.get(stream) ?? null);
      // ffmpeg presents video at the best-effort timestamp and audio at pts (moved past skipped samples).
      const pts = frame.kind === 'video' ? frame.bestEffortPts : frame.pts;
      frames.push({ stream, pts, size: bytes.length, md5: md5(bytes), bytes, side, frame });
    }
  };
  try {
    for (const s of d.info.streams) {
      if ((s.codecType === 'video' || s.codecType === 'audio') && (opts.only === undefined || opts.only === s.codecType)) {
        decoders.set(s.index, await openDecoder(decoderConfigFromParams(s), `${file} stream ${s.index}`, opts.decoder));
      }
    }
    for (let p: Packet | null = await d.readPacket(); p !== null; p = await d.readPacket()) {
      const dec = decoders.get(p.stream);
      const ordinal = ordinals.get(p.stream) ?? 0;
      ordinals.set(p.stream, ordinal + 1);
      if (dec === undefined) continue;
      const packet: EncodedPacket = { data: p.data, pts: p.pts, dts: p.dts, duration: p.duration, flags: p.flags };
      const side = skip.get(`${p.stream}:${ordinal}`);
      if (side !== undefined && opts.withSkip === true) packet.skipSamples = side;
      take(p.stream, await dec.decode(packet), side);
    }
    for (const [stream, dec] of decoders) take(stream, await dec.flush());
  } finally {
    await Promise.all([...decoders.values()].map((x) => x.close()));
    await d.close();
  }
  return { params: d.info.streams, frames };
}

/** Our frames' timestamps in framemd5's time base for the stream (1/sample rate for audio). */
function refPts(g: Got, params: StreamParams, ref: FrameMd5): number | null {
  if (g.pts === null) return null;
  return rescale(g.pts, params.timeBase, ref.timeBase);
}

describe('FFmpeg decoding for players', function () {
  let corpus: Record<CorpusName, string>;
  before(async function () {
    this.timeout(10 * 60_000);
    corpus = await ensureCorpus();
  });

  for (const name of CORPUS_NAMES) {
    it(`${name}: fed what the wire carries, every decoded frame equals ffmpeg -f framemd5, untrimmed where FFmpeg trims by side data`, async function () {
      const file = corpus[name];
      // The reference runs while we decode (two cores).
      const reference = framemd5Decode(file);
      const probe = await ffprobeStreams(file);
      const refFormats = new Map(probe.map((s) => [s.index, s.sampleFmt]));
      const run = await decodeFile(file, { refFormats });
      const ref = groupByStream(await reference, (f) => f);
      const got = groupByStream(run.frames, (f) => f);
      let untrimmed = 0;
      assert.deepEqual([...got.keys()].sort(), [...ref.keys()].sort(), 'decoded streams');
      for (const [stream, refFrames] of ref) {
        const ours = got.get(stream) ?? [];
        const params = run.params[stream];
        assert.equal(ours.length, refFrames.length, `stream ${stream} (${params.codecName}): frame count`);
        if (params.codecType === 'video') assert.deepEqual(refFrames[0].timeBase, params.timeBase, 'framemd5 keeps the video time base');
        ours.forEach((g, i) => {
          const r = refFrames[i];
          const where = `stream ${stream} (${params.codecName}) frame ${i}`;
          if (g.side === undefined) {
            assert.equal(g.size, r.size, `${where}: size`);
            assert.equal(g.md5, r.md5, `${where}: md5`);
            assert.equal(refPts(g, params, r), r.pts, `${where}: pts`);
            return;
          }
          // The wire does not carry the packet's skip-samples side data, so the frame keeps the samples FFmpeg drops
          // by it: FFmpeg's frame is ours without `start` samples at the front and `end` at the back, and its pts is
          // moved past the `start` samples (framemd5 counts audio in 1/sample rate).
          const f = g.frame;
          assert.ok(f.kind === 'audio', `${where}: side data on a video packet`);
          assert.deepEqual(r.timeBase, { num: 1, den: f.sampleRate }, `${where}: framemd5's audio time base`);
          const perSample = g.size / f.samples;
          const trimmed = g.bytes.subarray(g.side.start * perSample, g.size - g.side.end * perSample);
          assert.equal(trimmed.length, r.size, `${where}: size less the ${g.side.start} + ${g.side.end} skipped samples`);
          assert.equal(md5(trimmed), r.md5, `${where}: md5 of the samples FFmpeg keeps`);
          const pts = refPts(g, params, r);
          assert.equal(pts === null ? null : pts + g.side.start, r.pts, `${where}: pts`);
          untrimmed++;
        });
      }
      // The frames left untrimmed: MP3's LAME delay (first) and padding (last), Matroska Opus' DiscardPadding (last).
      // MP4 AAC's priming packet carries side data too, but the discard flag (on the wire) drops its frame.
      assert.equal(untrimmed, name === 'mp3' ? 2 : name === 'mkv-vp9-opus' ? 1 : 0, 'frames of packets with skip-samples side data');
    });
  }

  it('frames describe themselves: geometry, formats, key frames, audio sample counts', async function () {
    const run = await decodeFile(corpus['mov-prores-pcm']);
    const video = run.frames.filter((g) => g.frame.kind === 'video').map((g) => g.frame);
    const audio = run.frames.filter((g) => g.frame.kind === 'audio').map((g) => g.frame as DecodedAudioFrame);
    const v = video[0];
    assert.ok(v.kind === 'video');
    assert.equal(v.format, 'yuv422p10le');
    assert.deepEqual([v.width, v.height], [320, 240]);
    // 4:2:2 10-bit: a full-width luma plane and two half-width chroma planes, 2 bytes per sample, no padding.
    assert.deepEqual(v.planes.map((p) => p.length), [320 * 2 * 240, 160 * 2 * 240, 160 * 2 * 240]);
    assert.ok(video.every((f) => f.kind === 'video' && f.keyFrame), 'ProRes is intra-only');
    assert.equal(audio[0].format, 's16');
    assert.equal(audio[0].channelLayout, 'stereo');
    assert.equal(audio.reduce((n, f) => n + f.samples, 0), 3 * 48000);
    assert.ok(audio.every((f) => f.data.length === f.samples * 2 * 2));
  });

  it('one decoding thread gives the same frames as FFmpeg\'s automatic threads (H.264 with B-frames)', async function () {
    const file = corpus['mp4-h264-aac'];
    const [one, auto] = await Promise.all([decodeFile(file, { decoder: { threads: 1 } }), decodeFile(file)]);
    const key = (g: Got): string => `${String(g.pts)}:${g.md5}`;
    assert.deepEqual(groupByStream(one.frames, key), groupByStream(auto.frames, key));
  });

  it('without skip-samples side data only the trimmed frames differ (MKV Opus end padding)', async function () {
    const file = corpus['mkv-vp9-opus'];
    const [plain, trimmed] = await Promise.all([decodeFile(file), decodeFile(file, { withSkip: true })]);
    const audio = (r: DecodeRun): DecodedAudioFrame[] => r.frames.filter((g) => g.frame.kind === 'audio').map((g) => g.frame as DecodedAudioFrame);
    const a = audio(plain);
    const b = audio(trimmed);
    assert.equal(a.length, b.length);
    const last = a.length - 1;
    for (let i = 0; i < last; i++) assert.ok(a[i].data.equals(b[i].data), `frame ${i}`);
    const padding = [...(await skipSamples(file)).values()].reduce((n, s) => n + s.end, 0);
    assert.ok(padding > 0, 'the file signals end padding');
    assert.equal(a[last].samples - b[last].samples, padding, 'the untrimmed last frame keeps the padding');
  });

  it('serialises overlapping decode calls: every frame once, in order', async function () {
    const file = corpus['mp4-h264-only'];
    const sequential = await decodeFile(file);
    const d = await openDemuxer(file);
    const packets: Packet[] = [];
    for (let p = await d.readPacket(); p !== null; p = await d.readPacket()) packets.push(p);
    await d.close();
    const dec = await openDecoder(decoderConfigFromParams(d.info.streams[0]), 'overlap');
    // Fire every decode and the flush at once: unserialised, FFmpeg's codec context would be used concurrently.
    const results = await Promise.all([
      ...packets.map((p) => dec.decode({ data: p.data, pts: BigInt(p.pts ?? 0), dts: p.dts, duration: p.duration, flags: p.flags })),
      dec.flush(),
    ]);
    await dec.close();
    const frames = results.flat();
    assert.deepEqual(
      frames.map((f) => (f.kind === 'video' ? md5(Buffer.concat(f.planes)) : '')),
      sequential.frames.map((g) => g.md5),
    );
  });

  describe('errors name the stream and say what is wrong', function () {
    const base = (over: Partial<DecoderConfig>): DecoderConfig => ({
      codecName: 'h264', extradata: null, timeBase: { num: 1, den: 90000 }, width: 0, height: 0, format: '',
      sampleRate: 0, channels: 0, channelLayout: '', bitsPerCodedSample: 0, blockAlign: 0, frameSize: 0, ...over,
    });

    it('an unknown codec: INVALID_ARGUMENT', async function () {
      await rejectsWith(openDecoder(base({ codecName: 'no-such-codec' }), 'act1.mov stream 3'), 'INVALID_ARGUMENT',
        /^act1\.mov stream 3: unknown codec "no-such-codec"/);
    });

    it('a subtitle codec: INVALID_ARGUMENT', async function () {
      await rejectsWith(openDecoder(base({ codecName: 'subrip' }), 'subs'), 'INVALID_ARGUMENT', /subs: codec "subrip" is subtitle/);
    });

    it('parameters FFmpeg cannot open the decoder with: INVALID_ARGUMENT at open', async function () {
      // PCM cannot be decoded without a channel count. (beamcoder would only open it at the first packet and then
      // lose the error: every decode would silently give no frames.)
      await rejectsWith(openDecoder(base({ codecName: 'pcm_s16le', timeBase: { num: 1, den: 48000 } }), 'pcm'), 'INVALID_ARGUMENT',
        /^pcm: cannot open the pcm_s16le decoder with these stream parameters/);
    });

    it('an empty packet or a non-integer timestamp: INVALID_ARGUMENT (an empty packet would hang beamcoder)', async function () {
      const dec = await openDecoder(base({}), 'v');
      await rejectsWith(dec.decode({ data: Buffer.alloc(0), pts: 0, dts: 0, duration: 0, flags: 0 }), 'INVALID_ARGUMENT', /non-empty/);
      await rejectsWith(dec.decode({ data: Buffer.alloc(8), pts: 1.5, dts: 0, duration: 0, flags: 0 }), 'INVALID_ARGUMENT', /pts must be a safe integer/);
      await rejectsWith(dec.decode({ data: Buffer.alloc(8), pts: 2n ** 60n, dts: 0, duration: 0, flags: 0 }), 'INVALID_ARGUMENT', /pts/);
      await dec.close();
    });

    it('garbage packet data is skipped (no frame, no error) and decoding goes on exactly', async function () {
      const file = corpus['mp4-h264-aac'];
      const reference = await decodeFile(file, { decoder: { threads: 1 } });
      const d = await openDemuxer(file);
      const dec = await openDecoder(decoderConfigFromParams(d.info.streams[0]), 'garbage', { threads: 1 });
      const hashes: string[] = [];
      let garbageFrames = -1;
      for (let p = await d.readPacket(), i = 0; p !== null; p = await d.readPacket()) {
        if (p.stream !== 0) continue;
        if (i++ === 3) {
          // FFmpeg logs "Invalid NAL unit size" and avcodec_send_packet fails, but beamcoder 0.7.1's decode()
          // loses the error (its completion overwrites the status): the packet is skipped.
          const junk = Buffer.from(createHash('sha512').update('junk').digest().toString('hex').repeat(8));
          garbageFrames = (await dec.decode({ data: junk, pts: p.pts, dts: p.dts, duration: p.duration, flags: p.flags })).length;
        }
        for (const f of await dec.decode({ data: p.data, pts: p.pts, dts: p.dts, duration: p.duration, flags: p.flags })) {
          if (f.kind === 'video') hashes.push(md5(Buffer.concat(f.planes)));
        }
      }
      for (const f of await dec.flush()) if (f.kind === 'video') hashes.push(md5(Buffer.concat(f.planes)));
      await Promise.all([dec.close(), d.close()]);
      assert.equal(garbageFrames, 0);
      assert.deepEqual(hashes, reference.frames.filter((g) => g.stream === 0).map((g) => g.md5));
    });

    it('close() is idempotent; decode/flush after close reject with CLOSED, decode after flush with WRONG_STATE', async function () {
      const dec = await openDecoder(base({}), 'closing');
      assert.deepEqual(await dec.flush(), []);
      assert.deepEqual(await dec.flush(), [], 'a second flush is empty');
      await rejectsWith(dec.decode({ data: Buffer.alloc(8), pts: 0, dts: 0, duration: 0, flags: 0 }), 'WRONG_STATE', /closing: decode after flush/);
      await Promise.all([dec.close(), dec.close()]);
      await dec.close();
      assert.equal(dec.closed, true);
      await rejectsWith(dec.decode({ data: Buffer.alloc(8), pts: 0, dts: 0, duration: 0, flags: 0 }), 'CLOSED', /closing: decode after close/);
      await rejectsWith(dec.flush(), 'CLOSED', /closing: flush after close/);
    });
  });
});

describe('Audio resampling for players (swresample via aresample)', function () {
  let corpus: Record<CorpusName, string>;
  before(async function () {
    this.timeout(10 * 60_000);
    corpus = await ensureCorpus();
  });

  /**
   * Decode the first audio stream of `file` (fed what the wire carries: these files' only skip-samples side data is on
   * AAC priming packets, which the discard flag drops too) and convert all of it; returns our bytes and ffmpeg's.
   */
  async function resampleFile(file: string, rate = 48000): Promise<{ ours: Buffer; ffmpeg: Buffer; frames: DecodedAudioFrame[] }> {
    const ffmpeg = runBytes('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:a:0', '-af', `aresample=${rate}`, '-f', 'f32le', '-']);
    const run = await decodeFile(file, { only: 'audio' });
    const frames = run.frames.filter((g) => g.frame.kind === 'audio').map((g) => g.frame as DecodedAudioFrame);
    const first = frames[0];
    const rs = await openAudioResampler(
      { sampleRate: first.sampleRate, channels: first.channels, channelLayout: first.channelLayout, format: first.format },
      { sampleRate: rate }, `${file} audio`);
    assert.deepEqual(rs.output, { sampleRate: rate, format: 'flt', channels: first.channels, channelLayout: first.channelLayout });
    const chunks: Float32Array[] = [];
    for (const f of frames) chunks.push(await rs.convert(f));
    chunks.push(await rs.flush());
    await rs.close();
    const ours = Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
    return { ours, ffmpeg: await ffmpeg, frames };
  }

  function assertSameBytes(ours: Buffer, ffmpeg: Buffer, what: string): void {
    assert.equal(ours.length, ffmpeg.length, `${what}: sample count (${ours.length / 4} vs ${ffmpeg.length / 4} floats)`);
    if (!ours.equals(ffmpeg)) {
      let i = 0;
      while (ours[i] === ffmpeg[i]) i++;
      assert.fail(`${what}: first different float at index ${i >> 2}`);
    }
  }

  it('44.1 kHz s16 (FLAC) -> 48 kHz float32 equals ffmpeg -af aresample=48000 -f f32le, including the flushed tail', async function () {
    const { ours, ffmpeg, frames } = await resampleFile(corpus.flac);
    assert.equal(frames[0].format, 's16');
    assert.equal(frames[0].sampleRate, 44100);
    assertSameBytes(ours, ffmpeg, 'flac');
    assert.equal(ours.length / 4 / 2, 3 * 48000, 'exactly 3 s of stereo at 48 kHz');
  });

  it('44.1 kHz fltp (AAC) -> 48 kHz float32 equals ffmpeg', async function () {
    const { ours, ffmpeg, frames } = await resampleFile(corpus['m4a-aac']);
    assert.equal(frames[0].format, 'fltp');
    assertSameBytes(ours, ffmpeg, 'm4a');
  });

  it('48 kHz s16 (WAV) and fltp (AAC) -> float32 equal ffmpeg (format conversion only)', async function () {
    const wav = await resampleFile(corpus.wav);
    assert.equal(wav.frames[0].format, 's16');
    assertSameBytes(wav.ours, wav.ffmpeg, 'wav');
    const aac = await resampleFile(corpus['mp4-h264-aac']);
    assert.equal(aac.frames[0].format, 'fltp');
    assertSameBytes(aac.ours, aac.ffmpeg, 'mp4 aac');
  });

  it('rejects frames in another format, convert after flush and calls after close', async function () {
    const rs = await openAudioResampler({ sampleRate: 44100, channels: 2, channelLayout: '', format: 'fltp' }, {}, 'cue 7 audio');
    assert.deepEqual(rs.input, { sampleRate: 44100, channels: 2, channelLayout: 'stereo', format: 'fltp' });
    assert.deepEqual(rs.output, { sampleRate: 48000, format: 'flt', channels: 2, channelLayout: 'stereo' });
    const frame: DecodedAudioFrame = {
      kind: 'audio', pts: 0, bestEffortPts: 0, sampleRate: 48000, channels: 2, channelLayout: 'stereo', format: 'fltp',
      dataFormat: 'flt', samples: 4, data: Buffer.alloc(32),
    };
    await rejectsWith(rs.convert(frame), 'INVALID_ARGUMENT', /cue 7 audio: frame is 48000 Hz/);
    const ok = await rs.convert({ ...frame, sampleRate: 44100 });
    assert.ok(ok instanceof Float32Array);
    await rs.flush();
    await rejectsWith(rs.convert({ ...frame, sampleRate: 44100 }), 'WRONG_STATE', /after flush/);
    assert.equal((await rs.flush()).length, 0);
    await Promise.all([rs.close(), rs.close()]);
    await rejectsWith(rs.convert({ ...frame, sampleRate: 44100 }), 'CLOSED', /after close/);
    await rejectsWith(openAudioResampler({ sampleRate: 0, channels: 2, channelLayout: '', format: 'flt' }, {}, 'bad'), 'INVALID_ARGUMENT', /bad: input sample rate/);
    await rejectsWith(openAudioResampler({ sampleRate: 48000, channels: 2, channelLayout: '', format: 'nope' }, {}, 'bad'), 'INVALID_ARGUMENT', /unknown sample format/);
  });

  it('downmixes when asked: 5.1 -> stereo gives 2 interleaved channels', async function () {
    const rs = await openAudioResampler({ sampleRate: 48000, channels: 6, channelLayout: '5.1', format: 'fltp' }, { channels: 2 }, 'downmix');
    assert.equal(rs.output.channels, 2);
    assert.equal(rs.output.channelLayout, 'stereo');
    const samples = 480;
    const data = Buffer.alloc(samples * 6 * 4);
    for (let i = 0; i < samples * 6; i++) data.writeFloatLE(0.25, i * 4);
    const out = await rs.convert({
      kind: 'audio', pts: 0, bestEffortPts: 0, sampleRate: 48000, channels: 6, channelLayout: '5.1', format: 'fltp',
      dataFormat: 'flt', samples, data,
    });
    const tail = await rs.flush();
    await rs.close();
    assert.equal((out.length + tail.length) / 2, samples);
    assert.ok(out.every((x) => x > 0.25), 'the centre and surrounds are mixed into left and right');
  });
});
