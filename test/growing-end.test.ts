/**
 * The end of a growing file is its writer's end mark, not a pause: a fragmented MP4 (its trailing `mfra`) or a
 * Matroska file (its Segment's size rewritten) whose writer finished well formed is complete long before
 * --growing-wait-ms of stillness (a minute here, so only the old "still for waitMs" end can fail it), and a writer
 * that pauses mid-file for several times --growing-wait-ms (a render stuck on a frame, a stalled copy) has not ended
 * it: the file stays growing and is complete, every packet of it, once the writer finishes.
 */
import assert from 'node:assert/strict';
import { promises as fsp, statSync } from 'node:fs';
import * as path from 'node:path';
import { GrowingIndex } from '../src/index-store/growing-index';
import { ffprobePackets } from './support/ffmpeg-reference';
import { chunkWriter, ffmpegPipeWriter } from './support/growing-writers';
import { makeMedia, minuteClip } from './support/media';
import { scratchDir } from './support/tmp';
import { childrenKilledAfterEach, exitOf, sleep, waitFor } from './support/wait';

/** The two containers with an end mark, as ffmpeg writes them growing. */
const CONTAINERS = [
  { name: 'fragmented MP4', ext: '.mp4', args: ['-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000', '-f', 'mp4'] },
  { name: 'Matroska', ext: '.mkv', args: ['-cluster_time_limit', '100', '-f', 'matroska'] },
];

/** Wait for the growing index's end, at most `ms`: its final index, or a failure naming what it waited for. */
async function doneWithin(g: GrowingIndex, ms: number, what: string): Promise<Awaited<GrowingIndex['done']>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([g.done, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: still ${g.state} after ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

describe('growing media: the end is the writer\'s end mark', function () {
  this.timeout(60_000);
  const children = childrenKilledAfterEach();
  let mkvBytes: Buffer;

  before(async function () {
    mkvBytes = await fsp.readFile(await makeMedia('av-6s-160x120.mkv', ['-i', await minuteClip(), '-t', '6', '-c', 'copy']));
  });

  for (const c of CONTAINERS) {
    it(`${c.name} whose writer finished well formed is complete at once, not after --growing-wait-ms (a minute)`, async function () {
      const dir = await scratchDir('growing-end');
      const file = path.join(dir, `live${c.ext}`);
      const writer = ffmpegPipeWriter(mkvBytes, 6, file, c.args);
      children.push(writer.process);
      await waitFor('the header and a first packet', () => (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > 8192 || undefined);
      const g = await GrowingIndex.start(file, { waitMs: 60_000, cacheDir: path.join(dir, 'cache') });
      try {
        writer.release();
        assert.equal((await exitOf(writer.process)).code, 0, 'writer');
        // A deadline far below the minute of stillness the old end needed.
        const final = await doneWithin(g, 20_000, 'the finished file');
        assert.equal(g.state, 'complete');
        assert.equal(final.packetCount, (await ffprobePackets(file)).length, 'every packet of the final file');
      } finally {
        await g.close();
      }
    });

    it(`${c.name} whose writer pauses mid-file for 5 x --growing-wait-ms is still growing, then complete once finished`, async function () {
      const dir = await scratchDir('growing-pause');
      const finished = path.join(dir, `finished${c.ext}`);
      const writer0 = ffmpegPipeWriter(mkvBytes, 6, finished, c.args);
      writer0.release();
      assert.equal((await exitOf(writer0.process)).code, 0, 'writing the finished file');
      const size = statSync(finished).size;
      const file = path.join(dir, `copied${c.ext}`);
      // A copy held at half its size: the pause, for as long as the test says.
      const half = Math.floor(size / 2);
      const copier = chunkWriter(finished, file, 16 << 10, 5, undefined, half);
      children.push(copier.process);
      await waitFor('the header', () => (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > 8192 || undefined);
      const waitMs = 300;
      const g = await GrowingIndex.start(file, { waitMs, cacheDir: path.join(dir, 'cache') });
      try {
        await waitFor('the copy held at half the file', () => statSync(file).size >= half || undefined);
        await sleep(5 * waitMs);
        assert.equal(statSync(file).size < size, true, 'the copy is paused mid-file');
        assert.equal(g.state, 'growing', `a pause of 5 x ${waitMs} ms mid-file is not the end (${g.error?.message ?? ''})`);
        copier.release();
        const final = await doneWithin(g, 20_000, 'the copy, once finished');
        assert.equal(statSync(file).size, size);
        assert.equal(final.packetCount, (await ffprobePackets(file)).length, 'every packet of the final file');
      } finally {
        await g.close();
      }
    });
  }
});
