/**
 * The order in which a player prepares prerolls (src/players/prep-queue.ts): one at a time in arrival order, a due or
 * re-armed one at once beside it, and the queue behind still one at a time. The whole player is tested in
 * go-picture.test.ts (the order of its 'cue prepared' lines).
 */
import assert from 'node:assert/strict';
import { PrepQueue, type PrepTurn } from '../src/players/prep-queue';

/** Which of `turns` have started (their `ready` resolved), after the promise jobs queued so far have run. */
async function started(turns: PrepTurn[]): Promise<boolean[]> {
  const seen = turns.map(() => false);
  turns.forEach((t, i) => void t.ready.then(() => { seen[i] = true; }));
  await new Promise((resolve) => setImmediate(resolve));
  return seen;
}

describe('PrepQueue (the order prerolls are prepared in)', function () {
  it('starts the first at once and each next one only when the one in progress finishes', async function () {
    const q = new PrepQueue();
    const [a, b, c] = [q.add(), q.add(), q.add()];
    assert.deepEqual(await started([a, b, c]), [true, false, false]);
    q.finish(a);
    assert.deepEqual(await started([a, b, c]), [true, true, false]);
    q.finish(b);
    assert.deepEqual(await started([a, b, c]), [true, true, true]);
    assert.equal(q.waiting, 0);
  });

  it('a turn started now runs beside the one in progress, and its end starts none of those waiting', async function () {
    const q = new PrepQueue();
    const [a, b, c, d] = [q.add(), q.add(), q.add(), q.add()];
    q.startNow(c);
    assert.deepEqual(await started([a, b, c, d]), [true, false, true, false]);
    // c done first: b and d wait for a still (a chain of promises let d start here, beside a).
    q.finish(c);
    assert.deepEqual(await started([a, b, c, d]), [true, false, true, false]);
    q.finish(a);
    assert.deepEqual(await started([a, b, c, d]), [true, true, true, false]);
    q.finish(b);
    assert.deepEqual(await started([a, b, c, d]), [true, true, true, true]);
  });

  it('a turn dropped while waiting leaves the queue (its own chain released), and dropping the one in progress starts the next', async function () {
    const q = new PrepQueue();
    const [a, b, c] = [q.add(), q.add(), q.add()];
    q.finish(b); // dropped before its turn
    assert.equal(q.waiting, 1);
    assert.deepEqual(await started([a, b, c]), [true, true, false]);
    q.finish(a); // dropped while in progress
    assert.deepEqual(await started([c]), [true]);
    // Finishing twice, or starting a finished turn now, changes nothing.
    q.finish(a);
    q.startNow(b);
    const e = q.add();
    assert.deepEqual(await started([e]), [false]);
    q.finish(c);
    assert.deepEqual(await started([e]), [true]);
  });
});
