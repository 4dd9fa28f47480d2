/**
 * The picture pool shared by a decode worker and the presenting thread: slots are reused, not allocated per
 * picture; a lent picture goes back exactly once, when its last holder lets go; and it crosses a real worker
 * thread boundary without a copy (the presenting side reads the worker's bytes in place).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { setLogSink } from '../src/common/logger';
import { copyPlanes, FrameSlotPool, sharedPicture } from '../src/players/frame-pool';
import { totalLength } from '../src/players/pipe-output';
import { SlotAllocator } from '../src/players/slot-allocator';

const frameMeta = { kind: 'video' as const, pts: 0, bestEffortPts: 0, duration: 1, width: 4, height: 2, format: 'gray', keyFrame: true, sampleAspectRatio: { num: 1, den: 1 } };

describe('frame pool', function () {
  it('lends the smallest free slot that fits, reuses returned slots, and replaces a free slot too small', function () {
    const pool = new FrameSlotPool();
    const a = pool.acquire(1000);
    const b = pool.acquire(3000);
    assert.notEqual(a.id, b.id);
    assert.ok(a.buffer.byteLength >= 1000 && b.buffer.byteLength >= 3000);
    pool.release(a.id);
    pool.release(b.id);
    // 900 bytes fit both free slots: the smaller is lent.
    const c = pool.acquire(900);
    assert.equal(c.id, a.id);
    assert.equal(c.buffer, a.buffer, 'the same memory, not a new allocation');
    // 5000 bytes fit no free slot: the free one too small is replaced, not kept beside a new one.
    const d = pool.acquire(5000);
    assert.equal(d.id, b.id);
    assert.ok(d.buffer.byteLength >= 5000);
    assert.deepEqual(pool.stats, { slots: 2, lent: 2, bytes: 1000 + 5000, allocations: 3, allocatedHere: 3, spares: 0 });
    pool.release(c.id);
    pool.release(c.id); // a second release of the same slot is ignored
    pool.release(99); // and so is an unknown one
    assert.equal(pool.stats.lent, 1);
  });

  it('keeps at most maxFree free slots after a burst', function () {
    const pool = new FrameSlotPool({ maxFree: 2 });
    const lent = Array.from({ length: 6 }, () => pool.acquire(100));
    for (const s of lent) pool.release(s.id);
    assert.deepEqual({ slots: pool.stats.slots, lent: pool.stats.lent }, { slots: 2, lent: 0 });
    // Freed ids are used again before new ones.
    const again = Array.from({ length: 6 }, () => pool.acquire(100));
    assert.deepEqual(again.map((s) => s.id).sort(), lent.map((s) => s.id).sort());
  });

  it('gives a shared picture back once, when the receiver and every retainer have let go', function () {
    const slot = new SharedArrayBuffer(8);
    let returned = 0;
    const planes = [Buffer.from([1, 2, 3, 4, 5, 6]), Buffer.from([7, 8])];
    const { picture, release } = sharedPicture(frameMeta, slot, copyPlanes(planes, slot), () => returned++);
    assert.deepEqual(picture.planes, planes);
    assert.equal(picture.planes[1].buffer, slot, 'planes are views of the slot');
    const keep1 = picture.retain?.();
    const keep2 = picture.retain?.();
    release();
    release(); // each release function counts once
    keep1?.();
    assert.equal(returned, 0, 'still held by one retainer');
    keep2?.();
    keep2?.();
    assert.equal(returned, 1);
    // A late retain is a holder's bug: logged, and harmless to the count (the slot is not given back twice).
    const logged: string[] = [];
    const previous = setLogSink((level, _name, message) => logged.push(`${level}: ${message}`));
    try {
      picture.retain?.()();
    } finally {
      setLogSink(previous);
    }
    assert.equal(returned, 1);
    assert.match(logged.join('\n'), /error: a picture was retained after its slot went back/);
  });

  it('carries a picture from a worker thread by reference: the presenting side sees the worker\'s bytes', async function () {
    // The worker fills a pool slot and posts it; this side builds the picture from the message as WorkerFollower does.
    const src = `
      const { parentPort } = require('node:worker_threads');
      const { FrameSlotPool, copyPlanes } = require(${JSON.stringify(require.resolve('../src/players/frame-pool'))});
      const { totalLength } = require(${JSON.stringify(require.resolve('../src/players/pipe-output'))});
      const pool = new FrameSlotPool();
      const planes = [Buffer.alloc(6, 0xab), Buffer.alloc(2, 0xcd)];
      const slot = pool.acquire(totalLength(planes));
      parentPort.postMessage({ slot: slot.id, buffer: slot.buffer, planes: copyPlanes(planes, slot.buffer) });
      parentPort.once('message', () => {
        // Rewritten after the post: the other side sees it because nothing was copied.
        new Uint8Array(slot.buffer)[0] = 0x11;
        parentPort.postMessage('rewritten');
      });`;
    const worker = new Worker(src, { eval: true });
    try {
      const m = await new Promise<{ slot: number; buffer: SharedArrayBuffer; planes: number[] }>((resolve) => worker.once('message', resolve));
      const { picture, release } = sharedPicture(frameMeta, m.buffer, m.planes, () => undefined);
      assert.equal(totalLength(picture.planes), 8);
      assert.deepEqual([...picture.planes[0]], [0xab, 0xab, 0xab, 0xab, 0xab, 0xab]);
      worker.postMessage('go');
      await new Promise((resolve) => worker.once('message', resolve));
      assert.equal(picture.planes[0][0], 0x11);
      release();
    } finally {
      await worker.terminate();
    }
  });

  it('makes new slots of spares when it has them, asks for spares as it grows, and keeps a slot let go as a spare', function () {
    const asked: Array<[number, number]> = [];
    const pool = new FrameSlotPool({ maxFree: 1, spares: 2, request: (bytes, count) => asked.push([bytes, count]) });
    // The first picture: no spare yet, so its slot is allocated here, and two spares of its size (rounded up to
    // 64 KiB) are asked for.
    const a = pool.acquire(100_000);
    assert.deepEqual(asked, [[131_072, 2]]);
    assert.equal(pool.stats.allocatedHere, 1);
    // Asked for already: growing again before they come asks for no more, and allocates here.
    const b = pool.acquire(100_000);
    assert.deepEqual(asked, [[131_072, 2]]);
    const spares = [new SharedArrayBuffer(131_072), new SharedArrayBuffer(131_072)];
    pool.supply(spares);
    assert.equal(pool.stats.spares, 2);
    // The next slots are the spares themselves; a third picture larger than them is allocated here.
    const c = pool.acquire(100_000);
    const d = pool.acquire(90_000);
    assert.ok(spares.includes(c.buffer) && spares.includes(d.buffer) && c.buffer !== d.buffer);
    const e = pool.acquire(200_000);
    assert.ok(!spares.includes(e.buffer));
    assert.deepEqual({ allocatedHere: pool.stats.allocatedHere, allocations: pool.stats.allocations, spares: pool.stats.spares }, { allocatedHere: 3, allocations: 5, spares: 0 });
    assert.deepEqual(asked.at(-1), [262_144, 2], 'spares of the new size');
    // Slots let go beyond maxFree become spares (their memory is mapped already), up to the target.
    for (const s of [a, b, c, d, e]) pool.release(s.id);
    assert.equal(pool.stats.slots, 1);
    assert.equal(pool.stats.spares, 2);
  });

  it('gets its spares from a thread of its own, their memory resident before the first picture is copied in', async function () {
    const rssKb = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
    const got: SharedArrayBuffer[][] = [];
    let arrived: () => void = () => undefined;
    const allocator = new SlotAllocator((buffers) => {
      got.push(buffers);
      arrived();
    });
    try {
      const before = rssKb();
      const count = 8;
      const bytes = 4 << 20;
      const supplied = new Promise<void>((resolve) => { arrived = resolve; });
      allocator.request(bytes, count);
      await supplied;
      assert.equal(got[0].length, count);
      assert.ok(got[0].every((b) => b instanceof SharedArrayBuffer && b.byteLength === bytes));
      // Allocated without being written, 32 MiB would not be resident until each page's first write (here).
      const grew = (rssKb() - before) * 1024;
      assert.ok(grew >= 0.9 * count * bytes, `resident memory grew ${grew} bytes with ${count * bytes} bytes of spares`);
      // And it is the same memory on both threads: what this thread writes is there.
      new Uint8Array(got[0][0])[5] = 7;
      assert.equal(new Uint8Array(got[0][0])[5], 7);
    } finally {
      await allocator.close();
    }
    allocator.request(100, 1); // closed: nothing happens, nothing throws
  });
});
