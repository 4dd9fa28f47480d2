/**
 * HTTP /preview on a real server (in process, port 0): the fragmented MP4 parsed back with FFmpeg holds exactly the
 * source's packets (framemd5 of `-c copy`) from each stream's keyframe at or before `start` to `end`, for H.264 and
 * AAC; a codec MP4 cannot carry is refused with 415 naming the file; HEAD answers GET's status and headers, no body.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { httpGet } from '../scripts/bench/http-client';
import type { HttpServer } from '../src/http/http-server';
import { previewRoutes } from '../src/http/preview-routes';
import { ffprobePackets, ffprobeStreams, framemd5Copy, groupByStream } from './support/ffmpeg-reference';
import { ensureMedia, minuteClip } from './support/media';
import { startLoopbackHttp, startServer, type TestServer } from './support/server';
import { scratchDir } from './support/tmp';

describe('HTTP /preview', function () {
  let ts: TestServer;
  let http: HttpServer;

  before(async function () {
    ts = await startServer();
    await fsp.copyFile(await minuteClip(), path.join(ts.root, 'clip.mp4'));
    await fsp.copyFile(await ensureMedia('mov-prores-pcm'), path.join(ts.root, 'prores.mov'));
    http = await startLoopbackHttp(ts, [previewRoutes], 1500);
  });

  after(async function () {
    await http?.close(500);
    await ts?.stop();
  });

  it('remuxes H.264 + AAC without re-encoding: the packets from the keyframe at or before start to end, exactly', async function () {
    const [start, end] = [13.3, 21];
    const source = path.join(ts.root, 'clip.mp4');
    const r = await httpGet(http.address, `/preview/clip.mp4?start=${start}&end=${end}`);
    assert.equal(r.status, 200, r.body.toString().slice(0, 300));
    assert.equal(r.headers['content-type'], 'video/mp4');
    const out = path.join(await scratchDir('http-preview'), 'preview.mp4');
    await fsp.writeFile(out, r.body);
    // Fragmented as asked: an empty moov, then moof+mdat fragments.
    assert.equal(r.body.subarray(4, 8).toString(), 'ftyp');
    assert.ok(r.body.includes('moof') && r.body.includes('mvex'), 'fragmented MP4 (moov with mvex, moof fragments)');
    assert.deepEqual((await ffprobeStreams(out)).map((s) => s.codecName), (await ffprobeStreams(source)).map((s) => s.codecName));

    // Expected, from FFmpeg's view of the source: per stream (decoding order), from the keyframe with the largest
    // pts at or before start, every packet whose dts is before end.
    const streams = await ffprobeStreams(source);
    const probe = groupByStream(await ffprobePackets(source), (p) => p);
    const md5s = groupByStream(await framemd5Copy(source), (f) => f.md5);
    const expected = new Map<number, string[]>();
    for (const s of streams) {
      const tb = s.timeBase.num / s.timeBase.den;
      const packets = probe.get(s.index) ?? [];
      let first = 0;
      packets.forEach((p, i) => { if (p.key && p.pts !== null && p.pts * tb <= start + 1e-9 && p.pts >= (packets[first].pts ?? -Infinity)) first = i; });
      let last = first;
      while (last < packets.length && ((packets[last].dts ?? packets[last].pts ?? 0) * tb) < end - 1e-9) last++;
      expected.set(s.index, (md5s.get(s.index) ?? []).slice(first, last));
      assert.ok(last - first > 10, `stream ${s.index}: a real span of packets`);
    }
    const got = groupByStream(await framemd5Copy(out), (f) => f.md5);
    assert.deepEqual(got, expected, 'per-stream packet MD5s (ffmpeg -c copy -f framemd5) equal the source\'s');
    // The video starts on a keyframe at or before start: the first packet's md5 is a keyframe's of the source.
    const preStart = Number(r.headers['x-cuemux-preview-start']);
    assert.ok(preStart <= start && preStart > start - 3, `preview starts at media time ${preStart}, at or before ${start}`);
  });

  it('refuses a codec MP4 cannot carry with 415, naming the file', async function () {
    const r = await httpGet(http.address, '/preview/prores.mov?start=0');
    assert.equal(r.status, 415, r.body.toString());
    const body = JSON.parse(r.body.toString()) as { error: string; message: string };
    assert.equal(body.error, 'NOT_MEDIA');
    assert.match(body.message, /prores\.mov.*cannot be carried in fragmented MP4/);
  });

  it('HEAD answers what GET would (200 with its headers, 415, 400) and sends no body', async function () {
    const query = '?start=13.3&end=21';
    const [get, head] = [await httpGet(http.address, `/preview/clip.mp4${query}`), await httpGet(http.address, `/preview/clip.mp4${query}`, { method: 'HEAD' })];
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    for (const h of ['content-type', 'x-cuemux-preview-start', 'cache-control']) assert.equal(head.headers[h], get.headers[h], h);
    assert.equal((await httpGet(http.address, '/preview/prores.mov?start=0', { method: 'HEAD' })).status, 415);
    assert.equal((await httpGet(http.address, '/preview/clip.mp4?start=-1', { method: 'HEAD' })).status, 400);
  });
});
