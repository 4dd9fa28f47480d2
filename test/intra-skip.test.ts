/**
 * The skipping of a catching-up intra-only segment (src/players/intra-skip.ts), driven with explicit clock positions
 * and CLOCK_MONOTONIC instants: which pictures are left out, what the learnt hand-off time changes, when catching up
 * ends. The whole player is tested against FFmpeg in go-picture.test.ts (an unarmed GO placed in the past).
 */
import assert from 'node:assert/strict';
import { IntraSkip } from '../src/players/intra-skip';

/** 25 fps pictures on a 60 ticks/s presenter: the bench:go DNxHD case. */
const DUR = 0.04;
const TICK = 1 / 60;
const ms = (n: number): bigint => BigInt(Math.round(n * 1e6));

describe('IntraSkip (a catching-up intra-only segment)', function () {
  it('a GO "now": the in-point picture is decoded, not skipped (it can be shown within its span on a quiet machine)', function () {
    const s = new IntraSkip(TICK);
    // The GO maps the in-point to clock 10.000; the packet is looked at 3 ms later.
    assert.equal(s.skips(0, 10.04, DUR, 10.003, ms(3)), false, 'the in-point picture ends 37 ms after the clock: decoded');
    assert.equal(s.skips(1, 10.08, DUR, 10.003, ms(3)), false);
    // A picture that ends within a tick and the quiet hand-off (8 ms) is left out.
    assert.equal(s.skips(2, 10.02, DUR, 10.003, ms(3)), true);
    assert.ok(s.catchingUp);
  });

  it('learns a slow hand-off from the pictures given and skips more while it lasts, never more than two frames ahead', function () {
    const s = new IntraSkip(TICK);
    assert.equal(s.skips(0, 10.04, DUR, 10.003, ms(3)), false);
    // Its picture came out 60 ms after it was decided on (a loaded machine), not yet ahead of the clock.
    s.given(0, 10.04, DUR, 10.063, ms(63));
    // Now a picture ending 70 ms after the clock would come too late (60 ms + a tick): skipped; one ending 100 ms after is not.
    assert.equal(s.skips(3, 10.133, DUR, 10.063, ms(63)), true);
    assert.equal(s.skips(4, 10.163, DUR, 10.063, ms(63)), false);
    // However slow, the margin is two frame durations at most.
    const slow = new IntraSkip(TICK);
    assert.equal(slow.skips(0, 10.4, DUR, 10.0, ms(0)), false);
    slow.given(0, 10.4, DUR, 10.3, ms(300));
    assert.equal(slow.skips(9, 10.379, DUR, 10.3, ms(300)), true);
    assert.equal(slow.skips(10, 10.381, DUR, 10.3, ms(300)), false, 'ends 81 ms after the clock: more than two frames');
  });

  it('the learnt hand-off fades as pictures come quicker', function () {
    const s = new IntraSkip(TICK);
    assert.equal(s.skips(0, 10.04, DUR, 10.0, ms(0)), false);
    s.given(0, 10.04, DUR, 10.05, ms(50));
    // 60 ms ahead: within the learnt 50 ms + a tick, skipped; on a quiet machine's margin (8 ms + a tick) it would not be.
    assert.equal(s.skips(1, 10.11, DUR, 10.05, ms(50)), true);
    assert.equal(new IntraSkip(TICK).skips(1, 10.11, DUR, 10.05, ms(50)), false);
    for (let i = 2; i < 12; i++) {
      const at = 0.05 + i * 0.001;
      assert.equal(s.skips(i, 10.3 + i * DUR, DUR, 10 + at, ms(at * 1000)), false);
      s.given(i, 10.3 + i * DUR, DUR, null, ms(at * 1000 + 5));
    }
    // After ten pictures handed on in 5 ms, 50 ms × 0.8^10 ≈ 5 ms: the quiet margin again.
    assert.equal(s.skips(20, 10.09, DUR, 10.062, ms(62)), false, '28 ms ahead: decoded');
  });

  it('ends catching up once a picture given is three frames ahead; then only pictures already past are skipped', function () {
    const s = new IntraSkip(TICK);
    assert.equal(s.skips(0, 10.18, DUR, 10.0, ms(0)), false);
    assert.equal(s.skips(1, 10.2, DUR, 10.0, ms(0)), false);
    s.given(0, 10.18, DUR, 10.07, ms(70));
    assert.ok(s.catchingUp, '110 ms ahead: less than three frames');
    s.given(1, 10.2, DUR, 10.07, ms(70));
    assert.equal(s.catchingUp, false, '130 ms ahead: caught up');
    assert.equal(s.skips(5, 10.05, DUR, 10.06, ms(60)), true, 'a picture already past');
    assert.equal(s.skips(6, 10.07, DUR, 10.06, ms(60)), false, 'a picture not past: decoded, whatever the margin');
  });
});
