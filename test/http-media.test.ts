/**
 * HTTP /media on a real server (in process, port 0): byte ranges against the file's own bytes (single, multiple,
 * If-Range, 416, HEAD), a growing file read with unknown-length ranges while ffmpeg writes it, hostile paths, and
 * the deny-by-default access rule for clients that are not on this machine.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { httpGet, multipartParts } from '../scripts/bench/http-client';
import { HttpServer, startHttp } from '../src/http/http-server';
import { mediaRoutes } from '../src/http/media-routes';
import { previewRoutes } from '../src/http/preview-routes';
import { loadConfig } from '../src/server/server-config';
import { minuteClip } from './support/media';
import { startLoopbackHttp, startServer, type TestServer } from './support/server';
import { scratchDir } from './support/tmp';
import { childrenKilledAfterEach, exitOf, waitFor } from './support/wait';

const WAIT_MS = 1500;

/** A GET of `rawPath` on `address` (`host:port`) with `headers`, its response handed to `onResponse`. */
function httpRequest(address: string, rawPath: string, headers: Record<string, string>, onResponse: (res: IncomingMessage) => void): ClientRequest {
  const at = address.lastIndexOf(':');
  const req = request({ host: address.slice(0, at), port: Number(address.slice(at + 1)), path: rawPath, headers, agent: false }, onResponse);
  req.end();
  return req;
}

describe('HTTP /media', function () {
  let ts: TestServer;
  let http: HttpServer;
  let file: string;
  let bytes: Buffer;
  const children = childrenKilledAfterEach();

  before(async function () {
    ts = await startServer({ growingWaitMs: WAIT_MS });
    file = path.join(ts.root, 'clip.mp4');
    await fsp.copyFile(await minuteClip(), file);
    bytes = readFileSync(file);
    http = await startLoopbackHttp(ts, [mediaRoutes, previewRoutes], WAIT_MS);
  });

  after(async function () {
    await http?.close(500);
    await ts?.stop();
  });

  it('serves the whole file, HEAD, one range, several ranges (multipart/byteranges), If-Range and 416', async function () {
    const whole = await httpGet(http.address, '/media/clip.mp4');
    assert.equal(whole.status, 200);
    assert.equal(whole.headers['content-type'], 'video/mp4');
    assert.ok(whole.body.equals(bytes), 'the whole file, byte for byte');
    const etag = whole.headers.etag as string;
    assert.match(etag, /^"[0-9a-f-]+"$/);

    const head = await httpGet(http.address, '/media/clip.mp4', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(bytes.length));
    assert.equal(head.body.length, 0);

    const one = await httpGet(http.address, '/media/clip.mp4', { headers: { range: 'bytes=1000-1999' } });
    assert.equal(one.status, 206);
    assert.equal(one.headers['content-range'], `bytes 1000-1999/${bytes.length}`);
    assert.ok(one.body.equals(bytes.subarray(1000, 2000)));
    const suffix = await httpGet(http.address, '/media/clip.mp4', { headers: { range: 'bytes=-500' } });
    assert.ok(suffix.body.equals(bytes.subarray(bytes.length - 500)));

    const many = await httpGet(http.address, '/media/clip.mp4', { headers: { range: 'bytes=0-99,5000-5099,-10' } });
    assert.equal(many.status, 206);
    assert.match(String(many.headers['content-type']), /^multipart\/byteranges; boundary=/);
    assert.equal(Number(many.headers['content-length']), many.body.length);
    const parts = multipartParts(many.body, String(many.headers['content-type']));
    assert.deepEqual(parts.map((p) => p.range), [`bytes 0-99/${bytes.length}`, `bytes 5000-5099/${bytes.length}`, `bytes ${bytes.length - 10}-${bytes.length - 1}/${bytes.length}`]);
    assert.ok(parts[1].data.equals(bytes.subarray(5000, 5100)) && parts[2].data.equals(bytes.subarray(bytes.length - 10)));

    const match = await httpGet(http.address, '/media/clip.mp4', { headers: { range: 'bytes=10-19', 'if-range': etag } });
    assert.equal(match.status, 206, 'If-Range with the current ETag: the range');
    const mismatch = await httpGet(http.address, '/media/clip.mp4', { headers: { range: 'bytes=10-19', 'if-range': '"another"' } });
    assert.equal(mismatch.status, 200, 'If-Range with another ETag: the whole file');
    assert.equal(mismatch.body.length, bytes.length);

    const past = await httpGet(http.address, '/media/clip.mp4', { headers: { range: `bytes=${bytes.length}-` } });
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], `bytes */${bytes.length}`);
    assert.match((JSON.parse(past.body.toString()) as { message: string }).message, /clip\.mp4/);
  });

  it('ranges sent in one piece at once, some of their clients gone mid-response: every body is the file\'s bytes', async function () {
    // Their buffers are pooled and reused once a response has closed: a buffer handed out again while its response
    // is in flight (e.g. a pool that took it back at once) shows as another range's bytes in a body. 64 KiB ranges
    // (the size a player asks for), 48 at a time, every fourth client dropping its connection at its first chunk.
    // On loopback a 64 KiB body is in the kernel once written, so a buffer taken back between the write and the
    // response's close is not caught here; the pool's rule (back only after the read, once closed) is argued in
    // media-routes.ts.
    const size = 64 << 10;
    let checked = 0;
    for (let round = 0; round < 4; round++) {
      await Promise.all(Array.from({ length: 48 }, async (_, i) => {
        const at = (round * 48 + i) * 7919 % (bytes.length - size);
        const range = { range: `bytes=${at}-${at + size - 1}` };
        if (i % 4 === 3) {
          await new Promise<void>((resolve) => {
            const req = httpRequest(http.address, '/media/clip.mp4', range, (res) => res.once('data', () => { req.destroy(); resolve(); }));
            req.once('error', () => resolve());
          });
          return;
        }
        const r = await httpGet(http.address, '/media/clip.mp4', { headers: range });
        assert.equal(r.status, 206);
        assert.ok(r.body.equals(bytes.subarray(at, at + size)), `bytes ${at}-${at + size - 1} are the file's`);
        checked++;
      }));
    }
    assert.equal(checked, 4 * 36);
  });

  it('a media kept open between requests is not served once its path no longer names it (removed: 404)', async function () {
    const name = path.join(ts.root, 'kept.mp4');
    await fsp.copyFile(file, name);
    const range = { headers: { range: 'bytes=1000-1999' } };
    for (let i = 0; i < 2; i++) assert.deepEqual((await httpGet(http.address, '/media/kept.mp4', range)).body, bytes.subarray(1000, 2000), `request ${i}`);
    await fsp.unlink(name);
    const gone = await httpGet(http.address, '/media/kept.mp4', range);
    assert.equal(gone.status, 404, gone.body.toString());
    assert.match(gone.body.toString(), /kept\.mp4/);
  });

  it('refuses hostile paths: "..", encoded slashes, a symbolic link out of the root, a missing file', async function () {
    const outside = await scratchDir('http-outside');
    await fsp.copyFile(file, path.join(outside, 'secret.mp4'));
    await fsp.symlink(path.join(outside, 'secret.mp4'), path.join(ts.root, 'link.mp4'));
    for (const [p, status] of [['/media/../clip.mp4', 400], ['/media/a/..%2Fclip.mp4', 400], ['/media/%2e%2e/clip.mp4', 400], ['/media/link.mp4', 403], ['/media/none.mp4', 404]] as const) {
      const r = await httpGet(http.address, p);
      assert.equal(r.status, status, `${p}: ${r.body.toString()}`);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    }
  });

  it('reads a file while ffmpeg writes it: unknown-length ranges (bytes A-B/*), then the complete length; bytes equal the file', async function () {
    // Fragmented MP4: written strictly by appending (Matroska's trailer rewrites its header, so earlier bytes change).
    const out = path.join(ts.root, 'growing.mp4');
    const writer = spawn('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-re', '-i', await minuteClip(), '-t', '4', '-map', '0', '-c', 'copy',
      '-flush_packets', '1', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000', '-f', 'mp4', out], { stdio: 'ignore' });
    children.push(writer);
    await waitFor('the writer to start the file', async () => ((await fsp.stat(out).catch(() => null))?.size ?? 0) > 4096);
    const got: Buffer[] = [];
    let at = 0;
    let unknownLength = 0;
    let complete: number | null = null;
    while (complete === null || at < complete) {
      const r = await httpGet(http.address, '/media/growing.mp4', { headers: { range: `bytes=${at}-${at + (64 << 10) - 1}` } });
      if (r.status === 416) {
        complete = Number(/\/(\d+)$/.exec(String(r.headers['content-range']))?.[1]);
        continue;
      }
      assert.equal(r.status, 206, r.body.toString());
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(r.headers['content-range']));
      assert.ok(m !== null, String(r.headers['content-range']));
      assert.equal(Number(m[1]), at);
      if (m[3] === '*') unknownLength++;
      else complete = Number(m[3]);
      got.push(r.body);
      at += r.body.length;
    }
    assert.equal((await exitOf(writer)).code, 0);
    assert.ok(unknownLength >= 2, `ranges answered while the file grew (bytes A-B/*): ${unknownLength}`);
    assert.ok(Buffer.concat(got).equals(readFileSync(out)), 'the bytes read equal the finished file');
  });

  it('refuses a client that is not on this machine unless it is allowed and sends the token', async function () {
    const config = (http: string, more: Record<string, unknown> = {}): unknown => loadConfig({ socket: 'none', listen: '127.0.0.1:0', http, ...more }, undefined, {});
    assert.throws(() => config('0.0.0.0:0'), /--http 0\.0\.0\.0:0 is not a loopback address.*--http-allow.*--token-file/);
    const ip = Object.values(os.networkInterfaces()).flat().find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
    if (ip === undefined) this.skip(); // no address other than loopback on this machine: nothing to be refused from
    const tokenFile = path.join(await scratchDir('http-token'), 'token');
    await fsp.writeFile(tokenFile, 'a-token-of-enough-length-0123456789\n', { mode: 0o600 });
    const open = await startHttp(ts.server, { http: `${ip}:0`, httpAllow: null, tokenFile, mediaRoots: [ts.root], growingWaitMs: WAIT_MS }, [mediaRoutes]);
    const allowed = await startHttp(ts.server, { http: `${ip}:0`, httpAllow: [`${ip}/32`], tokenFile, mediaRoots: [ts.root], growingWaitMs: WAIT_MS }, [mediaRoutes]);
    try {
      const from = { localAddress: ip, headers: { range: 'bytes=0-9' } };
      assert.equal((await httpGet(String(open?.address), '/media/clip.mp4', from)).status, 403, 'not on the allow-list');
      assert.equal((await httpGet(String(allowed?.address), '/media/clip.mp4', from)).status, 401, 'allowed, no token');
      assert.equal((await httpGet(String(allowed?.address), '/media/clip.mp4', { ...from, headers: { ...from.headers, authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
      const ok = await httpGet(String(allowed?.address), '/media/clip.mp4', { ...from, headers: { ...from.headers, authorization: 'Bearer a-token-of-enough-length-0123456789' } });
      assert.equal(ok.status, 206);
      assert.ok(ok.body.equals(bytes.subarray(0, 10)));
    } finally {
      await open?.close(100);
      await allowed?.close(100);
    }
  });
});
