/**
 * The end of a growing fragmented MP4: once its writer has written the last fragment, the growing index holds every
 * packet of the file while it still counts as growing, not only once the file has been still for --growing-wait-ms
 * (the last packet of each stopped read used to be held back until then: a player was behind the writer by the whole
 * wait at the end of every file). The wait here is a minute, so only the old hold-back can fail it. The writer leaves
 * out the file's end mark (`-movflags skip_trailer`: no `mfra`), so nothing but that minute can complete the file: with
 * the mark, the file could count as complete before the test looked (a CI run saw it), and the assertion would say
 * nothing about the order.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { GrowingIndex } from '../src/index-store/growing-index';
import { ffprobePackets } from './support/ffmpeg-reference';
import { minuteClip } from './support/media';
import { scratchDir } from './support/tmp';
import { childrenKilledAfterEach, exitOf, waitFor } from './support/wait';

describe('growing fragmented MP4: the last packet', function () {
  const children = childrenKilledAfterEach();

  it('is indexed once written, before the file counts as complete', async function () {
    const dir = await scratchDir('growing-last');
    const file = path.join(dir, 'live.mp4');
    const writer = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-re', '-i', await minuteClip(), '-t', '3', '-map', '0', '-c', 'copy', '-flush_packets', '1',
      '-movflags', 'frag_keyframe+empty_moov+default_base_moof+skip_trailer', '-frag_duration', '200000', '-f', 'mp4', file], { stdio: 'ignore' });
    children.push(writer);
    await waitFor('the header and a first fragment', () => (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > 4096 || undefined);
    const g = await GrowingIndex.start(file, { waitMs: 60_000, cacheDir: path.join(dir, 'cache') });
    try {
      assert.equal((await exitOf(writer)).code, 0, 'writer');
      const total = (await ffprobePackets(file)).length;
      await waitFor(`all ${total} packets indexed (${g.index.packetCount} so far)`, () => g.index.packetCount === total || undefined, 30_000);
      assert.equal(g.state, 'growing', 'indexed whole while the file still counts as growing (still for less than a minute)');
    } finally {
      await g.close();
    }
  });
});
