/**
 * LiveLead (src/players/live-lead.ts): a preroll's packet waits while a playing cue's decoder has packets waiting and
 * its pictures do not cover the clock far enough ahead, and goes on as soon as they do.
 */
import assert from 'node:assert/strict';
import { LiveLead } from '../src/players/live-lead';

describe('live lead (prerolls wait behind a playing cue that is not ahead)', function () {
  it('is behind only while a live decoder has decodes waiting and its pictures cover less than the lead past the clock', function () {
    const lead = new LiveLead();
    const a = {};
    const b = {};
    assert.equal(lead.behind(10, 0.25), false, 'no live decoder');
    lead.queued(a);
    assert.equal(lead.behind(10, 0.25), true, 'decodes waiting, no picture yet');
    lead.gave(a, 10.2);
    assert.equal(lead.behind(10, 0.25), true, '0.2 s ahead');
    lead.gave(a, 10.3);
    assert.equal(lead.behind(10, 0.25), false, '0.3 s ahead');
    assert.equal(lead.behind(10.1, 0.25), true, 'the clock moved on');
    lead.gave(a, 10.0);
    assert.equal(lead.behind(10.01, 0.25), false, 'an earlier picture does not take the lead back');
    lead.queued(b);
    assert.equal(lead.behind(10, 0.25), true, 'another decoder, behind');
    lead.done(b);
    assert.equal(lead.behind(10, 0.25), false, 'nothing waiting: not CPU it needs (its packets have not come)');
    lead.queued(b);
    lead.forget(b);
    assert.equal(lead.behind(10, 0.25), false, 'forgotten (dropped, closed)');
    lead.done(a);
    lead.gave(a, 9);
    assert.equal(lead.behind(20, 0.25), false, 'idle');
  });

  it('lets a waiting preroll go on at the picture that puts the decoder ahead, and at once when the clock is unknown', async function () {
    const lead = new LiveLead();
    const live = {};
    lead.queued(live);
    assert.equal(await Promise.race([lead.untilAhead(() => null, 0.25, 60_000).then(() => 'went'), new Promise((r) => setImmediate(() => r('waited')))]), 'went');
    let went = false;
    const waiting = lead.untilAhead(() => 5, 0.25, 60_000).then(() => {
      went = true;
    });
    lead.gave(live, 5.1);
    await new Promise((r) => setImmediate(r));
    assert.equal(went, false, 'still 0.1 s ahead only');
    lead.gave(live, 5.3);
    await waiting; // bounded by the test's timeout, not by the 60 s cap
    assert.equal(went, true);
  });
});
