/**
 * `cuemux serve` as a child process: config from file, environment and flags; SIGTERM drains and removes the
 * socket; a socket left by a killed server is replaced, a live server's is never taken.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { ensureMedia } from './support/media';
import { copyInto, scratchDir } from './support/tmp';
import { spawnServer } from './support/server';
import { runCli } from './support/cli';
import { MediaClient } from '../src/clients/media-client';
import { loadConfig } from '../src/server/server-config';
import { isCuemuxError } from '../src/common/errors';

describe('cuemux serve (child process)', function () {
  this.timeout(60_000);
  let root: string;
  let run: string;

  beforeEach(async function () {
    root = await scratchDir('serve-root');
    run = await scratchDir('serve-run');
    await fsp.chmod(run, 0o700);
    await copyInto(await ensureMedia('mp4-h264-aac'), root, 'clip.mp4');
  });

  it('serves from a config file, reports status, and on SIGTERM drains, exits 0 and removes its socket', async function () {
    const socket = path.join(run, 'cuemux.sock');
    const config = path.join(run, 'cuemux.json');
    await fsp.writeFile(config, JSON.stringify({ mediaRoots: [root], socket, cacheDir: 'cache', maxClients: 8 }));
    const { child, stdout } = await spawnServer(['--config', config], { CUEMUX_LOG_LEVEL: 'warn' });
    assert.match(stdout(), new RegExp(`Unix socket: unix://${socket}`));
    assert.equal((await fsp.stat(socket)).mode & 0o777, 0o660);
    const c = new MediaClient(socket);
    const info = await c.openMedia('clip.mp4');
    let n = 0;
    for await (const b of c.readPackets({ mediaId: info.mediaId, startSeconds: -1e9 })) n += b.packets.length;
    assert.equal(n, 217);
    const status = await runCli(['status', '--socket', socket, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { media: Array<{ path: string }> }).media[0].path, path.join(root, 'clip.mp4'));
    c.close();
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit') as [number | null];
    assert.equal(code, 0);
    await assert.rejects(fsp.access(socket), 'socket removed');
  });

  it('replaces a socket left by a killed server, and never takes a live server\'s socket', async function () {
    const socket = path.join(run, 'cuemux.sock');
    const first = await spawnServer(['--socket', socket, '--media-root', root]);
    first.child.kill('SIGKILL');
    await once(first.child, 'exit');
    await fsp.access(socket); // the killed server left its socket behind
    const second = await spawnServer(['--socket', socket, '--media-root', root]);
    const c = new MediaClient(socket);
    assert.equal((await c.openMedia('clip.mp4')).streams.length, 2);
    c.close();
    const third = await runCli(['serve', '--socket', socket, '--media-root', root]);
    assert.equal(third.code, 10, third.stderr);
    assert.match(third.stderr, new RegExp(`${socket.replace(/[/.]/g, '\\$&')}: another cuemux server is running or starting on this socket`));
    second.child.kill('SIGTERM');
    await once(second.child, 'exit');
  });

  it('two servers starting at once on one socket: exactly one serves, the other says the socket is taken', async function () {
    const socket = path.join(run, 'cuemux.sock');
    const [a, b] = await Promise.allSettled([spawnServer(['--socket', socket, '--media-root', root]), spawnServer(['--socket', socket, '--media-root', root])]);
    type Started = Awaited<ReturnType<typeof spawnServer>>;
    const ok = [a, b].filter((r): r is PromiseFulfilledResult<Started> => r.status === 'fulfilled');
    const failed = [a, b].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 1, `one server: ${failed.map((f) => String(f.reason)).join('; ')}`);
    assert.match(String(failed[0].reason), /another (cuemux )?server is (running or starting|listening) on this socket/);
    const c = new MediaClient(socket);
    assert.equal((await c.openMedia('clip.mp4')).streams.length, 2);
    c.close();
    const winner = ok[0].value.child;
    winner.kill('SIGTERM');
    await once(winner, 'exit');
    await assert.rejects(fsp.access(`${socket}.lock`), 'the socket lock is released on exit');
  });

  it('refuses a socket folder that anyone may write to', async function () {
    const open = path.join(run, 'open');
    await fsp.mkdir(open);
    await fsp.chmod(open, 0o777);
    const r = await runCli(['serve', '--socket', path.join(open, 's.sock'), '--media-root', root]);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /open: the socket folder must be owned by this user and not writable by everyone/);
  });

  it('layers settings: flags over environment over config file over defaults, with clear errors', async function () {
    const file = path.join(run, 'c.json');
    await fsp.writeFile(file, JSON.stringify({ mediaRoots: ['m'], maxClients: 3, listen: '127.0.0.1:7000', cacheDir: 'idx' }));
    const cfg = loadConfig({ maxClients: '5' }, file, { CUEMUX_MAX_CLIENTS: '4', CUEMUX_LISTEN: '127.0.0.1:7001', CUEMUX_SOCKET: 'none' });
    assert.equal(cfg.maxClients, 5);
    assert.equal(cfg.listen, '127.0.0.1:7001');
    assert.equal(cfg.socket, null);
    // Relative folders in a config file are relative to the file.
    assert.deepEqual(cfg.mediaRoots, [path.join(run, 'm')]);
    assert.equal(cfg.cacheDir, path.join(run, 'idx'));
    assert.throws(() => loadConfig({ maxClients: 'lots' }, undefined, {}), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT') && /maxClients must be a whole number/.test(e.message));
    assert.throws(() => loadConfig({}, file.replace('c.json', 'missing.json'), {}), (e: unknown) => isCuemuxError(e) && /missing\.json: cannot read config/.test(e.message));
    const bad = await runCli(['serve', '--listen', 'everywhere', '--media-root', root]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /listen must be HOST:PORT/);
  });
});
