/**
 * Proves the generated corpus and the FFmpeg reference helpers are meaningful before other tests rely on them:
 * each file really has the codecs, B-frames and irregular timing its recipe promises, and the two independent
 * references (ffprobe's packet list, ffmpeg's stream-copy framemd5) agree packet for packet.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';

import { ffprobePackets, ffprobeStreams, framemd5Copy, framemd5Decode, type ProbePacket } from './support/ffmpeg-reference';
import { CORPUS, CORPUS_NAMES, cacheDir, ensureMedia, ensureCorpus, makeMedia, type CorpusName } from './support/media';

/** The packets of one stream, in file order. */
function ofStream<T extends { stream: number }>(packets: readonly T[], stream: number): T[] {
  return packets.filter((p) => p.stream === stream);
}

/** Differences between consecutive presentation timestamps of a stream, in presentation order. */
function ptsDeltas(packets: readonly ProbePacket[]): number[] {
  const pts = packets.map((p) => p.pts).filter((t): t is number => t !== null).sort((a, b) => a - b);
  return pts.slice(1).map((t, i) => t - pts[i]);
}

describe('test media corpus', function () {
  let paths: Record<CorpusName, string>;

  before(async function () {
    // A cold cache encodes every file; generous because CI machines may be slow and have two cores.
    this.timeout(10 * 60_000);
    paths = await ensureCorpus();
  });

  for (const name of CORPUS_NAMES) {
    describe(name, function () {
      it('has exactly the streams its recipe promises', async function () {
        const streams = await ffprobeStreams(paths[name]);
        assert.deepEqual(
          streams.map((s) => ({ type: s.codecType, codec: s.codecName })),
          CORPUS[name].streams.map((s) => ({ type: s.type, codec: s.codec })),
        );
      });

      it('starts every stream with a keyframe and has packets in every stream', async function () {
        const packets = await ffprobePackets(paths[name]);
        for (const s of CORPUS[name].streams.keys()) {
          const first = ofStream(packets, s)[0];
          assert.ok(first !== undefined, `stream ${s} has no packets`);
          assert.equal(first.key, true, `stream ${s} starts with a non-key packet`);
        }
      });

      it('framemd5Copy agrees with ffprobePackets packet for packet', async function () {
        const [probe, md5, streams] = await Promise.all([
          ffprobePackets(paths[name]), framemd5Copy(paths[name]), ffprobeStreams(paths[name]),
        ]);
        assert.equal(md5.length, probe.length, 'total packet count');
        // framemd5 writes in its own interleaving order, so compare stream by stream, which is still in order.
        for (const s of streams) {
          const p = ofStream(probe, s.index);
          const m = ofStream(md5, s.index);
          assert.deepEqual(m.map((x) => x.size), p.map((x) => x.size), `stream ${s.index} packet sizes`);
          // With -copyts the timestamps are the demuxer's, so they must match exactly when the time base does.
          const tb = m[0]?.timeBase;
          if (tb !== undefined && tb.num === s.timeBase.num && tb.den === s.timeBase.den) {
            assert.deepEqual(m.map((x) => x.pts), p.map((x) => x.pts), `stream ${s.index} pts`);
            assert.deepEqual(m.map((x) => x.dts), p.map((x) => x.dts), `stream ${s.index} dts`);
          }
        }
      });

      it('framemd5Decode yields every frame: video at the packets\' pts, audio one frame per non-discarded packet', async function () {
        const [probe, frames] = await Promise.all([ffprobePackets(paths[name]), framemd5Decode(paths[name])]);
        for (const [index, expected] of CORPUS[name].streams.entries()) {
          const packets = ofStream(probe, index);
          const decoded = ofStream(frames, index);
          if (expected.type === 'video') {
            // Decoded frames come out in presentation order, in the input time base (-enc_time_base -1).
            const pts = packets.map((p) => p.pts).sort((a, b) => (a ?? 0) - (b ?? 0));
            assert.deepEqual(decoded.map((f) => f.pts), pts, `stream ${index} frame pts`);
          } else {
            // Priming packets (AAC's first, flagged D) decode to nothing; every other packet to one frame.
            assert.equal(decoded.length, packets.filter((p) => !p.discard).length, `stream ${index} frame count`);
          }
        }
      });
    });
  }

  for (const name of ['mp4-h264-aac', 'ts-h264-mp2', 'mp4-h264-only'] as const) {
    it(`${name} really has B-frames (some video packet has pts != dts)`, async function () {
      const packets = ofStream(await ffprobePackets(paths[name]), 0);
      assert.ok(packets.some((p) => p.pts !== null && p.dts !== null && p.pts !== p.dts));
      const [video] = await ffprobeStreams(paths[name]);
      assert.ok(video !== undefined && (video.hasBFrames ?? 0) > 0, 'decoder reorder delay');
    });
  }

  it('mp4-vfr really has a variable frame rate (pts deltas and packet durations vary)', async function () {
    const video = ofStream(await ffprobePackets(paths['mp4-vfr']), 0);
    const deltas = new Set(ptsDeltas(video));
    assert.ok(deltas.size >= 2, `pts deltas: ${[...deltas].join(', ')}`);
    const durations = new Set(video.map((p) => p.duration));
    assert.ok(durations.size >= 2, `durations: ${[...durations].join(', ')}`);
  });

  it('audio-only files have no video stream', async function () {
    for (const name of ['wav', 'flac', 'mp3', 'm4a-aac'] as const) {
      const streams = await ffprobeStreams(paths[name]);
      assert.ok(streams.length > 0 && streams.every((s) => s.codecType === 'audio'), name);
    }
  });

  describe('cache', function () {
    it('returns the cached file without regenerating it, sharing one promise between concurrent callers', async function () {
      assert.equal(ensureMedia('wav'), ensureMedia('wav'));
      const before = await fs.stat(paths.wav);
      assert.equal(await ensureMedia('wav'), paths.wav);
      const after = await fs.stat(paths.wav);
      assert.equal(after.mtimeMs, before.mtimeMs);
      assert.equal(after.ino, before.ino);
    });

    it('leaves no temporary files behind', async function () {
      // Only this process's temp names: another test process may legitimately be generating right now.
      const ours = (await fs.readdir(cacheDir())).filter((f) => f.startsWith(`.tmp-${process.pid}-`));
      assert.deepEqual(ours, []);
    });

    it("reports ffmpeg's stderr on failure and caches nothing", async function () {
      await assert.rejects(
        makeMedia('broken.mp4', ['-f', 'lavfi', '-i', 'nosuchsource=duration=1']),
        (err: unknown) => err instanceof Error && /ffmpeg failed/.test(err.message) && /nosuchsource/i.test(err.message),
      );
      const left = (await fs.readdir(cacheDir())).filter((f) => f.startsWith('broken.') || f.includes('-broken.'));
      assert.deepEqual(left, []);
    });
  });
});
