/**
 * The OSC endpoint over real UDP on 127.0.0.1: messages from osc-js and from liblo's oscsend, replies read by liblo's
 * oscdump and by an independent decoder, bundle times to the millisecond (nested, "immediately", late), malformed
 * datagrams, misbehaving listeners, close(), and the router's argument helpers.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { once } from 'node:events';
import * as readline from 'node:readline';
import { promisify } from 'node:util';
import OSC from 'osc-js';
import { isCuemuxError, type CuemuxError } from '../src/common/errors';
import { setLogSink, type LogLevel, type LogSink } from '../src/common/logger';
import { unixNs } from '../src/common/time-source';
import { argBoolean, argNumber, argString, argTimeOrString, replyAddress } from '../src/server/osc-args';
import { OscEndpoint, type OscPeer, type OscRequest } from '../src/server/osc-endpoint';
import { decodeDatagram, encodeMessage, type OscValue } from '../src/wire/osc-codec';

const execFileAsync = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// An OSC encoder and decoder written from the 1.0 spec, independent of osc-js and of the module under test.

const NTP_UNIX_OFFSET_S = 2_208_988_800n;

function str(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const out = Buffer.alloc((bytes.length + 4) & ~3);
  bytes.copy(out);
  return out;
}
const i32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const msg = (address: string, types: string, ...args: Buffer[]): Buffer => Buffer.concat([str(address), str(`,${types}`), ...args]);

interface Ntp { seconds: number; fraction: number }
const IMMEDIATELY: Ntp = { seconds: 0, fraction: 1 };
/** Unix ns → NTP, fraction truncated (reading it back rounded to the nearest ns gives the same ns). */
function ntp(unixNs: bigint): Ntp {
  return {
    seconds: Number(unixNs / 1_000_000_000n + NTP_UNIX_OFFSET_S),
    fraction: Number(((unixNs % 1_000_000_000n) << 32n) / 1_000_000_000n),
  };
}
const msToNs = (ms: number): bigint => BigInt(ms) * 1_000_000n;

function bundle(time: Ntp, ...elements: Buffer[]): Buffer {
  const head = Buffer.alloc(16);
  head.write('#bundle\0', 'latin1');
  head.writeUInt32BE(time.seconds, 8);
  head.writeUInt32BE(time.fraction, 12);
  return Buffer.concat([head, ...elements.flatMap((e) => [i32(e.length), e])]);
}

interface Plain { address: string; types: string; args: unknown[] }
function plainDecode(buf: Buffer): Plain {
  let at = 0;
  const readStr = (): string => {
    const nul = buf.indexOf(0, at);
    assert.ok(nul >= 0, 'unterminated string');
    const s = buf.toString('utf8', at, nul);
    at = (nul + 4) & ~3;
    return s;
  };
  const address = readStr();
  const tags = readStr();
  assert.equal(tags[0], ',');
  const args: unknown[] = [];
  for (const t of tags.slice(1)) {
    switch (t) {
      case 'i': args.push(buf.readInt32BE(at)); at += 4; break;
      case 'f': args.push(buf.readFloatBE(at)); at += 4; break;
      case 'd': args.push(buf.readDoubleBE(at)); at += 8; break;
      case 'h': args.push(buf.readBigInt64BE(at)); at += 8; break;
      case 's': args.push(readStr()); break;
      case 'b': { const n = buf.readInt32BE(at); args.push(Buffer.from(buf.subarray(at + 4, at + 4 + n))); at += 4 + ((n + 3) & ~3); break; }
      case 'T': args.push(true); break;
      case 'F': args.push(false); break;
      case 'N': args.push(null); break;
      default: assert.fail(`unexpected type ${t}`);
    }
  }
  assert.equal(at, buf.length, 'trailing bytes');
  return { address, types: tags.slice(1), args };
}

// ---------------------------------------------------------------------------------------------------------------
// Harness

/** A delivered request, with when it was delivered on the clock the endpoint times bundles with (time-source's unixNs). */
interface Received { req: OscRequest; atNs: bigint }
interface Invalid { error: CuemuxError; from: OscPeer; address: string | null }

/** Records what an endpoint delivers, with the time of delivery on the endpoint's own wall clock. */
class Recorder {
  readonly requests: Received[] = [];
  readonly invalid: Invalid[] = [];
  constructor(readonly endpoint: OscEndpoint) {
    endpoint.on('request', (req) => { this.requests.push({ req, atNs: unixNs() }); });
    endpoint.on('invalid', (error, from, address) => { this.invalid.push({ error, from, address }); });
  }

  async until(what: string, done: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await sleep(2);
    }
  }

  async requestsN(n: number, timeoutMs?: number): Promise<Received[]> {
    await this.until(`${n} requests`, () => this.requests.length >= n, timeoutMs);
    return this.requests.slice(0, n);
  }
}

const endpoints: OscEndpoint[] = [];
const sockets: dgram.Socket[] = [];

async function open(options: Partial<Parameters<typeof OscEndpoint.open>[0]> = {}): Promise<{ ep: OscEndpoint; rec: Recorder }> {
  const ep = await OscEndpoint.open({ host: '127.0.0.1', port: 0, ...options });
  endpoints.push(ep);
  return { ep, rec: new Recorder(ep) };
}

async function client(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

function sendRaw(s: dgram.Socket, ep: OscEndpoint, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => s.send(bytes, ep.address.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function expectInvalidArgument(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isCuemuxError(e, 'INVALID_ARGUMENT'), String(e));
    assert.match(e.message, message);
    return true;
  });
}

const logs: Array<{ level: LogLevel; message: string }> = [];
let previousSink: LogSink | null = null;

describe('OSC endpoint', function () {
  this.timeout(20_000);

  before(function () {
    // Keep expected warnings (listener failures, refused datagrams) off the console and available to assertions.
    previousSink = setLogSink((level, _name, message) => { logs.push({ level, message }); });
  });
  after(function () {
    if (previousSink) setLogSink(previousSink);
  });
  afterEach(async function () {
    await Promise.all(endpoints.splice(0).map((ep) => ep.close()));
    await Promise.all(sockets.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  describe('receiving', function () {
    it('reports the bound port, and messages encoded by osc-js arrive with exact types (f vs d, whole-number floats)', async function () {
      const { ep, rec } = await open();
      assert.equal(ep.address.host, '127.0.0.1');
      assert.ok(ep.address.port > 0);
      const s = await client();
      // osc-js's untyped Message guesses types: a whole number becomes 'i', 2.5 'f'.
      await sendRaw(s, ep, new OSC.Message('/cuemux/cue/go', 1, 2.5, 'hi', true, false, null).pack());
      const typed = new OSC.TypedMessage('/cuemux/typed', []);
      typed.add('f', 3);
      typed.add('d', 0.1);
      typed.add('f', 0.1);
      typed.add('i', -5);
      typed.add('s', 'Q 1');
      typed.add('b', Buffer.from([1, 2, 3, 4, 5]) as unknown as Parameters<typeof typed.add>[1]);
      typed.add('h', 1234567890123n as unknown as Parameters<typeof typed.add>[1]);
      await sendRaw(s, ep, typed.pack());
      const [first, second] = await rec.requestsN(2);
      assert.deepEqual(first.req, {
        address: '/cuemux/cue/go', args: [1, 2.5, 'hi', true, false, null], types: 'ifsTFN',
        from: { address: '127.0.0.1', port: s.address().port }, timetagUnixNs: null, late: false,
      });
      assert.equal(second.req.address, '/cuemux/typed');
      assert.equal(second.req.types, 'fdfisbh');
      assert.deepEqual(second.req.args, [3, 0.1, Math.fround(0.1), -5, 'Q 1', Buffer.from([1, 2, 3, 4, 5]), 1234567890123n]);
      assert.equal(rec.invalid.length, 0);
    });

    it("messages sent by liblo's oscsend arrive with liblo's types", async function () {
      const { ep, rec } = await open();
      await execFileAsync('oscsend', ['127.0.0.1', String(ep.address.port), '/cuemux/x', 'ifsd', '1', '2.5', 'hello', '3.25']);
      await execFileAsync('oscsend', ['127.0.0.1', String(ep.address.port), '/cuemux/y', 'hSTFNcm', '-9007199254740993', 'sym', 'c', '0090407f']);
      const [x, y] = await rec.requestsN(2);
      assert.equal(x.req.address, '/cuemux/x');
      assert.equal(x.req.types, 'ifsd');
      assert.deepEqual(x.req.args, [1, 2.5, 'hello', 3.25]);
      assert.equal(y.req.address, '/cuemux/y');
      assert.equal(y.req.types, 'hSTFNcm');
      assert.deepEqual(y.req.args, [-9007199254740993n, 'sym', true, false, null, 'c', Buffer.from('0090407f', 'hex')]);
    });

    it('decodeDatagram reads a Buffer slice at a non-zero (unaligned) byteOffset', function () {
      const packet = msg('/cuemux/slice', 'isdb', i32(42), str('é'), Buffer.from('400921fb54442d18', 'hex'), i32(3), Buffer.from([9, 8, 7, 0]));
      const whole = Buffer.concat([Buffer.from('garbage!!'), packet, Buffer.from('tail')]);
      const slice = whole.subarray(9, 9 + packet.length);
      assert.equal(slice.byteOffset % 4, 1);
      assert.deepEqual(decodeDatagram(slice), [{ address: '/cuemux/slice', types: 'isdb', args: [42, 'é', Math.PI, Buffer.from([9, 8, 7])], timetagUnixNs: null }]);
      // And a plain Uint8Array view, as well as a bundle inside a slice.
      const b = bundle(IMMEDIATELY, packet);
      const padded = Buffer.concat([Buffer.alloc(4), b]); // itself possibly a slice of Node's buffer pool
      const view = new Uint8Array(padded.buffer, padded.byteOffset + 4, b.length);
      assert.equal(decodeDatagram(view)[0].address, '/cuemux/slice');
    });

    it('decodeDatagram: S, c, m, r, t, I, h, blobs, exact NTP conversion and the 2036 era', function () {
      const midi = Buffer.from('00904011', 'hex');
      const t = Buffer.from('0000000100000002', 'hex');
      const packet = msg('/cuemux/types', 'ScmrtIh', str('sym'), i32(0x41), midi, i32(-1), t, Buffer.from('fffffffffffffffe', 'hex'));
      const [m] = decodeDatagram(packet);
      assert.deepEqual(m.args, ['sym', 'A', midi, 0xffffffff, (1n << 32n) + 2n, Infinity, -2n]);
      assert.equal(m.types, 'ScmrtIh');
      // The blob is a copy, not a view into the datagram.
      const withBlob = msg('/b', 'b', i32(2), Buffer.from([1, 2, 0, 0]));
      const [blob] = decodeDatagram(withBlob);
      withBlob.fill(0);
      assert.deepEqual(blob.args[0], Buffer.from([1, 2]));
      // Fractions are exact: 0x80000000 is half a second; the largest fraction rounds to the next whole second.
      const half = bundle({ seconds: 3_900_000_000, fraction: 0x8000_0000 }, msg('/h', ''));
      assert.equal(decodeDatagram(half)[0].timetagUnixNs, (3_900_000_000n - NTP_UNIX_OFFSET_S) * 1_000_000_000n + 500_000_000n);
      const max = bundle({ seconds: 3_900_000_000, fraction: 0xffff_ffff }, msg('/h', ''));
      assert.equal(decodeDatagram(max)[0].timetagUnixNs, (3_900_000_001n - NTP_UNIX_OFFSET_S) * 1_000_000_000n);
      const ns = 1_780_000_000_123_456_789n;
      assert.equal(decodeDatagram(bundle(ntp(ns), msg('/h', '')))[0].timetagUnixNs, ns);
      // NTP seconds with the top bit clear are after the 2036 rollover.
      const era1 = decodeDatagram(bundle({ seconds: 16, fraction: 0 }, msg('/h', '')))[0].timetagUnixNs;
      assert.equal(era1, ((1n << 32n) + 16n - NTP_UNIX_OFFSET_S) * 1_000_000_000n);
      // All zeros is taken as "immediately", like 1.
      assert.equal(decodeDatagram(bundle({ seconds: 0, fraction: 0 }, msg('/h', '')))[0].timetagUnixNs, null);
    });

    it('decodeDatagram reads plain arguments (s S i f d h T F N I) exactly as osc-js reads them', function () {
      const f32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeFloatBE(n); return b; };
      const f64 = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeDoubleBE(n); return b; };
      const i64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b; };
      const cases = [
        msg('/cuemux/cue/go', ''),
        msg('/cuemux/cue/go', 's', str('A17')),
        msg('/cuemux/cue/go', 'ss', str('3'), str('00:10:00:00')),
        msg('/x', 'sss', str(''), str('abc'), str('abcd')), // empty, 3 bytes + NUL, 4 bytes + 4 NULs
        msg('/x', 'sS', str('été ☃ 𝄞'), str('sym')),
        msg('/x', 'iiff', i32(-2147483648), i32(2147483647), f32(0.1), f32(-0)),
        msg('/x', 'fdd', f32(NaN), f64(Math.PI), f64(-1e308)),
        msg('/x', 'hhTFNI', i64(-(2n ** 63n)), i64(2n ** 63n - 1n)),
      ];
      for (const packet of cases) {
        const [m] = decodeDatagram(packet);
        const reference = new OSC.TypedMessage('/', []);
        // osc-js has no S: same layout as s.
        const forOscJs = Buffer.from(packet);
        forOscJs.write(`,${m.types.replace(/S/g, 's')}`, str(m.address).length, 'latin1');
        reference.unpack(new DataView(forOscJs.buffer, forOscJs.byteOffset, forOscJs.byteLength));
        assert.deepEqual(m.args, reference.args, m.types);
      }
    });

    it('decodeDatagram refuses malformed datagrams, saying what is wrong', function () {
      const cases: Array<[string, Buffer, RegExp, string | null]> = [
        ['empty', Buffer.alloc(0), /empty datagram/, null],
        ['length', Buffer.from('/ab\0\0'), /length 5 is not a multiple of 4/, null],
        ['garbage', Buffer.from('8a3f01ce77e0a9b2', 'hex'), /not an OSC message or bundle \(starts with 0x8a3f01ce77e0a9b2\)/, null],
        ['no slash', Buffer.concat([str('cuemux/x'), str(',')]), /address "cuemux\/x" does not start with '\/'/, null],
        ['unterminated address', Buffer.from('/abc'), /address string is not NUL-terminated/, null],
        ['no type tags', str('/cuemux/x'), /missing or unterminated type tag string/, '/cuemux/x'],
        ['no comma', Buffer.concat([str('/cuemux/x'), str('i'), i32(1)]), /type tag string "i" does not start with ','/, '/cuemux/x'],
        ['unknown type', msg('/cuemux/x', 'iQ', i32(1), i32(2)), /type tag "Q" in ',iQ': unknown type/, '/cuemux/x'],
        ['array', msg('/cuemux/x', '[i]', i32(1)), /arrays/, '/cuemux/x'],
        ['truncated double', msg('/cuemux/x', 'id', i32(1), i32(0)), /truncated: the arguments for ',id' run past the end/, '/cuemux/x'],
        ['missing int', msg('/cuemux/x', 'ii', i32(1)), /truncated/, '/cuemux/x'],
        ['unterminated string arg', Buffer.concat([str('/cuemux/x'), str(',s'), Buffer.from('abcd')]), /truncated/, '/cuemux/x'],
        ['blob too long', msg('/cuemux/x', 'b', i32(64), i32(0)), /\/cuemux\/x/, '/cuemux/x'],
        ['negative blob', msg('/cuemux/x', 'b', i32(-1)), /malformed arguments/, '/cuemux/x'],
        ['trailing bytes', msg('/cuemux/x', 'i', i32(1), i32(2)), /4 unexpected bytes after the arguments/, '/cuemux/x'],
        ['element beyond', Buffer.concat([bundle(IMMEDIATELY), i32(1000), msg('/a', '')]), /element size 1000 at byte 16 goes beyond the end of the bundle \(8 bytes left\)/, null],
        ['odd element size', Buffer.concat([bundle(IMMEDIATELY), i32(6), msg('/a', '')]), /element size 6 .* not a positive multiple of 4/, null],
        ['short bundle', Buffer.from('#bundle\0\0\0\0\0'), /shorter than its 16-byte header/, null],
        ['nested earlier', bundle({ seconds: 3_900_000_010, fraction: 0 }, bundle({ seconds: 3_900_000_000, fraction: 0 }, msg('/a', ''))), /nested bundle is timed earlier/, null],
        ['bad element in bundle', bundle(IMMEDIATELY, msg('/ok', ''), msg('/bad', 'i')), /malformed OSC message \/bad: truncated/, '/bad'],
      ];
      for (const [label, bytes, message, address] of cases) {
        assert.throws(() => decodeDatagram(bytes), (e: unknown) => {
          assert.ok(isCuemuxError(e, 'INVALID_ARGUMENT'), `${label}: ${String(e)}`);
          assert.match(e.message, message, label);
          assert.equal(e.details.address, address, label);
          return true;
        }, label);
      }
      let deep = msg('/deep', '');
      for (let k = 0; k < 20; k++) deep = bundle(IMMEDIATELY, deep);
      expectInvalidArgument(() => decodeDatagram(deep), /nested more than 16 deep/);
    });

    it('each malformed datagram gives one invalid event naming the sender, and the next good message still arrives', async function () {
      const { ep, rec } = await open();
      const s = await client();
      const sender = `127.0.0.1:${s.address().port}`;
      let seed = 12345;
      const random = Buffer.from(Array.from({ length: 64 }, () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) >>> 16 & 0xff));
      const cases: Array<[string, Buffer, RegExp, string | null]> = [
        ['random bytes', random, /not an OSC message or bundle/, null],
        ['truncated message', msg('/cuemux/x', 'd', i32(0)), /malformed OSC message \/cuemux\/x: truncated/, '/cuemux/x'],
        ['bundle size beyond the datagram', Buffer.concat([bundle(IMMEDIATELY, msg('/cuemux/a', '')), i32(4096), msg('/cuemux/b', '')]), /goes beyond the end of the bundle/, null],
        ['address without /', Buffer.concat([str('cuemux/x'), str(',i'), i32(1)]), /does not start with '\/'/, null],
      ];
      for (const [k, [label, bytes, message, address]] of cases.entries()) {
        await sendRaw(s, ep, bytes);
        await sendRaw(s, ep, msg('/cuemux/good', 'i', i32(k)));
        await rec.requestsN(k + 1);
        assert.equal(rec.invalid.length, k + 1, label);
        const { error, from, address: reported } = rec.invalid[k];
        assert.equal(error.code, 'INVALID_ARGUMENT', label);
        assert.match(error.message, message, label);
        assert.ok(error.message.includes(`from ${sender}`), `${label}: ${error.message}`);
        assert.deepEqual(from, { address: '127.0.0.1', port: s.address().port }, label);
        assert.equal(reported, address, label);
        assert.deepEqual(rec.requests[k].req.args, [k], label);
      }
      // Nothing of a refused bundle is delivered, not even its well-formed first message.
      assert.deepEqual(rec.requests.map((r) => r.req.address), cases.map(() => '/cuemux/good'));
    });

    it('a listener that throws or rejects is logged and does not stop delivery to the next listener or message', async function () {
      const { ep, rec } = await open();
      const before = logs.length;
      ep.on('request', () => { throw new Error('boom from a bad handler'); });
      ep.on('request', () => Promise.reject(new Error('async boom')));
      ep.on('invalid', () => { throw new Error('boom on invalid'); });
      const later: string[] = [];
      ep.on('request', (r) => { later.push(r.address); });
      const s = await client();
      await sendRaw(s, ep, msg('/cuemux/one', ''));
      await sendRaw(s, ep, Buffer.from('garbage!'));
      await sendRaw(s, ep, msg('/cuemux/two', ''));
      const got = await rec.requestsN(2);
      assert.deepEqual(got.map((r) => r.req.address), ['/cuemux/one', '/cuemux/two']);
      assert.equal(rec.invalid.length, 1);
      await sleep(10);
      assert.deepEqual(later, ['/cuemux/one', '/cuemux/two']);
      const errors = logs.slice(before).filter((l) => l.level === 'error').map((l) => l.message);
      assert.equal(errors.filter((m) => m.includes('boom from a bad handler')).length, 2);
      assert.equal(errors.filter((m) => m.includes('async boom')).length, 2);
      assert.equal(errors.filter((m) => m.includes('boom on invalid')).length, 1);
    });
  });

  describe('bundles', function () {
    it('a bundle timed 300 ms ahead (encoded by osc-js) runs no earlier than its time, which is kept to the µs', async function () {
      const { ep, rec } = await open();
      const s = await client();
      // Aim at the middle of a second: rounding the fraction to whole seconds (osc-js) would be >= 350 ms off, and
      // rounding down would run it early.
      while (Math.abs(((Date.now() + 300) % 1000) - 500) > 150) await sleep(5);
      const target = Date.now() + 300;
      await sendRaw(s, ep, new OSC.Bundle([new OSC.Message('/cuemux/cue/go', 'Q1')], target).pack());
      const [{ req, atNs }] = await rec.requestsN(1);
      // Not before its time, on the clock the endpoint times bundles with (how late is the machine's load).
      assert.ok(req.timetagUnixNs !== null && atNs >= req.timetagUnixNs, `ran ${Number((req.timetagUnixNs ?? 0n) - atNs) / 1e6} ms early`);
      // osc-js encodes the time through a float division (ms / 1000): up to ~0.1 µs off; decoding is exact.
      const error = (req.timetagUnixNs ?? 0n) - msToNs(target);
      assert.ok(error > -1000n && error < 1000n, `timetag off by ${error} ns`);
      assert.equal(req.late, false);
      assert.deepEqual(req.args, ['Q1']);
      assert.equal(ep.scheduled, 0);
    });

    it('"immediately" runs at once; a past time runs at once marked late', async function () {
      const { ep, rec } = await open();
      const s = await client();
      await sendRaw(s, ep, bundle(IMMEDIATELY, msg('/cuemux/now', 'i', i32(1))));
      const past = msToNs(Date.now() - 5000) + 123_456n;
      await sendRaw(s, ep, bundle(ntp(past), msg('/cuemux/past', 'i', i32(2))));
      const [now, late] = await rec.requestsN(2);
      assert.deepEqual([now.req.address, now.req.timetagUnixNs, now.req.late], ['/cuemux/now', null, false]);
      // `late` is set only where a message runs on arrival (a queued one is never late): it was not queued.
      assert.deepEqual([late.req.address, late.req.timetagUnixNs, late.req.late], ['/cuemux/past', past, true]);
      assert.ok(late.atNs > past, 'delivered after its (past) time');
      assert.equal(ep.scheduled, 0);
    });

    it('nested bundles: inner times honoured, an inner "immediately" takes the outer time, order kept', async function () {
      const { ep, rec } = await open();
      const s = await client();
      const t0 = Date.now();
      const outer = msToNs(t0 + 150);
      const inner = msToNs(t0 + 250);
      await sendRaw(s, ep, bundle(ntp(outer),
        msg('/cuemux/a', ''),
        bundle(ntp(inner), msg('/cuemux/b', ''), msg('/cuemux/c', '')),
        bundle(IMMEDIATELY, msg('/cuemux/d', '')),
        msg('/cuemux/e', '')));
      const got = await rec.requestsN(5);
      assert.deepEqual(got.map((r) => r.req.address), ['/cuemux/a', '/cuemux/d', '/cuemux/e', '/cuemux/b', '/cuemux/c']);
      assert.deepEqual(got.map((r) => r.req.timetagUnixNs), [outer, outer, outer, inner, inner]);
      // Not before their times, on the endpoint's clock.
      assert.ok(got.slice(0, 3).every((r) => r.atNs >= outer), 'the outer messages ran no earlier than the outer time');
      assert.ok(got.slice(3).every((r) => r.atNs >= inner), 'the inner bundle ran no earlier than its time');
      assert.ok(got.every((r) => !r.req.late));
    });

    it('messages of one bundle are delivered in order, immediate or scheduled', async function () {
      const { ep, rec } = await open();
      const s = await client();
      const n = 30;
      const items = (tag: string): Buffer[] => Array.from({ length: n }, (_, k) => msg(`/cuemux/${tag}`, 'i', i32(k)));
      await sendRaw(s, ep, bundle(IMMEDIATELY, ...items('now')));
      await sendRaw(s, ep, bundle(ntp(msToNs(Date.now() + 60)), ...items('later')));
      const got = await rec.requestsN(2 * n);
      const expected = [...Array.from({ length: n }, (_, k) => `now ${k}`), ...Array.from({ length: n }, (_, k) => `later ${k}`)];
      assert.deepEqual(got.map((r) => `${r.req.address.slice(8)} ${String(r.req.args[0])}`), expected);
    });

    it('refuses bundles too far ahead and beyond the scheduling limit, as a whole', async function () {
      const { ep, rec } = await open({ maxScheduled: 3 });
      const s = await client();
      // Far enough ahead that no stall of the machine lets them run before the bare message is checked.
      const soon = ntp(msToNs(Date.now() + 60_000));
      await sendRaw(s, ep, bundle(ntp(msToNs(Date.now() + 25 * 3600 * 1000)), msg('/cuemux/far', '')));
      await sendRaw(s, ep, bundle(soon, msg('/cuemux/s1', ''), msg('/cuemux/s2', '')));
      await sendRaw(s, ep, bundle(soon, msg('/cuemux/s3', ''), msg('/cuemux/s4', '')));
      await sendRaw(s, ep, msg('/cuemux/bare', ''));
      await rec.requestsN(1);
      assert.equal(rec.requests[0].req.address, '/cuemux/bare');
      assert.equal(ep.scheduled, 2);
      assert.equal(rec.invalid.length, 2);
      assert.equal(rec.invalid[0].error.code, 'INVALID_ARGUMENT');
      assert.match(rec.invalid[0].error.message, /\/cuemux\/far is timed \d+ ms ahead, more than the 86400000 ms accepted/);
      assert.equal(rec.invalid[0].address, '/cuemux/far');
      assert.equal(rec.invalid[1].error.code, 'RESOURCE_EXHAUSTED');
      assert.match(rec.invalid[1].error.message, /2 more messages would exceed the 3 waiting/);
      assert.equal(rec.invalid[1].address, '/cuemux/s3');
    });
  });

  describe('replies', function () {
    it("send() is read by liblo's oscdump: address, types, and a UTF-8 JSON string", async function () {
      const { ep } = await open();
      const port = await freeUdpPort();
      const dump = spawn('oscdump', ['-L', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        const lines: string[] = [];
        readline.createInterface({ input: dump.stdout }).on('line', (line) => lines.push(line));
        const json = JSON.stringify({ ok: true, cue: '1', name: 'Intro – é' });
        const address = replyAddress('/cuemux/cue/go');
        // oscdump prints nothing until a message arrives: send until it has started listening and shows one.
        const deadline = Date.now() + 5000;
        while (lines.length === 0) {
          assert.ok(Date.now() < deadline, 'oscdump printed nothing');
          await ep.send({ address: '127.0.0.1', port }, address, [
            { type: 'i', value: 42 }, { type: 'f', value: 2.5 }, { type: 'd', value: 0.125 }, { type: 'h', value: 0n },
            { type: 'T' }, { type: 'N' }, { type: 's', value: json },
          ]);
          await sleep(50);
        }
        // e.g. `eeac2269.3ba91969 /cuemux/reply/cue/go ifdhTNs 42 2.500000 0.125000 0 #T Nil "{...}"`
        const match = /^[0-9a-f]+\.[0-9a-f]+ (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) "(.*)"$/.exec(lines[0]);
        assert.ok(match, lines[0]);
        const [, addr, types, i, f, d, h, t, n, s] = match;
        assert.equal(addr, '/cuemux/reply/cue/go');
        assert.equal(types, 'ifdhTNs');
        assert.deepEqual([Number(i), Number(f), Number(d), h, t, n], [42, 2.5, 0.125, '0', '#T', 'Nil']);
        assert.deepEqual(JSON.parse(s), JSON.parse(json));
      } finally {
        dump.kill();
      }
    });

    it('send() is decoded independently: exact types, int64 zero, UTF-8, blobs', async function () {
      const { ep } = await open();
      const s = await client();
      const received = once(s, 'message') as Promise<[Buffer, dgram.RemoteInfo]>;
      await ep.send({ address: '127.0.0.1', port: s.address().port }, '/cuemux/reply/status', [
        { type: 'f', value: 3 }, { type: 'd', value: 3 }, { type: 'i', value: -2_147_483_648 }, { type: 'h', value: 0n },
        { type: 'h', value: -(2n ** 63n) }, { type: 's', value: '' }, { type: 's', value: '€ ✓' }, { type: 'b', value: Buffer.from('xyz').subarray(1) },
        { type: 'T' }, { type: 'F' }, { type: 'N', value: null },
      ]);
      const [bytes, rinfo] = await received;
      assert.equal(rinfo.port, ep.address.port);
      assert.deepEqual(plainDecode(bytes), {
        address: '/cuemux/reply/status', types: 'fdihhssbTFN',
        args: [3, 3, -2_147_483_648, 0n, -(2n ** 63n), '', '€ ✓', Buffer.from('yz'), true, false, null],
      });
    });

    it('encodeMessage refuses what osc-js would silently mangle', function () {
      expectInvalidArgument(() => encodeMessage('/x', [{ type: 'i', value: 2 ** 31 }]), /argument 1 \(i\) must be an integer in the int32 range, got 2147483648/);
      expectInvalidArgument(() => encodeMessage('/x', [{ type: 'i', value: 1.5 }]), /int32/);
      expectInvalidArgument(() => encodeMessage('/x', [{ type: 's', value: 'a\0b' }]), /NUL/);
      expectInvalidArgument(() => encodeMessage('/x', [{ type: 'h', value: 2n ** 63n }]), /int64/);
      expectInvalidArgument(() => encodeMessage('/x', [{ type: 'q' } as never]), /unsupported type/);
      expectInvalidArgument(() => encodeMessage('x', []), /starting with '\/'/);
      expectInvalidArgument(() => encodeMessage('/a b', []), /without spaces/);
      expectInvalidArgument(() => encodeMessage('/x/', []), /must not end with '\/'/);
      expectInvalidArgument(() => encodeMessage('/x', [{ type: 'b', value: Buffer.alloc(70_000) }]), /more than one UDP datagram/);
      assert.deepEqual(decodeDatagram(encodeMessage('/', [])), [{ address: '/', args: [], types: '', timetagUnixNs: null }]);
    });
  });

  describe('lifecycle', function () {
    it('close() twice is fine, drops scheduled messages, and send() afterwards rejects with CLOSED', async function () {
      const { ep, rec } = await open();
      const s = await client();
      const due = Date.now() + 2000;
      await sendRaw(s, ep, bundle(ntp(msToNs(due)), msg('/cuemux/later', '')));
      await rec.until('the bundle to be scheduled', () => ep.scheduled === 1 || rec.requests.length > 0);
      assert.equal(rec.requests.length, 0, 'the bundle ran before it was due');
      const first = ep.close();
      const second = ep.close();
      assert.equal(first, second);
      await Promise.all([first, second]);
      assert.equal(ep.scheduled, 0);
      await assert.rejects(ep.send({ address: '127.0.0.1', port: s.address().port }, '/cuemux/reply/x', []),
        (e: unknown) => isCuemuxError(e, 'CLOSED'));
      // Past the bundle's time: the dropped message never runs.
      while (Date.now() < due + 200) await sleep(50);
      assert.equal(rec.requests.length, 0);
      // The port is released: a new endpoint can take it.
      const again = await OscEndpoint.open({ host: '127.0.0.1', port: ep.address.port });
      endpoints.push(again);
    });

    it('open() fails with a CuemuxError for a port in use or out of range; udp6 when the host has a colon', async function () {
      const { ep } = await open();
      await assert.rejects(OscEndpoint.open({ host: '127.0.0.1', port: ep.address.port }),
        (e: unknown) => isCuemuxError(e, 'RESOURCE_EXHAUSTED') && /127\.0\.0\.1:\d+.*another program/.test(e.message));
      await assert.rejects(OscEndpoint.open({ host: '127.0.0.1', port: 70_000 }), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT'));
      let v6: OscEndpoint;
      try {
        v6 = await OscEndpoint.open({ host: '::1', port: 0 });
      } catch (e) {
        if (isCuemuxError(e, 'INVALID_ARGUMENT')) return this.skip(); // no IPv6 loopback here
        throw e;
      }
      endpoints.push(v6);
      const rec = new Recorder(v6);
      // (liblo's oscsend here has no IPv6: "Address family for hostname not supported".)
      const s6 = dgram.createSocket('udp6');
      sockets.push(s6);
      s6.bind(0, '::1');
      await once(s6, 'listening');
      await new Promise<void>((resolve, reject) => s6.send(msg('/cuemux/v6', 'i', i32(6)), v6.address.port, '::1', (e) => (e ? reject(e) : resolve())));
      const [{ req }] = await rec.requestsN(1);
      assert.deepEqual([req.address, req.args, req.from.address], ['/cuemux/v6', [6], '::1']);
    });
  });

  describe('argument helpers', function () {
    const req = (types: string, ...args: OscValue[]): OscRequest =>
      ({ address: '/cuemux/cue/go', types, args, from: { address: '127.0.0.1', port: 9000 }, timetagUnixNs: null, late: false });

    it('argNumber accepts i, f, d, h and numeric strings', function () {
      assert.equal(argNumber(req('i', 3), 0, 'fade'), 3);
      assert.equal(argNumber(req('f', Math.fround(1.1)), 0, 'fade'), 1.1);
      assert.equal(argNumber(req('f', 3), 0, 'fade'), 3);
      assert.equal(argNumber(req('d', 0.1), 0, 'fade'), 0.1);
      assert.equal(argNumber(req('h', -42n), 0, 'fade'), -42);
      assert.equal(argNumber(req('s', ' 2.5 '), 0, 'fade'), 2.5);
      assert.equal(argNumber(req('S', '-1e3'), 0, 'fade'), -1000);
      assert.equal(argNumber(req('s', '.5'), 0, 'fade'), 0.5);
      assert.equal(argNumber(req('i', 1), 1, 'fade', { optional: true }), undefined);
      assert.equal(argNumber(req('iN', 1, null), 1, 'fade', { optional: true }), undefined);
    });

    it('argNumber rejects bad values naming the address, the argument and the value', function () {
      expectInvalidArgument(() => argNumber(req('is', 1, 'abc'), 1, 'fade'), /^\/cuemux\/cue\/go: argument 2 \(fade\) must be a finite number, got string "abc"$/);
      for (const bad of ['', '  ', 'NaN', 'Infinity', '-Infinity', '0x10', '1,5', '1 2']) {
        expectInvalidArgument(() => argNumber(req('s', bad), 0, 'fade'), new RegExp(`argument 1 \\(fade\\) .* got string ${JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
      }
      expectInvalidArgument(() => argNumber(req('f', NaN), 0, 'fade'), /got float32 NaN/);
      expectInvalidArgument(() => argNumber(req('I', Infinity), 0, 'fade'), /got infinitum \(I\)/);
      expectInvalidArgument(() => argNumber(req('h', 2n ** 60n), 0, 'fade'), /got int64 1152921504606846976/);
      expectInvalidArgument(() => argNumber(req('T', true), 0, 'fade'), /got true \(T\)/);
      expectInvalidArgument(() => argNumber(req('b', Buffer.alloc(3)), 0, 'fade'), /got blob of 3 bytes/);
      expectInvalidArgument(() => argNumber(req('i', 1), 2, 'fade'), /^\/cuemux\/cue\/go: argument 3 \(fade\) is missing \(the message has 1 argument\)$/);
      expectInvalidArgument(() => argNumber(req('N', null), 0, 'fade'), /argument 1 \(fade\) is required, got nil \(N\)/);
    });

    it('argString accepts s, S, c and numbers; argBoolean T/F, 0/1 and words; argTimeOrString numbers or strings', function () {
      assert.equal(argString(req('s', ' Q 1 '), 0, 'cue'), ' Q 1 ');
      assert.equal(argString(req('S', 'sym'), 0, 'cue'), 'sym');
      assert.equal(argString(req('i', 1), 0, 'cue'), '1');
      assert.equal(argString(req('f', Math.fround(1.5)), 0, 'cue'), '1.5');
      assert.equal(argString(req('f', Math.fround(2.1)), 0, 'cue'), '2.1');
      assert.equal(argString(req('d', 10), 0, 'cue'), '10');
      assert.equal(argString(req('h', 12345678901234567890n), 0, 'cue'), '12345678901234567890');
      assert.equal(argString(req(''), 0, 'cue', { optional: true }), undefined);
      expectInvalidArgument(() => argString(req('T', true), 0, 'cue'), /^\/cuemux\/cue\/go: argument 1 \(cue\) must be a string or a number, got true \(T\)$/);
      expectInvalidArgument(() => argString(req('d', NaN), 0, 'cue'), /got double NaN/);

      for (const [types, value, expected] of [['T', true, true], ['F', false, false], ['i', 1, true], ['i', 0, false], ['f', 1, true],
        ['d', 0, false], ['h', 1n, true], ['s', 'true', true], ['s', ' OFF ', false], ['s', 'On', true], ['s', '0', false], ['S', '1', true]] as const) {
        assert.equal(argBoolean(req(types, value), 0, 'loop'), expected, `${types} ${String(value)}`);
      }
      assert.equal(argBoolean(req(''), 0, 'loop', { optional: true }), undefined);
      expectInvalidArgument(() => argBoolean(req('i', 2), 0, 'loop'), /^\/cuemux\/cue\/go: argument 1 \(loop\) must be a boolean .*, got int32 2$/);
      expectInvalidArgument(() => argBoolean(req('s', 'yes'), 0, 'loop'), /got string "yes"/);
      expectInvalidArgument(() => argBoolean(req('f', 0.5), 0, 'loop'), /got float32 0.5/);

      assert.equal(argTimeOrString(req('i', 5), 0, 'at'), 5);
      assert.equal(argTimeOrString(req('d', 1.5), 0, 'at'), 1.5);
      assert.equal(argTimeOrString(req('f', Math.fround(0.1)), 0, 'at'), 0.1);
      assert.equal(argTimeOrString(req('s', '00:01:02:03'), 0, 'at'), '00:01:02:03');
      assert.equal(argTimeOrString(req('s', ' 12 '), 0, 'at'), ' 12 ');
      expectInvalidArgument(() => argTimeOrString(req('F', false), 0, 'at'), /^\/cuemux\/cue\/go: argument 1 \(at\) must be seconds or a timecode string, got false \(F\)$/);
      expectInvalidArgument(() => argTimeOrString(req(''), 0, 'at'), /argument 1 \(at\) is missing \(the message has 0 arguments\)/);
    });

    it('replyAddress', function () {
      assert.equal(replyAddress('/cuemux/cue/go'), '/cuemux/reply/cue/go');
      assert.equal(replyAddress('/cuemux/status'), '/cuemux/reply/status');
      assert.equal(replyAddress('/other/thing'), '/cuemux/reply/other/thing');
      assert.equal(replyAddress('/cuemux'), '/cuemux/reply/cuemux');
    });
  });
});
