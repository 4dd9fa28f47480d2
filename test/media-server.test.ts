/**
 * The media server against real clients over UDS and TCP: exact packet bytes (framemd5), keyframe starts, one open
 * and one read per file, cancellation, isolation of a slow client, and a status code for every bad request.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { ffprobePackets, framemd5Copy, groupByStream } from './support/ffmpeg-reference';
import { CORPUS_NAMES, ensureCorpus, ensureMedia, lacedBlockMkv, longClip, minuteClip, type CorpusName } from './support/media';
import { atRest, copyInto, scratchDir } from './support/tmp';
import { startServer, type TestServer } from './support/server';
import { md5 } from './support/check';
import { MediaClientError, type MediaClient } from '../src/clients/media-client';
import type { Packet } from '../src/generated/cuemux/v1/media_server';

async function collect(client: MediaClient, req: Parameters<MediaClient['readPackets']>[0]): Promise<Packet[]> {
  const out: Packet[] = [];
  for await (const b of client.readPackets(req)) out.push(...b.packets);
  return out;
}

async function expectCode(p: Promise<unknown>, code: grpc.status, mention: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MediaClientError, String(e));
    assert.equal(e.code, code, `${grpc.status[e.code]}: ${e.details}`);
    assert.match(e.details, mention);
    return true;
  });
}

describe('media server', function () {
  this.timeout(120_000);
  let srv: TestServer;
  let corpus: Record<CorpusName, string>;

  before(async function () {
    corpus = await ensureCorpus();
    srv = await startServer();
    for (const name of CORPUS_NAMES) await copyInto(corpus[name], srv.root, `${name}${path.extname(corpus[name])}`);
    await copyInto(await minuteClip(), srv.root, 'minute.mp4');
  });
  after(async function () {
    await srv.stop();
  });

  for (const name of CORPUS_NAMES) {
    it(`${name}: every packet's bytes equal ffmpeg -c copy -f framemd5 (over ${name.length % 2 ? 'TCP' : 'the Unix socket'})`, async function () {
      const c = srv.client(name.length % 2 === 1);
      const file = `${name}${path.extname(corpus[name])}`;
      const info = await c.openMedia(file);
      const packets = await collect(c, { mediaId: info.mediaId, startSeconds: -1e9 });
      const reference = await framemd5Copy(corpus[name]);
      assert.equal(packets.length, reference.length);
      assert.deepEqual(groupByStream(packets.map((p) => ({ stream: p.streamIndex, md5: md5(p.data) })), (x) => x.md5),
        groupByStream(reference, (r) => r.md5));
      const probe = await ffprobePackets(corpus[name]);
      assert.deepEqual(packets.map((p) => [p.streamIndex, p.pts === undefined ? null : Number(p.pts), p.pos === undefined ? null : Number(p.pos), p.key]),
        probe.map((p) => [p.stream, p.pts, p.pos, p.key]), 'file order and fields');
      await c.closeMedia(info.mediaId);
    });
  }

  it('random start times: each requested stream starts at its keyframe at or before the time', async function () {
    const c = srv.client();
    const info = await c.openMedia('minute.mp4');
    const probe = await ffprobePackets(path.join(srv.root, 'minute.mp4'));
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let k = 0; k < 12; k++) {
      const t = rand() * 58;
      const packets = await collect(c, { mediaId: info.mediaId, startSeconds: t, endSeconds: t + 0.5 });
      for (const st of info.streams) {
        const tb = st.timeBaseNum / st.timeBaseDen;
        const keys = probe.filter((p) => p.stream === st.index && p.key && p.pts !== null && p.pts * tb <= t);
        const want = Math.max(...keys.map((p) => p.pts as number));
        const first = packets.find((p) => p.streamIndex === st.index);
        assert.equal(Number(first?.pts), want, `stream ${st.index} at ${t}`);
      }
    }
    await c.closeMedia(info.mediaId);
  });

  for (const name of ['ts-h264-mp2', 'mkv-laced'] as const) {
    it(`${name} (served through a demuxer): random ranges give each stream from its keyframe, with FFmpeg's exact bytes`, async function () {
      const c = srv.client();
      // mkv-laced: Matroska with one block that breaks the layout direct reads need (see lacedBlockMkv).
      const source = name === 'mkv-laced' ? (await lacedBlockMkv(srv.root)).file : corpus[name];
      const info = await c.openMedia(`${name}${path.extname(source)}`);
      const probe = await ffprobePackets(source);
      const md5s = await framemd5Copy(source);
      // framemd5 lists each stream's packets in order: pair them with ffprobe's by stream and position in stream.
      const byKey = new Map<string, string>();
      for (const st of info.streams) {
        const mine = probe.filter((p) => p.stream === st.index);
        md5s.filter((m) => m.stream === st.index).forEach((m, i) => byKey.set(`${st.index}:${mine[i].pts}:${mine[i].dts}`, m.md5));
      }
      const keyOf = (p: Packet): string => `${p.streamIndex}:${p.pts === undefined ? null : Number(p.pts)}:${p.dts === undefined ? null : Number(p.dts)}`;
      // The whole file first (for mkv-laced this includes the laced block, which a direct read would get wrong).
      const all = await collect(c, { mediaId: info.mediaId, startSeconds: -1e9 });
      assert.equal(all.length, probe.length);
      for (const p of all) assert.equal(md5(p.data), byKey.get(keyOf(p)), `bytes of ${keyOf(p)}`);
      const times = probe.map((p) => (p.pts ?? 0) * info.streams[p.stream].timeBaseNum / info.streams[p.stream].timeBaseDen);
      const lo = Math.min(...times);
      const hi = Math.max(...times);
      // How many of the times each stream was checked against a keyframe at or before the time.
      const fromKeyframe = new Map<number, number>(info.streams.map((st) => [st.index, 0]));
      for (let k = 0; k < 8; k++) {
        const t = lo + ((k * 0.37) % 1) * (hi - lo);
        const packets = await collect(c, { mediaId: info.mediaId, startSeconds: t, endSeconds: t + 0.4 });
        assert.ok(packets.length > 0, `packets at ${t}`);
        for (const p of packets) assert.equal(md5(p.data), byKey.get(keyOf(p)), `bytes of ${keyOf(p)} at ${t}`);
        for (const st of info.streams) {
          const tb = st.timeBaseNum / st.timeBaseDen;
          const keys = probe.filter((p) => p.stream === st.index && p.key && p.pts !== null && p.pts * tb <= t);
          const first = packets.find((p) => p.streamIndex === st.index);
          if (keys.length > 0) {
            // Its keyframe at or before t is inside [t, t + 0.4) by its dts: the stream must start there.
            assert.ok(first !== undefined, `stream ${st.index} at ${t}: no packet, though a keyframe precedes ${t}`);
            assert.equal(Number(first.pts), Math.max(...keys.map((p) => p.pts as number)), `stream ${st.index} at ${t}`);
            fromKeyframe.set(st.index, (fromKeyframe.get(st.index) ?? 0) + 1);
          } else {
            // t precedes every keyframe of the stream: it starts at its first packet, or sends nothing when that
            // packet is due at or after the end of the range.
            const head = probe.find((p) => p.stream === st.index);
            assert.ok(head !== undefined);
            const due = (head.dts ?? head.pts ?? 0) * tb;
            if (first === undefined) assert.ok(due >= t + 0.4, `stream ${st.index} at ${t}: nothing sent, though its first packet is due at ${due}`);
            else assert.equal(keyOf(first), `${st.index}:${head.pts}:${head.dts}`, `stream ${st.index} at ${t}: its first packet`);
          }
        }
      }
      // The times spread over the file (k * 0.37 mod 1): all but the earliest two lie past each stream's first keyframe.
      for (const [stream, n] of fromKeyframe) assert.ok(n >= 6, `stream ${stream}: checked against a keyframe at only ${n} of 8 times`);
      await c.closeMedia(info.mediaId);
    });
  }

  it('batches never exceed max_batch_bytes, except a single larger packet sent alone', async function () {
    const c = srv.client();
    const info = await c.openMedia('minute.mp4');
    let batches = 0;
    for await (const b of c.readPackets({ mediaId: info.mediaId, startSeconds: -1e9, maxBatchBytes: 8192 })) {
      batches++;
      const bytes = b.packets.reduce((a, p) => a + p.data.length, 0);
      assert.ok(b.packets.length === 1 || bytes <= 8192, `batch of ${b.packets.length} packets, ${bytes} bytes`);
    }
    assert.ok(batches > 10);
    await c.closeMedia(info.mediaId);
  });

  it('an audio-only and a video-only client on one file at once: one open, one read of the file', async function () {
    const fresh = await copyInto(await minuteClip(), srv.root, 'pair.mp4');
    const size = (await fsp.stat(fresh)).size;
    const audio = srv.client();
    const video = srv.client(true);
    const [ia, iv] = await Promise.all([audio.openMedia('pair.mp4'), video.openMedia('pair.mp4')]);
    assert.equal(ia.mediaId, iv.mediaId);
    const [pa, pv] = await Promise.all([
      // From before the media's start: every packet, the AAC priming packet at -21 ms included.
      collect(audio, { mediaId: ia.mediaId, streams: [1], startSeconds: -1e9 }),
      collect(video, { mediaId: iv.mediaId, streams: [0], startSeconds: -1e9 }),
    ]);
    const probe = await ffprobePackets(fresh);
    assert.equal(pa.length, probe.filter((p) => p.stream === 1).length);
    assert.equal(pv.length, probe.filter((p) => p.stream === 0).length);
    assert.ok(pa.every((p) => p.streamIndex === 1) && pv.every((p) => p.streamIndex === 0));
    const st = await audio.getStatus();
    const m = st.media.filter((x) => x.path.endsWith('pair.mp4'));
    assert.equal(m.length, 1, 'opened once');
    assert.equal(m[0].openCount, 2);
    const read = Number(m[0].bytesReadFromFile);
    assert.ok(read <= 1.05 * size, `read ${read} bytes of a ${size}-byte file`);
    await audio.closeMedia(ia.mediaId);
    await video.closeMedia(iv.mediaId);
  });

  it('cancelling mid-stream frees the call; the media stays open for its other users', async function () {
    const c = srv.client();
    const info = await c.openMedia('minute.mp4');
    const controller = new AbortController();
    let batches = 0;
    await assert.rejects((async () => {
      for await (const b of c.readPackets({ mediaId: info.mediaId, maxBatchBytes: 4096 }, { signal: controller.signal })) {
        assert.ok(b.packets.length > 0);
        if (++batches === 3) controller.abort();
      }
    })(), (e: unknown) => e instanceof MediaClientError && e.code === grpc.status.CANCELLED);
    // Breaking out of the loop cancels too.
    for await (const b of c.readPackets({ mediaId: info.mediaId, maxBatchBytes: 4096 })) {
      if (b.packets.length > 0) break;
    }
    let clients = -1;
    for (let i = 0; i < 100 && clients !== 0; i++) {
      clients = (await c.getStatus()).clients.length;
      if (clients !== 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(clients, 0, 'no stream left on the server');
    assert.ok((await c.getStatus()).media.some((m) => m.mediaId === info.mediaId && m.openCount >= 1));
    await c.closeMedia(info.mediaId);
  });

  it('a client closed mid-stream cancels its calls; an already aborted signal rejects at once', async function () {
    const c = srv.client();
    const info = await c.openMedia('minute.mp4');
    const stream = c.readPackets({ mediaId: info.mediaId, startSeconds: -1e9, maxBatchBytes: 4096 });
    assert.equal((await stream.next()).done, false);
    c.close();
    await assert.rejects((async () => { for (let r = await stream.next(); !r.done; r = await stream.next()) { /* drain */ } })(),
      (e: unknown) => e instanceof MediaClientError && e.code === grpc.status.CANCELLED);
    const d = srv.client();
    const aborted = AbortSignal.abort();
    await expectCode(d.getStatus({ signal: aborted }), grpc.status.CANCELLED, /aborted/);
  });

  it('a slow client does not hold up another: the other finishes while the slow one is stalled, and its buffer is bounded', async function () {
    // Far larger than the client's 8 MB flow-control window, so the server must hold the slow stream back.
    await copyInto(await longClip(), srv.root, 'long.mp4');
    const slow = srv.client();
    const fast = srv.client();
    const info = await slow.openMedia('long.mp4');
    await fast.openMedia('long.mp4');
    const stalled = slow.readPackets({ mediaId: info.mediaId, maxBatchBytes: 65536, startSeconds: -1e9 });
    const first = await stalled.next();
    assert.equal(first.done, false);
    // The slow client now reads nothing; the fast one reads the whole file.
    const all = await collect(fast, { mediaId: info.mediaId, startSeconds: -1e9 });
    const probe = await ffprobePackets(path.join(srv.root, 'long.mp4'));
    assert.equal(all.length, probe.length);
    const st = await fast.getStatus();
    const slowRecord = st.clients.find((x) => x.mediaId === info.mediaId);
    assert.ok(slowRecord, 'the slow stream is still there');
    assert.ok(Number(slowRecord.bytesQueued) < 2 << 20, `server-side buffer of the stalled client: ${slowRecord.bytesQueued} bytes`);
    // And the slow client, resumed, still gets every packet exactly once.
    let n = first.value.packets.length;
    for (let r = await stalled.next(); !r.done; r = await stalled.next()) n += r.value.packets.length;
    assert.equal(n, probe.length);
  });

  it('GetIndex streams every entry of one stream or all', async function () {
    const c = srv.client();
    const info = await c.openMedia('mp4-h264-aac.mp4');
    const probe = await ffprobePackets(corpus['mp4-h264-aac']);
    const entries = [];
    for await (const b of c.getIndex(info.mediaId)) entries.push(...b.entries);
    assert.deepEqual(entries.map((e) => [e.streamIndex, Number(e.pts), Number(e.dts), e.size, e.key]),
      probe.map((p) => [p.stream, p.pts, p.dts, p.size, p.key]));
    const audio = [];
    for await (const b of c.getIndex(info.mediaId, 1)) audio.push(...b.entries);
    assert.equal(audio.length, probe.filter((p) => p.stream === 1).length);
  });

  it('serves grpc.health.v1 and server reflection for any client', async function () {
    const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
    const h = new Health(`unix://${srv.socket}`, grpc.credentials.createInsecure());
    const res = await new Promise<{ status: string }>((resolve, reject) => {
      (h as unknown as { check(r: object, cb: (e: Error | null, r: { status: string }) => void): void })
        .check({ service: 'cuemux.v1.MediaServer' }, (e, r) => (e ? reject(e) : resolve(r)));
    });
    h.close();
    assert.equal(res.status, 'SERVING');
    // Both versions grpcurl and grpc_cli ask (v1, then v1alpha); reflection is built on the first call to either.
    for (const version of ['v1', 'v1alpha'] as const) {
      const reflectionProto = require.resolve(`@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`);
      const def = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto)) as unknown as {
        grpc: { reflection: Record<typeof version, { ServerReflection: new (t: string, c: grpc.ChannelCredentials) => grpc.Client & { serverReflectionInfo(): grpc.ClientDuplexStream<object, { listServicesResponse?: { service: Array<{ name: string }> } }> } }> };
      };
      const r = new def.grpc.reflection[version].ServerReflection(srv.tcp, grpc.credentials.createInsecure());
      const names = await new Promise<string[]>((resolve, reject) => {
        const call = r.serverReflectionInfo();
        call.on('data', (m: { listServicesResponse?: { service: Array<{ name: string }> } }) => {
          resolve((m.listServicesResponse?.service ?? []).map((s) => s.name));
          call.end();
        });
        call.on('error', reject);
        call.write({ listServices: '' });
      });
      r.close();
      assert.ok(names.includes('cuemux.v1.MediaServer'), `${version}: ${names.join(', ')}`);
      assert.ok(names.includes('grpc.health.v1.Health'), version);
    }
  });

  describe('bad requests: a status code and a message naming the file', function () {
    let c: MediaClient;
    before(async function () {
      c = srv.client();
      await fsp.writeFile(path.join(srv.root, 'notes.txt'), 'Act 2: snow machine on\n'.repeat(30));
      await atRest(path.join(srv.root, 'notes.txt'));
      await fsp.mkdir(path.join(srv.root, 'sub'), { recursive: true });
      const outside = await scratchDir('outside');
      await copyInto(await ensureMedia('wav'), outside, 'secret.wav');
      await fsp.symlink(path.join(outside, 'secret.wav'), path.join(srv.root, 'escape.wav'));
    });

    it('outside the media roots: PERMISSION_DENIED (.., absolute, symlink)', async function () {
      await expectCode(c.openMedia('../../../etc/passwd'), grpc.status.PERMISSION_DENIED, /outside the served media roots/);
      await expectCode(c.openMedia('/etc/passwd'), grpc.status.PERMISSION_DENIED, /\/etc\/passwd: outside/);
      await expectCode(c.openMedia('escape.wav'), grpc.status.PERMISSION_DENIED, /escape\.wav: a symbolic link to .*secret\.wav, outside/);
    });
    it('missing file: NOT_FOUND; a folder: INVALID_ARGUMENT; not media: FAILED_PRECONDITION', async function () {
      await expectCode(c.openMedia('nope.mp4'), grpc.status.NOT_FOUND, /nope\.mp4: no such file/);
      await expectCode(c.openMedia('sub'), grpc.status.INVALID_ARGUMENT, /sub: is a directory/);
      await expectCode(c.openMedia('notes.txt'), grpc.status.FAILED_PRECONDITION, /notes\.txt: (a text file, not media|not a media file)/);
    });
    it('unknown media id: NOT_FOUND; no such stream: FAILED_PRECONDITION; end before start: INVALID_ARGUMENT', async function () {
      await expectCode(collect(c, { mediaId: 'feedface' }), grpc.status.NOT_FOUND, /no open media with id "feedface"/);
      const info = await c.openMedia('wav.wav');
      await expectCode(collect(c, { mediaId: info.mediaId, streams: [3] }), grpc.status.FAILED_PRECONDITION, /wav\.wav: no stream 3/);
      await expectCode(collect(c, { mediaId: info.mediaId, startSeconds: 2, endSeconds: 1 }), grpc.status.INVALID_ARGUMENT, /end_seconds/);
      await expectCode(c.closeMedia('feedface'), grpc.status.NOT_FOUND, /feedface/);
      await c.closeMedia(info.mediaId);
    });
    it('limits: batch bytes, clients and open media each give RESOURCE_EXHAUSTED', async function () {
      const tight = await startServer({ maxClients: 1, maxOpenMedia: 1, maxBatchBytes: 65536, mediaRoots: [srv.root] });
      try {
        const t = tight.client();
        const info = await t.openMedia('minute.mp4');
        await expectCode(collect(t, { mediaId: info.mediaId, maxBatchBytes: 1 << 20 }), grpc.status.RESOURCE_EXHAUSTED, /max_batch_bytes 1048576 is above this server's limit of 65536/);
        await expectCode(t.openMedia('wav.wav'), grpc.status.RESOURCE_EXHAUSTED, /wav\.wav: 1 media are already open/);
        const holding = t.readPackets({ mediaId: info.mediaId, maxBatchBytes: 4096 });
        await holding.next();
        await expectCode(collect(tight.client(), { mediaId: info.mediaId }), grpc.status.RESOURCE_EXHAUSTED, /1 streams are already running/);
        await holding.return(undefined);
      } finally {
        await tight.stop();
      }
    });
    it('a damaged file fails its own requests only; other clients are unaffected', async function () {
      const src = await fsp.readFile(corpus['mkv-vp9-opus']);
      await fsp.writeFile(path.join(srv.root, 'cut.mkv'), src.subarray(0, Math.floor(src.length * 0.6)));
      await atRest(path.join(srv.root, 'cut.mkv'));
      const other = srv.client();
      const good = await other.openMedia('minute.mp4');
      const reading = collect(other, { mediaId: good.mediaId, startSeconds: -1e9 });
      const info = await c.openMedia('cut.mkv');
      await expectCode(collect(c, { mediaId: info.mediaId }), grpc.status.DATA_LOSS, /cut\.mkv: damaged or truncated/);
      // A range that ends before the damage is whole: no error.
      assert.ok((await collect(c, { mediaId: info.mediaId, startSeconds: -1e9, endSeconds: 0.5 })).length > 0);
      assert.equal((await reading).length, (await ffprobePackets(path.join(srv.root, 'minute.mp4'))).length);
    });
  });
});
