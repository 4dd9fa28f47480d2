/**
 * The write turns of a Follow call (src/server/write-turns.ts): a segment's first message never waits; while the
 * call has FLIGHT_BYTES or more in flight, the batches of cues on the clock go before the prerolls of cues to come,
 * each kind in arrival order.
 */
import assert from 'node:assert/strict';
import { FLIGHT_BYTES, WriteTurns } from '../src/server/write-turns';

/** Resolves once every callback queued so far (promise reactions included) has run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Follow write turns', function () {
  it('while the call is full: the feeds\' batches go before the prerolls\', each in arrival order; a GO never waits', async function () {
    let inFlight = FLIGHT_BYTES;
    const turns = new WriteTurns(() => inFlight);
    const order: string[] = [];
    const wait = (name: string, kind: 'live' | 'preroll'): Promise<void> => turns.take(kind).then(() => { order.push(name); });
    const all = [wait('p1', 'preroll'), wait('l1', 'live'), wait('p2', 'preroll'), wait('l2', 'live')];
    await turns.take('first'); // at once, though the call is full and four wait
    await settle();
    assert.deepEqual(order, [], 'nothing written while FLIGHT_BYTES are in flight');
    turns.next();
    await settle();
    assert.deepEqual(order, [], 'next() lets no one write while the call is full');
    inFlight = 0;
    for (let i = 0; i < 4; i++) {
      turns.next();
      await settle();
    }
    await Promise.all(all);
    assert.deepEqual(order, ['l1', 'l2', 'p1', 'p2']);
  });

  it('a preroll\'s batch waits behind a feed\'s batch that waits, even with room on the call; a feed\'s does not wait behind prerolls', async function () {
    let inFlight = FLIGHT_BYTES;
    const turns = new WriteTurns(() => inFlight);
    const order: string[] = [];
    const live = turns.take('live').then(() => { order.push('live'); });
    const queuedPreroll = turns.take('preroll').then(() => { order.push('preroll 1'); });
    inFlight = 0;
    // Room now, but a feed's batch waits: a new preroll batch queues behind it.
    const preroll = turns.take('preroll').then(() => { order.push('preroll 2'); });
    await settle();
    assert.deepEqual(order, []);
    turns.next();
    await settle();
    assert.deepEqual(order, ['live']);
    // Only prerolls wait: a feed's batch with room on the call writes at once.
    await turns.take('live');
    turns.next();
    turns.next();
    await Promise.all([live, queuedPreroll, preroll]);
    assert.deepEqual(order, ['live', 'preroll 1', 'preroll 2']);
  });

  it('releaseAll wakes every waiting writer of both kinds (the call ended)', async function () {
    const turns = new WriteTurns(() => FLIGHT_BYTES);
    let woken = 0;
    const all = [turns.take('preroll'), turns.take('live'), turns.take('preroll')].map((p) => p.then(() => { woken++; }));
    turns.releaseAll();
    await Promise.all(all);
    assert.equal(woken, 3);
  });
});
