/**
 * The OSC codec (src/wire/osc-codec.ts) against osc-js as an independent reference, on thousands of seeded random
 * messages and nested bundles: what we encode osc-js reads back exactly, what osc-js encodes we read exactly, and
 * where osc-js can write the same bytes (ASCII strings, non-zero int64) the bytes are identical. Types osc-js does
 * not know (S, c, r, m) and values it cannot write (non-Latin-1 strings, int64 0) are checked by round trip and
 * against hand-written bytes.
 */
import assert from 'node:assert/strict';
import OSC from 'osc-js';
import { isCuemuxError } from '../src/common/errors';
import {
  decodeDatagram, encodeBundle, encodeMessage, ntpToUnixNs, unixNsToNtp, type OscSendArg, type OscValue,
} from '../src/wire/osc-codec';

/** A small seeded PRNG (mulberry32): the same messages every run, so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const OSCJS_TYPES = ['i', 'f', 'd', 'h', 't', 's', 'b', 'T', 'F', 'N', 'I'] as const;
const ALL_TYPES = [...OSCJS_TYPES, 'S', 'c', 'r', 'm'] as const;
type Letter = (typeof ALL_TYPES)[number];

/** A random argument of type `t`; `oscJsSafe` keeps to values osc-js writes correctly. */
function randomArg(r: () => number, t: Letter, oscJsSafe: boolean): OscSendArg {
  const int = (max: number): number => Math.floor(r() * max);
  const big64 = (): bigint => (BigInt(int(2 ** 32)) << 32n) | BigInt(int(2 ** 32));
  const text = (): string => {
    const alphabet = oscJsSafe ? 'abcXYZ019 /_-.:{}"' : 'abc é☃𝄞ü/-{}"';
    return Array.from({ length: int(12) }, () => [...alphabet][int([...alphabet].length)]).join('');
  };
  switch (t) {
    case 'i': return { type: 'i', value: int(2 ** 32) - 2 ** 31 };
    case 'f': return { type: 'f', value: Math.fround((r() - 0.5) * 10 ** int(8)) };
    case 'd': return { type: 'd', value: (r() - 0.5) * 10 ** (int(40) - 20) };
    case 'h': {
      const v = BigInt.asIntN(64, big64());
      return { type: 'h', value: oscJsSafe && v === 0n ? 1n : v };
    }
    case 't': {
      const v = big64();
      return { type: 't', value: oscJsSafe && v === 0n ? 1n : v };
    }
    case 's': case 'S': return { type: t, value: text() };
    case 'b': return { type: 'b', value: Buffer.from(Array.from({ length: int(40) }, () => int(256))) };
    case 'c': return { type: 'c', value: String.fromCodePoint(int(2) === 0 ? 0x20 + int(0x5f) : 0x100 + int(0x2000)) };
    case 'r': return { type: 'r', value: int(2 ** 32) };
    case 'm': return { type: 'm', value: Buffer.from([int(256), 0x90, int(128), int(128)]) };
    default: return { type: t };
  }
}

/** What decoding `arg` should give. */
function expected(arg: OscSendArg): OscValue {
  switch (arg.type) {
    case 'T': return true;
    case 'F': return false;
    case 'N': return null;
    case 'I': return Infinity;
    case 'b': case 'm': return Buffer.from(arg.value);
    default: return arg.value;
  }
}

function randomMessage(r: () => number, types: readonly Letter[], oscJsSafe: boolean): { address: string; args: OscSendArg[] } {
  const n = Math.floor(r() * 8);
  const address = `/cuemux/${Math.floor(r() * 1000)}/x${'y'.repeat(Math.floor(r() * 5))}`;
  return { address, args: Array.from({ length: n }, () => randomArg(r, types[Math.floor(r() * types.length)], oscJsSafe)) };
}

/** osc-js reads `bytes` (a copy: osc-js ignores a view's byteOffset). */
function oscJsDecode(bytes: Uint8Array): { address: string; args: unknown[] } {
  const m = new OSC.TypedMessage('/', []);
  m.unpack(new DataView(new Uint8Array(bytes).buffer));
  return { address: m.address, args: oscJsArgs([m])[0] };
}

/** The arguments osc-js decoded, blobs as Buffers (osc-js gives views of its buffer). */
function oscJsArgs(messages: Array<{ args: unknown[] }>): unknown[][] {
  return messages.map((m) => m.args.map((v) => (v instanceof Uint8Array ? Buffer.from(v) : v)));
}

function oscJsEncode(address: string, args: OscSendArg[]): Uint8Array {
  const m = new OSC.TypedMessage(address, []);
  for (const a of args) m.add(a.type as never, (a.value ?? null) as never);
  return m.pack();
}

describe('OSC codec against osc-js', function () {
  it('2,000 random messages of the types osc-js knows: osc-js reads ours, we read osc-js\'s, same bytes', function () {
    const r = prng(1);
    for (let k = 0; k < 2000; k++) {
      const { address, args } = randomMessage(r, OSCJS_TYPES, true);
      const ours = encodeMessage(address, args);
      const theirs = oscJsEncode(address, args);
      assert.deepEqual(Buffer.from(ours), Buffer.from(theirs), `bytes of message ${k}`);
      assert.deepEqual(oscJsDecode(ours), { address, args: args.map(expected) }, `osc-js reading message ${k}`);
      const [m] = decodeDatagram(theirs);
      assert.deepEqual(m, { address, args: args.map(expected), types: args.map((a) => a.type).join(''), timetagUnixNs: null }, `reading message ${k}`);
    }
  });

  it('2,000 random messages of every type (S c r m, UTF-8, int64 0 included) read back exactly', function () {
    const r = prng(2);
    for (let k = 0; k < 2000; k++) {
      const { address, args } = randomMessage(r, ALL_TYPES, false);
      const bytes = encodeMessage(address, args);
      assert.equal(bytes.byteLength % 4, 0);
      const [m] = decodeDatagram(bytes);
      assert.deepEqual(m, { address, args: args.map(expected), types: args.map((a) => a.type).join(''), timetagUnixNs: null }, `message ${k}`);
    }
    // int64 0 and a non-Latin-1 string are what osc-js cannot write; the bytes are the spec's.
    assert.deepEqual(Buffer.from(encodeMessage('/z', [{ type: 'h', value: 0n }, { type: 's', value: '☃' }])),
      Buffer.concat([Buffer.from('/z\0\0,hs\0', 'latin1'), Buffer.alloc(8), Buffer.from('e29883', 'hex'), Buffer.alloc(1)]));
    assert.deepEqual(Buffer.from(encodeMessage('/c', [{ type: 'c', value: '𝄞' }, { type: 'r', value: 0xff00ff80 }, { type: 'm', value: Buffer.from('00904011', 'hex') }])),
      Buffer.concat([Buffer.from('/c\0\0,crm\0\0\0\0', 'latin1'), Buffer.from('0001d11eff00ff8000904011', 'hex')]));
  });

  it('nested bundles: osc-js reads ours (times to its resolution), we read osc-js\'s, times exact to the ns', function () {
    const r = prng(3);
    const base = 1_780_000_000_000_000_000n;
    for (let k = 0; k < 300; k++) {
      const outerNs = base + BigInt(Math.floor(r() * 1e12));
      const innerNs = outerNs + BigInt(Math.floor(r() * 1e9));
      const inner = Array.from({ length: 1 + Math.floor(r() * 3) }, () => randomMessage(r, OSCJS_TYPES, true));
      const outer = Array.from({ length: 1 + Math.floor(r() * 3) }, () => randomMessage(r, OSCJS_TYPES, true));
      // Each nested bundle is its parent's last element: osc-js 2.4.1 reads a nested bundle to the end of the whole
      // datagram (it ignores the element size), so any element after one would be swallowed by it.
      const bytes = encodeBundle(outerNs, [
        ...outer.map((m) => encodeMessage(m.address, m.args)),
        encodeBundle(innerNs, [...inner.map((m) => encodeMessage(m.address, m.args)), encodeBundle(null, [encodeMessage('/now', [])])]),
      ]);
      const got = decodeDatagram(bytes);
      assert.deepEqual(got.map((m) => [m.address, m.args, m.timetagUnixNs]), [
        ...outer.map((m) => [m.address, m.args.map(expected), outerNs]),
        ...inner.map((m) => [m.address, m.args.map(expected), innerNs]),
        ['/now', [], innerNs], // "immediately" inside a bundle takes its time
      ], `bundle ${k}`);
      // osc-js reads the same tree, with the NTP fields we wrote.
      const packet = new OSC.Packet();
      packet.unpack(new DataView(new Uint8Array(bytes).buffer));
      const b = packet.value as InstanceType<typeof OSC.Bundle>;
      const ntp = unixNsToNtp(outerNs);
      assert.deepEqual([b.timetag.value.seconds, b.timetag.value.fractions], [ntp.seconds, ntp.fraction]);
      assert.equal(b.bundleElements.length, outer.length + 1);
      const nested = b.bundleElements[outer.length] as InstanceType<typeof OSC.Bundle>;
      assert.deepEqual(nested.bundleElements.slice(0, inner.length).map((m: { address: string }) => m.address), inner.map((m) => m.address));
      assert.deepEqual(oscJsArgs(nested.bundleElements.slice(0, inner.length) as never), inner.map((m) => m.args.map(expected)));
      // And osc-js's own bundle (whole-ms time, its resolution) reads here to the same ms.
      const ms = Number(outerNs / 1_000_000n);
      const theirs = new OSC.Bundle([new OSC.Message('/a', 1, 'x')], ms);
      const [a] = decodeDatagram(theirs.pack());
      assert.equal(Number(((a.timetagUnixNs as bigint) + 500_000n) / 1_000_000n), ms, `osc-js bundle ${k}`);
    }
  });

  it('timetags: ns ⇄ NTP exactly, the 2036 era, and refusals', function () {
    const r = prng(4);
    for (let k = 0; k < 10_000; k++) {
      // 1970 to 2096: both NTP eras.
      const ns = BigInt(Math.floor(r() * 4e9)) * 1_000_000_000n + BigInt(Math.floor(r() * 1e9));
      const t = unixNsToNtp(ns);
      assert.equal(ntpToUnixNs(t.seconds, t.fraction), ns, String(ns));
    }
    const after2036 = unixNsToNtp(2_200_000_000n * 1_000_000_000n);
    assert.ok(after2036.seconds < 0x8000_0000, 'era 1 wraps');
    assert.throws(() => unixNsToNtp(-100n * 365n * 86_400n * 1_000_000_000n), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => encodeBundle(null, [new Uint8Array(3)]), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT'));
  });

  it('truncating any message anywhere is refused, never read as shorter arguments', function () {
    const r = prng(5);
    for (let k = 0; k < 300; k++) {
      const { address, args } = randomMessage(r, ALL_TYPES, false);
      if (args.length === 0 || args.every((a) => 'TFNI'.includes(a.type))) continue;
      const bytes = Buffer.from(encodeMessage(address, args));
      for (let cut = 4; cut < bytes.length; cut += 4) {
        assert.throws(() => decodeDatagram(bytes.subarray(0, cut)), (e: unknown) => isCuemuxError(e, 'INVALID_ARGUMENT'), `${k} cut at ${cut}`);
      }
    }
  });
});
