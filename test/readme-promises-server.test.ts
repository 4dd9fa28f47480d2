/**
 * README promises of `cuemux serve` that no other test checked, each tested as the README words it:
 * - "refcounted and closed 30 s after its last user" (the delay is `--idle-close-ms`, default 30000);
 * - "Shutdown: SIGTERM/SIGINT stop new calls and show control, end WatchClock/Follow with UNAVAILABLE (players
 *   reconnect), let running streams finish (`--shutdown-grace-ms`), end the rest with UNAVAILABLE, close media and
 *   remove the socket; a second signal exits at once";
 * - "TCP only with `--listen` (a bare port means 127.0.0.1)" and exit 10 when "another server holds the socket or port";
 * - `ping` / `estimateClockOffset` and `clockPositionRemote`, against an independent reference: the server run under
 *   libfaketime with its wall clock 5 s ahead;
 * - "every call takes `{ signal?, timeout? }` and fails with a `MediaClientError` carrying `code`, `method` and `details`".
 * Nothing here measures the machine: each test waits for the event it needs with a generous deadline, and where a
 * delay is the behaviour it checks only that the event did not come before it, on the clock the server uses.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp, readdirSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { runCli } from './support/cli';
import { longClip, minuteClip } from './support/media';
import { spawnServer, startServer, type TestServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { exitOf, killChild, waitFor } from './support/wait';
import { MediaClient, MediaClientError } from '../src/clients/media-client';
import { clockPositionAt, clockPositionRemote } from '../src/clients/clock-position';
import { monoNs, unixNs } from '../src/common/time-source';
import { defaultConfig } from '../src/server/server-config';
import type { ClockState } from '../src/generated/cuemux/v1/media_server';

/** A media root holding `files` (name → source) and a private run folder with the socket path in it. */
async function serveDirs(files: Record<string, string>): Promise<{ root: string; socket: string }> {
  const root = await scratchDir('promise-root');
  for (const [name, file] of Object.entries(files)) await copyInto(file, root, name);
  const run = await scratchDir('promise-run');
  await fsp.chmod(run, 0o700);
  return { root, socket: path.join(run, 'cuemux.sock') };
}

/** The error a promise rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail(`${what} succeeded`);
}

/** Assert `e` is a MediaClientError of gRPC status `code` for `method`. */
function assertClientError(e: unknown, code: grpc.status, method: string): void {
  assert.ok(e instanceof MediaClientError, `a MediaClientError, got ${String(e)}`);
  assert.equal(e.code, code, `${e.message}`);
  assert.equal(e.method, method);
  assert.equal(typeof e.details, 'string');
}

/** Drain a stream, returning how many items it gave and how it ended (null: normally). */
async function drain<T>(stream: AsyncIterable<T>, count: (item: T) => number = () => 1): Promise<{ n: number; error: unknown }> {
  let n = 0;
  try {
    for await (const item of stream) n += count(item);
  } catch (e) {
    return { n, error: e };
  }
  return { n, error: null };
}

/** A free TCP port on 127.0.0.1 (bound and released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('README promises: the media server', function () {
  this.timeout(180_000);
  const children: ChildProcess[] = [];
  const clients: MediaClient[] = [];
  const client = (address: string): MediaClient => {
    const c = new MediaClient(address);
    clients.push(c);
    return c;
  };
  afterEach(async function () {
    for (const c of clients.splice(0)) c.close();
    for (const c of children.splice(0)) await killChild(c);
  });

  describe('one open per file, "closed 30 s after its last user" (--idle-close-ms)', function () {
    it('the delay is 30 s unless set', function () {
      assert.equal(defaultConfig({}).idleCloseMs, 30_000);
    });

    it('--idle-close-ms: a file stays open while a client uses it and closes the delay after its last user, not before', async function () {
      const idleMs = 1500;
      const { root, socket } = await serveDirs({ 'clip.mp4': await minuteClip() });
      const srv = await spawnServer(['--socket', socket, '--media-root', root, '--idle-close-ms', String(idleMs), '--state-file', 'none']);
      children.push(srv.child);
      const a = client(socket);
      const b = client(socket);
      const status = async (): Promise<Array<{ mediaId: string; openCount: number }>> => (await a.getStatus()).media.map((m) => ({ mediaId: m.mediaId, openCount: m.openCount }));
      const openedAt = async (): Promise<bigint | undefined> => (await a.getStatus()).media[0]?.openedUnixNs;
      const ia = await a.openMedia('clip.mp4');
      const ib = await b.openMedia('clip.mp4');
      const firstOpen = await openedAt();
      assert.equal(ib.mediaId, ia.mediaId, 'two clients of one path share one open media');
      assert.deepEqual(await status(), [{ mediaId: ia.mediaId, openCount: 2 }]);
      await a.closeMedia(ia.mediaId);
      assert.deepEqual(await status(), [{ mediaId: ia.mediaId, openCount: 1 }], 'still open: b uses it');
      // The last user lets go: the media stays open (reusable) and closes once the delay has passed.
      const lastClose = monoNs();
      await b.closeMedia(ib.mediaId);
      assert.deepEqual(await status(), [{ mediaId: ia.mediaId, openCount: 0 }], 'open, unused, right after the last close');
      await waitFor('the idle close', async () => (await status()).length === 0, 60_000, 25);
      const afterMs = Number(monoNs() - lastClose) / 1e6;
      assert.ok(afterMs >= idleMs, `closed ${afterMs.toFixed(0)} ms after its last user, before the ${idleMs} ms delay`);
      // After the idle close the file is opened anew; a client that comes back within the delay keeps that open.
      const ic = await a.openMedia('clip.mp4');
      const secondOpen = await openedAt();
      assert.ok(firstOpen !== undefined && secondOpen !== undefined && secondOpen > firstOpen, 'opened anew after the idle close');
      await a.closeMedia(ic.mediaId);
      await a.openMedia('clip.mp4');
      assert.equal(await openedAt(), secondOpen, 'reopened within the delay: the same open, not a second one');
    });

    it('CUEMUX_IDLE_CLOSE_MS: a client whose connection closes releases its media, which then closes after the delay', async function () {
      const { root, socket } = await serveDirs({ 'clip.mp4': await minuteClip() });
      const srv = await spawnServer(['--socket', socket, '--media-root', root, '--state-file', 'none'], { CUEMUX_IDLE_CLOSE_MS: '1000' });
      children.push(srv.child);
      const watcher = client(socket);
      const gone = new MediaClient(socket);
      await gone.openMedia('clip.mp4');
      assert.equal((await watcher.getStatus()).media.length, 1);
      const closed = monoNs();
      gone.close(); // a player that exits without CloseMedia
      await waitFor('the media of the closed connection to close', async () => (await watcher.getStatus()).media.length === 0, 60_000, 25);
      assert.ok(Number(monoNs() - closed) / 1e6 >= 1000, 'closed after the delay, not before');
    });
  });

  describe('shutdown', function () {
    it('SIGINT: new calls and WatchClock get UNAVAILABLE, a running stream finishes, then media closed, socket removed, exit 0', async function () {
      const { root, socket } = await serveDirs({ 'long.mp4': await longClip() });
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--shutdown-grace-ms', '120000', '--state-file', 'none']);
      children.push(s.child);
      const c = client(socket);
      const info = await c.openMedia('long.mp4');
      const total = Number((await c.getStatus()).media[0].packetCount);
      assert.ok(total > 100_000, `${total} packets`);
      // A stream the client reads slowly: small batches, and nothing read until the signal (flow control holds it).
      const stream = c.readPackets({ mediaId: info.mediaId, startSeconds: -1e9, maxBatchBytes: 16_384 });
      const first = await stream.next();
      assert.equal(first.done, false);
      const clock = c.watchClock({});
      await clock.next();
      const clockEnd = drain(clock);
      const exited = exitOf(s.child);
      s.child.kill('SIGINT');
      // WatchClock ends with UNAVAILABLE (players reconnect).
      const watched = await clockEnd;
      assertClientError(watched.error, grpc.status.UNAVAILABLE, 'WatchClock');
      // New calls are refused.
      const late = client(socket);
      assertClientError(await rejection(late.getStatus({ timeout: 20_000 }), 'GetStatus after SIGINT'), grpc.status.UNAVAILABLE, 'GetStatus');
      // The running stream is let finish: every packet of the file arrives.
      const rest = await drain(stream, (b) => b.packets.length);
      assert.equal(rest.error, null, `the running stream was cut: ${String(rest.error)}`);
      assert.equal(first.value.packets.length + rest.n, total, 'every packet of the file');
      assert.deepEqual(await exited, { code: 0, signal: null }, s.stderr());
      assert.equal(existsSync(socket), false, 'the socket is removed');
    });

    it('SIGTERM: a stream still running when the grace period ends is ended by the server, not before the grace period', async function () {
      const graceMs = 1000;
      const { root, socket } = await serveDirs({ 'long.mp4': await longClip() });
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--shutdown-grace-ms', String(graceMs), '--state-file', 'none']);
      children.push(s.child);
      const c = client(socket);
      const info = await c.openMedia('long.mp4');
      const stream = c.readPackets({ mediaId: info.mediaId, startSeconds: -1e9, maxBatchBytes: 16_384 });
      assert.equal((await stream.next()).done, false);
      const exited = exitOf(s.child);
      const signalled = monoNs();
      s.child.kill('SIGTERM');
      // The client reads nothing more: the stream cannot finish, so the end of the grace period ends it.
      const ended = await exited;
      const afterMs = Number(monoNs() - signalled) / 1e6;
      assert.deepEqual(ended, { code: 0, signal: null }, s.stderr());
      assert.ok(afterMs >= graceMs, `the server exited ${afterMs.toFixed(0)} ms after SIGTERM, before its ${graceMs} ms grace`);
      // It was ended, not finished. README: "end the rest with UNAVAILABLE". A client that reads nothing more never
      // reaches the UNAVAILABLE trailers queued behind the data it has not read (HTTP/2 sends them in order), and the
      // server then closes the connection: such a client sees CANCELLED. Both are an end by the server.
      const rest = await drain(stream);
      assert.ok(rest.error instanceof MediaClientError, `the stream was ended by the server: ${String(rest.error)}`);
      assert.ok([grpc.status.UNAVAILABLE, grpc.status.CANCELLED].includes(rest.error.code), rest.error.message);
      assert.equal(rest.error.method, 'ReadPackets');
      assert.equal(existsSync(socket), false, 'the socket is removed');
    });

    it('a second signal exits at once, without waiting for the running stream or the grace period', async function () {
      const { root, socket } = await serveDirs({ 'long.mp4': await longClip() });
      // A grace period far longer than the test: only the second signal can end the server in time.
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--shutdown-grace-ms', '3600000', '--state-file', 'none', '--log-level', 'info']);
      children.push(s.child);
      const c = client(socket);
      const info = await c.openMedia('long.mp4');
      const stream = c.readPackets({ mediaId: info.mediaId, startSeconds: -1e9, maxBatchBytes: 16_384 });
      assert.equal((await stream.next()).done, false);
      const exited = exitOf(s.child);
      s.child.kill('SIGINT');
      await waitFor('the server to start draining', () => /SIGINT: draining and closing/.test(s.stderr()), 60_000);
      assert.equal(s.child.exitCode, null, 'still draining: the stream is running');
      s.child.kill('SIGINT');
      const ended = await exited;
      assert.equal(ended.signal, null);
      assert.notEqual(ended.code, 0, 'a second signal is not a clean stop');
      assert.match(s.stderr(), /second SIGINT: exiting now/);
    });
  });

  describe('TCP: "a bare port means 127.0.0.1", and exit 10 when the port is held', function () {
    it('--listen PORT listens on 127.0.0.1:PORT and serves there', async function () {
      const { root, socket } = await serveDirs({});
      const port = await freePort();
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--listen', String(port), '--state-file', 'none']);
      children.push(s.child);
      assert.match(s.stdout(), new RegExp(`TCP: +127\\.0\\.0\\.1:${port}\\b`));
      assert.ok((await client(`127.0.0.1:${port}`).ping()).roundTripNs > 0n, 'it answers on 127.0.0.1:PORT');
      // Not on every interface: the listening socket is bound to the loopback address.
      const listening = async (table: string): Promise<string[]> => (await fsp.readFile(table, 'utf8').catch(() => '')).split('\n').slice(1)
        .map((l) => l.trim().split(/\s+/)).filter((f) => f.length > 3 && f[3] === '0A' && parseInt(f[1].split(':').pop() ?? '', 16) === port)
        .map((f) => f[1].split(':')[0]);
      assert.deepEqual(await listening('/proc/net/tcp'), ['0100007F'], 'bound to 127.0.0.1 only');
      assert.deepEqual(await listening('/proc/net/tcp6'), [], 'and to no IPv6 address');
    });

    it('a port another program holds: exit 10 naming the address', async function () {
      const holder = net.createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      try {
        const port = (holder.address() as net.AddressInfo).port;
        const { root, socket } = await serveDirs({});
        const r = await runCli(['serve', '--socket', socket, '--media-root', root, '--listen', String(port), '--osc-port', '0', '--state-file', 'none']);
        assert.equal(r.code, 10, r.stdout + r.stderr);
        assert.match(r.stdout + r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
      } finally {
        await new Promise<void>((resolve) => holder.close(() => resolve()));
      }
    });
  });

  describe('serve: --log-format and --log-file (and their environment variables)', function () {
    it('--log-format text --log-file FILE: readable lines in the file, none on stderr; CUEMUX_LOG_FORMAT=json CUEMUX_LOG_FILE: JSON lines', async function () {
      const { root, socket } = await serveDirs({});
      const logs = await scratchDir('serve-logs');
      const textFile = path.join(logs, 'text.log');
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--state-file', 'none', '--log-level', 'info', '--log-format', 'text', '--log-file', textFile]);
      children.push(s.child);
      const line = await waitFor('the "serving" line in the log file', async () => (await fsp.readFile(textFile, 'utf8').catch(() => '')).split('\n').find((l) => l.includes('serving')), 30_000);
      assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} info \[media-server\] serving /);
      assert.doesNotMatch(s.stderr(), /serving/, 'not on stderr');
      await killChild(s.child);
      const jsonFile = path.join(logs, 'json.log');
      const dirs2 = await serveDirs({});
      const j = await spawnServer(['--socket', dirs2.socket, '--media-root', dirs2.root, '--state-file', 'none', '--log-level', 'info'],
        { CUEMUX_LOG_FORMAT: 'json', CUEMUX_LOG_FILE: jsonFile });
      children.push(j.child);
      const record = await waitFor('the "serving" record in the log file', async () => (await fsp.readFile(jsonFile, 'utf8').catch(() => ''))
        .split('\n').filter((l) => l.includes('serving')).map((l) => JSON.parse(l) as Record<string, unknown>)[0], 30_000);
      assert.equal(record.level, 'info');
      assert.equal(record.message, 'serving');
      assert.doesNotMatch(j.stderr(), /serving/, 'not on stderr');
    });
  });

  describe('MediaClient: "every call takes { signal?, timeout? }"', function () {
    let srv: TestServer | null = null;
    afterEach(async function () {
      await srv?.stop();
      srv = null;
    });

    it('a stream that outlives its timeout fails with DEADLINE_EXCEEDED, not before the timeout; a signal cancels', async function () {
      srv = await startServer();
      const c = srv.client();
      const timeoutMs = 500;
      const started = monoNs();
      // WatchClock never ends by itself.
      const timed = await drain(c.watchClock({ heartbeatSeconds: 0.1 }, { timeout: timeoutMs }));
      const afterMs = Number(monoNs() - started) / 1e6;
      assertClientError(timed.error, grpc.status.DEADLINE_EXCEEDED, 'WatchClock');
      assert.ok(timed.n >= 1, 'it delivered the clock before the deadline');
      assert.ok(afterMs >= timeoutMs - 1, `ended ${afterMs.toFixed(0)} ms after the call, before its ${timeoutMs} ms timeout`);
      // A unary call with a timeout already spent fails the same way, naming its method.
      assertClientError(await rejection(c.getStatus({ timeout: -1 }), 'GetStatus with a spent timeout'), grpc.status.DEADLINE_EXCEEDED, 'GetStatus');
      // And the signal: an aborted call is CANCELLED.
      const ctl = new AbortController();
      const aborted = drain(c.watchClock({}, { signal: ctl.signal }));
      ctl.abort();
      assertClientError((await aborted).error, grpc.status.CANCELLED, 'WatchClock');
    });
  });

  describe('Ping, estimateClockOffset, clockPositionRemote (a server whose wall clock is 5 s ahead, by libfaketime)', function () {
    /** libfaketime's preload library, or null when the `faketime` package is not installed. */
    const libfaketime = ((): string | null => {
      for (const dir of ['/usr/lib', '/usr/lib64', '/lib']) {
        for (const arch of existsSync(dir) ? readdirSync(dir) : []) {
          const lib = path.join(dir, arch, 'faketime', 'libfaketime.so.1');
          if (existsSync(lib)) return lib;
        }
      }
      return null;
    })();

    it('the estimated offset is +5 s to within half the best round trip, and clockPositionRemote corrects for it', async function () {
      if (libfaketime === null) {
        const { skipBecause } = await import('./support/check');
        skipBecause(this, 'libfaketime is not installed (apt-get install faketime)');
      }
      const { root, socket } = await serveDirs({});
      // The server's wall clock (Date.now, CLOCK_REALTIME) runs 5 s ahead; its monotonic clock is left alone, so the
      // same-machine path (anchor_monotonic_ns) stays exact and gives the independent reference position.
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--state-file', 'none'],
        { LD_PRELOAD: libfaketime as string, FAKETIME: '+5s', FAKETIME_DONT_FAKE_MONOTONIC: '1' });
      children.push(s.child);
      const c = client(socket);
      const ping = await c.ping();
      assert.ok(ping.roundTripNs > 0n);
      const skewNs = ping.serverUnixNs - unixNs();
      assert.ok(skewNs > 4_000_000_000n && skewNs < 6_000_000_000n, `the server's wall clock is ${Number(skewNs) / 1e9} s from ours (faketime +5 s)`);
      const est = await c.estimateClockOffset(8);
      const errorNs = est.offsetNs - 5_000_000_000n;
      const abs = errorNs < 0n ? -errorNs : errorNs;
      // NTP-style: the error is at most half the round trip of the sample kept (plus the 1 µs the clocks are read in).
      assert.ok(abs <= est.roundTripNs / 2n + 1_000n, `offset ${Number(est.offsetNs) / 1e9} s: ${Number(errorNs) / 1e3} µs off +5 s with a ${Number(est.roundTripNs) / 1e3} µs round trip`);
      // The clock's position from its wall-clock anchor and that offset agrees with the exact monotonic path.
      const peer = await (await import('./support/osc')).OscPeer.open();
      try {
        const osc = s.oscPort;
        assert.ok(osc !== null);
        assert.equal((await peer.request(osc, '/cuemux/clock/play', [{ type: 'd', value: 100 }])).status, 'ok');
      } finally {
        peer.close();
      }
      let state: ClockState | null = null;
      for await (const st of c.watchClock({}, { timeout: 20_000 })) {
        if (st.state === 'playing') {
          state = st;
          break;
        }
      }
      assert.ok(state !== null);
      const nowMono = monoNs();
      const nowUnix = unixNs();
      const exact = clockPositionAt(state, nowMono);
      const remote = clockPositionRemote(state, est.offsetNs, nowUnix);
      const naive = clockPositionRemote(state, 0n, nowUnix);
      assert.ok(Math.abs(remote - exact) <= Number(est.roundTripNs) / 2e9 + 1e-4, `remote ${remote} vs exact ${exact}`);
      assert.ok(Math.abs(naive - exact + 5) < 0.5, `without the offset the position is 5 s behind (${naive - exact})`);
    });
  });
});
