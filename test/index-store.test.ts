/**
 * Index store behaviours found in review: packets of streams that appear mid-file, two readers interleaved on one
 * index, concurrent opens with different options, and abandoned or foreign locks.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import { ensureMedia, lacedBlockMkv, makeMedia, minuteClip } from './support/media';
import { assertPayloadsAtPositions, ffprobePackets } from './support/ffmpeg-reference';
import { copyInto, scratchDir } from './support/tmp';
import { IndexEncoder } from '../src/index-store/idx-encoder';
import { parseIndex } from '../src/index-store/idx-format';
import { openIndex } from '../src/index-store/open-index';
import { acquireBuildLock } from '../src/index-store/build-lock';
import { fingerprint } from '../src/index-store/fingerprint';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { META_STRIDE, Meta } from '../src/ffmpeg/types';
import { isCuemuxError } from '../src/common/errors';

describe('index store', function () {
  it('leaves out packets of a stream that appeared after open (as ffprobe) instead of crashing', async function () {
    const file = await ensureMedia('wav');
    const d = await openDemuxer(file);
    const cols = await d.readColumns({ maxPackets: 10 });
    await d.close();
    // Re-label two packets as a stream FFmpeg would only have found while reading.
    cols.meta[3 * META_STRIDE + Meta.STREAM] = 1;
    cols.meta[7 * META_STRIDE + Meta.STREAM] = 1;
    const enc = new IndexEncoder(d.info.streams);
    enc.add(cols);
    assert.equal(enc.count, 8);
    assert.equal(enc.lateStreamPackets, 2);
    const bytes = enc.finish(await fingerprint(file), file, d.info.formatName, 0, null);
    const aligned = Buffer.allocUnsafeSlow(bytes.length);
    bytes.copy(aligned);
    assert.equal(parseIndex(aligned, 'x.idx').packetCount, 8);
  });

  it('stores FFmpeg\'s codec parameters and whether packets can be read straight from the file, and from where', async function () {
    const dir = await scratchDir('params');
    // Matroska's pos is the block start: the payload follows the track number, timecode and flags (4 bytes).
    const cases: Array<[string, string, boolean | null, number[]]> = [];
    for (const [name, direct, offsets] of [['mp4-h264-aac', true, [0, 0]], ['mov-prores-pcm', true, [0, 0]], ['wav', true, [0]],
      ['mkv-vp9-opus', true, [4, 4]], ['ts-h264-mp2', false, [0, 0]]] as const) {
      const file = await ensureMedia(name);
      cases.push([name, await copyInto(file, dir, `${name}${file.slice(file.lastIndexOf('.'))}`), direct, [...offsets]]);
    }
    // One block past the first packets breaks the layout: every packet is checked, so the file is not direct.
    cases.push(['mkv with one laced block', (await lacedBlockMkv(dir)).file, false, [0, 0]]);
    // MP3 in Matroska goes through FFmpeg's MP3 parser: every packet is compared, whatever the verdict (null), and a
    // direct verdict must hold for every packet (checked below).
    const mp3 = await makeMedia('mkv-h264-mp3.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=3', '-f', 'lavfi', '-i',
      'sine=frequency=440:sample_rate=44100:duration=3', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'libmp3lame']);
    cases.push(['mkv-h264-mp3', await copyInto(mp3, dir, 'mkv-h264-mp3.mkv'), null, [4, 4]]);
    for (const [name, media, direct, offsets] of cases) {
      const idx = await openIndex(media, { cacheDir: dir });
      const d = await openDemuxer(idx.mediaPath);
      await d.close();
      assert.ok(idx.params, name);
      assert.deepEqual(idx.params.container, d.info, name);
      if (direct !== null) assert.equal(idx.params.directReadable, direct, name);
      if (!idx.params.directReadable) continue;
      assert.deepEqual(idx.params.dataOffsets, offsets, name);
      // The claim itself: every packet's bytes are the file's bytes at pos + offset.
      await assertPayloadsAtPositions(media, await ffprobePackets(media), offsets, name);
    }
  });

  it('two readers walking one index at once each get their own entries', async function () {
    const media = await minuteClip();
    const dir = await scratchDir('interleave');
    const idx = await openIndex(await copyInto(media, dir, 'a.mp4'), { cacheDir: dir });
    const expected = [...idx.entries()];
    idx.clearCache();
    // a walks the first 200 entries; b walks the rest of the file meanwhile, far more blocks than the block cache
    // holds (32 blocks of 64 entries), so a's blocks are evicted under it. Both are checked entry for entry.
    const from = 200;
    const perStep = Math.floor((idx.packetCount - from) / 200);
    const a = idx.entries(0);
    const b = idx.entries(from);
    let j = from;
    for (let i = 0; i < 200; i++) {
      const ea = a.next();
      assert.equal(ea.done, false);
      assert.deepEqual(ea.value, expected[i], `reader a, entry ${i}`);
      for (let k = 0; k < perStep; k++, j++) {
        const eb = b.next();
        assert.equal(eb.done, false, `reader b ended at entry ${j} of ${idx.packetCount}`);
        assert.deepEqual(eb.value, expected[j], `reader b, entry ${j}`);
      }
    }
    assert.ok(j - from > 32 * 64, `reader b walked only ${j - from} entries`);
  });

  it('concurrent opens with different options do not share a result', async function () {
    const dir = await scratchDir('opts');
    const media = await copyInto(await ensureMedia('flac'), dir, 'a.flac');
    const [strict, building] = await Promise.allSettled([
      openIndex(media, { cacheDir: dir, build: false }),
      openIndex(media, { cacheDir: dir }),
    ]);
    assert.equal(strict.status, 'rejected');
    assert.ok(strict.status === 'rejected' && isCuemuxError(strict.reason, 'INDEX_MISSING'));
    assert.equal(building.status, 'fulfilled');
    // An aborted caller does not take another caller down with it.
    const controller = new AbortController();
    controller.abort();
    const [aborted, plain] = await Promise.allSettled([
      openIndex(media, { cacheDir: dir, force: true, signal: controller.signal }),
      openIndex(media, { cacheDir: dir }),
    ]);
    assert.equal(plain.status, 'fulfilled');
    assert.equal(plain.value.packetCount, (await ffprobePackets(media)).length, 'the plain caller\'s index is whole');
    assert.equal(aborted.status, 'rejected', 'the aborted caller gets no index');
    assert.ok(isCuemuxError(aborted.reason, 'CLOSED'), String(aborted.reason));
    assert.match(aborted.reason.message, /aborted/);
  });

  it('a lock file without an owner is taken over only once it is old; release never removes another owner\'s lock', async function () {
    const dir = await scratchDir('locks');
    const lockPath = `${dir}/x.idx.lock`;
    await fsp.writeFile(lockPath, '');
    await assert.rejects(acquireBuildLock(lockPath, { timeoutMs: 200 }), (e: unknown) => isCuemuxError(e, 'LOCK_TIMEOUT'));
    const old = new Date(Date.now() - 60_000);
    await fsp.utimes(lockPath, old, old);
    const lock = await acquireBuildLock(lockPath, { timeoutMs: 2_000 });
    // Someone else replaced it (e.g. took it over after we stalled): our release must leave theirs alone.
    const theirs = JSON.stringify({ pid: 1, host: os.hostname(), startTicks: 0, since: new Date().toISOString() });
    await fsp.writeFile(lockPath, theirs);
    await lock.release();
    assert.equal(await fsp.readFile(lockPath, 'utf8'), theirs);
  });
});
