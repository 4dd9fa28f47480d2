/**
 * DirectReader on its own: `readInto` scatters each run of back-to-back packets into its slots with one readv,
 * survives short reads, agrees with `read`, and reports a file cut short.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { scratchDir } from './support/tmp';
import { DirectReader } from '../src/media/packet-reader';
import type { IndexEntry } from '../src/index-store/media-index';

const FILE = Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 7 + 3) & 0xff));

/** A FileHandle over FILE whose reads return at most `chunk` bytes at a time; counts readv calls. */
function fakeFile(chunk: number): { file: FileHandle; readvCalls: () => number } {
  let calls = 0;
  const file = {
    readv(buffers: Buffer[], position: number): Promise<{ bytesRead: number; buffers: Buffer[] }> {
      calls++;
      let at = position;
      let n = 0;
      for (const b of buffers) {
        const take = Math.max(0, Math.min(b.length, chunk - n, FILE.length - at));
        FILE.copy(b, 0, at, at + take);
        at += take;
        n += take;
        if (take < b.length) break;
      }
      return Promise.resolve({ bytesRead: n, buffers });
    },
    read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number; buffer: Buffer }> {
      const take = Math.max(0, Math.min(length, chunk, FILE.length - position));
      FILE.copy(buf, offset, position, position + take);
      return Promise.resolve({ bytesRead: take, buffer: buf });
    },
  };
  return { file: file as unknown as FileHandle, readvCalls: () => calls };
}

function entry(index: number, pos: number, size: number, stream = 0): IndexEntry {
  return { index, stream, pts: index, dts: index, duration: 1, pos, size, key: false, corrupt: false, discard: false };
}

describe('DirectReader', function () {
  // Two runs of back-to-back packets (one with an empty packet inside), a gap, then a lone packet.
  const entries = [entry(0, 100, 300), entry(1, 400, 0), entry(2, 400, 250), entry(3, 650, 1), entry(4, 2000, 1500)];

  it('readInto puts each packet at its slot, one readv per run, through short reads; same bytes as read()', async function () {
    for (const chunk of [1 << 20, 97, 1]) {
      const { file, readvCalls } = fakeFile(chunk);
      let counted = 0;
      const reader = new DirectReader(file, '/media/x.mp4', { add: (n) => { counted += n; } }, [0]);
      const target = Buffer.alloc(5000, 0xee);
      const at = [10, 400, 400, 700, 3000];
      await reader.readInto(entries, target, at);
      entries.forEach((e, i) => assert.deepEqual(target.subarray(at[i], at[i] + e.size), FILE.subarray(e.pos as number, (e.pos as number) + e.size), `packet ${i}`));
      assert.equal(target[399], 0xee, 'nothing written between slots');
      if (chunk === 1 << 20) assert.equal(readvCalls(), 2, 'one readv per run');
      assert.equal(counted, 300 + 250 + 1 + 1500);
      const viaRead = await new DirectReader(fakeFile(chunk).file, '/media/x.mp4', { add: () => undefined }, [0]).read(entries);
      entries.forEach((e, i) => assert.deepEqual(viaRead[i], target.subarray(at[i], at[i] + e.size)));
    }
  });

  it('Matroska layout: payloads at pos + the stream\'s offset, block headers between them read through, not split', async function () {
    // Blocks of two streams back to back: each pos is a block start, its payload 4 (stream 0) or 5 (stream 1) bytes
    // later, and the next block follows the payload after an element header of 4 bytes.
    const layout: IndexEntry[] = [];
    const payloadAt = (e: IndexEntry): number => (e.pos as number) + (e.stream === 0 ? 4 : 5);
    let pos = 50;
    for (let i = 0; i < 12; i++) {
      const stream = i % 3 === 2 ? 1 : 0;
      const size = 40 + i * 13;
      layout.push(entry(i, pos, size, stream));
      pos += (stream === 0 ? 4 : 5) + size + 4;
    }
    for (const chunk of [1 << 20, 33, 1]) {
      const { file, readvCalls } = fakeFile(chunk);
      let counted = 0;
      const reader = new DirectReader(file, '/media/x.mkv', { add: (n) => { counted += n; } }, [4, 5]);
      const at: number[] = [];
      let slot = 0;
      for (const e of layout) {
        at.push(slot);
        slot += e.size + 3;
      }
      const target = Buffer.alloc(slot, 0xee);
      await reader.readInto(layout, target, at);
      layout.forEach((e, i) => {
        const from = payloadAt(e);
        assert.deepEqual(target.subarray(at[i], at[i] + e.size), FILE.subarray(from, from + e.size), `packet ${i}`);
        assert.equal(target[at[i] + e.size], 0xee, `nothing written after packet ${i}`);
      });
      if (chunk === 1 << 20) assert.equal(readvCalls(), 1, 'the gaps are read through: one readv for the whole run');
      const last = layout[layout.length - 1];
      assert.equal(counted, payloadAt(last) + last.size - payloadAt(layout[0]), 'bytes read: the run, gaps included');
      const viaRead = await new DirectReader(fakeFile(chunk).file, '/media/x.mkv', { add: () => undefined }, [4, 5]).read(layout);
      layout.forEach((e, i) => assert.deepEqual(viaRead[i], target.subarray(at[i], at[i] + e.size)));
    }
    // A stream read alone (the other's blocks between) is one read per packet: its gaps are other streams' bytes.
    const { file, readvCalls } = fakeFile(1 << 20);
    const alone = layout.filter((e) => e.stream === 1);
    await new DirectReader(file, '/media/x.mkv', { add: () => undefined }, [4, 5]).readInto(alone, Buffer.alloc(4000), alone.map((_, i) => i * 300));
    assert.equal(readvCalls(), alone.length);
  });

  it('readIntoSync (a call\'s first batch, on the event loop) gives the same bytes from a real file, and the same error when it is cut short', async function () {
    const dir = await scratchDir('reader-sync');
    const file = path.join(dir, 'x.mkv');
    await fsp.writeFile(file, FILE);
    const fh = await fsp.open(file, 'r');
    try {
      let counted = 0;
      const reader = new DirectReader(fh, file, { add: (n) => { counted += n; } }, [4, 5]);
      const layout = [entry(0, 10, 100, 0), entry(1, 118, 50, 1), entry(2, 178, 300, 0), entry(3, 3000, 900, 1)];
      const at = [0, 200, 300, 700];
      const viaSync = Buffer.alloc(1700, 0xee);
      const viaPool = Buffer.alloc(1700, 0xee);
      reader.readIntoSync(layout, viaSync, at);
      await reader.readInto(layout, viaPool, at);
      assert.deepEqual(viaSync, viaPool);
      layout.forEach((e, i) => {
        const from = (e.pos as number) + (e.stream === 0 ? 4 : 5);
        assert.deepEqual(viaSync.subarray(at[i], at[i] + e.size), FILE.subarray(from, from + e.size), `packet ${i}`);
      });
      // Two runs each way: packets 0-2 with the 9-byte block headers between them (bytes 14-482), packet 3 alone.
      assert.equal(counted, 2 * ((482 - 14) + 900), 'bytes read counted the same both ways');
      assert.throws(() => reader.readIntoSync([entry(9, 3900, 200, 0)], Buffer.alloc(200), [0]), (e: unknown) => {
        assert.equal((e as { code?: string }).code, 'MEDIA_DAMAGED');
        assert.match((e as Error).message, /x\.mkv: file ends at byte 4000, packet 9 needs 4104/);
        return true;
      });
    } finally {
      await fh.close();
    }
  });

  it('a file shorter than the index says: MEDIA_DAMAGED naming the byte', async function () {
    const reader = new DirectReader(fakeFile(1 << 20).file, '/media/x.mp4', { add: () => undefined }, [0]);
    await assert.rejects(reader.readInto([entry(7, 3900, 200)], Buffer.alloc(200), [0]), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'MEDIA_DAMAGED');
      assert.match((e as Error).message, /x\.mp4: file ends at byte 4000, packet 7 needs 4100/);
      return true;
    });
  });
});
