/**
 * The skipping of a catching-up intra-only segment (src/players/intra-skip.ts), driven with explicit clock positions:
 * which pictures are left out, and when catching up ends. The whole player is tested against FFmpeg in
 * go-picture.test.ts (an unarmed GO placed in the past).
 */
import assert from 'node:assert/strict';
import { IntraSkip } from '../src/players/intra-skip';

/** 25 fps pictures: the bench:go DNxHD case. */
const DUR = 0.04;

describe('IntraSkip (a catching-up intra-only segment)', function () {
  it('while catching up, leaves out a picture that ends within two frame durations of the clock', function () {
    const s = new IntraSkip();
    // The GO maps the in-point to clock 10.000; the packets are looked at 3 ms later.
    assert.equal(s.skips(10.04, DUR, 10.003), true, 'the in-point picture: it could not be decoded and shown in its span');
    assert.equal(s.skips(10.08, DUR, 10.003), true);
    assert.equal(s.skips(10.12, DUR, 10.003), false, 'the third: ends 117 ms after the clock');
    assert.ok(s.catchingUp);
  });

  it('ends catching up once a picture given is three frames ahead; then only pictures already past are left out', function () {
    const s = new IntraSkip();
    s.given(10.2, DUR, null);
    assert.ok(s.catchingUp, 'the clock not known yet');
    s.given(10.18, DUR, 10.07);
    assert.ok(s.catchingUp, '110 ms ahead: less than three frames');
    s.given(10.2, DUR, 10.07);
    assert.equal(s.catchingUp, false, '130 ms ahead: caught up');
    assert.equal(s.skips(10.05, DUR, 10.06), true, 'a picture already past');
    assert.equal(s.skips(10.07, DUR, 10.06), false, 'a picture not past: decoded, however close');
  });
});
