/**
 * A growing index's published views (IndexEncoder.view, append-only tables): real FFmpeg packets of files with
 * B-frames (pts out of decoding order) and an open GOP, added in small batches as a growing file's reads add them;
 * every view taken along the way must, at the end, still answer exactly as the complete index built from the same
 * packets (entries, frame table, keyframe lookups), so no later append changed what an earlier view published.
 */
import assert from 'node:assert/strict';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { IndexEncoder, type IndexSource } from '../src/index-store/idx-encoder';
import { parseIndex } from '../src/index-store/idx-format';
import { MediaIndex } from '../src/index-store/media-index';
import { ensureMedia, openGopH264Mkv } from './support/media';

async function viewsAndFinal(file: string, batch: number): Promise<{ views: MediaIndex[]; final: MediaIndex }> {
  const demuxer = await openDemuxer(file);
  try {
    const enc = new IndexEncoder(demuxer.info.streams, { live: true });
    const source: IndexSource = {
      identity: { size: 0, mtimeNs: 0n, dev: 0, ino: 0, sampleBlockBytes: 0, sampleCount: 0, sampleHash: Buffer.alloc(32) },
      sourcePath: file, formatName: demuxer.info.formatName, lavfVersion: 0, params: null,
    };
    const views: MediaIndex[] = [];
    for (;;) {
      const cols = await demuxer.readColumns({ maxPackets: batch });
      enc.add(cols);
      views.push(new MediaIndex(enc.view(source), file, `${file} (view ${views.length})`, 'memory'));
      if (cols.eof || cols.count === 0) break;
    }
    const bytes = enc.finish(source.identity, file, source.formatName, 0, null, null);
    const buf = Buffer.alloc(bytes.length);
    bytes.copy(buf);
    return { views, final: new MediaIndex(parseIndex(buf, file), file, file, 'built') };
  } finally {
    await demuxer.close();
  }
}

function assertViewOf(view: MediaIndex, final: MediaIndex, what: string): void {
  assert.deepEqual([...view.entries()], [...final.entries(0, view.packetCount)], `${what}: entries`);
  for (const s of final.streams) {
    const v = view.stream(s.index);
    assert.ok(v.frameCount <= s.frameCount, `${what}: stream ${s.index} frames`);
    for (let n = 0; n < v.frameCount; n++) assert.equal(view.frameToPts(s.index, n), final.frameToPts(s.index, n), `${what}: stream ${s.index} frame ${n}`);
    // Every keyframe the view lists is found by both indexes at its own time (and just after it).
    for (let k = 0; k < v.seekCount; k++) {
      const entry = view.entry(v.seekEntries[k]);
      const t = entry.pts ?? entry.dts ?? 0;
      for (const at of [t, t + 1]) assert.deepEqual(view.keyframeAtOrBefore(s.index, at), final.keyframeAtOrBefore(s.index, at), `${what}: stream ${s.index} keyframe at ${at}`);
    }
  }
}

describe('growing index views (append-only)', function () {
  for (const [name, media] of [['MP4 H.264 with 3 B-frames + AAC', () => ensureMedia('mp4-h264-aac')], ['Matroska H.264 open GOP', openGopH264Mkv]] as const) {
    it(`${name}: every view, checked after the last packet, is the complete index's first packets`, async function () {
      // 7 packets a batch: views end inside blocks (64 entries), on B-frames, and across buffer growths.
      const { views, final } = await viewsAndFinal(await media(), 7);
      assert.ok(views.length > 20, `${views.length} views`);
      const last = views[views.length - 1];
      assert.equal(last.packetCount, final.packetCount);
      for (const s of final.streams) assert.ok(last.stream(s.index).frameCount >= s.frameCount - 8, `stream ${s.index}: the last view has all but the unsettled frames`);
      views.forEach((v, i) => assertViewOf(v, final, `view ${i} (${v.packetCount} packets)`));
    });
  }
});
