/**
 * The server-wide stream memory budget (issue 12: sixteen stalled clients at the 8 MiB batch ceiling pinned 455 MB):
 * every ReadPackets/Follow call reserves three batches when it starts; stalled clients keep their reservation, a
 * call that does not fit is refused with RESOURCE_EXHAUSTED naming the budget, a call that fits is served while the
 * others stall, and the reservation comes back when a call ends. Real server, real gRPC, real files.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { longClip } from './support/media';
import { startServer, type TestServer } from './support/server';
import { copyInto } from './support/tmp';
import { MediaClientError, type MediaClient } from '../src/clients/media-client';
import { callReservation } from '../src/server/stream-memory';
import type { PacketBatch } from '../src/generated/cuemux/v1/media_server';

const MiB = 1 << 20;

describe('stream memory budget', function () {
  this.timeout(120_000);
  let srv: TestServer | null = null;

  afterEach(async function () {
    await srv?.stop();
    srv = null;
  });

  /** A ReadPackets call at 1 MiB batches that received its first batch and then stops reading (a stalled client). */
  async function stalled(client: MediaClient, mediaId: string, ctl: AbortController): Promise<AsyncGenerator<PacketBatch>> {
    const it = client.readPackets({ mediaId, maxBatchBytes: MiB }, { signal: ctl.signal });
    const first = await it.next();
    assert.ok(first.done !== true && first.value.packets.length > 0);
    return it;
  }

  it('stalled clients keep their reservation; a call past the budget is refused by name; a call that fits is served; an ended call gives it back', async function () {
    // Room for two calls at 1 MiB batches and one at the default 512 KiB, nothing more.
    const budget = 2 * callReservation(MiB) + callReservation(512 << 10);
    srv = await startServer({ maxStreamMemory: budget });
    await copyInto(await longClip(), srv.root, 'long.mp4');
    const a = srv.client();
    const info = await a.openMedia('long.mp4');
    const ctlA = new AbortController();
    const ctlB = new AbortController();
    const itA = await stalled(a, info.mediaId, ctlA);
    const b = srv.client();
    const infoB = await b.openMedia('long.mp4');
    await stalled(b, infoB.mediaId, ctlB);

    // A third 1 MiB call does not fit: refused at once, naming the budget and what to do.
    const c = srv.client();
    const infoC = await c.openMedia('long.mp4');
    await assert.rejects(async () => {
      for await (const batch of c.readPackets({ mediaId: infoC.mediaId, maxBatchBytes: MiB })) void batch;
    }, (e: unknown) => e instanceof MediaClientError && e.code === grpc.status.RESOURCE_EXHAUSTED
      && /stream memory budget/.test(e.details) && /--max-stream-memory/.test(e.details) && /long\.mp4/.test(e.details));

    // A default-batch call fits, and is served to its end while the two others stall.
    let packets = 0;
    for await (const batch of c.readPackets({ mediaId: infoC.mediaId, streams: [0], endSeconds: 20 })) packets += batch.packets.length;
    assert.ok(packets >= 20 * 25, `${packets} video packets for 20 s at 25 fps`);

    // One stalled client goes: its reservation comes back (when the server sees the cancel), and a 1 MiB call fits.
    ctlA.abort();
    await itA.return(undefined).catch(() => undefined);
    let served = false;
    for (let attempt = 0; attempt < 100 && !served; attempt++) {
      try {
        for await (const batch of c.readPackets({ mediaId: infoC.mediaId, maxBatchBytes: MiB, streams: [0], endSeconds: 2 })) void batch;
        served = true;
      } catch (e) {
        if (!(e instanceof MediaClientError && e.code === grpc.status.RESOURCE_EXHAUSTED)) throw e;
        await sleep(50);
      }
    }
    assert.ok(served, 'a 1 MiB call was accepted once a stalled call ended');
    ctlB.abort();
  });

  it('Follow reserves from the same budget', async function () {
    srv = await startServer({ maxStreamMemory: callReservation(MiB) + callReservation(512 << 10) });
    await copyInto(await longClip(), srv.root, 'long.mp4');
    const a = srv.client();
    const info = await a.openMedia('long.mp4');
    const ctlA = new AbortController();
    await stalled(a, info.mediaId, ctlA);
    const ctl = new AbortController();
    // A default-batch Follow fits (its first event is the clock)...
    const follow = srv.client().follow({ output: 'video' }, { signal: ctl.signal });
    const first = await follow.next();
    assert.equal(first.done !== true && first.value.event?.$case, 'clock');
    // ...a second one does not.
    await assert.rejects(async () => {
      for await (const e of srv!.client().follow({ output: 'video' })) void e;
    }, (e: unknown) => e instanceof MediaClientError && e.code === grpc.status.RESOURCE_EXHAUSTED && /Follow of output "video"/.test(e.details));
    ctl.abort();
    ctlA.abort();
  });
});
