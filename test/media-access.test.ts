/**
 * Who may reach which media, against a real server, real files and real client processes:
 *  - media-root escape: a folder inside the root swapped for a symbolic link to a folder outside it, by another
 *    process, again and again while OpenMedia and ReadPackets run: not one byte of the outside file is ever served;
 *    a link leading out is PERMISSION_DENIED, naming the path asked for.
 *  - per-client ownership: CloseMedia from another connection is refused (NOT_FOUND) and leaves the media open for its
 *    owner; a client killed after OpenMedia leaves nothing open past the idle close; WatchClock and Follow have their
 *    own limit (max-watchers), do not take max-clients' slots, and are listed by GetStatus.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MediaClientError } from '../src/clients/media-client';
import { ensureMedia } from './support/media';
import { startServer, type TestServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';

/** Bytes that fill the outside file's samples: seeing them in a packet means the outside file was served. */
const MARKER = Buffer.from('CUEMUX-OUTSIDE-SECRET-MARKER!');

async function expectCode(p: Promise<unknown>, code: grpc.status, mention: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof MediaClientError, String(e));
    assert.equal(e.code, code, `${grpc.status[e.code]}: ${e.details}`);
    assert.match(e.details, mention);
    return true;
  });
}

/** A copy of the WAV `src` whose sample bytes are all MARKER, repeated (same header, same size). */
async function markedCopy(src: string, to: string): Promise<void> {
  const b = await fsp.readFile(src);
  const data = b.indexOf('data', 12, 'latin1');
  assert.ok(data > 0, 'a WAV data chunk');
  for (let at = data + 8; at < b.length; at += MARKER.length) MARKER.copy(b, at, 0, Math.min(MARKER.length, b.length - at));
  await fsp.writeFile(to, b);
}

/** Poll `check` until it returns true (generous deadline: this waits for an event, it does not time anything). */
async function until(what: string, check: () => Promise<boolean>, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`still waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A child process running `code` (CommonJS); resolves with it and its first stdout line. */
function child(code: string, env: Record<string, string>): Promise<{ proc: ChildProcess; line: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['-e', code], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ proc, line: out.slice(0, nl) });
    });
    proc.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    proc.on('exit', (c) => reject(new Error(`child exited with ${String(c)} before it was ready: ${err}`)));
  });
}

/** The compiled client, for child processes (this file runs from dist/test). */
const CLIENT_JS = path.resolve(__dirname, '..', 'src', 'clients', 'media-client.js');

describe('media access: the media root and per-client ownership', function () {
  this.timeout(180_000);

  describe('media-root escape', function () {
    let srv: TestServer;
    let outside: string;
    before(async function () {
      const wav = await ensureMedia('wav');
      outside = await scratchDir('outside');
      srv = await startServer({ idleCloseMs: 0 }); // every OpenMedia after a CloseMedia opens the file anew
      await fsp.mkdir(path.join(srv.root, 'd'));
      await copyInto(wav, path.join(srv.root, 'd'), 'clip.wav');
      await fsp.mkdir(path.join(outside, 'd'));
      await markedCopy(wav, path.join(outside, 'd', 'clip.wav'));
      await copyInto(wav, outside, 'secret.wav');
      await fsp.symlink(path.join(outside, 'd'), path.join(srv.root, 'd_link'));
      await fsp.symlink(path.join(outside, 'secret.wav'), path.join(srv.root, 'evil.wav'));
      await fsp.symlink(path.join(srv.root, 'd', 'clip.wav'), path.join(srv.root, 'inner.wav'));
    });
    after(async function () {
      await srv.stop();
    });

    it('a symbolic link leading out of the root (a file or a folder on the way) is PERMISSION_DENIED naming the path; one inside is served', async function () {
      const c = srv.client();
      await expectCode(c.openMedia('evil.wav'), grpc.status.PERMISSION_DENIED, /^evil\.wav: a symbolic link to .*secret\.wav, outside the served media roots/);
      await expectCode(c.openMedia('d_link/clip.wav'), grpc.status.PERMISSION_DENIED, /^d_link\/clip\.wav: a symbolic link to .*clip\.wav, outside the served media roots/);
      const info = await c.openMedia('inner.wav');
      assert.equal(info.path, path.join(await fsp.realpath(srv.root), 'd', 'clip.wav'));
      await c.closeMedia(info.mediaId);
    });

    it('a file served through a demuxer is read from the file opened, not by path: a folder swapped after OpenMedia changes nothing', async function () {
      const c = srv.client();
      await fsp.mkdir(path.join(srv.root, 't'));
      await copyInto(await ensureMedia('ts-h264-mp2'), path.join(srv.root, 't'), 'clip.ts');
      await fsp.mkdir(path.join(outside, 't'));
      await copyInto(await ensureMedia('mkv-vp9-opus'), path.join(outside, 't'), 'clip.ts'); // another file under the same name
      const info = await c.openMedia('t/clip.ts');
      const read = async (startSeconds?: number): Promise<Buffer> => {
        const data: Buffer[] = [];
        for await (const b of c.readPackets({ mediaId: info.mediaId, startSeconds })) for (const p of b.packets) data.push(Buffer.from(p.data));
        return Buffer.concat(data);
      };
      const whole = await read();
      const late = await read(1.5);
      assert.ok(whole.length > 0 && late.length > 0 && late.length < whole.length);
      await fsp.rename(path.join(srv.root, 't'), path.join(srv.root, 't_real'));
      await fsp.symlink(path.join(outside, 't'), path.join(srv.root, 't'));
      try {
        // Every ReadPackets opens a new demuxer (at the start, and by seeking): both must still read the file opened.
        assert.ok((await read()).equals(whole), 'the whole file, read again after the swap, is the same bytes');
        assert.ok((await read(1.5)).equals(late), 'a read from 1.5 s after the swap is the same bytes');
      } finally {
        await fsp.unlink(path.join(srv.root, 't'));
        await fsp.rename(path.join(srv.root, 't_real'), path.join(srv.root, 't'));
        await c.closeMedia(info.mediaId);
      }
    });

    it('a file renamed over an open one is another media: a new OpenMedia reads the new file, the old reference still the old one', async function () {
      const wav = await ensureMedia('wav');
      const c1 = srv.client();
      const c2 = srv.client();
      await copyInto(wav, srv.root, 'replaced.wav');
      const read = async (c: typeof c1, mediaId: string): Promise<Buffer> => {
        const data: Buffer[] = [];
        for await (const b of c.readPackets({ mediaId })) for (const p of b.packets) data.push(Buffer.from(p.data));
        return Buffer.concat(data);
      };
      const before = await c1.openMedia('replaced.wav');
      const old = await read(c1, before.mediaId);
      assert.ok(old.length > 0 && !old.includes(MARKER), 'the first file: no marker');
      // Saved the way editors and renderers save: written beside it, then renamed over it.
      await markedCopy(wav, path.join(srv.root, 'replaced.wav.part'));
      await fsp.rename(path.join(srv.root, 'replaced.wav.part'), path.join(srv.root, 'replaced.wav'));
      const after = await c2.openMedia('replaced.wav');
      try {
        assert.notEqual(after.mediaId, before.mediaId, 'the new file is another media');
        const fresh = await read(c2, after.mediaId);
        assert.ok(fresh.includes(MARKER), 'OpenMedia after the rename serves the new file');
        assert.equal(fresh.length, old.length);
        assert.ok((await read(c1, before.mediaId)).equals(old), 'the reference taken before still reads the file it opened');
      } finally {
        await c1.closeMedia(before.mediaId);
        await c2.closeMedia(after.mediaId);
      }
    });

    it('a folder swapped for a link to outside while OpenMedia and ReadPackets run: the outside file is never served', async function () {
      const c = srv.client();
      const root = await fsp.realpath(srv.root);
      // The index is on disk before the race starts (as on a show machine).
      await c.closeMedia((await c.openMedia('d/clip.wav')).mediaId);
      // Another process swaps root/d (the real folder) and root/d_link (a link to outside/d), as fast as it can.
      const swapper = spawn(process.execPath, ['-e', `
        const fs = require('fs'); const p = require('path'); const r = process.argv[1];
        const d = p.join(r, 'd'), real = p.join(r, 'd_real'), link = p.join(r, 'd_link');
        for (;;) { fs.renameSync(d, real); fs.renameSync(link, d); fs.renameSync(d, link); fs.renameSync(real, d); }
      `, srv.root], { stdio: 'ignore' });
      const codes = new Map<string, number>();
      let served = 0;
      let leaked = 0;
      try {
        for (let i = 0; i < 2000 && served < 30; i++) {
          let mediaId: string | null = null;
          try {
            const info = await c.openMedia('d/clip.wav');
            mediaId = info.mediaId;
            // The file opened, where it is: d/clip.wav, or d_real/clip.wav while the swapper has renamed its folder.
            assert.match(info.path, /\/d(_real)?\/clip\.wav$/);
            assert.ok(info.path.startsWith(`${root}/`), `MediaInfo.path ${info.path} is inside the root`);
            const data: Buffer[] = [];
            for await (const b of c.readPackets({ mediaId })) for (const p of b.packets) data.push(Buffer.from(p.data));
            if (Buffer.concat(data).includes(MARKER)) leaked++;
            served++;
          } catch (e) {
            const code = e instanceof MediaClientError ? grpc.status[e.code] : String(e);
            codes.set(code, (codes.get(code) ?? 0) + 1);
          } finally {
            if (mediaId !== null) await c.closeMedia(mediaId).catch(() => undefined);
          }
        }
      } finally {
        swapper.kill('SIGKILL');
        await new Promise((r) => swapper.once('exit', r));
        // Leave root/d the real folder again, whatever step the swapper was killed at.
        const d = path.join(srv.root, 'd');
        if ((await fsp.lstat(d).catch(() => null))?.isSymbolicLink()) await fsp.rename(d, path.join(srv.root, 'd_link'));
        if (await fsp.lstat(path.join(srv.root, 'd_real')).catch(() => null)) await fsp.rename(path.join(srv.root, 'd_real'), d);
      }
      const refused = [...codes].map(([k, v]) => `${k} ${v}`).join(', ');
      assert.equal(leaked, 0, `${leaked} of ${served} reads served bytes of the file outside the root (refused: ${refused})`);
      assert.ok(served >= 10, `only ${served} opens got through the race (refused: ${refused})`);
      // Nothing was written outside the root either: no index, lock or temporary file beside the outside file.
      assert.deepEqual(await fsp.readdir(path.join(outside, 'd')), ['clip.wav']);
      for (const code of codes.keys()) assert.ok(['PERMISSION_DENIED', 'NOT_FOUND'].includes(code), `refused with ${code} (${refused})`);
    });
  });

  describe('per-client ownership', function () {
    let srv: TestServer;
    before(async function () {
      srv = await startServer({ idleCloseMs: 100, maxClients: 1, maxWatchers: 2 });
      await copyInto(await ensureMedia('wav'), srv.root, 'a.wav');
    });
    after(async function () {
      await srv.stop();
    });

    it('CloseMedia from another connection is NOT_FOUND and leaves the media open for the client that opened it', async function () {
      const owner = srv.client();
      const other = srv.client();
      const info = await owner.openMedia('a.wav');
      await expectCode(other.closeMedia(info.mediaId), grpc.status.NOT_FOUND, new RegExp(`no media with id "${info.mediaId}" is open on this connection`));
      const status = await other.getStatus();
      assert.equal(status.media.find((m) => m.mediaId === info.mediaId)?.openCount, 1, 'the owner\'s reference is still there');
      // Both may read it; the owner closes it (once: a second CloseMedia has nothing left to release).
      const batches = [];
      for await (const b of other.readPackets({ mediaId: info.mediaId })) batches.push(b);
      assert.ok(batches.length > 0);
      await owner.closeMedia(info.mediaId);
      await expectCode(owner.closeMedia(info.mediaId), grpc.status.NOT_FOUND, /is open on this connection/);
      await until('the media closed after its owner closed it', async () => !(await other.getStatus()).media.some((m) => m.mediaId === info.mediaId));
    });

    it('a client process killed after OpenMedia leaves nothing open: its reference is released and the media closes when idle', async function () {
      const watcher = srv.client();
      const { proc, line } = await child(`
        const { MediaClient } = require(process.env.CLIENT_JS);
        const c = new MediaClient(process.env.SOCK);
        c.openMedia('a.wav').then((i) => console.log(i.mediaId), (e) => { console.error(String(e)); process.exit(3); });
        setInterval(() => undefined, 1000);
      `, { CLIENT_JS, SOCK: srv.socket });
      try {
        const mediaId = line.trim();
        const before = (await watcher.getStatus()).media.find((m) => m.mediaId === mediaId);
        assert.equal(before?.openCount, 1, 'the child holds the media open');
        proc.kill('SIGKILL');
        await new Promise((r) => proc.once('exit', r));
        await until('the killed client\'s media closed', async () => !(await watcher.getStatus()).media.some((m) => m.mediaId === mediaId));
      } finally {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      }
    });

    it('WatchClock and Follow count against max-watchers, not max-clients, and GetStatus lists them', async function () {
      const c = srv.client();
      const w1 = c.watchClock();
      const w2 = srv.client().watchClock();
      try {
        assert.equal((await w1.next()).done, false);
        assert.equal((await w2.next()).done, false);
        // max-watchers is 2: a third WatchClock or a Follow is refused, naming the limit.
        await expectCode(srv.client().watchClock().next(), grpc.status.RESOURCE_EXHAUSTED, /2 WatchClock\/Follow calls are already running \(max-watchers\)/);
        await expectCode(srv.client().follow({ output: 'main' }).next(), grpc.status.RESOURCE_EXHAUSTED, /max-watchers/);
        // max-clients is 1, and still free: a ReadPackets runs.
        const info = await c.openMedia('a.wav');
        let packets = 0;
        for await (const b of c.readPackets({ mediaId: info.mediaId })) packets += b.packets.length;
        assert.ok(packets > 0);
        await c.closeMedia(info.mediaId);
        const status = await c.getStatus();
        assert.equal(status.clients.filter((k) => k.mediaId === '' && k.output === '').length, 2,
          status.clients.map((k) => `${k.peer} ${k.mediaId} ${k.output}`).join('; '));
      } finally {
        await w1.return(undefined);
        await w2.return(undefined);
      }
    });
  });
});
