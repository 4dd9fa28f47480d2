/**
 * `node dist/scripts/bench-osc-codec.js` — the measurement behind src/wire/osc-codec.ts's choice of its own codec over
 * osc-js: cost per encode/decode of typical show-control datagrams, and what each gets right on blobs, chars, MIDI,
 * int64, timetags, nested bundles, UTF-8 strings, Buffer slices and truncated input. osc-js is used as its API
 * intends (Packet#unpack, TypedMessage#pack), without the sentinel and Latin-1 tricks the endpoint once needed.
 */
/* eslint-disable no-console */
import OSC from 'osc-js';
import { decodeDatagram, encodeBundle, encodeMessage, type OscSendArg } from '../src/wire/osc-codec';
import { errorMessage } from '../src/common/errors';

const ITERATIONS = 50_000;
const RUNS = 3;

/** Best of RUNS of ITERATIONS calls, in µs per call. */
function cost(fn: () => unknown): number {
  let best = Infinity;
  for (let run = 0; run < RUNS; run++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ITERATIONS; i++) fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e3 / ITERATIONS);
  }
  return best;
}

/** osc-js decoding a datagram (a copy: its dataView() ignores byteOffset), as an application would call it. */
function oscJsDecode(bytes: Uint8Array): unknown {
  const packet = new OSC.Packet();
  packet.unpack(new DataView(new Uint8Array(bytes).buffer));
  return packet.value;
}

function oscJsEncode(address: string, args: readonly OscSendArg[]): Uint8Array {
  const m = new OSC.TypedMessage(address, []);
  for (const a of args) m.add(a.type as never, (a.value ?? null) as never);
  return m.pack();
}

/** Runs `fn`; its result, or the error's message. */
function attempt<T>(fn: () => T): T | string {
  try {
    return fn();
  } catch (e) {
    return `throws: ${errorMessage(e)}`;
  }
}

const go = encodeMessage('/cuemux/cue/go', [{ type: 's', value: 'A17' }]);
const mixedArgs: OscSendArg[] = [{ type: 'b', value: Buffer.alloc(40, 7) }, { type: 'i', value: 3 }, { type: 'h', value: 1234567890123n }];
const mixed = encodeMessage('/cuemux/blob', mixedArgs);
const nested = encodeBundle(1_780_000_000_000_000_000n, [
  encodeBundle(1_780_000_000_100_000_000n, Array.from({ length: 4 }, (_, k) => encodeMessage(`/cuemux/a/${k}`, [{ type: 'f', value: k }]))),
  encodeBundle(1_780_000_000_200_000_000n, Array.from({ length: 4 }, (_, k) => encodeMessage(`/cuemux/b/${k}`, [{ type: 's', value: `v${k}` }]))),
]);
const reply: OscSendArg[] = [{ type: 's', value: JSON.stringify({ address: '/cuemux/cue/go', status: 'ok', data: { cue: 'A17', clock: 'running', positionSeconds: 123.456, standby: 'A18', note: 'é' } }).padEnd(200, ' ') }];

console.log(`cost per call, µs (best of ${RUNS} × ${ITERATIONS.toLocaleString()}):`);
const row = (what: string, ours: number, theirs: number): void => console.log(`  ${what.padEnd(42)} own ${ours.toFixed(2)}   osc-js ${theirs.toFixed(2)}   (${(theirs / ours).toFixed(1)}×)`);
row('decode GO (/cuemux/cue/go ,s "A17")', cost(() => decodeDatagram(go)), cost(() => oscJsDecode(go)));
row('decode 40-byte blob + int32 + int64', cost(() => decodeDatagram(mixed)), cost(() => oscJsDecode(mixed)));
row('decode bundle of 2 nested bundles × 4 msgs', cost(() => decodeDatagram(nested)), cost(() => oscJsDecode(nested)));
row('encode GO', cost(() => encodeMessage('/cuemux/cue/go', [{ type: 's', value: 'A17' }])), cost(() => oscJsEncode('/cuemux/cue/go', [{ type: 's', value: 'A17' }])));
row('encode 200-byte JSON reply', cost(() => encodeMessage('/cuemux/reply/cue/go', reply)), cost(() => oscJsEncode('/cuemux/reply/cue/go', reply)));

console.log('\ncorrectness (each case: own / osc-js, against the OSC 1.0 bytes):');
const hex = (b: Uint8Array | string): string => (typeof b === 'string' ? b : Buffer.from(b).toString('hex'));
const cases: Array<[string, () => unknown, () => unknown, unknown]> = [
  ['int64 0 encodes as 8 zero bytes', () => hex(encodeMessage('/h', [{ type: 'h', value: 0n }])), () => hex(attempt(() => oscJsEncode('/h', [{ type: 'h', value: 0n }]))),
    '2f680000' + '2c680000' + '0000000000000000'],
  ['UTF-8 string "☃" encodes as e2 98 83', () => hex(encodeMessage('/s', [{ type: 's', value: '☃' }])), () => hex(attempt(() => oscJsEncode('/s', [{ type: 's', value: '☃' }]))),
    '2f730000' + '2c730000' + 'e2988300'],
  ['char c decodes', () => attempt(() => decodeDatagram(Buffer.from('2f630000' + '2c630000' + '00000041', 'hex'))[0].args[0]),
    () => attempt(() => (oscJsDecode(Buffer.from('2f630000' + '2c630000' + '00000041', 'hex')) as { args: unknown[] }).args[0]), 'A'],
  ['MIDI m decodes', () => attempt(() => hex(decodeDatagram(Buffer.from('2f6d0000' + '2c6d0000' + '00904011', 'hex'))[0].args[0] as Buffer)),
    () => attempt(() => (oscJsDecode(Buffer.from('2f6d0000' + '2c6d0000' + '00904011', 'hex')) as { args: unknown[] }).args[0]), '00904011'],
  ['blob decodes (5 bytes)', () => attempt(() => hex(decodeDatagram(Buffer.from('2f620000' + '2c620000' + '00000005' + '0102030405000000', 'hex'))[0].args[0] as Buffer)),
    () => attempt(() => hex((oscJsDecode(Buffer.from('2f620000' + '2c620000' + '00000005' + '0102030405000000', 'hex')) as { args: Uint8Array[] }).args[0])), '0102030405'],
  ['bundle time 0.25 s past a second', () => attempt(() => String(decodeDatagram(encodeBundle(1_780_000_000_250_000_000n, [go]))[0].timetagUnixNs! / 1_000_000n)),
    () => attempt(() => String((oscJsDecode(encodeBundle(1_780_000_000_250_000_000n, [go])) as { timestamp(): number; timetag: { value: { timestamp(): number } } }).timetag.value.timestamp())), '1780000000250'],
  ['nested bundle then a message: 2 elements', () => attempt(() => decodeDatagram(encodeBundle(null, [encodeBundle(null, [go]), go])).length),
    () => attempt(() => (oscJsDecode(encodeBundle(null, [encodeBundle(null, [go]), go])) as { bundleElements: unknown[] }).bundleElements.length), 2],
  ['blob in a Buffer slice at byteOffset 4', () => attempt(() => hex(decodeDatagram(Buffer.concat([Buffer.alloc(4, 9), mixed]).subarray(4))[0].args[0] as Buffer).slice(0, 8)),
    () => attempt(() => { const s = Buffer.concat([Buffer.alloc(4, 9), mixed]).subarray(4); const p = new OSC.Packet(); p.unpack(new DataView(s.buffer, s.byteOffset, s.byteLength)); return hex((p.value as unknown as { args: Uint8Array[] }).args[0]).slice(0, 8); }), '07070707'],
  ['unterminated string refused', () => attempt(() => decodeDatagram(Buffer.from('2f730000' + '2c730000' + '61626364', 'hex'))),
    () => attempt(() => oscJsDecode(Buffer.from('2f730000' + '2c730000' + '61626364', 'hex'))), 'throws'],
  ['truncated int64 refused', () => attempt(() => decodeDatagram(Buffer.from('2f680000' + '2c680000' + '00000001', 'hex'))),
    () => attempt(() => oscJsDecode(Buffer.from('2f680000' + '2c680000' + '00000001', 'hex'))), 'throws'],
];
let ownOk = 0;
let theirsOk = 0;
for (const [what, ours, theirs, want] of cases) {
  const a = ours();
  const b = theirs();
  const ok = (v: unknown): boolean => (want === 'throws' ? typeof v === 'string' && v.startsWith('throws') : v === want);
  ownOk += ok(a) ? 1 : 0;
  theirsOk += ok(b) ? 1 : 0;
  console.log(`  ${what.padEnd(40)} own ${ok(a) ? 'ok' : `WRONG (${String(a)})`}   osc-js ${ok(b) ? 'ok' : `WRONG (${String(b)})`}`);
}
console.log(`  right: own ${ownOk}/${cases.length}, osc-js ${theirsOk}/${cases.length}`);
