/**
 * gRPC over TCP with TLS and a bearer token (issue 12): real servers (in-process and `cuemux serve` processes),
 * certificates made by openssl at test time, real grpc-js clients and the `cuemux status` CLI. A call with the token
 * over TLS is served; a missing or wrong token gets UNAUTHENTICATED and the next client is served; a plaintext client
 * or one that does not trust the CA cannot talk to the TLS port; mutual TLS refuses a client without a certificate of
 * the client CA; the Unix socket needs no token. `--listen` on a non-loopback address without TLS and a token is
 * refused before anything is bound, with exit code 2 and the flags to add; credential files that are missing or
 * garbage stop the start naming the file.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { once } from 'node:events';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MediaClient, MediaClientError, type MediaClientOptions } from '../src/clients/media-client';
import { isCuemuxError, errorMessage } from '../src/common/errors';
import { sameSecret } from '../src/common/secret-file';
import { isLoopbackListen, loadConfig } from '../src/server/server-config';
import { makeTestPki, type TestPki } from './support/certs';
import { runCli, startCli } from './support/cli';
import { makeLocalAddress, type LocalAddress } from './support/local-net';
import { ensureMedia } from './support/media';
import { spawnServer, startServer, type TestServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { childrenKilledAfterEach } from './support/wait';

/** A PEM file's text. */
const pem = (file: string): string => readFileSync(file, 'utf8');

/** The gRPC status code of a rejected call (or a thrown MediaClientError). */
async function codeOf(p: Promise<unknown>): Promise<grpc.status> {
  try {
    await p;
  } catch (e) {
    if (e instanceof MediaClientError) return e.code;
    throw e;
  }
  throw new Error('the call succeeded');
}

/** The first event of a stream, or its error. */
async function first<T>(stream: AsyncGenerator<T>): Promise<T> {
  for await (const v of stream) return v;
  throw new Error('the stream ended without an event');
}

describe('gRPC over TCP: TLS and bearer token', function () {
  this.timeout(120_000);
  let pki: TestPki;
  let pkiDir: string;
  let root: string;
  let lan: LocalAddress | null = null;
  let lanSkip = '';
  const servers: TestServer[] = [];
  const clients: MediaClient[] = [];
  // Servers started as processes: stopped with SIGTERM after each test (this hook runs before the afterEach below).
  const children = childrenKilledAfterEach('SIGTERM');

  const client = (address: string, options: MediaClientOptions = {}): MediaClient => {
    const c = new MediaClient(address, options);
    clients.push(c);
    return c;
  };
  const tls = (extra: Partial<NonNullable<MediaClientOptions['tls']>> = {}): NonNullable<MediaClientOptions['tls']> => ({ rootCerts: pem(pki.ca), ...extra });
  const secured = async (overrides: Parameters<typeof startServer>[0] = {}): Promise<TestServer> => {
    const s = await startServer({ mediaRoots: [root], tlsCert: pki.serverCert, tlsKey: pki.serverKey, tokenFile: pki.tokenFile, ...overrides });
    servers.push(s);
    return s;
  };
  const runDir = async (): Promise<string> => {
    const d = await scratchDir('grpc-sec-run');
    await fsp.chmod(d, 0o700);
    return d;
  };

  before(async function () {
    try {
      lan = await makeLocalAddress();
    } catch (e) {
      lanSkip = `no non-loopback address could be made (ip link add veth: ${errorMessage(e).split('\n')[0]})`;
    }
    pkiDir = await scratchDir('grpc-sec-pki');
    pki = await makeTestPki(pkiDir, lan === null ? [] : [lan.address]);
    root = await scratchDir('grpc-sec-root');
    await copyInto(await ensureMedia('mp4-h264-aac'), root, 'clip.mp4');
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) await s.stop();
  });

  after(async function () {
    await lan?.remove();
  });

  it('serves unary and streaming calls over TLS with the token; the Unix socket needs none', async function () {
    const s = await secured();
    const c = client(s.tcp, { tls: tls(), token: pki.token });
    const status = await c.getStatus();
    assert.equal(status.version, 'test');
    assert.ok((await c.ping()).roundTripNs > 0n);
    const info = await c.openMedia('clip.mp4');
    let packets = 0;
    for await (const b of c.readPackets({ mediaId: info.mediaId })) packets += b.packets.length;
    assert.equal(packets, 217, 'every packet of the clip over TLS');
    assert.ok((await first(c.watchClock())).generation >= 0);
    // The socket: no TLS, no token.
    const local = client(s.socket);
    assert.equal((await local.getStatus()).version, 'test');
  });

  it('a missing or wrong token gets UNAUTHENTICATED saying what to send; the server serves the next client', async function () {
    const s = await secured();
    const none = client(s.tcp, { tls: tls() });
    const e1 = await none.getStatus().catch((e: unknown) => e);
    assert.ok(e1 instanceof MediaClientError);
    assert.equal(e1.code, grpc.status.UNAUTHENTICATED);
    assert.match(e1.details, /no "authorization" metadata: calls over TCP need "authorization: Bearer <token>".*--token-file/);
    const wrong = client(s.tcp, { tls: tls(), token: pki.token.replace(/^./, (ch) => (ch === 'a' ? 'b' : 'a')) });
    const e2 = await wrong.getStatus().catch((e: unknown) => e);
    assert.ok(e2 instanceof MediaClientError);
    assert.equal(e2.code, grpc.status.UNAUTHENTICATED);
    assert.match(e2.details, /the bearer token is not this server's/);
    // Streaming calls are checked too, before the handler runs.
    assert.equal(await codeOf(first(wrong.watchClock())), grpc.status.UNAUTHENTICATED);
    assert.equal(await codeOf(first(none.follow({ output: 'video' }))), grpc.status.UNAUTHENTICATED);
    // And the services beside cuemux.v1 (health), on a raw channel with TLS but no token.
    const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
    const h = new Health(s.tcp, grpc.credentials.createSsl(Buffer.from(pem(pki.ca))));
    const healthCode = await new Promise<grpc.status>((resolve) => {
      (h as unknown as { check(r: object, cb: (e: grpc.ServiceError | null) => void): void })
        .check({ service: '' }, (e) => resolve(e === null ? grpc.status.OK : e.code));
    });
    h.close();
    assert.equal(healthCode, grpc.status.UNAUTHENTICATED);
    // Refused calls took no client slot and broke nothing: the next client (and the same connection, fixed) is served.
    const good = client(s.tcp, { tls: tls(), token: pki.token });
    const st = await good.getStatus();
    assert.equal(st.clients.length, 0);
    assert.equal((await first(good.watchClock())).state !== undefined, true);
  });

  it('a plaintext client, or one that does not trust the CA, cannot talk to the TLS port', async function () {
    const s = await secured();
    const plain = client(s.tcp);
    assert.equal(await codeOf(plain.getStatus({ timeout: 5_000 })), grpc.status.UNAVAILABLE);
    const untrusting = client(s.tcp, { tls: { rootCerts: pem(pki.otherCa) }, token: pki.token });
    assert.equal(await codeOf(untrusting.getStatus({ timeout: 5_000 })), grpc.status.UNAVAILABLE);
    // The server is unharmed.
    assert.equal((await client(s.tcp, { tls: tls(), token: pki.token }).getStatus()).version, 'test');
  });

  it('mutual TLS: a client certificate of the client CA is required, and the token still is', async function () {
    const s = await secured({ tlsClientCa: pki.ca });
    const noCert = client(s.tcp, { tls: tls(), token: pki.token });
    assert.equal(await codeOf(noCert.getStatus({ timeout: 5_000 })), grpc.status.UNAVAILABLE);
    const foreign = client(s.tcp, { tls: tls({ certChain: pem(pki.otherClientCert), privateKey: pem(pki.otherClientKey) }), token: pki.token });
    assert.equal(await codeOf(foreign.getStatus({ timeout: 5_000 })), grpc.status.UNAVAILABLE);
    const certNoToken = client(s.tcp, { tls: tls({ certChain: pem(pki.clientCert), privateKey: pem(pki.clientKey) }) });
    assert.equal(await codeOf(certNoToken.getStatus()), grpc.status.UNAUTHENTICATED);
    const ok = client(s.tcp, { tls: tls({ certChain: pem(pki.clientCert), privateKey: pem(pki.clientKey) }), token: pki.token });
    assert.equal((await ok.getStatus()).version, 'test');
  });

  it('the client refuses a token without TLS, and TLS on the Unix socket', function () {
    assert.throws(() => new MediaClient('127.0.0.1:1', { token: 'x'.repeat(32) }), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT') && /only over TLS/.test(e.message));
    assert.throws(() => new MediaClient('/tmp/x.sock', { tls: {} }), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT') && /Unix socket does not use TLS/.test(e.message));
  });

  it('cuemux status: --tls-ca and --token-file (or CUEMUX_TLS_CA, CUEMUX_TOKEN_FILE); a refused token exits 9', async function () {
    const s = await secured();
    const ok = await runCli(['status', '--target', s.tcp, '--tls-ca', pki.ca, '--token-file', pki.tokenFile, '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { version: string }).version, 'test');
    const env = await runCli(['status', '--target', s.tcp, '--json'], { env: { CUEMUX_TLS_CA: pki.ca, CUEMUX_TOKEN_FILE: pki.tokenFile } });
    assert.equal(env.code, 0, env.stderr);
    // The variables set for TCP do not break the socket.
    const sock = await runCli(['status', '--socket', s.socket, '--json'], { env: { CUEMUX_TLS_CA: pki.ca, CUEMUX_TOKEN_FILE: pki.tokenFile } });
    assert.equal(sock.code, 0, sock.stderr);
    const wrongToken = path.join(pkiDir, 'wrong-token');
    await fsp.writeFile(wrongToken, 'f'.repeat(64), { mode: 0o600 });
    const refused = await runCli(['status', '--target', s.tcp, '--tls-ca', pki.ca, '--token-file', wrongToken]);
    assert.equal(refused.code, 9, refused.stderr);
    assert.match(refused.stderr, /refused the call: .*UNAUTHENTICATED: the bearer token is not this server's/);
    const missing = await runCli(['status', '--target', s.tcp, '--tls-ca', path.join(pkiDir, 'nope.pem'), '--token-file', pki.tokenFile]);
    assert.equal(missing.code, 8, missing.stderr);
    assert.match(missing.stderr, /--tls-ca .*nope\.pem: no such file or directory/);
  });

  it('cuemux play-audio over TLS with the token: its decode worker follows; a wrong token ends it naming the token', async function () {
    const s = await secured();
    const wrongToken = path.join(pkiDir, 'wrong-token-play');
    await fsp.writeFile(wrongToken, 'e'.repeat(64), { mode: 0o600 });
    const refused = await runCli(['play-audio', '--target', s.tcp, '--tls-ca', pki.ca, '--token-file', wrongToken, '--rt-priority', '0', '--nice', '0', '--duration', '30']);
    assert.notEqual(refused.code, 0, refused.stderr);
    assert.match(refused.stderr, /refused to follow output "audio": the bearer token is not this server's/);
    const player = startCli(['play-audio', '--target', s.tcp, '--rt-priority', '0', '--nice', '0'], { env: { CUEMUX_TLS_CA: pki.ca, CUEMUX_TOKEN_FILE: pki.tokenFile } });
    children.push(player);
    // The Follow comes from the player's decode worker, over TLS with the token (the worker connects on its own).
    const deadline = Date.now() + 60_000;
    while (!s.server.status().clients.some((c) => c.output === 'audio')) {
      assert.ok(Date.now() < deadline, 'the player\'s Follow did not appear within 60 s');
      assert.equal(player.exitCode, null, 'the player is still running');
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('refuses a non-loopback --listen without TLS and a token before binding anything, exit 2, naming what to add', async function () {
    // Any non-loopback address will do: it is refused before any bind (this one need not exist on this machine).
    const dir = await runDir();
    const socket = path.join(dir, 's.sock');
    const bare = await runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', socket, '--media-root', root, '--listen', '10.231.250.9:50051']);
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /--listen 10\.231\.250\.9:50051 is not a loopback address: .*Add --tls-cert FILE --tls-key FILE \(encryption\) and --token-file FILE \(authentication\).*--insecure-listen/);
    await assert.rejects(fsp.access(socket), 'nothing was created: the socket is not there');
    await assert.rejects(fsp.access(`${socket}.lock`), 'nor its lock');
    const tlsOnly = await runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', socket, '--media-root', root, '--listen', '0.0.0.0:0', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey]);
    assert.equal(tlsOnly.code, 2, tlsOnly.stderr);
    assert.match(tlsOnly.stderr, /--listen 0\.0\.0\.0:0 is not a loopback address: .*Add --token-file FILE \(authentication\)/);
    assert.doesNotMatch(tlsOnly.stderr, /Add --tls-cert/);
    const v6 = await runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', socket, '--media-root', root, '--listen', '[::]:0'], { env: { CUEMUX_LOG_LEVEL: 'warn' } });
    assert.equal(v6.code, 2, v6.stderr);
    // From the environment and a config file alike.
    const env = await runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', socket, '--media-root', root], { env: { CUEMUX_LISTEN: '0.0.0.0:0' } });
    assert.equal(env.code, 2, env.stderr);
    const config = path.join(dir, 'c.json');
    await fsp.writeFile(config, JSON.stringify({ listen: '192.168.77.1:0', tokenFile: pki.tokenFile }));
    const file = await runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', socket, '--media-root', root, '--config', config]);
    assert.equal(file.code, 2, file.stderr);
    assert.match(file.stderr, /--token-file .*token needs TLS on --listen 192\.168\.77\.1:0/);
    await assert.rejects(fsp.access(socket));
    // The check itself.
    for (const a of ['127.0.0.1:1', '127.9.8.7:1', 'localhost:1', '[::1]:1']) assert.equal(isLoopbackListen(a), true, a);
    for (const a of ['0.0.0.0:1', '[::]:1', '10.0.0.1:1', 'media.show:1', '[::ffff:10.0.0.1]:1']) assert.equal(isLoopbackListen(a), false, a);
    assert.throws(() => loadConfig({ listen: '10.1.2.3:5', tlsCert: pki.serverCert }, undefined, {}), /TLS needs both --tls-cert and --tls-key/);
    assert.throws(() => loadConfig({ listen: '127.0.0.1:5', tlsClientCa: pki.ca }, undefined, {}), /--tls-client-ca .* needs TLS/);
    // Loopback without TLS stays allowed; TLS files and a token without --listen are ignored (shared env variable).
    assert.equal(loadConfig({ listen: '127.0.0.1:0' }, undefined, {}).listen, '127.0.0.1:0');
    assert.equal(loadConfig({ socket: '/tmp/x.sock' }, undefined, { CUEMUX_TOKEN_FILE: pki.tokenFile }).tokenFile, pki.tokenFile);
  });

  it('credential files that are missing, unreadable or garbage stop the start naming the file', async function () {
    const dir = await runDir();
    const socket = path.join(dir, 's.sock');
    const garbage = path.join(dir, 'garbage.pem');
    await fsp.writeFile(garbage, 'this is not a certificate\n');
    const shortToken = path.join(dir, 'short-token');
    await fsp.writeFile(shortToken, 'abc\n', { mode: 0o600 });
    const fifo = path.join(dir, 'fifo.pem');
    await import('node:child_process').then((cp) => cp.execFileSync('mkfifo', [fifo]));
    const serve = (...extra: string[]): ReturnType<typeof runCli> =>
      runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', socket, '--media-root', root, '--listen', '127.0.0.1:0', ...extra]);
    const tlsArgs = (cert: string, key: string): string[] => ['--tls-cert', cert, '--tls-key', key];
    const cases: Array<{ args: string[]; code: number; message: RegExp }> = [
      { args: tlsArgs(path.join(dir, 'none.pem'), pki.serverKey), code: 8, message: /--tls-cert .*none\.pem: no such file or directory/ },
      { args: tlsArgs(garbage, pki.serverKey), code: 2, message: /--tls-cert .*garbage\.pem: no PEM certificate in the file/ },
      { args: tlsArgs(pki.serverCert, garbage), code: 2, message: /--tls-key .*garbage\.pem: not a PEM private key/ },
      { args: tlsArgs(pki.serverCert, pki.clientKey), code: 2, message: /--tls-key .*client\.key is not the key of the certificate in --tls-cert .*server\.pem/ },
      { args: tlsArgs(fifo, pki.serverKey), code: 2, message: /--tls-cert .*fifo\.pem: not a regular file/ },
      { args: [...tlsArgs(pki.serverCert, pki.serverKey), '--tls-client-ca', garbage], code: 2, message: /--tls-client-ca .*garbage\.pem: no PEM certificate/ },
      { args: [...tlsArgs(pki.serverCert, pki.serverKey), '--token-file', shortToken], code: 2, message: /--token-file .*short-token: the secret is 3 characters, fewer than the 16 needed/ },
      { args: [...tlsArgs(pki.serverCert, pki.serverKey), '--token-file', path.join(dir, 'no-token')], code: 8, message: /--token-file .*no-token: no such file or directory/ },
    ];
    for (const c of cases) {
      const r = await serve(...c.args);
      assert.equal(r.code, c.code, `${c.args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, c.message);
      await assert.rejects(fsp.access(socket), `${c.args.join(' ')}: refused before the socket was made`);
    }
    if (process.getuid?.() === 0) {
      // An unreadable file: as another user (root reads anything).
      const asNobody = await runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', path.join('/tmp', `cmx-nobody-${process.pid}.sock`), '--media-root', '/tmp', '--listen', '127.0.0.1:0',
        ...tlsArgs(pki.serverCert, pki.serverKey)], { uid: 65534, gid: 65534 });
      assert.equal(asNobody.code, 9, asNobody.stderr);
      assert.match(asNobody.stderr, /--tls-cert .*server\.pem: permission denied|--tls-(cert|key) .*: permission denied/);
    }
  });

  it('cuemux serve from a config file (paths relative to it) serves TLS + token; the start lines say how to connect', async function () {
    const dir = await runDir();
    await Promise.all([pki.serverCert, pki.serverKey, pki.tokenFile].map((f) => fsp.copyFile(f, path.join(dir, path.basename(f)))));
    await fsp.chmod(path.join(dir, 'server.key'), 0o600);
    await fsp.chmod(path.join(dir, 'token'), 0o600);
    const config = path.join(dir, 'cuemux.json');
    await fsp.writeFile(config, JSON.stringify({ socket: 's.sock', mediaRoots: [root], listen: '127.0.0.1:0', tlsCert: 'server.pem', tlsKey: 'server.key', tokenFile: 'token', stateFile: 'none' }));
    const s = await spawnServer(['--config', config], { CUEMUX_LOG_LEVEL: 'warn' });
    children.push(s.child);
    const tcp = /TCP: +(\S+)/.exec(s.stdout())?.[1];
    assert.ok(tcp !== undefined, s.stdout());
    assert.match(s.stdout(), /status --target 127\.0\.0\.1:\d+ --tls-ca CA\.pem --token-file .*token/);
    assert.match(s.stdout(), /grpcurl -cacert CA\.pem -H "authorization: Bearer \$\(cat .*token\)"/);
    assert.equal((await client(tcp, { tls: tls(), token: pki.token }).getStatus()).version.length > 0, true);
    assert.equal(await codeOf(client(tcp, { tls: tls() }).getStatus()), grpc.status.UNAUTHENTICATED);
  });

  it('on a real non-loopback address: refused bare, served with TLS + token, and --insecure-listen warns loudly', async function () {
    if (lan === null) {
      if (this.test !== undefined) this.test.title += ` (skipped: ${lanSkip})`;
      this.skip();
    }
    const address = lan.address;
    const dir = await runDir();
    const socket = path.join(dir, 's.sock');
    const bare = await runCli(['serve', '--osc-port', 'off', '--state-file', 'none', '--socket', socket, '--media-root', root, '--listen', `${address}:0`]);
    assert.equal(bare.code, 2, bare.stderr);
    await assert.rejects(fsp.access(socket));
    const safe = await spawnServer(['--socket', socket, '--media-root', root, '--state-file', 'none', '--listen', `${address}:0`,
      '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--token-file', pki.tokenFile], { CUEMUX_LOG_LEVEL: 'info' });
    children.push(safe.child);
    const tcp = /TCP: +(\S+)/.exec(safe.stdout())?.[1] as string;
    assert.ok(tcp.startsWith(address), safe.stdout());
    const c = client(tcp, { tls: tls(), token: pki.token });
    const info = await c.openMedia('clip.mp4');
    assert.equal(info.streams.length, 2);
    assert.equal(await codeOf(client(tcp, { tls: tls() }).getStatus()), grpc.status.UNAUTHENTICATED);
    assert.doesNotMatch(safe.stderr(), /INSECURE/);
    c.close();
    safe.child.kill('SIGTERM');
    await once(safe.child, 'exit');

    const open = await spawnServer(['--socket', socket, '--media-root', root, '--state-file', 'none', '--listen', `${address}:0`, '--insecure-listen'],
      { CUEMUX_LOG_LEVEL: 'warn' });
    children.push(open.child);
    const openTcp = /TCP: +(\S+)/.exec(open.stdout())?.[1] as string;
    assert.match(open.stderr(), new RegExp(`INSECURE: gRPC listens on ${openTcp.replace(/\./g, '\\.')}, reachable from the network, without TLS and without a token \\(--insecure-listen\\)`));
    assert.equal((await client(openTcp).getStatus()).clients.length, 0, 'plaintext served, as asked');
  });

  it('compares secrets in constant time over their digests (equal, different, different lengths)', function () {
    assert.equal(sameSecret('abc', 'abc'), true);
    assert.equal(sameSecret('abd', 'abc'), false);
    assert.equal(sameSecret('abc', 'abcd'), false);
    assert.equal(sameSecret('', 'abc'), false);
  });
});
