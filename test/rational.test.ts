import assert from 'node:assert/strict';
import { doubleToFraction, rescaleTicks, secondsToTicks, ticksToSeconds } from '../src/common/rational';

describe('rational time conversion', function () {
  it('converts doubles to their exact dyadic fraction', function () {
    assert.deepEqual(doubleToFraction(0.5), { n: 1n, d: 2n });
    assert.deepEqual(doubleToFraction(3), { n: 3n, d: 1n });
    const { n, d } = doubleToFraction(0.1);
    // 0.1 is not 1/10 in binary: the exact value is slightly above it.
    assert.ok(n * 10n > d);
  });

  it('floors seconds to the tick at or before, exactly, where float arithmetic would not', function () {
    const tb = { num: 1, den: 90000 };
    // 0.1 s * 90000 = 9000.000000000000xxx in exact arithmetic: floor is 9000.
    assert.equal(secondsToTicks(0.1, tb), 9000);
    // 1001/30000 time base: 1 s is 29.97 ticks; floor 29, ceil 30, nearest 30.
    const ntsc = { num: 1001, den: 30000 };
    assert.equal(secondsToTicks(1, ntsc, 'floor'), 29);
    assert.equal(secondsToTicks(1, ntsc, 'ceil'), 30);
    assert.equal(secondsToTicks(1, ntsc, 'nearest'), 30);
    assert.equal(secondsToTicks(-0.5, { num: 1, den: 3 }, 'floor'), -2);
    assert.equal(secondsToTicks(-0.5, { num: 1, den: 3 }, 'ceil'), -1);
  });

  it('round-trips every tick of a 24 h span at 1/12800 through seconds', function () {
    const tb = { num: 1, den: 12800 };
    for (let t = 0; t < 24 * 3600 * 12800; t += 9_973) {
      assert.equal(secondsToTicks(ticksToSeconds(t, tb), tb, 'nearest'), t);
    }
  });

  it('rescales between time bases exactly', function () {
    assert.equal(rescaleTicks(90000, { num: 1, den: 90000 }, { num: 1, den: 1000 }), 1000);
    assert.equal(rescaleTicks(1001, { num: 1, den: 30000 }, { num: 1, den: 90000 }), 3003);
  });
});
