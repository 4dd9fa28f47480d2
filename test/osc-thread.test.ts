/**
 * The OSC endpoint's own thread (osc-thread.ts, osc-worker.ts): `/cuemux/thump` is answered there, but only while the
 * server's main thread beats its heartbeat, so a console's heartbeat still means "show control is alive". The server
 * runs in this test's process; its main thread (this one) is blocked for real (a synchronous wait), while a console in
 * another process sends thumps and writes each reply to a file, the one thing a blocked thread can still read.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { OscThread } from '../src/server/osc-thread';
import { OscPeer } from './support/osc';
import { startServer, type TestServer } from './support/server';
import { scratchDir } from './support/tmp';
import { childrenKilledAfterEach, waitFor } from './support/wait';

/** A console process: a thump every 20 ms to `port`, each reply's status (and error) appended to `file` as a line. */
function consoleScript(port: number, file: string): string {
  const codec = path.join(__dirname, '..', 'src', 'wire', 'osc-codec.js');
  return `
    const dgram = require('node:dgram');
    const fs = require('node:fs');
    const { decodeDatagram, encodeMessage } = require(${JSON.stringify(codec)});
    const s = dgram.createSocket('udp4');
    s.on('message', (m) => {
      const r = JSON.parse(String(decodeDatagram(m)[0].args[0]));
      fs.appendFileSync(${JSON.stringify(file)}, r.status === 'ok' ? 'ok\\n' : 'error ' + r.error + '\\n');
    });
    s.bind(0, '127.0.0.1', () => setInterval(() => s.send(encodeMessage('/cuemux/thump', []), ${port}, '127.0.0.1'), 20));
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();`;
}

const lines = (file: string): string[] => {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  } catch {
    return [];
  }
};

describe('OSC thread: thump answered off the main loop, only while the main loop runs', function () {
  const children = childrenKilledAfterEach();
  let srv: TestServer | null = null;
  afterEach(async () => {
    await srv?.stop();
    srv = null;
  });

  it('a blocked main thread makes thump answer "show control stalled"; it answers ok again once the thread runs', async function () {
    srv = await startServer();
    const file = path.join(await scratchDir('osc-thread'), 'replies.txt');
    const child = spawn(process.execPath, ['-e', consoleScript(srv.oscPort, file)], { stdio: ['pipe', 'inherit', 'inherit'] });
    children.push(child);
    await waitFor('three thumps answered ok', () => lines(file).filter((l) => l === 'ok').length >= 3, 30_000);

    // Block this thread (the server's main thread) until the console has been told of the stall. Atomics.wait holds
    // the thread without running anything, the way a long synchronous task does; the deadline only ends a failing run.
    const pause = new Int32Array(new SharedArrayBuffer(4));
    const before = lines(file).length;
    const deadline = Date.now() + 30_000;
    let stalled: string | undefined;
    while (stalled === undefined && Date.now() < deadline) {
      Atomics.wait(pause, 0, 0, 10);
      stalled = lines(file).slice(before).find((l) => l.startsWith('error '));
    }
    assert.ok(stalled !== undefined, 'no thump reply said the main thread was stalled while it was blocked');
    assert.match(stalled, /^error show control stalled: the server's main thread has not run for \d+ ms \(more than 250 ms\)/);

    // Running again: the next thumps are answered ok.
    const atUnblock = lines(file).length;
    await waitFor('a thump answered ok after the block', () => lines(file).slice(atUnblock).includes('ok'), 30_000);
    child.stdin?.end();
  });

  it('a worker that dies is restarted on the same port: thump answered again, the restart counted, counters carried over', async function () {
    const thread = await OscThread.start({
      host: '127.0.0.1', port: 0, allow: ['127.0.0.1/32'], secret: null, connectIdleMs: 60_000, replyPort: null, routes: ['/cuemux/thump'], priority: 0,
    });
    const peer = await OscPeer.open();
    try {
      const port = thread.address.port;
      assert.equal((await peer.request(port, '/cuemux/thump')).status, 'ok');
      // A sender outside the allow-list: counted by the worker, and still counted after its restart.
      const stranger = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => stranger.bind(0, '127.0.0.2', resolve));
      stranger.send(Buffer.from('/cuemux/thump\0\0\0,\0\0\0'), port, '127.0.0.1', () => stranger.close());
      await waitFor('the stranger dropped', () => thread.counters.notAllowed === 1, 30_000);
      thread.crashForTest();
      await waitFor('the dead worker counted as restarted', () => thread.restarts === 1, 30_000);
      // Down meanwhile (its socket closed with it): the console retries, as one polling thump does, until answered.
      const back = await waitFor('thump answered by the restarted worker', async () => {
        const r = await peer.request(port, '/cuemux/thump', [], 500).catch(() => undefined);
        return r?.status === 'ok' ? r : undefined;
      }, 30_000);
      assert.equal(back.status, 'ok');
      assert.equal(thread.address.port, port);
      assert.equal(thread.restarts, 1);
      assert.equal(thread.counters.notAllowed, 1);
    } finally {
      peer.close();
      await thread.close();
      await thread.close();
    }
  });
});
