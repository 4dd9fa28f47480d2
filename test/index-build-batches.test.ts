/**
 * Index builds that span several native reads (8,192 packets each, the next one read ahead while the last is checked
 * and encoded): entries exact against ffprobe in MP4 and Matroska, and Matroska's block headers (checked a window of
 * the file at a time) giving the verdict of a check of every block, including a laced block that only a batch read
 * ahead holds.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { makeMedia } from './support/media';
import { assertPayloadsAtPositions, ffprobePackets, type ProbePacket } from './support/ffmpeg-reference';
import { copyInto, scratchDir } from './support/tmp';
import { openIndex } from '../src/index-store/open-index';
import type { MediaIndex } from '../src/index-store/media-index';

/** 240 s of 160x120 25 fps H.264 (2 B-frames) + AAC 48 kHz: 6,000 + 11,251 packets, three batches. */
function longSmallMkv(): Promise<string> {
  return makeMedia('batches-160p25-h264-aac-240s.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=240',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000:duration=240', '-ac', '2', '-c:v', 'libx264', '-preset', 'ultrafast',
    '-bf', '2', '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k']);
}

function rows(idx: MediaIndex): unknown[] {
  return [...idx.entries()].map((e) => ({ stream: e.stream, pts: e.pts, dts: e.dts, duration: e.duration, pos: e.pos, size: e.size, key: e.key }));
}

function reference(packets: ProbePacket[]): unknown[] {
  return packets.map((p) => ({ stream: p.stream, pts: p.pts, dts: p.dts, duration: p.duration, pos: p.pos, size: p.size, key: p.key }));
}

describe('index build over several batches', function () {
  this.timeout(180000);
  let dir: string;
  let mkv: string;

  before(async function () {
    dir = await scratchDir('batches');
    mkv = await longSmallMkv();
  });

  it('Matroska: entries equal ffprobe, and every packet is read straight from the file after its 4-byte block header', async function () {
    const media = await copyInto(mkv, dir, 'long.mkv');
    const probes = await ffprobePackets(media);
    assert.ok(probes.length > 2 * 8192, `${probes.length} packets: more than two batches`);
    const idx = await openIndex(media, { cacheDir: dir });
    assert.deepEqual(rows(idx), reference(probes));
    assert.ok(idx.params);
    assert.equal(idx.params.directReadable, true);
    assert.deepEqual(idx.params.dataOffsets, [4, 4]);
    await assertPayloadsAtPositions(media, probes, [4, 4], 'long.mkv');
  });

  it('MP4 (the same streams remuxed): entries equal ffprobe', async function () {
    const media = await copyInto(await makeMedia('batches-160p25-h264-aac-240s.mp4', ['-i', mkv, '-c', 'copy']), dir, 'long.mp4');
    const idx = await openIndex(media, { cacheDir: dir });
    assert.deepEqual(rows(idx), reference(await ffprobePackets(media)));
    assert.equal(idx.params?.directReadable, true);
  });

  it('Matroska: one laced block in the third batch makes the file demuxer-served; entries still equal ffprobe', async function () {
    const probes = await ffprobePackets(mkv);
    // A video block (track 1) well inside the third batch: read ahead while the second is checked.
    const block = probes.find((p, i) => i >= 2 * 8192 + 100 && p.stream === 0);
    const blockPos = block?.pos ?? null;
    if (blockPos === null) throw new Error(`${mkv}: no video packet with a position after packet ${2 * 8192 + 100}`);
    const bytes = await fsp.readFile(mkv);
    // A SimpleBlock's body: track number (1-byte EBML number for track 1), 2-byte timecode, flags, then the payload.
    assert.equal(bytes[blockPos], 0x81);
    assert.equal(bytes[blockPos + 3] & 0x06, 0);
    bytes[blockPos + 3] |= 0x02; // Xiph lacing, one frame: FFmpeg returns the payload after the lace count byte
    bytes[blockPos + 4] = 0;
    const media = `${dir}/laced.mkv`;
    await fsp.writeFile(media, bytes);
    const idx = await openIndex(media, { cacheDir: dir });
    assert.equal(idx.params?.directReadable, false);
    assert.deepEqual(rows(idx), reference(await ffprobePackets(media)));
  });
});
