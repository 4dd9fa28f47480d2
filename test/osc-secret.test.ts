/**
 * The OSC shared secret (issue 12): with `--osc-secret-file`, a sender the allow-list admits but that is not on this
 * machine must first send `/cuemux/connect <secret>` (QLab's passcode); until then every other message gets a
 * PERMISSION_DENIED reply saying what to send, and nothing it asks is done. Real `cuemux serve` processes, real UDP
 * from a real non-loopback address (a veth pair made for the test), loopback senders beside it.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import OSC from 'osc-js';
import { isCuemuxError, errorMessage } from '../src/common/errors';
import { OscConnections } from '../src/server/osc-access';
import { runCli } from './support/cli';
import { makeLocalAddress, type LocalAddress } from './support/local-net';
import { bundleAt, encode, type Arg, type Reply } from './support/osc';
import { spawnServer } from './support/server';
import { scratchDir } from './support/tmp';
import { childrenKilledAfterEach } from './support/wait';

/** An OSC peer bound to a chosen local address (loopback or not), sending to a chosen host. */
class Peer {
  readonly #socket: dgram.Socket;
  readonly #inbox: Array<{ address: string; args: unknown[] }> = [];
  #wake: (() => void) | null = null;

  private constructor(socket: dgram.Socket) {
    this.#socket = socket;
    socket.on('message', (buf: Buffer) => {
      const m = new OSC.Message('/');
      m.unpack(new DataView(new Uint8Array(buf).buffer));
      this.#inbox.push({ address: m.address, args: m.args });
      this.#wake?.();
    });
  }

  static async open(bindAddress: string): Promise<Peer> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, bindAddress, resolve));
    return new Peer(s);
  }

  get port(): number {
    return this.#socket.address().port;
  }

  sendRaw(host: string, port: number, bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.#socket.send(bytes, port, host, (e) => (e ? reject(e) : resolve())));
  }

  /** The JSON of the next message to `address`, waited for up to `timeoutMs` (generous: nothing here is timed). */
  async reply(address: string, timeoutMs = 15_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#inbox.findIndex((m) => m.address === address);
      if (i >= 0) return JSON.parse(String(this.#inbox.splice(i, 1)[0].args[0])) as Reply;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${address} within ${timeoutMs} ms (inbox: ${this.#inbox.map((m) => m.address).join(', ') || 'empty'})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  async request(host: string, port: number, address: string, args: Arg[] = []): Promise<Reply> {
    await this.sendRaw(host, port, encode(address, args));
    return this.reply(address.replace(/^\/cuemux\//, '/cuemux/reply/'));
  }

  close(): void {
    this.#socket.close();
  }
}

/** A bundle marked "immediately" (timetag 1) holding `messages`. */
function immediateBundle(messages: Buffer[]): Buffer {
  const b = bundleAt(0n, messages);
  b.writeUInt32BE(0, 8);
  b.writeUInt32BE(1, 12);
  return b;
}

interface StatusData {
  clock: { state: string };
  osc: { connections: { count: number; max: number; idleSeconds: number } | null };
}

describe('OSC shared secret: /cuemux/connect for senders not on this machine', function () {
  this.timeout(120_000);
  let lan: LocalAddress | null = null;
  let lanSkip = '';
  let root: string;
  let secretFile: string;
  const secret = 'stage-left-7781';
  // Servers started as processes: stopped with SIGTERM after each test (this hook runs before the afterEach below).
  const children = childrenKilledAfterEach('SIGTERM');
  const peers: Peer[] = [];

  const peer = async (bindAddress: string): Promise<Peer> => {
    const p = await Peer.open(bindAddress);
    peers.push(p);
    return p;
  };
  const serve = async (args: string[]): Promise<Awaited<ReturnType<typeof spawnServer>>> => {
    const run = await scratchDir('osc-secret-run');
    await fsp.chmod(run, 0o700);
    const s = await spawnServer(['--socket', path.join(run, 's.sock'), '--media-root', root, '--state-file', 'none', ...args], { CUEMUX_LOG_LEVEL: 'info' });
    children.push(s.child);
    return s;
  };
  const needLan = (ctx: Mocha.Context): string => {
    if (lan === null) {
      if (ctx.test !== undefined) ctx.test.title += ` (skipped: ${lanSkip})`;
      ctx.skip();
    }
    return lan.address;
  };

  before(async function () {
    try {
      lan = await makeLocalAddress();
    } catch (e) {
      lanSkip = `no non-loopback address could be made (ip link add veth: ${errorMessage(e).split('\n')[0]})`;
    }
    root = await scratchDir('osc-secret-root');
    const dir = await scratchDir('osc-secret-files');
    secretFile = path.join(dir, 'osc-secret');
    await fsp.writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
  });

  afterEach(function () {
    for (const p of peers.splice(0)) p.close();
  });

  after(async function () {
    await lan?.remove();
  });

  it('refuses a non-loopback sender until it connects; the connection is per address and port; loopback never needs it', async function () {
    const address = needLan(this);
    const s = await serve(['--osc-host', address, '--osc-allow', `${address}/32,127.0.0.0/8`, '--osc-secret-file', secretFile]);
    const port = s.oscPort as number;
    assert.doesNotMatch(s.stderr(), /no --osc-secret-file/);
    const console1 = await peer(address);
    const local = await peer('127.0.0.1');

    // Not connected: every command is refused with what to do, and not done.
    const thump = await console1.request(address, port, '/cuemux/thump');
    assert.equal(thump.status, 'error');
    assert.equal(thump.code, 'PERMISSION_DENIED');
    assert.match(thump.error ?? '', new RegExp(`${address.replace(/\./g, '\\.')}:${console1.port} is not connected: send /cuemux/connect <secret> first`));
    const play = await console1.request(address, port, '/cuemux/clock/play');
    assert.equal(play.code, 'PERMISSION_DENIED');
    const before = (await local.request(address, port, '/cuemux/status')).data as StatusData;
    assert.equal(before.clock.state, 'stopped', 'the refused play did nothing');
    assert.deepEqual(before.osc.connections, { count: 0, max: 64, idleSeconds: 8 * 3600 });

    // A wrong secret is refused; the right one connects.
    const wrong = await console1.request(address, port, '/cuemux/connect', [{ type: 's', value: 'stage-left-0000' }]);
    assert.equal(wrong.status, 'error');
    assert.equal(wrong.code, 'PERMISSION_DENIED');
    assert.match(wrong.error ?? '', /wrong secret/);
    assert.doesNotMatch(wrong.error ?? '', new RegExp(secret), 'the reply never holds the secret');
    const ok = await console1.request(address, port, '/cuemux/connect', [{ type: 's', value: secret }]);
    assert.equal(ok.status, 'ok', ok.error);
    assert.deepEqual(ok.data, { connected: true, secretRequired: true, idleSeconds: 8 * 3600 });
    assert.equal((await console1.request(address, port, '/cuemux/thump')).data, 'thump');
    assert.equal((await console1.request(address, port, '/cuemux/clock/play')).status, 'ok');
    const after = (await local.request(address, port, '/cuemux/status')).data as StatusData;
    assert.equal(after.clock.state, 'playing');
    assert.equal(after.osc.connections?.count, 1);

    // Another program on the same address (another port) is not connected.
    const other = await peer(address);
    assert.equal((await other.request(address, port, '/cuemux/thump')).code, 'PERMISSION_DENIED');

    // One-shot senders (a new port per message): connect and command in one bundle.
    const oneShot = await peer(address);
    await oneShot.sendRaw(address, port, immediateBundle([encode('/cuemux/connect', [{ type: 's', value: secret }]), encode('/cuemux/clock/stop')]));
    assert.equal((await oneShot.reply('/cuemux/reply/connect')).status, 'ok');
    assert.equal((await oneShot.reply('/cuemux/reply/clock/stop')).status, 'ok');
    assert.equal(((await local.request(address, port, '/cuemux/status')).data as StatusData).clock.state, 'stopped');

    // Disconnect: refused again.
    assert.deepEqual((await console1.request(address, port, '/cuemux/disconnect')).data, { disconnected: true });
    assert.equal((await console1.request(address, port, '/cuemux/thump')).code, 'PERMISSION_DENIED');

    // Loopback: served throughout without a connection; its /cuemux/connect still checks the secret.
    assert.equal((await local.request(address, port, '/cuemux/thump')).data, 'thump');
    assert.equal((await local.request(address, port, '/cuemux/connect', [{ type: 's', value: 'nope-nope-nope' }])).code, 'PERMISSION_DENIED');
    assert.match(s.stderr(), /OSC show control is open to .* must first send \/cuemux\/connect <secret>/);
  });

  it('without a secret, a non-loopback allow-list starts with a warning naming --osc-secret-file, and its senders need no connect', async function () {
    const address = needLan(this);
    const s = await serve(['--osc-host', address, '--osc-allow', `${address}/32`]);
    assert.match(s.stderr(), new RegExp(`OSC show control is open to ${address.replace(/\./g, '\\.')}/32 .*no --osc-secret-file: senders need no /cuemux/connect`));
    const console1 = await peer(address);
    assert.equal((await console1.request(address, s.oscPort as number, '/cuemux/thump')).data, 'thump');
    // A console set up to always connect gets its "ok".
    assert.deepEqual((await console1.request(address, s.oscPort as number, '/cuemux/connect', [{ type: 's', value: 'whatever' }])).data,
      { connected: true, secretRequired: false });
  });

  it('a missing, short or non-file secret stops the start naming the file', async function () {
    const dir = await scratchDir('osc-secret-bad');
    const short = path.join(dir, 'short');
    await fsp.writeFile(short, '1234\n', { mode: 0o600 });
    const spaced = path.join(dir, 'spaced');
    await fsp.writeFile(spaced, 'two words here\n', { mode: 0o600 });
    const serveArgs = (file: string): string[] => ['serve', '--socket', path.join(dir, 's.sock'), '--media-root', root, '--state-file', 'none', '--osc-port', '0',
      '--osc-secret-file', file];
    const missing = await runCli(serveArgs(path.join(dir, 'none')));
    assert.equal(missing.code, 8, missing.stderr);
    assert.match(missing.stderr, /--osc-secret-file .*none: no such file or directory/);
    const tooShort = await runCli(serveArgs(short));
    assert.equal(tooShort.code, 2, tooShort.stderr);
    assert.match(tooShort.stderr, /--osc-secret-file .*short: the secret is 4 characters, fewer than the 8 needed/);
    const withSpaces = await runCli(serveArgs(spaced));
    assert.equal(withSpaces.code, 2, withSpaces.stderr);
    assert.match(withSpaces.stderr, /--osc-secret-file .*spaced: the secret must be one line of printable ASCII without spaces/);
    const folder = await runCli(serveArgs(dir));
    assert.equal(folder.code, 2, folder.stderr);
    assert.match(folder.stderr, /not a regular file/);
    await assert.rejects(fsp.access(path.join(dir, 's.sock')), 'refused before the socket was made');
  });

  it('connections are bounded in number and time, and wrong secrets per address per minute (explicit clock)', function () {
    const c = new OscConnections({ secret, idleMs: 1000, maxConnections: 2, maxFailuresPerMinute: 3 });
    const a = { address: '10.0.0.1', port: 1 };
    const b = { address: '10.0.0.1', port: 2 };
    const d = { address: '10.0.0.2', port: 3 };
    assert.equal(c.connect(a, secret, 0).dropped, null);
    assert.equal(c.connect(b, secret, 10).dropped, null);
    assert.equal(c.touch(a, 20), true); // a is now the most recently heard
    assert.equal(c.connect(d, secret, 30).dropped, '10.0.0.1:2', 'the least recently heard is dropped for a new one');
    assert.equal(c.count, 2);
    assert.equal(c.touch(b, 40), false);
    // Idle for longer than idleMs: gone (any message before that keeps it).
    assert.equal(c.touch(a, 1000), true);
    assert.equal(c.touch(a, 2001), false);
    // Wrong secrets: three per address per minute, then refused unchecked (the right one too) until the minute ends.
    for (let i = 0; i < 3; i++) assert.throws(() => c.connect(b, 'wrong-wrong', 100_000 + i), (e: unknown) => isCuemuxError(e, 'PERMISSION_DENIED'));
    assert.throws(() => c.connect(b, secret, 100_010), (e: unknown) => isCuemuxError(e, 'RESOURCE_EXHAUSTED') && /3 wrong OSC secrets within a minute/.test(e.message));
    assert.equal(c.connect({ address: '10.0.0.9', port: 1 }, secret, 100_020).dropped !== undefined, true, 'another address is not affected');
    assert.equal(c.connect(b, secret, 160_000).dropped !== undefined, true, 'a minute later it may try again');
    assert.throws(() => new OscConnections({ secret: 'short', idleMs: 1 }), /at least 8 characters/);
  });
});
