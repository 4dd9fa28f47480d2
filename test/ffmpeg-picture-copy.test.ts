/*
 * A decoded picture copied out by FFmpeg (copyTo, cuemux's beamcoder patch) is byte for byte what `ffmpeg -f framemd5`
 * hashes, for packed, planar, semi-planar, high-bit-depth, bitstream and palette formats at odd sizes (rows padded
 * by FFmpeg); release() gives the frame back and a picture released unread cannot be read.
 */
import assert from 'node:assert/strict';
import { framemd5Decode } from './support/ffmpeg-reference';
import { makeMedia } from './support/media';
import { md5 } from './support/check';
import { decoderConfigFromParams, openDecoder } from '../src/ffmpeg/decoder';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { CuemuxError } from '../src/common/errors';
import type { DecodedVideoFrame, Packet } from '../src/ffmpeg/types';

/** Pixel formats with their encoder: rawvideo keeps the format; odd sizes make FFmpeg pad rows. */
const FORMATS: ReadonlyArray<{ pixFmt: string; codec: string; ext: string }> = [
  { pixFmt: 'yuv420p', codec: 'rawvideo', ext: 'nut' },
  { pixFmt: 'yuv422p10le', codec: 'rawvideo', ext: 'nut' },
  { pixFmt: 'nv12', codec: 'rawvideo', ext: 'nut' },
  { pixFmt: 'rgb24', codec: 'rawvideo', ext: 'nut' },
  { pixFmt: 'gray', codec: 'rawvideo', ext: 'nut' },
  { pixFmt: 'monow', codec: 'rawvideo', ext: 'nut' },
  { pixFmt: 'pal8', codec: 'png', ext: 'mkv' },
  // An inter codec's pictures come out of FFmpeg's frame pool (padded, aligned planes).
  { pixFmt: 'yuv420p', codec: 'libx264', ext: 'mkv' },
];

async function decodeAll(file: string): Promise<DecodedVideoFrame[]> {
  const d = await openDemuxer(file);
  const frames: DecodedVideoFrame[] = [];
  try {
    const s = d.info.streams.find((x) => x.codecType === 'video');
    assert.ok(s !== undefined, `${file}: a video stream`);
    const dec = await openDecoder(decoderConfigFromParams(s), file);
    const take = (list: readonly unknown[]): void => {
      for (const f of list as DecodedVideoFrame[]) frames.push(f);
    };
    for (let p: Packet | null = await d.readPacket(); p !== null; p = await d.readPacket()) {
      if (p.stream === s.index) take(await dec.decode({ data: p.data, pts: p.pts, dts: p.dts, duration: p.duration, flags: p.flags }));
    }
    take(await dec.flush());
    await dec.close();
  } finally {
    await d.close();
  }
  return frames;
}

describe('decoded pictures copied out by FFmpeg (copyTo, release)', function () {
  for (const { pixFmt, codec, ext } of FORMATS) {
    it(`${pixFmt} (${codec}, 63x47): copyTo gives framemd5's bytes; planes read first give the same; released unread, planes throw`, async function () {
      const file = await makeMedia(`copy-${pixFmt}-${codec}.${ext}`, [
        '-f', 'lavfi', '-i', 'testsrc2=size=63x47:rate=25:duration=0.24', '-pix_fmt', pixFmt, '-c:v', codec,
        ...(codec === 'libx264' ? ['-preset', 'ultrafast', '-bf', '2', '-g', '4'] : []),
      ]);
      const reference = (await framemd5Decode(file)).filter((f) => f.stream === 0);
      assert.ok(reference.length >= 5, `${file}: framemd5 frames`);
      // Native path: copyTo on a picture whose planes were never read, then release.
      const copied = await decodeAll(file);
      assert.equal(copied.length, reference.length, 'frame count');
      copied.forEach((f, i) => {
        assert.ok(f.copyTo !== undefined && f.release !== undefined && f.byteLength !== undefined && f.planeLengths !== undefined, 'a decoder picture copies and releases');
        assert.equal(f.format, pixFmt);
        const out = new Uint8Array(f.byteLength + 7); // a larger slot, as a pool lends
        assert.equal(f.copyTo(out), f.byteLength);
        assert.equal(f.planeLengths.reduce((a, b) => a + b, 0), f.byteLength);
        assert.equal(f.byteLength, reference[i].size, `frame ${i}: size`);
        assert.equal(md5(out.subarray(0, f.byteLength)), reference[i].md5, `frame ${i}: md5 (FFmpeg's copy)`);
        f.release();
        f.release(); // idempotent
        assert.throws(() => f.planes, (e: unknown) => e instanceof CuemuxError && e.code === 'WRONG_STATE' && e.message.includes(file));
      });
      // JavaScript path: planes read first (views of FFmpeg's buffers); a release after it leaves them readable.
      const read = await decodeAll(file);
      read.forEach((f, i) => {
        const planes = f.planes;
        assert.deepEqual(planes.map((p) => p.length), f.planeLengths, `frame ${i}: plane lengths`);
        f.release?.();
        assert.equal(md5(Buffer.concat(planes)), reference[i].md5, `frame ${i}: md5 (planes)`);
        const out = new Uint8Array(f.byteLength ?? 0);
        f.copyTo?.(out);
        assert.equal(md5(out), reference[i].md5, `frame ${i}: md5 (copyTo after planes)`);
      });
      assert.throws(() => copied[0].copyTo?.(new Uint8Array(1)), (e: unknown) => e instanceof CuemuxError && e.code === 'INVALID_ARGUMENT');
    });
  }
});
