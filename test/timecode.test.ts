import assert from 'node:assert/strict';
import { CuemuxError } from '../src/common/errors';
import { doubleToFraction } from '../src/common/rational';
import {
  framesToSeconds,
  framesToSecondsNumber,
  framesToTimecode,
  parseTimePosition,
  parseTimecodeRate,
  secondsToFrames,
  secondsToTimecode,
  TIMECODE_RATES,
  timecodeFramesPerDay,
  timecodeToFrames,
  timecodeToSeconds,
  type TimecodeRate,
} from '../src/show/timecode';

// ------------------------------------------------------------------------------------------------------------------
// Test-side reference machinery, written independently of the module under test.

function rateNamed(name: string): TimecodeRate {
  const r = TIMECODE_RATES.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no rate ${name}`);
  return r;
}

/** Labels skipped at the start of a drop minute: 2 at nominal 30, 4 at nominal 60 (SMPTE 12M). */
function droppedPerMinute(r: TimecodeRate): number {
  return r.dropFrame ? (r.nominal === 30 ? 2 : 4) : 0;
}

const DD = Array.from({ length: 100 }, (_, i) => (i < 10 ? `0${i}` : `${i}`));

/**
 * Walks labels one frame at a time by counting: FF +1, carry into SS/MM/HH at nominal/60/60/24, and skip the labels
 * drop-frame never uses. Verifies the label sequence without the arithmetic under test.
 */
class LabelWalker {
  h: number;
  m: number;
  s: number;
  f: number;
  constructor(
    private readonly nominal: number,
    private readonly drop: number,
    start: readonly [number, number, number, number] = [0, 0, 0, 0],
  ) {
    [this.h, this.m, this.s, this.f] = start;
  }
  label(): string {
    return `${DD[this.h]}:${DD[this.m]}:${DD[this.s]}${this.drop > 0 ? ';' : ':'}${DD[this.f]}`;
  }
  next(): void {
    this.f += 1;
    if (this.f === this.nominal) {
      this.f = 0;
      this.s += 1;
      if (this.s === 60) {
        this.s = 0;
        this.m += 1;
        if (this.m === 60) {
          this.m = 0;
          this.h = (this.h + 1) % 24;
        }
      }
    }
    if (this.drop > 0 && this.s === 0 && this.f < this.drop && this.m % 10 !== 0) this.f = this.drop;
  }
}

/** Deterministic PRNG (mulberry32) so random samples are reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Assert that `fn` throws a CuemuxError INVALID_ARGUMENT whose message contains every one of `parts`. */
function assertInvalid(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CuemuxError, `expected CuemuxError, got ${String(e)}`);
    assert.equal(e.code, 'INVALID_ARGUMENT');
    for (const p of parts) assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
    return true;
  });
}

/** SMPTE reference values: frames in 24 h of labels, and the label of the last frame of the day. */
const REFERENCE: Record<string, { day: number; last: string }> = {
  '23.976': { day: 2_073_600, last: '23:59:59:23' },
  '24': { day: 2_073_600, last: '23:59:59:23' },
  '25': { day: 2_160_000, last: '23:59:59:24' },
  '29.97': { day: 2_592_000, last: '23:59:59:29' },
  '29.97df': { day: 2_589_408, last: '23:59:59;29' },
  '30': { day: 2_592_000, last: '23:59:59:29' },
  '48': { day: 4_147_200, last: '23:59:59:47' },
  '50': { day: 4_320_000, last: '23:59:59:49' },
  '59.94': { day: 5_184_000, last: '23:59:59:59' },
  '59.94df': { day: 5_178_816, last: '23:59:59;59' },
  '60': { day: 5_184_000, last: '23:59:59:59' },
};

// ------------------------------------------------------------------------------------------------------------------

describe('timecode rates', function () {
  it('lists the eleven SMPTE rates with exact num/den', function () {
    assert.deepEqual(
      TIMECODE_RATES.map((r) => `${r.name}=${r.num}/${r.den}@${r.nominal}${r.dropFrame ? 'DF' : ''}`),
      [
        '23.976=24000/1001@24', '24=24/1@24', '25=25/1@25', '29.97=30000/1001@30', '29.97df=30000/1001@30DF',
        '30=30/1@30', '48=48/1@48', '50=50/1@50', '59.94=60000/1001@60', '59.94df=60000/1001@60DF', '60=60/1@60',
      ],
    );
    assert.ok(Object.isFrozen(TIMECODE_RATES) && TIMECODE_RATES.every((r) => Object.isFrozen(r)));
  });

  it('parses canonical names, variants, numbers and num/den', function () {
    const cases: Array<[string | number, string]> = [
      ['29.97df', '29.97df'], ['29.97DF', '29.97df'], ['29.97-df', '29.97df'], ['29.97 df', '29.97df'],
      ['29.97_DF', '29.97df'], ['2997df', '29.97df'], [' 29.97 drop-frame ', '29.97df'], ['29.97fps df', '29.97df'],
      ['29.97ndf', '29.97'], ['29.97 NDF', '29.97'], ['29.97', '29.97'], [29.97, '29.97'], ['2997', '29.97'],
      ['59.94DF', '59.94df'], ['5994df', '59.94df'], [59.94, '59.94'], ['59.94', '59.94'],
      [23.976, '23.976'], ['23.98', '23.976'], ['23976', '23.976'], [24000 / 1001, '23.976'],
      [24, '24'], ['24', '24'], [25, '25'], ['25fps', '25'], ['25 FPS', '25'], [30, '30'], [48, '48'], [50, '50'], [60, '60'],
      ['30000/1001', '29.97'], ['30000/1001 df', '29.97df'], ['60000/1001', '59.94'], ['24000/1001', '23.976'],
      ['25/1', '25'], ['50/2', '25'], ['30/1', '30'],
    ];
    for (const [input, name] of cases) assert.equal(parseTimecodeRate(input).name, name, `input ${String(input)}`);
    for (const r of TIMECODE_RATES) assert.equal(parseTimecodeRate(r.name), r, 'canonical names return the same object');
  });

  it('rejects unknown rates with a message naming the input and listing the accepted rates', function () {
    for (const bad of ['abc', '', '31', '30df', '23.976df', '25 df', '2997/100', '30000/0', '29.97dfx', '29.97 df df', '-25', '0x19']) {
      assertInvalid(() => parseTimecodeRate(bad), `'${bad}'`, '29.97df', '59.94df', '23.976');
    }
    for (const bad of [31, 0, -25, Number.NaN, Number.POSITIVE_INFINITY, 29.9, 1e21]) {
      assertInvalid(() => parseTimecodeRate(bad), `'${String(bad)}'`, '29.97df');
    }
  });
});

describe('timecode labels', function () {
  const df = rateNamed('29.97df');
  const df60 = rateNamed('59.94df');

  it('matches SMPTE reference labels at 29.97df and 59.94df', function () {
    assert.equal(framesToTimecode(0, df), '00:00:00;00');
    assert.equal(framesToTimecode(1799, df), '00:00:59;29');
    assert.equal(framesToTimecode(1800, df), '00:01:00;02');
    assert.equal(framesToTimecode(17981, df), '00:09:59;29');
    assert.equal(framesToTimecode(17982, df), '00:10:00;00');
    assert.equal(framesToTimecode(107892, df), '01:00:00;00');
    assert.equal(timecodeToFrames('00:01:00;02', df), 1800);
    assert.equal(timecodeToFrames('00:10:00;00', df), 17982);
    assert.equal(timecodeToFrames('01:00:00;00', df), 107892);
    assert.equal(framesToTimecode(3599, df60), '00:00:59;59');
    assert.equal(framesToTimecode(3600, df60), '00:01:00;04');
    assert.equal(framesToTimecode(35964, df60), '00:10:00;00');
    assert.equal(timecodeToFrames('00:01:00;04', df60), 3600);
  });

  it('has the SMPTE 24 h frame count and last label at every rate, and wraps after 24 h', function () {
    for (const r of TIMECODE_RATES) {
      const ref = REFERENCE[r.name];
      assert.equal(timecodeFramesPerDay(r), ref.day, r.name);
      assert.equal(framesToTimecode(ref.day - 1, r), ref.last, r.name);
      assert.equal(timecodeToFrames(ref.last, r), ref.day - 1, r.name);
      assert.equal(framesToTimecode(ref.day, r), r.dropFrame ? '00:00:00;00' : '00:00:00:00', r.name);
      assert.equal(framesToTimecode(3 * ref.day + 1234, r), framesToTimecode(1234, r), r.name);
    }
  });

  it('writes negative counts with a leading minus and parses them back', function () {
    assert.equal(framesToTimecode(-1, df), '-00:00:00;01');
    assert.equal(framesToTimecode(-1800, df), '-00:01:00;02');
    assert.equal(timecodeToFrames('-00:01:00;02', df), -1800);
    assert.equal(framesToTimecode(-25, rateNamed('25')), '-00:00:01:00');
    assert.ok(Object.is(timecodeToFrames('-00:00:00:00', rateNamed('25')), 0), '-00:00:00:00 is 0, not -0');
    assert.equal(framesToTimecode(-0, rateNamed('25')), '00:00:00:00');
  });

  it('takes drop-frame-ness from the rate, not from the separator', function () {
    for (const tc of ['00:01:00;02', '00:01:00:02', '00:01:00.02', '00:01:00,02', ' 00:01:00;02 ']) {
      assert.equal(timecodeToFrames(tc, df), 1800, tc);
    }
    assert.equal(timecodeToFrames('00:01:00;02', rateNamed('29.97')), 1802);
    assert.equal(timecodeToFrames('0:1:0:2', rateNamed('30')), 1802);
  });

  it('rejects non-integer frame counts with RangeError', function () {
    for (const bad of [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => framesToTimecode(bad, df), RangeError);
      assert.throws(() => framesToSecondsNumber(bad, df), RangeError);
      assert.throws(() => framesToSeconds(bad, df), RangeError);
    }
  });

  it('rejects dropped labels naming the label', function () {
    for (const tc of ['00:01:00;00', '00:01:00;01', '00:09:00;00', '23:59:00;01', '00:01:00:00']) {
      assertInvalid(() => timecodeToFrames(tc, df), tc, 'drop-frame');
    }
    for (const tc of ['00:01:00;00', '00:01:00;03', '12:34:00;02']) assertInvalid(() => timecodeToFrames(tc, df60), tc, 'drop-frame');
    // Minutes divisible by 10 keep all labels.
    assert.equal(timecodeToFrames('00:20:00;00', df), 2 * 17982);
    assert.equal(timecodeToFrames('00:20:00;01', df), 2 * 17982 + 1);
    // Non-drop rates have every label.
    assert.equal(timecodeToFrames('00:01:00:00', rateNamed('29.97')), 1800);
  });

  it('rejects malformed labels and out-of-range fields naming the string and the problem', function () {
    const r25 = rateNamed('25');
    const cases: Array<[string, TimecodeRate, string]> = [
      ['24:00:00:00', r25, 'hours'], ['99:00:00:00', r25, 'hours'], ['00:60:00:00', r25, 'minutes'],
      ['00:00:60:00', r25, 'seconds'], ['00:00:00:25', r25, 'frames'], ['00:00:00;30', df, 'frames'],
      ['00:00:00;60', df60, 'frames'], ['abc', r25, 'malformed'], ['', r25, 'malformed'], ['1:2:3', r25, 'malformed'],
      ['00:00:00:00:00', r25, 'malformed'], ['00-00-00-00', r25, 'malformed'], ['+00:00:00:00', r25, 'malformed'],
      ['000:00:00:00', r25, 'malformed'], ['00:00:00:000', r25, 'malformed'], ['00:00:00;', r25, 'malformed'],
      ['00:0a:00:00', r25, 'malformed'], ['--00:00:00:00', r25, 'malformed'], ['00:00:00:1.5', r25, 'malformed'],
    ];
    for (const [tc, r, problem] of cases) assertInvalid(() => timecodeToFrames(tc, r), `'${tc}'`, problem, r.name);
  });
});

describe('timecode property tests', function () {
  it('every frame of 24 h at 29.97df: labels consecutive, label and seconds round-trip exactly', function () {
    this.timeout(60_000);
    const r = rateNamed('29.97df');
    const day = timecodeFramesPerDay(r);
    assert.equal(day, 2_589_408);
    const walker = new LabelWalker(30, 2);
    for (let n = 0; n < day; n++) {
      const label = framesToTimecode(n, r);
      const expected = walker.label();
      // `if` first: building assertion messages per frame would dominate the run time.
      if (label !== expected) assert.equal(label, expected, `frame ${n}`);
      const back = timecodeToFrames(label, r);
      if (back !== n) assert.equal(back, n, `label ${label}`);
      const seconds = framesToSecondsNumber(n, r);
      // n × 1001 < 2^53, so this is the exactly rounded quotient: the nearest double to the exact start time.
      if (seconds !== (n * 1001) / 30000) assert.equal(seconds, (n * 1001) / 30000, `seconds of frame ${n}`);
      const f = secondsToFrames(seconds, r);
      if (f !== n) assert.equal(f, n, `secondsToFrames(${seconds})`);
      // Exact rational n·1001/30000 in lowest terms, checked in Number arithmetic (all values < 2^53, so exact).
      const exact = framesToSeconds(n, r);
      const g = gcd(n * 1001, 30000);
      if (Number(exact.num) !== (n * 1001) / g || Number(exact.den) !== 30000 / g) {
        assert.deepEqual(exact, { num: BigInt((n * 1001) / g), den: BigInt(30000 / g) }, `framesToSeconds(${n})`);
      }
      walker.next();
    }
    // After the last frame of the day the independent walker has wrapped back to the first label.
    assert.equal(walker.label(), '00:00:00;00');
  });

  for (const r of TIMECODE_RATES) {
    it(`${r.name}: first and last 10 minutes frame by frame, 3000 random frames of 24 h, exact round trips`, function () {
      const drop = droppedPerMinute(r);
      const day = timecodeFramesPerDay(r);
      assert.equal(day, REFERENCE[r.name].day);
      const tenMinutes = 600 * r.nominal - 9 * drop;
      const check = (n: number): void => {
        const label = framesToTimecode(n, r);
        assert.equal(timecodeToFrames(label, r), n, label);
        const seconds = framesToSecondsNumber(n, r);
        assert.equal(secondsToFrames(seconds, r), n, `floor ${seconds}`);
        assert.equal(secondsToFrames(seconds, r, 'nearest'), n, `nearest ${seconds}`);
        const exact = framesToSeconds(n, r);
        assert.equal(exact.num * BigInt(r.num), BigInt(n) * BigInt(r.den) * exact.den, `exact seconds of ${n}`);
        assert.ok(exact.den > 0n);
        // Lowest terms: gcd(num, den) = 1.
        let [a, b] = [exact.num, exact.den];
        while (b !== 0n) [a, b] = [b, a % b];
        assert.equal(a, n === 0 ? exact.den : 1n);
      };
      const walkFrom = (first: number, start: readonly [number, number, number, number]): void => {
        const walker = new LabelWalker(r.nominal, drop, start);
        for (let n = first; n < first + tenMinutes; n++) {
          const label = framesToTimecode(n, r);
          if (label !== walker.label()) assert.equal(label, walker.label(), `frame ${n}`);
          check(n);
          walker.next();
        }
      };
      walkFrom(0, [0, 0, 0, 0]);
      // 23:50:00 starts a minute divisible by 10, so it is exactly ten minutes' frames before the end of the day.
      walkFrom(day - tenMinutes, [23, 50, 0, 0]);

      const random = mulberry32(0x5eed + r.num + r.nominal + (r.dropFrame ? 1 : 0));
      for (let i = 0; i < 3000; i++) {
        const n = Math.floor(random() * day);
        check(n);
        // Independent label → frames formula: labels counted at nominal, minus the labels skipped before.
        const m = /^(\d\d):(\d\d):(\d\d)([:;])(\d\d)$/.exec(framesToTimecode(n, r));
        assert.ok(m !== null);
        const [hh, mm, ss, ff] = [m[1], m[2], m[3], m[5]].map(Number);
        assert.equal(m[4], r.dropFrame ? ';' : ':');
        assert.ok(hh < 24 && mm < 60 && ss < 60 && ff < r.nominal);
        assert.ok(!(drop > 0 && ss === 0 && ff < drop && mm % 10 !== 0), 'never a dropped label');
        const minutes = hh * 60 + mm;
        assert.equal(((minutes * 60 + ss) * r.nominal + ff) - drop * (minutes - Math.floor(minutes / 10)), n);
        // Negative counts mirror positive ones.
        if (n > 0) assert.equal(timecodeToFrames(framesToTimecode(-n, r), r), -n);
      }
    });
  }
});

describe('timecode seconds: no float drift', function () {
  const r25 = rateNamed('25');
  const r23 = rateNamed('23.976');
  const ndf = rateNamed('29.97');
  const df = rateNamed('29.97df');

  it('converts exact hours to the exact frame counts', function () {
    // 24 h of real time at 30000/1001 is 2 589 410.589… frames.
    assert.equal(secondsToFrames(86_400, ndf), 2_589_410);
    assert.equal(secondsToFrames(86_400, ndf, 'nearest'), 2_589_411);
    assert.equal(secondsToFrames(43_200, ndf), 1_294_705);
    assert.equal(secondsToFrames(3_600, ndf), 107_892);
    assert.equal(secondsToFrames(86_400, r25), 2_160_000);
    assert.equal(secondsToFrames(43_200, r25), 1_080_000);
    assert.equal(secondsToFrames(86_400, rateNamed('60')), 5_184_000);
    assert.equal(secondsToFrames(86_400, rateNamed('59.94')), 5_178_821);
    assert.equal(secondsToFrames(86_400, rateNamed('24')), 2_073_600);
    assert.equal(secondsToFrames(86_400, r23), 2_071_528);
  });

  it('one hour of 23.976 labels is 86 400 frames = 3603.6 s exactly', function () {
    assert.equal(timecodeToFrames('01:00:00:00', r23), 86_400);
    assert.deepEqual(framesToSeconds(86_400, r23), { num: 18018n, den: 5n });
    assert.equal(framesToSecondsNumber(86_400, r23), 3603.6);
    assert.equal(timecodeToSeconds('01:00:00:00', r23), 3603.6);
    // 3603.6 is not a double; the nearest one is below 3603.6, which a plain floor would put in frame 86 399.
    const { n, d } = doubleToFraction(3603.6);
    assert.ok(n * 5n < 18018n * d, 'the double 3603.6 lies below the exact frame start');
    assert.equal(secondsToFrames(3603.6, r23), 86_400);
    assert.equal(secondsToTimecode(3603.6, r23), '01:00:00:00');
    assert.equal(secondsToFrames(3603.6 - 1e-6, r23), 86_399);
  });

  it('29.97df labels run 86.4 ms per day behind real time', function () {
    const day = timecodeFramesPerDay(df);
    const exact = framesToSeconds(day, df);
    assert.equal(exact.num * 10_000n, 863_999_136n * exact.den); // 86 399.9136 s
    assert.equal(secondsToTimecode(86_399.9136, df), '00:00:00;00');
    assert.equal(secondsToTimecode(86_399.9135, df), '23:59:59;29');
    assert.equal(secondsToTimecode(60.06, df), '00:01:00;02');
  });

  it('puts an instant 1 µs before a frame start in the previous frame, at every rate, across 24 h', function () {
    const random = mulberry32(42);
    for (const r of TIMECODE_RATES) {
      const day = timecodeFramesPerDay(r);
      const frames = [1, 2, 1000, 1001, day - 1, day, day + 1, 2 * day];
      for (let i = 0; i < 500; i++) frames.push(1 + Math.floor(random() * 2 * day));
      for (const n of frames) {
        const t = framesToSecondsNumber(n, r);
        assert.equal(secondsToFrames(t - 1e-6, r), n - 1, `${r.name} frame ${n} − 1 µs`);
        assert.equal(secondsToFrames(t + 1e-6, r), n, `${r.name} frame ${n} + 1 µs`);
        assert.equal(secondsToFrames(t, r), n, `${r.name} frame ${n}`);
        const next = framesToSecondsNumber(n + 1, r);
        // Nearest: a point 40 % into the frame rounds down, 60 % rounds up.
        assert.equal(secondsToFrames(t + 0.4 * (next - t), r, 'nearest'), n);
        assert.equal(secondsToFrames(t + 0.6 * (next - t), r, 'nearest'), n + 1);
        assert.equal(secondsToFrames(t + 0.6 * (next - t), r), n);
      }
    }
  });

  it('round-trips frames through seconds up to the documented 2^21 s (≈ 24.3 days) at every rate', function () {
    for (const r of TIMECODE_RATES) {
      // The last frame starting before 2^21 s, and the 2000 frames before it.
      const last = Math.ceil((2 ** 21 * r.num) / r.den) - 1;
      assert.ok(framesToSecondsNumber(last, r) < 2 ** 21 && framesToSecondsNumber(last + 1, r) >= 2 ** 21);
      for (let n = last - 2000; n <= last; n++) {
        const t = framesToSecondsNumber(n, r);
        if (secondsToFrames(t, r) !== n) assert.equal(secondsToFrames(t, r), n, `${r.name} frame ${n}`);
        if (secondsToFrames(-t, r) !== -n) assert.equal(secondsToFrames(-t, r), -n, `${r.name} frame ${-n}`);
      }
    }
  });

  it('handles negative times with floor semantics', function () {
    assert.equal(secondsToFrames(-0.5, r25), -13); // frame −13 spans [−0.52 s, −0.48 s)
    assert.equal(secondsToFrames(-0.5, r25, 'nearest'), -12); // exactly between −13 and −12: ties go later
    assert.equal(secondsToFrames(-0.04, r25), -1);
    assert.equal(secondsToFrames(-1e-12, r25), 0, 'below the half-nanosecond resolution');
    assert.equal(secondsToFrames(-1e-6, r25), -1);
    for (const n of [-1, -2, -1800, -2_589_407]) {
      assert.equal(secondsToFrames(framesToSecondsNumber(n, df), df), n);
    }
    assert.equal(secondsToTimecode(-0.5, r25), '-00:00:00:13');
  });

  it('rejects non-finite seconds with RangeError', function () {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      assert.throws(() => secondsToFrames(bad, df), RangeError);
    }
    assert.throws(() => secondsToFrames(1e300, df), RangeError);
  });

  it('returns the nearest double even when frames × den exceeds 2^53', function () {
    // 30000 · 2^37 frames at 30000/1001 is exactly 1001 · 2^37 s, a double.
    assert.equal(framesToSecondsNumber(30000 * 2 ** 37, ndf), 1001 * 2 ** 37);
    assert.equal(framesToSecondsNumber(-30000 * 2 ** 37, ndf), -1001 * 2 ** 37);
    for (const n of [2 ** 53 - 1, 2 ** 52 + 12345, 9e15 + 7, -(2 ** 53 - 1)]) {
      const x = framesToSecondsNumber(n, ndf);
      // |x − q| must not exceed |y − q| for the neighbouring doubles y = x ± ulp, q = n·1001/30000 exactly.
      const ulp = 2 ** (Math.floor(Math.log2(Math.abs(x))) - 52);
      const q = { n: BigInt(n) * 1001n, d: 30000n };
      const dist = (y: number): bigint => {
        const f = doubleToFraction(y);
        const diff = f.n * q.d - q.n * f.d; // (y − q) · d_y · 30000
        return (diff < 0n ? -diff : diff) * (2n ** 60n / f.d); // common scale: every f.d divides 2^60 here
      };
      assert.ok(dist(x) <= dist(x + ulp) && dist(x) <= dist(x - ulp), `frame ${n}`);
    }
  });
});

describe('parseTimePosition', function () {
  const df = rateNamed('29.97df');

  it('reads numbers and numeric strings as seconds', function () {
    const cases: Array<[string | number, number]> = [
      [12.5, 12.5], [-3, -3], [0, 0], ['12.5', 12.5], ['-3', -3], ['1e2', 100], [' 7 ', 7], ['.5', 0.5], ['+2', 2], ['3.', 3],
    ];
    for (const [v, seconds] of cases) {
      assert.equal(parseTimePosition(v, df), seconds, String(v));
      assert.equal(parseTimePosition(v, null), seconds, String(v));
    }
  });

  it('reads 4-field timecodes at the rate', function () {
    assert.equal(parseTimePosition('00:01:00;02', df), framesToSecondsNumber(1800, df));
    assert.equal(parseTimePosition(' 00:01:00:02 ', df), framesToSecondsNumber(1800, df));
    assert.equal(parseTimePosition('01:00:00:00', rateNamed('23.976')), 3603.6);
    assert.equal(parseTimePosition('-00:00:01:00', rateNamed('25')), -1);
  });

  it('needs a rate for a timecode', function () {
    assertInvalid(() => parseTimePosition('00:00:01:00', null), '00:00:01:00', 'frame rate must be set first');
  });

  it('rejects garbage naming the value', function () {
    for (const bad of ['', '   ', 'abc', 'NaN', 'Infinity', '-Infinity', '1e400', '0x10', '12.5s', '1,5', '00:00:01.05', '1:00', '00:00:01', '1:2:3:4:5', '12 5']) {
      assertInvalid(() => parseTimePosition(bad, df), `'${bad}'`);
    }
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      assertInvalid(() => parseTimePosition(bad, df), `'${String(bad)}'`);
    }
    // A well-formed but impossible timecode is named too.
    assertInvalid(() => parseTimePosition('00:01:00;00', df), '00:01:00;00', 'drop-frame');
    assertInvalid(() => parseTimePosition('00:00:00:30', df), '00:00:00:30', 'frames');
  });
});
