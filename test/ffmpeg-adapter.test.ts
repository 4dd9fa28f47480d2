/**
 * The FFmpeg adapter returns exactly each packet's bytes (ffmpeg -c copy -f framemd5 is the reference), serialises
 * operations on one demuxer, and turns native failures into typed errors naming the file and the operation.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { framemd5Copy, groupByStream } from './support/ffmpeg-reference';
import { CORPUS_NAMES, ensureCorpus, ensureMedia, type CorpusName } from './support/media';
import { scratchDir } from './support/tmp';
import { REPO_ROOT } from './support/cli';
import { md5, rejectsWith } from './support/check';
import { openDemuxer, packetAt } from '../src/ffmpeg/demuxer';

describe('FFmpeg adapter', function () {
  let corpus: Record<CorpusName, string>;
  before(async function () {
    this.timeout(10 * 60_000);
    corpus = await ensureCorpus();
  });

  for (const name of CORPUS_NAMES) {
    it(`${name}: packet bytes equal ffmpeg -c copy -f framemd5, packet for packet`, async function () {
      const reference = await framemd5Copy(corpus[name]);
      const d = await openDemuxer(corpus[name]);
      const got: Array<{ stream: number; size: number; md5: string }> = [];
      try {
        for (;;) {
          const cols = await d.readColumns({ maxPackets: 64, withData: true });
          for (let i = 0; i < cols.count; i++) {
            const p = packetAt(cols, i);
            assert.equal(p.data.length, p.size);
            got.push({ stream: p.stream, size: p.size, md5: md5(p.data) });
          }
          if (cols.eof || cols.count === 0) break;
        }
      } finally {
        await d.close();
      }
      const key = (p: { size: number; md5: string }): string => `${p.size}:${p.md5}`;
      assert.equal(got.length, reference.length);
      assert.deepEqual(groupByStream(got, key), groupByStream(reference, key));
    });
  }

  it('readPacket (one native read per packet) gives the same bytes as the batch path on MKV and MPEG-TS', async function () {
    for (const name of ['mkv-vp9-opus', 'ts-h264-mp2'] as const) {
      const reference = await framemd5Copy(corpus[name]);
      const d = await openDemuxer(corpus[name]);
      const got: Array<{ stream: number; md5: string }> = [];
      for (let p = await d.readPacket(); p !== null; p = await d.readPacket()) got.push({ stream: p.stream, md5: md5(p.data) });
      await d.close();
      assert.deepEqual(groupByStream(got, (p) => p.md5), groupByStream(reference, (p) => p.md5), name);
    }
  });

  it('serialises overlapping calls on one demuxer: every packet exactly once, in file order', async function () {
    const file = corpus['mp4-h264-aac'];
    const reference = await framemd5Copy(file);
    const d = await openDemuxer(file);
    // Fire all reads at once: unserialised, overlapping read()/seek() on one beamcoder demuxer lost packets, gave parse
    // errors and once crashed inside av_read_frame.
    const results = await Promise.all(reference.map(() => d.readPacket()));
    await d.close();
    const got = results.map((p) => ({ stream: p?.stream ?? -1, md5: p ? md5(p.data) : '' }));
    assert.deepEqual(groupByStream(got, (p) => p.md5), groupByStream(reference, (p) => p.md5));
  });

  it('seeks to the keyframe at or before a timestamp in the stream time base', async function () {
    const d = await openDemuxer(corpus['mp4-h264-only']);
    const tb = d.info.streams[0].timeBase;
    await d.seek(0, Math.round((1.5 * tb.den) / tb.num));
    const p = await d.readPacket();
    await d.close();
    assert.ok(p);
    assert.equal(p.flags & 1, 1, 'a keyframe');
    // Keyframes every 25 frames at 25 fps: the one at or before 1.5 s is at 1.0 s.
    assert.equal(((p.pts ?? 0) * tb.num) / tb.den, 1);
  });

  it('reports stream parameters a decoder needs', async function () {
    const d = await openDemuxer(corpus['mp4-h264-aac']);
    await d.close();
    const [v, a] = d.info.streams;
    assert.equal(v.codecType, 'video');
    assert.equal(v.codecName, 'h264');
    assert.equal(v.width, 320);
    assert.ok(v.extradata.length > 0, 'avcC extradata');
    assert.deepEqual(v.frameRate, { num: 25, den: 1 });
    assert.equal(a.codecType, 'audio');
    assert.equal(a.sampleRate, 48000);
    assert.ok(a.extradata.length > 0, 'AudioSpecificConfig');
    assert.match(d.info.formatName, /mp4/);
  });

  it('close() is idempotent and later calls reject with CLOSED', async function () {
    const d = await openDemuxer(corpus.wav);
    await Promise.all([d.close(), d.close()]);
    await rejectsWith(d.readPacket(), 'CLOSED', /after close/);
  });

  describe('bad input gives a typed error naming the file', function () {
    let dir: string;
    before(async function () {
      dir = await scratchDir('adapter-bad');
    });

    it('missing file: NOT_FOUND', async function () {
      await rejectsWith(openDemuxer(path.join(dir, 'nope.mp4')), 'NOT_FOUND', /nope\.mp4: no such file/);
    });
    it('a directory: INVALID_ARGUMENT', async function () {
      await rejectsWith(openDemuxer(dir), 'INVALID_ARGUMENT', /is a directory/);
    });
    it('an empty file: NOT_MEDIA', async function () {
      const f = path.join(dir, 'empty.mp4');
      await fsp.writeFile(f, '');
      await rejectsWith(openDemuxer(f), 'NOT_MEDIA', /empty\.mp4: file is empty/);
    });
    it('a text file: NOT_MEDIA', async function () {
      const f = path.join(dir, 'cue-notes.txt');
      await fsp.writeFile(f, 'Act 1, scene 2: fade in the rain loop\n'.repeat(20));
      await rejectsWith(openDemuxer(f), 'NOT_MEDIA', /cue-notes\.txt: a text file, not media/);
      // Without the .txt name FFmpeg does not recognise it at all.
      const g = path.join(dir, 'cue-notes');
      await fsp.writeFile(g, 'Act 1, scene 2: fade in the rain loop\n'.repeat(20));
      await rejectsWith(openDemuxer(g), 'NOT_MEDIA', /cue-notes: not a media file/);
    });
    it('an MP4 cut before its moov: NOT_MEDIA with a hint', async function () {
      const src = await fsp.readFile(corpus['mp4-h264-aac']);
      const f = path.join(dir, 'cut.mp4');
      await fsp.writeFile(f, src.subarray(0, src.length >> 1));
      await rejectsWith(openDemuxer(f), 'NOT_MEDIA', /cut\.mp4: .*moov/);
    });
  });

  it('failed opens never crash the process (beamcoder status race, fixed by the install patch)', async function () {
    this.timeout(60_000);
    const dir = await scratchDir('adapter-crash');
    const src = await fsp.readFile(await ensureMedia('mp4-h264-aac'));
    const cut = path.join(dir, 'cut.mp4');
    await fsp.writeFile(cut, src.subarray(0, src.length >> 1));
    // Before the fix ~20% of processes died with SIGSEGV on their first failed open once the thread pool was warm.
    const script = `
      const { openDemuxer } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist/src/ffmpeg/demuxer.js'))});
      (async () => { let n = 0; for (let i = 0; i < 200; i++) { await openDemuxer(${JSON.stringify(cut)}).catch(() => n++); } process.stdout.write(String(n)); })();`;
    for (let run = 0; run < 5; run++) {
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      assert.equal(r.signal, null, `run ${run} died with ${String(r.signal)}`);
      assert.equal(r.stdout, '200');
    }
  });
});
