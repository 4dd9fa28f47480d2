/**
 * What a serialised call leaves alive after it settled: nothing of its result. A native lane (every demuxer, decoder
 * and resampler) and a demuxing packet reader chain each call after the one before; holding the last call's result
 * in that chain kept it alive until the next call (bench:progressive's heap snapshots: a demuxer's last read of up
 * to 4 MiB, and a reader's last packets, while the reader waited for a growing file's next bytes). Checked with a
 * full collection and a WeakRef on the result.
 */
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { NativeLane } from '../src/ffmpeg/native-lane';
import { openIndex } from '../src/index-store/open-index';
import { DemuxReader } from '../src/media/packet-reader';
import { ensureMedia, makeMedia } from './support/media';
import { scratchDir } from './support/tmp';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Whether `ref`'s target is still alive after full collections (a WeakRef's target stays for the current job). */
async function survives(ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return ref.deref() !== undefined;
}

describe('results of serialised calls are not kept once settled', function () {
  it('a native lane keeps no call\'s result once it settled, before any next call', async function () {
    const lane = new NativeLane({ path: 'retention.mp4' }, 'INTERNAL');
    let ok: WeakRef<object> | null = null;
    await (async () => {
      const r = await lane.run('read', () => Promise.resolve({ data: Buffer.alloc(4 << 20) }));
      ok = new WeakRef(r);
    })();
    assert.equal(await survives(ok as unknown as WeakRef<object>), false, 'the last result is let go');
    await lane.close(() => undefined);
  });

  it('a demuxing packet reader keeps none of the packets it gave', async function () {
    const file = await ensureMedia('mp4-h264-aac');
    const dir = await scratchDir('retention-');
    const index = await openIndex(file, { cacheDir: dir });
    const reader = new DemuxReader(index, { add: () => undefined });
    try {
      const entries = [...index.entries(0, 8)];
      let first: WeakRef<object> | null = null;
      await (async () => {
        const got = await reader.read(entries);
        assert.equal(got.length, entries.length);
        first = new WeakRef(got[0]);
      })();
      assert.equal(await survives(first as unknown as WeakRef<object>), false, 'the packets of the last read are let go');
    } finally {
      await reader.close();
    }
  });

  it('a demuxing packet reader\'s packets hold about what the call asked for, not a read far ahead', async function () {
    // 3 s of MJPEG at its best quality in Matroska: ~2.5 MiB in 75 packets of ~35 KiB.
    const file = await makeMedia('retention-mjpeg.mkv', ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=3', '-c:v', 'mjpeg', '-q:v', '1']);
    const dir = await scratchDir('retention-');
    const index = await openIndex(file, { cacheDir: dir });
    const reader = new DemuxReader(index, { add: () => undefined });
    try {
      // Read 4 MiB or 256 packets ahead, these few packets kept the whole file's first 256 packets alive.
      const entries = [...index.entries(0, 16)].filter((e) => e.stream === 0).slice(0, 4);
      const got = await reader.read(entries);
      const asked = entries.reduce((a, e) => a + e.size, 0);
      const held = new Set(got.map((b) => b.buffer)).size === 1 ? got[0].buffer.byteLength : got.reduce((a, b) => a + b.buffer.byteLength, 0);
      const total = [...index.entries(0, index.packetCount)].reduce((a, e) => a + e.size, 0);
      assert.ok(total > 4 * (asked + (128 << 10)), `the clip (${total} bytes) is large enough to tell`);
      // What the call wants plus 64 KiB of slack, and one packet past it at most (a read stops after the packet that crosses it).
      const bound = Math.max(asked, 64 << 10) + (64 << 10) + Math.max(...[...index.entries(0, index.packetCount)].map((e) => e.size));
      assert.ok(held <= bound, `the ${got.length} packets (${asked} bytes) hold ${held} bytes of reads; at most ${bound}`);
    } finally {
      await reader.close();
    }
  });
});
