/**
 * The show clock (src/show/show-clock.ts), the external timecode chaser (src/show/timecode-chase.ts) and the
 * monotonic ↔ Unix mapping (src/common/time-source.ts).
 *
 * Everything that can be is driven with explicit monotonic instants (`at` arguments), so positions are compared
 * exactly. Only whenAt and the chaser's loss handling use real timers; those tests assert lower bounds (timers never
 * fire early) and order of events, never tight upper bounds (only "within about a second").
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { CuemuxError, type ErrorCode } from '../src/common/errors';
import { setLogSink, type LogLevel, type LogSink } from '../src/common/logger';
import { monoNs, monoToUnixNs, unixNs, unixToMonoNs } from '../src/common/time-source';
import {
  instantOf,
  LATE_STOP_SECONDS,
  isRunning,
  positionAt,
  ShowClock,
  snapshotTimecode,
  type ClockSnapshot,
  type ShowClockOptions,
} from '../src/show/show-clock';
import { chaseSettings, TimecodeChaser, type ChaseOptions } from '../src/show/timecode-chase';
import { parseTimecodeRate } from '../src/show/timecode';

// ------------------------------------------------------------------------------------------------------------------
// Helpers

const SEC = 1_000_000_000n;

/** `n` milliseconds in ns (n may be fractional). */
function ms(n: number): bigint {
  return BigInt(Math.round(n * 1e6));
}

/** Elapsed milliseconds from `from` to `to` (monotonic ns). */
function elapsedMs(from: bigint, to: bigint): number {
  return Number(to - from) / 1e6;
}

function isError(code: ErrorCode): (e: unknown) => boolean {
  return (e: unknown) => e instanceof CuemuxError && e.code === code;
}

const invalidArgument = isError('INVALID_ARGUMENT');

interface Change {
  s: ClockSnapshot;
  discontinuity: boolean;
  /** Monotonic instant at which the event was observed. */
  seenNs: bigint;
}

/** Record every 'change' of `clock` from now on. */
function record(clock: ShowClock): Change[] {
  const out: Change[] = [];
  clock.on('change', (s, discontinuity) => out.push({ s, discontinuity, seenNs: monoNs() }));
  return out;
}

type Settled = 'resolved' | 'rejected' | 'pending';

/** Whether `p` has settled once every pending microtask has run. */
async function settledState(p: Promise<unknown>): Promise<Settled> {
  let state: Settled = 'pending';
  void p.then(
    () => { state = 'resolved'; },
    () => { state = 'rejected'; },
  );
  await new Promise<void>((r) => setImmediate(r));
  return state;
}

function sleep(msec: number): Promise<void> {
  return new Promise<void>((r) => setTimeout(r, msec));
}

/** Resolve with `p`'s value, or fail when it has not settled within `msec` (a generous bound, not a timing test). */
async function within<T>(p: Promise<T>, msec: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${msec} ms`)), msec);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `cond` every 2 ms; fail after `msec` (a generous deadline for a loaded machine, not a timing test). */
async function waitFor(cond: () => boolean, what: string, msec = 20_000): Promise<void> {
  const deadline = Date.now() + msec;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

// Everything a test creates is closed (chasers, clocks) or aborted (waits) in afterEach.
let clocks: ShowClock[] = [];
let chasers: TimecodeChaser[] = [];
let aborts: AbortController[] = [];

function newClock(options?: ShowClockOptions): ShowClock {
  const c = new ShowClock(options);
  clocks.push(c);
  return c;
}

function newChaser(clock: ShowClock, options?: ChaseOptions): TimecodeChaser {
  const c = new TimecodeChaser(clock, options);
  chasers.push(c);
  return c;
}

/** clock.whenAt with a tracked AbortController; the returned promise is marked handled (tests still await it). */
function waitAt(clock: ShowClock, position: number, ac = new AbortController()): { p: Promise<void>; ac: AbortController } {
  aborts.push(ac);
  const p = clock.whenAt(position, ac.signal);
  void p.catch(() => undefined);
  return { p, ac };
}

/** A literal snapshot for the pure functions. */
const A = 5_000_000_000_000n;
function snap(over: Partial<ClockSnapshot>): ClockSnapshot {
  return {
    generation: 1, state: 'playing', rate: 1, positionSeconds: 0, anchorMonoNs: A, anchorUnixNs: monoToUnixNs(A),
    timecodeRate: parseTimecodeRate('25'), source: 'internal', ...over,
  };
}

/** Deterministic pseudo-random numbers in [0, 1) (xorshift32). */
function rng(seed: number): () => number {
  let x = seed | 0;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const logs: { level: LogLevel; name: string; message: string }[] = [];
let previousSink: LogSink | null = null;

/**
 * Hooks for one describe block (kept out of the root suite so other test files are unaffected): capture the log,
 * and close or abort everything the tests created.
 */
function useFixtures(): void {
  before(function () {
    previousSink = setLogSink((level, name, message) => { logs.push({ level, name, message }); });
  });

  after(function () {
    if (previousSink) setLogSink(previousSink);
    previousSink = null;
  });

  afterEach(function () {
    for (const ac of aborts) ac.abort();
    for (const c of chasers) c.close();
    for (const c of clocks) c.close();
    aborts = [];
    chasers = [];
    clocks = [];
    logs.length = 0;
  });
}

// ------------------------------------------------------------------------------------------------------------------
// time-source

describe('time-source', function () {
  useFixtures();

  it('maps monotonic to Unix time with one constant offset, both ways', function () {
    const offset = monoToUnixNs(0n);
    for (const x of [0n, 1n, 123_456_789n, monoNs(), monoNs() + 3600n * SEC, -5n * SEC]) {
      assert.equal(monoToUnixNs(x) - x, offset);
      assert.equal(unixToMonoNs(monoToUnixNs(x)), x);
      assert.equal(monoToUnixNs(unixToMonoNs(x)), x);
    }
  });

  it('gives a Unix time consistent with Date.now()', function () {
    const before = Date.now();
    const u = unixNs();
    const afterMs = Date.now();
    // Date.now() truncates to whole ms; allow 2 ms for the offset measurement and the truncation.
    assert.ok(u >= BigInt(before - 2) * 1_000_000n, `unixNs ${u} before Date.now() ${before}`);
    assert.ok(u <= BigInt(afterMs + 2) * 1_000_000n, `unixNs ${u} after Date.now() ${afterMs}`);
  });

  it('monoNs is monotonic', function () {
    let prev = monoNs();
    for (let i = 0; i < 1000; i++) {
      const now = monoNs();
      assert.ok(now >= prev);
      prev = now;
    }
  });
});

// ------------------------------------------------------------------------------------------------------------------
// Pure snapshot functions

describe('show clock snapshot functions', function () {
  useFixtures();

  it('isRunning: only playing or chasing with a non-zero rate', function () {
    assert.equal(isRunning(snap({ state: 'stopped' })), false);
    assert.equal(isRunning(snap({ state: 'stopped', rate: 2 })), false);
    assert.equal(isRunning(snap({ state: 'playing', rate: 0 })), false);
    assert.equal(isRunning(snap({ state: 'chasing', rate: 0, source: 'external' })), false);
    assert.equal(isRunning(snap({ state: 'playing', rate: 1 })), true);
    assert.equal(isRunning(snap({ state: 'playing', rate: -1 })), true);
    assert.equal(isRunning(snap({ state: 'chasing', rate: 1.001, source: 'external' })), true);
  });

  it('positionAt: frozen when not running, linear in the rate when running', function () {
    const stopped = snap({ state: 'stopped', positionSeconds: 12.5, rate: 3 });
    assert.equal(positionAt(stopped, A), 12.5);
    assert.equal(positionAt(stopped, A + 3600n * SEC), 12.5);
    assert.equal(positionAt(stopped, A - 10n * SEC), 12.5);

    const s = snap({ positionSeconds: 10, rate: 2 });
    assert.equal(positionAt(s, A), 10);
    assert.equal(positionAt(s, A + SEC), 12);
    assert.equal(positionAt(s, A + ms(250)), 10.5);
    assert.equal(positionAt(s, A - SEC), 8);

    const back = snap({ positionSeconds: 10, rate: -0.5 });
    assert.equal(positionAt(back, A + 4n * SEC), 8);
  });

  it('instantOf: forward, backward, already reached, never', function () {
    const fwd = snap({ positionSeconds: 1, rate: 2 });
    assert.equal(instantOf(fwd, 3), A + SEC);
    assert.equal(instantOf(fwd, 1), A);
    // Already passed: an instant before the anchor.
    assert.equal(instantOf(fwd, 0), A - ms(500));

    const back = snap({ positionSeconds: 5, rate: -2 });
    assert.equal(instantOf(back, 3), A + SEC);
    assert.equal(instantOf(back, 5), A);
    assert.equal(instantOf(back, 6), null, 'moving away from the position');

    assert.equal(instantOf(snap({ state: 'stopped', positionSeconds: 1 }), 3), null);
    assert.equal(instantOf(snap({ state: 'stopped', positionSeconds: 1 }), 1), null);
    assert.equal(instantOf(snap({ rate: 0 }), 3), null);
    assert.equal(instantOf(snap({ state: 'chasing', source: 'external', rate: 1, positionSeconds: 100 }), 100.25), A + ms(250));
  });

  it('instantOf is the inverse of positionAt (the position is reached at the returned instant)', function () {
    const rnd = rng(0x5eed);
    for (let i = 0; i < 3000; i++) {
      const rate = [1, 2, 0.5, 1.001, 0.999, 10, -1, -2.5, -0.25][i % 9];
      const pos = Math.round(rnd() * 1e6) / 1000;
      const s = snap({ positionSeconds: pos, rate, anchorMonoNs: A + BigInt(Math.floor(rnd() * 1e12)) });
      const target = rate > 0 ? pos + rnd() * 100 : pos - rnd() * 100;
      const when = instantOf(s, target);
      assert.ok(when !== null);
      const reached = positionAt(s, when);
      if (rate > 0) assert.ok(reached >= target, `rate ${rate} from ${pos}: ${reached} < ${target}`);
      else assert.ok(reached <= target, `rate ${rate} from ${pos}: ${reached} > ${target}`);
      // ...and not much later than needed (1 ns of clock plus rounding).
      assert.ok(Math.abs(reached - target) <= Math.abs(rate) * 2e-9 + 1e-9, `rate ${rate}: ${reached} vs ${target}`);
    }
  });

  it('snapshotTimecode labels the anchor position at the timecode rate', function () {
    assert.equal(snapshotTimecode(snap({ positionSeconds: 0 })), '00:00:00:00');
    assert.equal(snapshotTimecode(snap({ positionSeconds: 3601.5 })), '01:00:01:12');
    assert.equal(snapshotTimecode(snap({ positionSeconds: 60, timecodeRate: parseTimecodeRate('29.97df') })), '00:00:59;28');
    assert.equal(snapshotTimecode(snap({ positionSeconds: 1, timecodeRate: parseTimecodeRate('30') })), '00:00:01:00');
  });
});

// ------------------------------------------------------------------------------------------------------------------
// ShowClock

describe('ShowClock', function () {
  useFixtures();

  it('starts stopped at 0, generation 1, internal, rate 1, timecode rate 25', function () {
    const before = monoNs();
    const clock = newClock();
    const afterNs = monoNs();
    const s = clock.snapshot;
    assert.equal(s.state, 'stopped');
    assert.equal(s.positionSeconds, 0);
    assert.equal(s.generation, 1);
    assert.equal(s.source, 'internal');
    assert.equal(s.rate, 1);
    assert.equal(s.timecodeRate.name, '25');
    assert.ok(s.anchorMonoNs >= before && s.anchorMonoNs <= afterNs);
    assert.equal(s.anchorUnixNs, monoToUnixNs(s.anchorMonoNs));
    assert.equal(isRunning(s), false);
    assert.equal(clock.position(), 0);
    assert.equal(clock.position(monoNs() + 60n * SEC), 0);
    assert.equal(snapshotTimecode(s), '00:00:00:00');
  });

  it('takes the timecode rate option and rejects a bad one', function () {
    assert.equal(newClock({ timecodeRate: '29.97df' }).snapshot.timecodeRate.name, '29.97df');
    assert.equal(newClock({ timecodeRate: '23.976' }).snapshot.timecodeRate.name, '23.976');
    assert.throws(() => new ShowClock({ timecodeRate: '31' }), invalidArgument);
    assert.throws(() => new ShowClock({ timecodeRate: 'fast' }), invalidArgument);
  });

  it('play and stop re-anchor the clock in the same generation (continuous); each locate bumps it by exactly one', function () {
    const clock = newClock();
    const ev = record(clock);
    const t0 = monoNs();

    clock.play(t0);
    assert.equal(ev.length, 1);
    assert.equal(ev[0].discontinuity, false, 'a play goes on from where the clock stood');
    assert.equal(ev[0].s, clock.snapshot, 'the event carries the new snapshot');
    assert.equal(clock.snapshot.generation, 1);
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.snapshot.source, 'internal');
    assert.equal(clock.snapshot.anchorMonoNs, t0);
    assert.equal(clock.snapshot.anchorUnixNs, monoToUnixNs(t0));
    assert.equal(clock.snapshot.positionSeconds, 0);
    assert.equal(clock.position(t0 + 1234n * 1_000_000n), 1.234);

    clock.stop(t0 + ms(1500));
    assert.equal(ev.length, 2);
    assert.equal(ev[1].discontinuity, false, 'a stop freezes the position it reached');
    assert.equal(clock.snapshot.generation, 1);
    assert.equal(clock.snapshot.state, 'stopped');
    assert.equal(clock.snapshot.positionSeconds, 1.5);
    assert.equal(clock.snapshot.anchorMonoNs, t0 + ms(1500));

    clock.play(t0 + 5n * SEC);
    assert.equal(ev[2].discontinuity, false);
    assert.equal(clock.snapshot.generation, 1);
    assert.equal(clock.position(t0 + 6n * SEC), 2.5, 'resumed from the stopped position');

    clock.locate(7, t0 + 6n * SEC);
    assert.equal(ev.length, 4);
    assert.equal(ev[3].discontinuity, true);
    assert.equal(clock.snapshot.generation, 2);
    assert.equal(clock.snapshot.state, 'playing', 'locate keeps the playing state');
    assert.equal(clock.snapshot.positionSeconds, 7);

    clock.stop(t0 + 7n * SEC);
    clock.locate(7, t0 + 8n * SEC);
    assert.equal(clock.snapshot.state, 'stopped', 'locate keeps the stopped state');
    assert.equal(clock.snapshot.generation, 3);
    // A locate to the very same position is still a locate (a new timeline).
    clock.locate(7, t0 + 9n * SEC);
    assert.equal(clock.snapshot.generation, 4);

    assert.deepEqual(ev.map((e) => [e.s.generation, e.discontinuity]), [[1, false], [1, false], [1, false], [2, true], [2, false], [3, true], [4, true]]);
  });

  it('a stop frozen further back than LATE_STOP_SECONDS (a late bundle) is a discontinuity; a play taken from a still chased source runs at rate 1', function () {
    const clock = newClock();
    const ev = record(clock);
    clock.play(monoNs() - 10n * SEC);
    clock.stop(monoNs() - ms(500));
    assert.equal(ev[1].discontinuity, true, 'the players went on 0.5 s past the position it freezes');
    assert.equal(clock.snapshot.generation, 2);
    clock.play();
    clock.stop(monoNs() - ms(Math.floor(LATE_STOP_SECONDS * 1000 / 2)));
    assert.equal(ev[3].discontinuity, false, 'a few ms back: the players keep what they have');

    const chased = newClock();
    const t0 = monoNs();
    chased.chase(10, 0, t0, true); // a paused source: frozen at rate 0
    chased.play(t0 + SEC);
    assert.equal(chased.snapshot.rate, 1);
    assert.equal(chased.position(t0 + 2n * SEC), 11);
  });

  it('play on a playing clock and stop on a stopped clock are no-ops', function () {
    const clock = newClock();
    const ev = record(clock);
    const t0 = monoNs();
    clock.stop(t0);
    assert.equal(ev.length, 0);
    assert.equal(clock.snapshot.generation, 1);

    clock.play(t0);
    const playing = clock.snapshot;
    clock.play(t0 + SEC);
    clock.play(t0 + 2n * SEC);
    assert.equal(ev.length, 1);
    assert.equal(clock.snapshot, playing, 'snapshot untouched');
    assert.equal(clock.position(t0 + 3n * SEC), 3, 'the second play did not re-anchor');

    clock.stop(t0 + 4n * SEC);
    clock.stop(t0 + 5n * SEC);
    assert.equal(ev.length, 2);
    assert.equal(clock.snapshot.positionSeconds, 4);
  });

  it('freezes the position while stopped and resumes from it on play', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.locate(42.5, t0);
    for (const dt of [0n, 1n, SEC, 3600n * SEC]) assert.equal(clock.position(t0 + dt), 42.5);
    clock.play(t0 + 10n * SEC);
    assert.equal(clock.position(t0 + 11n * SEC), 43.5, 'play starts from the frozen position, not from the locate instant');
    clock.stop(t0 + ms(12_250));
    assert.equal(clock.position(t0 + 100n * SEC), 44.75);
  });

  it('locate while playing keeps playing from the new position (also negative positions)', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.play(t0);
    clock.locate(10, t0 + SEC);
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.snapshot.generation, 2);
    assert.equal(clock.position(t0 + SEC), 10);
    assert.equal(clock.position(t0 + 3n * SEC), 12);

    clock.locate(-3, t0 + 4n * SEC);
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.position(t0 + 5n * SEC), -2);
  });

  it('setRate re-anchors without a discontinuity and keeps the position continuous', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.play(t0);
    const ev = record(clock);

    clock.setRate(2, t0 + SEC);
    assert.equal(ev.length, 1);
    assert.equal(ev[0].discontinuity, false);
    const s = clock.snapshot;
    assert.equal(s.generation, 1, 'same timeline');
    assert.equal(s.rate, 2);
    assert.equal(s.state, 'playing');
    assert.equal(s.anchorMonoNs, t0 + SEC);
    assert.equal(s.anchorUnixNs, monoToUnixNs(t0 + SEC));
    assert.equal(s.positionSeconds, 1);
    assert.equal(clock.position(t0 + SEC), 1);
    assert.equal(clock.position(t0 + 2n * SEC), 3);

    clock.setRate(0.5, t0 + 3n * SEC);
    assert.equal(ev.length, 2);
    assert.equal(ev[1].discontinuity, false);
    assert.equal(clock.snapshot.positionSeconds, 5);
    assert.equal(clock.position(t0 + 5n * SEC), 6);

    clock.setRate(0.5, t0 + 6n * SEC);
    assert.equal(ev.length, 2, 'same rate: no change');
    assert.equal(clock.snapshot.generation, 1);
  });

  it('setRate while stopped keeps the position and applies on play; rate 0 or below is refused', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.locate(1, t0);
    clock.setRate(4, t0 + SEC);
    assert.equal(clock.snapshot.state, 'stopped');
    assert.equal(clock.snapshot.rate, 4);
    assert.equal(clock.position(t0 + 5n * SEC), 1);
    clock.play(t0 + 2n * SEC);
    assert.equal(clock.position(t0 + ms(2500)), 3);

    assert.throws(() => clock.setRate(0, t0 + 3n * SEC), invalidArgument);
    assert.throws(() => clock.setRate(-1, t0 + 3n * SEC), invalidArgument);
    assert.equal(clock.snapshot.rate, 4);
    assert.equal(clock.snapshot.generation, 2);
  });

  it('setTimecodeRate changes the labels but not the position', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.locate(60, t0);
    assert.equal(snapshotTimecode(clock.snapshot), '00:01:00:00');
    const ev = record(clock);

    clock.setTimecodeRate('29.97df');
    assert.equal(ev.length, 1);
    assert.equal(ev[0].discontinuity, false);
    assert.equal(clock.snapshot.generation, 2);
    assert.equal(clock.snapshot.timecodeRate.name, '29.97df');
    assert.equal(clock.snapshot.positionSeconds, 60);
    assert.equal(clock.snapshot.state, 'stopped');
    assert.equal(snapshotTimecode(clock.snapshot), '00:00:59;28');

    clock.setTimecodeRate('29.97 DF');
    assert.equal(ev.length, 1, 'same rate by another spelling: no change');
    clock.setTimecodeRate(30);
    assert.equal(clock.snapshot.timecodeRate.name, '30');
    assert.equal(snapshotTimecode(clock.snapshot), '00:01:00:00');

    const before = clock.snapshot;
    assert.throws(() => clock.setTimecodeRate('bogus'), invalidArgument);
    assert.equal(clock.snapshot, before);
  });

  it('setTimecodeRate on a playing clock keeps the timeline', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.play(t0);
    const probe = t0 + 30n * SEC;
    const expected = clock.position(probe);
    clock.setTimecodeRate('24');
    assert.equal(clock.snapshot.generation, 1);
    assert.equal(clock.snapshot.state, 'playing');
    assert.ok(Math.abs(clock.position(probe) - expected) < 1e-9, `${clock.position(probe)} vs ${expected}`);
  });

  it('rejects invalid rates and positions with INVALID_ARGUMENT and changes nothing', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.play(t0);
    const before = clock.snapshot;
    const ev = record(clock);
    for (const r of [NaN, Infinity, -Infinity, 16.0001, -17, 1e9, 0, -0.5, -16]) {
      assert.throws(() => clock.setRate(r, t0 + SEC), invalidArgument, `rate ${r}`);
    }
    for (const p of [NaN, Infinity, -Infinity, 7 * 24 * 3600 + 1, -(7 * 24 * 3600 + 1), 1e12]) {
      assert.throws(() => clock.locate(p, t0 + SEC), invalidArgument, `locate ${p}`);
      assert.throws(() => clock.chase(p, 1, t0 + SEC, true), invalidArgument, `chase ${p}`);
    }
    assert.equal(ev.length, 0);
    assert.equal(clock.snapshot, before);

    // The limits themselves are accepted.
    clock.setRate(16, t0 + SEC);
    clock.setRate(1e-6, t0 + SEC);
    clock.locate(7 * 24 * 3600, t0 + SEC);
    clock.locate(-7 * 24 * 3600, t0 + SEC);
    assert.equal(clock.snapshot.positionSeconds, -7 * 24 * 3600);
  });

  it('keeps anchorUnixNs - anchorMonoNs equal to the time-source offset on every change', function () {
    const clock = newClock();
    const offset = monoToUnixNs(0n);
    const check = (): void => assert.equal(clock.snapshot.anchorUnixNs - clock.snapshot.anchorMonoNs, offset);
    check();
    const t0 = monoNs();
    clock.play(t0 + 7n);
    check();
    clock.setRate(2, t0 + SEC + 3n);
    check();
    clock.locate(5, t0 + 2n * SEC + 999n);
    check();
    clock.setTimecodeRate('50');
    check();
    clock.chase(9, 1, t0 + 3n * SEC + 1n, true);
    check();
    clock.chaseStop(t0 + 4n * SEC + 11n);
    check();
    clock.stop();
    check();
    assert.equal(unixToMonoNs(clock.snapshot.anchorUnixNs), clock.snapshot.anchorMonoNs);
  });

  it('chase/chaseStop follow an external source; play, stop and locate return to the internal one', function () {
    const clock = newClock();
    const ev = record(clock);
    const t0 = monoNs();
    clock.chase(100, 1.001, t0, true);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.source, 'external');
    assert.equal(clock.snapshot.generation, 2);
    clock.chase(100.5, 1, t0 + ms(500), false);
    assert.equal(clock.snapshot.generation, 2);
    assert.equal(ev[1].discontinuity, false);

    clock.chaseStop(t0 + ms(1500));
    assert.equal(clock.snapshot.state, 'stopped');
    assert.equal(clock.snapshot.source, 'external');
    assert.equal(clock.snapshot.generation, 3);
    assert.equal(clock.snapshot.positionSeconds, 101.5);

    // stop() on an externally stopped clock is not a no-op: it hands the clock back to the internal master.
    clock.stop(t0 + 2n * SEC);
    assert.equal(clock.snapshot.source, 'internal');
    assert.equal(clock.snapshot.generation, 3);
    assert.equal(clock.snapshot.positionSeconds, 101.5);

    clock.chase(200, 1, t0 + 3n * SEC, true);
    clock.locate(10, t0 + 4n * SEC);
    assert.equal(clock.snapshot.state, 'playing', 'locate of a chasing clock keeps it running, internally');
    assert.equal(clock.snapshot.source, 'internal');
    assert.equal(clock.position(t0 + 5n * SEC), 11);

    clock.chase(300, 1, t0 + 6n * SEC, true);
    clock.play(t0 + 7n * SEC);
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.snapshot.source, 'internal');
    assert.equal(clock.snapshot.positionSeconds, 301);
    assert.equal(clock.snapshot.generation, 6);
    assert.deepEqual(ev.map((e) => e.discontinuity), [true, false, true, false, true, true, true, false], 'a chased correction, the stop and the play keep the timeline');
  });

  it('a listener that throws does not break the clock or the other listeners', function () {
    const clock = newClock();
    clock.on('change', () => {
      throw new Error('faulty subscriber');
    });
    const ev = record(clock);
    clock.play();
    assert.equal(ev.length, 1);
    assert.equal(clock.snapshot.state, 'playing');
    assert.ok(logs.some((l) => l.level === 'error' && l.message.includes('change')));
  });
});

// ------------------------------------------------------------------------------------------------------------------
// ShowClock.whenAt

describe('ShowClock.whenAt', function () {
  useFixtures();

  it('rejects a position that is not a finite number (INVALID_ARGUMENT) and leaves no listener behind', async function () {
    const clock = newClock();
    clock.play();
    const before = clock.listenerCount('change');
    for (const p of [NaN, Infinity, -Infinity]) await assert.rejects(clock.whenAt(p, new AbortController().signal), invalidArgument);
    clock.stop();
    await assert.rejects(clock.whenAt(NaN, new AbortController().signal), invalidArgument);
    assert.equal(clock.listenerCount('change'), before);
  });

  it('resolves at once when a stopped clock is at or past the position', async function () {
    const clock = newClock();
    clock.locate(5);
    for (const target of [5, 4.999, 3, -1]) {
      assert.equal(await settledState(waitAt(clock, target).p), 'resolved', `target ${target}`);
    }
    assert.equal(clock.listenerCount('change'), 0);
  });

  it('resolves at once when a running clock is already past the position (forward and backward)', async function () {
    const clock = newClock();
    clock.locate(10);
    clock.play();
    assert.equal(await settledState(waitAt(clock, 10).p), 'resolved');
    assert.equal(await settledState(waitAt(clock, 2).p), 'resolved');

    // Only a chased source can run backwards (setRate refuses it).
    const back = newClock();
    back.chase(10, -1, monoNs(), true);
    // "At or past" means position >= target, whatever the direction.
    assert.equal(await settledState(waitAt(back, 5).p), 'resolved');
    assert.equal(clock.listenerCount('change'), 0);
    assert.equal(back.listenerCount('change'), 0);
  });

  it('a stopped clock short of the target resolves only when a locate jumps past it', async function () {
    const clock = newClock();
    const { p, ac } = waitAt(clock, 10);
    assert.equal(await settledState(p), 'pending');
    assert.equal(clock.listenerCount('change'), 1);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    await sleep(30);
    assert.equal(await settledState(p), 'pending');
    clock.locate(9.5);
    assert.equal(await settledState(p), 'pending', 'still short');
    clock.setRate(3);
    assert.equal(await settledState(p), 'pending', 'rate change of a stopped clock');
    clock.locate(12);
    assert.equal(await settledState(p), 'resolved');
    assert.equal(clock.listenerCount('change'), 0, 'change listener removed after resolve');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'abort listener removed after resolve');
  });

  it('resolves when a playing clock reaches the target (rate 10)', async function () {
    const clock = newClock();
    clock.setRate(10);
    const start = monoNs();
    clock.play(start);
    const { p } = waitAt(clock, 3); // 300 ms of real time: pending at the next turn of the loop however loaded
    assert.equal(await settledState(p), 'pending');
    await within(p, 20_000, 'whenAt(3) at rate 10');
    const now = monoNs();
    assert.ok(clock.position(now) >= 3, `resolved early at ${clock.position(now)}`);
    assert.ok(elapsedMs(start, now) >= 299, `resolved after only ${elapsedMs(start, now)} ms`);
    assert.equal(clock.listenerCount('change'), 0);
  });

  it('resolves when a playing clock reaches a target 50 ms ahead (rate 1, non-zero start)', async function () {
    const clock = newClock();
    clock.locate(100);
    clock.play();
    const target = clock.position() + 0.05;
    await within(waitAt(clock, target).p, 20_000, 'whenAt 50 ms ahead');
    assert.ok(clock.position() >= target);
  });

  it('rejects with the abort reason and removes its listeners', async function () {
    const clock = newClock();
    clock.play();
    const { p, ac } = waitAt(clock, 1000);
    assert.equal(await settledState(p), 'pending');
    const reason = new Error('cue unloaded');
    ac.abort(reason);
    await assert.rejects(p, (e: unknown) => e === reason);
    assert.equal(clock.listenerCount('change'), 0);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);

    const w2 = waitAt(clock, 1000);
    w2.ac.abort();
    await assert.rejects(w2.p, (e: unknown) => e instanceof Error && e.name === 'AbortError');

    const w3 = waitAt(clock, 1000);
    w3.ac.abort('not an Error');
    await assert.rejects(w3.p, isError('CLOSED'));
    assert.equal(clock.listenerCount('change'), 0);
  });

  it('rejects at once on an already aborted signal without subscribing', async function () {
    const clock = newClock();
    const ac = new AbortController();
    const reason = new Error('already gone');
    ac.abort(reason);
    const { p } = waitAt(clock, 0, ac); // would resolve at once if not aborted
    assert.equal(clock.listenerCount('change'), 0);
    await assert.rejects(p, (e: unknown) => e === reason);
  });

  it('does not resolve while stopped short of the target, and resolves after a locate past it', async function () {
    const clock = newClock();
    clock.play();
    const { p } = waitAt(clock, 0.15);
    // Stopped in the same turn of the event loop: short of the target however slow the machine is.
    clock.stop();
    const stoppedAt = clock.snapshot.positionSeconds;
    assert.ok(stoppedAt < 0.15, `stopped at ${stoppedAt}`);
    await sleep(200); // well past the originally planned wake-up
    assert.equal(await settledState(p), 'pending', 'resolved while stopped short of the target');
    assert.equal(clock.listenerCount('change'), 1);
    clock.locate(0.2);
    assert.equal(await settledState(p), 'resolved');
    assert.equal(clock.listenerCount('change'), 0);
  });

  it('re-plans after a stop and a new play, resolving only once the position is reached', async function () {
    const clock = newClock();
    clock.play();
    const { p } = waitAt(clock, 0.12);
    // Stopped in the same turn of the event loop (short of the target however slow the machine), then past the
    // wake-up first planned.
    clock.stop();
    await sleep(150);
    assert.equal(await settledState(p), 'pending');
    clock.play();
    await within(p, 20_000, 'whenAt after re-play');
    assert.ok(clock.position() >= 0.12, `resolved at ${clock.position()}`);
  });

  it('a locate backwards while playing moves the wake-up later', async function () {
    const clock = newClock();
    clock.setRate(2);
    clock.play();
    const { p } = waitAt(clock, 0.1); // 50 ms away
    clock.locate(-0.1); // now 100 ms away
    const located = monoNs();
    await within(p, 20_000, 'whenAt after locate back');
    const now = monoNs();
    assert.ok(clock.position(now) >= 0.1);
    assert.ok(elapsedMs(located, now) >= 99, `resolved ${elapsedMs(located, now)} ms after the locate`);
  });

  it('a clock running backwards below the target waits until it turns around', async function () {
    const clock = newClock();
    clock.chase(0, -1, monoNs(), true);
    const { p } = waitAt(clock, 0.05);
    await sleep(30);
    assert.equal(await settledState(p), 'pending');
    assert.ok(clock.position() < 0);
    clock.chase(clock.position(), 10, monoNs(), false);
    await within(p, 20_000, 'whenAt after the rate turned positive');
    assert.ok(clock.position() >= 0.05);
    assert.equal(clock.listenerCount('change'), 0);
  });

  it('a correction without discontinuity (chase) re-plans the wake-up', async function () {
    const clock = newClock();
    clock.chase(0, 1, monoNs(), true);
    const { p } = waitAt(clock, 0.5);
    assert.equal(await settledState(p), 'pending');
    clock.chase(0.6, 1, monoNs(), false);
    assert.equal(await settledState(p), 'resolved');
  });

  it('several waits each resolve in order and leave no listeners', async function () {
    const clock = newClock();
    clock.setRate(10);
    clock.play();
    const order: number[] = [];
    const targets = [0.4, 0.1, 0.3, 0.2, 0.25];
    const waits = targets.map((t) => waitAt(clock, t).p.then(() => { order.push(t); }));
    assert.equal(clock.listenerCount('change'), targets.length);
    await within(Promise.all(waits), 20_000, 'all waits');
    assert.deepEqual(order, [...targets].sort((a, b) => a - b));
    assert.equal(clock.listenerCount('change'), 0);
  });
});

// ------------------------------------------------------------------------------------------------------------------
// TimecodeChaser, deterministic (explicit instants; the loss timer is set far away)

describe('TimecodeChaser', function () {
  useFixtures();

  const quiet: ChaseOptions = { lossTimeoutMs: 60_000 };

  it('locks on the first sample: chasing, external, new generation', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    assert.equal(chaser.locked, false);
    const ev = record(clock);
    const t0 = monoNs();
    chaser.feed(100, t0);
    assert.equal(chaser.locked, true);
    assert.equal(ev.length, 1);
    assert.equal(ev[0].discontinuity, true);
    const s = clock.snapshot;
    assert.equal(s.generation, 2);
    assert.equal(s.state, 'chasing');
    assert.equal(s.source, 'external');
    assert.equal(s.rate, 1);
    assert.equal(s.positionSeconds, 100);
    assert.equal(s.anchorMonoNs, t0);
    assert.equal(clock.position(t0 + SEC), 101);
  });

  it('locks a playing clock too (taking it from the internal master)', function () {
    const clock = newClock();
    const t0 = monoNs();
    clock.play(t0);
    const chaser = newChaser(clock, quiet);
    chaser.feed(3600, t0 + SEC);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.source, 'external');
    assert.equal(clock.snapshot.generation, 2);
    assert.equal(clock.position(t0 + 2n * SEC), 3601);
  });

  it('samples on the extrapolation (or within correctSeconds) change nothing', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    const t0 = monoNs();
    chaser.feed(100, t0);
    const locked = clock.snapshot;
    const ev = record(clock);
    for (let k = 1; k <= 100; k++) chaser.feed(100 + 0.04 * k, t0 + BigInt(k) * ms(40));
    // Jitter of ±3 ms (below the default 4 ms tolerance).
    for (let k = 101; k <= 200; k++) chaser.feed(100 + 0.04 * k + (k % 2 === 0 ? 0.003 : -0.003), t0 + BigInt(k) * ms(40));
    assert.equal(ev.length, 0);
    assert.equal(clock.snapshot, locked);
    assert.equal(chaser.locked, true);
  });

  it('a drift beyond correctSeconds but within jumpSeconds re-anchors in the same generation', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    const t0 = monoNs();
    chaser.feed(100, t0);
    const ev = record(clock);

    chaser.feed(100.05, t0 + ms(40)); // 10 ms ahead of the extrapolation
    assert.equal(ev.length, 1);
    assert.equal(ev[0].discontinuity, false);
    assert.equal(clock.snapshot.generation, 2);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.positionSeconds, 100.05);
    assert.equal(clock.snapshot.anchorMonoNs, t0 + ms(40));
    assert.equal(clock.snapshot.rate, 1, 'too few samples to estimate a rate');

    chaser.feed(100.2, t0 + ms(200)); // 10 ms behind (re-anchored extrapolation says 100.21)
    assert.equal(ev.length, 2);
    assert.equal(ev[1].discontinuity, false);
    assert.equal(clock.snapshot.generation, 2);
    assert.equal(clock.snapshot.positionSeconds, 100.2);

    // Custom tolerances: 50 ms is a correction under jumpSeconds 1, not a jump.
    const c2 = newClock();
    const ch2 = newChaser(c2, { ...quiet, jumpSeconds: 1, correctSeconds: 0.1 });
    ch2.feed(10, t0);
    const ev2 = record(c2);
    ch2.feed(10.09, t0); // within 0.1: nothing
    assert.equal(ev2.length, 0);
    ch2.feed(10.5, t0); // 0.5: correction
    assert.equal(ev2.length, 1);
    assert.equal(ev2[0].discontinuity, false);
    assert.equal(c2.snapshot.generation, 2);
  });

  it('estimates the rate only from four samples on (source at 1.01, tight tolerance)', function () {
    const clock = newClock();
    const chaser = newChaser(clock, { ...quiet, correctSeconds: 0.0001 });
    const t0 = monoNs();
    const at = (k: number): bigint => t0 + BigInt(k) * ms(40);
    const src = (k: number): number => 100 + 1.01 * 0.04 * k;
    chaser.feed(src(0), at(0));
    const ev = record(clock);
    for (let k = 1; k <= 3; k++) chaser.feed(src(k), at(k));
    assert.equal(ev.length, 3, 'each sample drifts 0.4 ms > 0.1 ms');
    assert.ok(ev.every((e) => !e.discontinuity && e.s.generation === 2));
    assert.equal(ev[0].s.rate, 1);
    assert.equal(ev[1].s.rate, 1);
    assert.ok(Math.abs(ev[2].s.rate - 1.01) < 1e-6, `rate ${ev[2].s.rate}`);
    // From then on the clock predicts the source: no more changes.
    for (let k = 4; k <= 60; k++) chaser.feed(src(k), at(k));
    assert.equal(ev.length, 3);
    assert.ok(Math.abs(clock.position(at(100)) - src(100)) < 1e-4);
  });

  for (const sourceRate of [1.001, 0.999]) {
    it(`follows a source running at ${sourceRate} with few corrections and the right rate`, function () {
      const clock = newClock();
      const chaser = newChaser(clock, quiet);
      const t0 = monoNs();
      const at = (k: number): bigint => t0 + BigInt(k) * ms(40);
      const src = (k: number): number => 100 + sourceRate * 0.04 * k;
      chaser.feed(src(0), at(0));
      const ev = record(clock);
      for (let k = 1; k <= 300; k++) chaser.feed(src(k), at(k));
      assert.ok(ev.length >= 1 && ev.length <= 3, `${ev.length} corrections for 12 s of a steady source`);
      assert.ok(ev.every((e) => !e.discontinuity));
      assert.equal(clock.snapshot.generation, 2);
      assert.equal(clock.snapshot.state, 'chasing');
      assert.ok(Math.abs(clock.snapshot.rate - sourceRate) < 1e-4, `rate ${clock.snapshot.rate}`);
      assert.ok(Math.abs(clock.position(at(300)) - src(300)) <= 0.004);
      // The clock now predicts the source a second ahead to within a millisecond.
      assert.ok(Math.abs(clock.position(at(325)) - src(325)) < 0.001);
    });
  }

  it('a jump beyond jumpSeconds re-locks in a new generation at the sample, rate back to 1', function () {
    const clock = newClock();
    const chaser = newChaser(clock, { ...quiet, correctSeconds: 0.0001 });
    const t0 = monoNs();
    const at = (k: number): bigint => t0 + BigInt(k) * ms(40);
    for (let k = 0; k <= 10; k++) chaser.feed(100 + 1.01 * 0.04 * k, at(k));
    assert.ok(Math.abs(clock.snapshot.rate - 1.01) < 1e-6);
    const ev = record(clock);

    chaser.feed(200, at(11));
    assert.equal(ev.length, 1);
    assert.equal(ev[0].discontinuity, true);
    assert.equal(clock.snapshot.generation, 3);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.positionSeconds, 200);
    assert.equal(clock.snapshot.anchorMonoNs, at(11));
    assert.equal(clock.snapshot.rate, 1);
    assert.equal(chaser.locked, true);

    chaser.feed(150, at(12)); // backwards jump
    assert.equal(ev.length, 2);
    assert.equal(ev[1].discontinuity, true);
    assert.equal(clock.snapshot.generation, 4);
    assert.equal(clock.snapshot.positionSeconds, 150);

    // Just over the default jump threshold (0.25 s), ahead of the extrapolation.
    const ahead = clock.position(at(13)) + 0.3;
    chaser.feed(ahead, at(13));
    assert.equal(clock.snapshot.generation, 5);
    assert.equal(clock.snapshot.positionSeconds, ahead);
  });

  it('a still source (one position repeated) runs at rate 0 with no further generations', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    const t0 = monoNs();
    chaser.feed(20, t0);
    const ev = record(clock);
    chaser.feed(20, t0 + ms(500)); // the extrapolation says 20.5: a jump, but to the same position
    assert.equal(ev.length, 1);
    assert.equal(ev[0].discontinuity, true);
    assert.equal(clock.snapshot.generation, 3);
    assert.equal(clock.snapshot.rate, 0);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.source, 'external');
    assert.equal(isRunning(clock.snapshot), false);
    assert.equal(clock.position(t0 + 60n * SEC), 20);

    for (let k = 2; k <= 12; k++) chaser.feed(20, t0 + BigInt(k) * ms(500));
    assert.equal(ev.length, 1, 'identical samples of a still source change nothing');
    assert.equal(clock.snapshot.generation, 3);
    assert.equal(chaser.locked, true);

    // The source moves again (by more than jumpSeconds between samples): a new timeline at rate 1.
    chaser.feed(20.5, t0 + ms(6500));
    assert.equal(ev.length, 2);
    assert.equal(ev[1].discontinuity, true);
    assert.equal(clock.snapshot.generation, 4);
    assert.equal(clock.snapshot.rate, 1);
    assert.equal(clock.position(t0 + ms(7500)), 21.5);
  });

  it('a still source at frame rate freezes once (rate 0, same generation) and a restart runs at the source rate again', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    const t0 = monoNs();
    chaser.feed(10, t0);
    const gen = clock.snapshot.generation;
    const ev = record(clock);
    for (let k = 1; k <= 200; k++) chaser.feed(10, t0 + BigInt(k) * ms(40));
    assert.equal(ev.length, 1, 'one change when the source stops, none for the repeats');
    assert.equal(ev[0].discontinuity, false);
    assert.deepEqual([clock.snapshot.rate, clock.snapshot.generation], [0, gen]);
    assert.equal(clock.position(t0 + 60n * SEC), 10);
    // The source runs again at 25 fps: back to rate 1 at once, then only a few corrections.
    const restart = t0 + 201n * ms(40);
    for (let k = 1; k <= 500; k++) chaser.feed(10 + 0.04 * k, restart + BigInt(k) * ms(40));
    assert.ok(Math.abs(clock.snapshot.rate - 1) < 1e-4, `rate ${clock.snapshot.rate}`);
    assert.ok(ev.length <= 4, `${ev.length} changes`);
    assert.equal(clock.snapshot.generation, gen);
    assert.ok(Math.abs(clock.position(restart + 500n * ms(40)) - 30) < 0.005);
  });

  it('close() stops listening to the clock', function () {
    const clock = newClock();
    const before = clock.listenerCount('change');
    const chaser = new TimecodeChaser(clock, quiet);
    assert.equal(clock.listenerCount('change'), before + 1);
    chaser.close();
    chaser.close();
    assert.equal(clock.listenerCount('change'), before);
  });

  it('explicit play/stop/locate unlock the chaser; the next sample re-locks', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    const t0 = monoNs();
    chaser.feed(50, t0);
    assert.equal(chaser.locked, true);

    clock.locate(3, t0 + SEC);
    assert.equal(chaser.locked, false);
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.snapshot.source, 'internal');
    const gen = clock.snapshot.generation;

    // A sample that happens to be on the internal clock's extrapolation still re-locks (new generation).
    chaser.feed(4, t0 + 2n * SEC);
    assert.equal(chaser.locked, true);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.source, 'external');
    assert.equal(clock.snapshot.generation, gen + 1);

    clock.stop(t0 + 3n * SEC);
    assert.equal(chaser.locked, false);
    assert.equal(clock.snapshot.state, 'stopped');
    assert.equal(clock.snapshot.source, 'internal');

    chaser.feed(10, t0 + 4n * SEC);
    assert.equal(chaser.locked, true);
    clock.play(t0 + 5n * SEC);
    assert.equal(chaser.locked, false);
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.snapshot.source, 'internal');
    assert.equal(clock.position(t0 + 6n * SEC), 12);
  });

  it('setRate and setTimecodeRate while chasing keep the lock', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    chaser.feed(50);
    clock.setTimecodeRate('30');
    assert.equal(chaser.locked, true);
    clock.setRate(1.5);
    assert.equal(chaser.locked, true);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.source, 'external');
  });

  it('rejects non-finite samples without touching the clock', function () {
    const clock = newClock();
    const chaser = newChaser(clock, quiet);
    const ev = record(clock);
    for (const p of [NaN, Infinity, -Infinity]) assert.throws(() => chaser.feed(p), invalidArgument);
    assert.equal(ev.length, 0);
    assert.equal(chaser.locked, false);
    assert.equal(clock.snapshot.state, 'stopped');
  });

  it('validates its settings (INVALID_ARGUMENT) and applies the documented defaults', function () {
    assert.deepEqual(chaseSettings({}), {
      jumpSeconds: 0.25, correctSeconds: 0.004, lossTimeoutMs: 250, lossPolicy: 'hold', freerunMs: 2000,
    });
    assert.deepEqual(chaseSettings({ jumpSeconds: 1, correctSeconds: 0.5, lossTimeoutMs: 10, lossPolicy: 'freerun', freerunMs: 5 }), {
      jumpSeconds: 1, correctSeconds: 0.5, lossTimeoutMs: 10, lossPolicy: 'freerun', freerunMs: 5,
    });
    const bad: ChaseOptions[] = [
      { jumpSeconds: -1 }, { jumpSeconds: 0 }, { jumpSeconds: NaN }, { jumpSeconds: Infinity },
      { correctSeconds: -0.001 }, { correctSeconds: 0 }, { correctSeconds: NaN },
      { lossTimeoutMs: 0 }, { lossTimeoutMs: -5 }, { lossTimeoutMs: Infinity },
      { freerunMs: -1 }, { freerunMs: 0 }, { freerunMs: NaN },
      { correctSeconds: 0.3 }, // ≥ default jumpSeconds 0.25
      { correctSeconds: 0.1, jumpSeconds: 0.1 },
      { correctSeconds: 1, jumpSeconds: 0.5 },
      { lossPolicy: 'pause' as unknown as 'hold' },
      { lossPolicy: '' as unknown as 'hold' },
    ];
    const clock = newClock();
    for (const o of bad) {
      assert.throws(() => chaseSettings(o), invalidArgument, JSON.stringify(o));
      assert.throws(() => new TimecodeChaser(clock, o), invalidArgument, JSON.stringify(o));
    }
    assert.equal(clock.listenerCount('change'), 0, 'a rejected chaser does not subscribe to the clock');
  });
});

// ------------------------------------------------------------------------------------------------------------------
// TimecodeChaser loss handling (real timers, small values)

describe('TimecodeChaser loss', function () {
  useFixtures();

  it('hold: stops in place after lossTimeoutMs, source stays external, one new generation', async function () {
    const clock = newClock();
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'hold' });
    const f = monoNs();
    chaser.feed(10, f);
    const lockSnap = clock.snapshot;
    const ev = record(clock);
    await waitFor(() => clock.snapshot.state === 'stopped', 'the hold stop');
    assert.equal(ev.length, 1);
    const stop = ev[0];
    assert.equal(stop.discontinuity, true);
    assert.equal(stop.s.generation, lockSnap.generation + 1);
    assert.equal(stop.s.state, 'stopped');
    assert.equal(stop.s.source, 'external');
    assert.equal(chaser.locked, false);
    // Timers never fire early (a few ms of slack for libuv's cached loop time).
    assert.ok(elapsedMs(f, stop.s.anchorMonoNs) >= 50, `stopped ${elapsedMs(f, stop.s.anchorMonoNs)} ms after the sample`);
    // Stopped where the chased timeline was at the stop instant.
    assert.equal(stop.s.positionSeconds, positionAt(lockSnap, stop.s.anchorMonoNs));
    assert.ok(logs.some((l) => l.level === 'warn' && l.name === 'timecode-chase' && l.message.includes('lost')));

    await sleep(100);
    assert.equal(ev.length, 1, 'nothing more happens after the hold');

    // A new sample re-locks.
    chaser.feed(50);
    assert.equal(chaser.locked, true);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.generation, lockSnap.generation + 2);
  });

  it('samples arriving in time keep the lock (no loss action)', async function () {
    const clock = newClock();
    // A loss timeout far above the 20 ms between samples: a stall of this loaded machine is not a loss.
    const chaser = newChaser(clock, { lossTimeoutMs: 2000, lossPolicy: 'hold' });
    const f0 = monoNs();
    chaser.feed(10, f0);
    const ev = record(clock);
    const end = Date.now() + 300;
    while (Date.now() < end) {
      await sleep(20);
      const now = monoNs();
      chaser.feed(10 + Number(now - f0) / 1e9, now); // exactly on the extrapolation
    }
    assert.equal(ev.length, 0);
    assert.equal(chaser.locked, true);
    assert.equal(clock.snapshot.state, 'chasing');
  });

  it('freerun: keeps chasing after the loss, then stops after freerunMs', async function () {
    const clock = newClock();
    // A free-run long enough (1 s) that the 2 ms poll below sees its phase on a loaded machine.
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'freerun', freerunMs: 1000 });
    const f = monoNs();
    chaser.feed(10, f);
    const lockSnap = clock.snapshot;
    const ev = record(clock);

    await waitFor(() => !chaser.locked, 'the loss');
    const lostSeen = monoNs();
    assert.ok(elapsedMs(f, lostSeen) >= 50);
    // The free-run phase: still running on the last timeline, no change emitted.
    assert.equal(clock.snapshot.state, 'chasing', 'free-running after the loss');
    assert.equal(clock.snapshot.source, 'external');
    assert.ok(isRunning(clock.snapshot));
    assert.equal(ev.length, 0);
    await waitFor(() => clock.snapshot.state === 'stopped', 'the free-run stop');
    assert.equal(ev.length, 1);
    const stop = ev[0];
    assert.equal(stop.discontinuity, true);
    assert.equal(stop.s.generation, lockSnap.generation + 1);
    assert.equal(stop.s.source, 'external');
    assert.ok(elapsedMs(f, stop.s.anchorMonoNs) >= 60 + 1000 - 10, `stopped ${elapsedMs(f, stop.s.anchorMonoNs)} ms after the last sample`);
    assert.equal(stop.s.positionSeconds, positionAt(lockSnap, stop.s.anchorMonoNs));
    assert.ok(stop.s.positionSeconds >= 11.05);
    await sleep(60);
    assert.equal(ev.length, 1);
  });

  it('freerun: the loss leaves the clock running through the timeout (state observed)', async function () {
    // Same as above but with a long free-run so the free-run phase is always observable.
    const clock = newClock();
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'freerun', freerunMs: 5000 });
    chaser.feed(10);
    const ev = record(clock);
    await sleep(150);
    assert.equal(chaser.locked, false);
    assert.equal(clock.snapshot.state, 'chasing');
    assert.equal(clock.snapshot.source, 'external');
    assert.ok(clock.position() > 10.1);
    assert.equal(ev.length, 0);
  });

  it('freerun: a sample during the free-run cancels the pending stop', async function () {
    const clock = newClock();
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'freerun', freerunMs: 1000 });
    const f1 = monoNs();
    chaser.feed(10, f1);
    await waitFor(() => !chaser.locked, 'the first loss');
    assert.equal(clock.snapshot.state, 'chasing');

    const ev = record(clock);
    const f2 = monoNs();
    chaser.feed(clock.position(f2), f2);
    assert.equal(chaser.locked, true, 'the sample re-locks');
    assert.equal(clock.snapshot.state, 'chasing');

    await waitFor(() => clock.snapshot.state === 'stopped', 'the second free-run stop');
    const stops = ev.filter((e) => e.s.state === 'stopped');
    assert.equal(stops.length, 1);
    // The first free-run would have stopped the clock < 1000 ms after f2; only the second (loss 60 + free-run 1000
    // after f2) may.
    assert.ok(elapsedMs(f2, stops[0].s.anchorMonoNs) >= 60 + 1000 - 10,
      `stopped ${elapsedMs(f2, stops[0].s.anchorMonoNs)} ms after the sample that should have cancelled the stop`);
    await sleep(60);
    assert.equal(ev.filter((e) => e.s.state === 'stopped').length, 1);
  });

  it('hold: an explicit locate while locked unlocks; no loss action afterwards', async function () {
    const clock = newClock();
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'hold' });
    chaser.feed(10);
    clock.locate(30);
    assert.equal(chaser.locked, false);
    const located = clock.snapshot;
    const ev = record(clock);
    await sleep(150);
    assert.equal(ev.length, 0);
    assert.equal(clock.snapshot, located);
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.snapshot.source, 'internal');
  });

  it('hold: an explicit stop while locked leaves the clock internal (no external hold later)', async function () {
    const clock = newClock();
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'hold' });
    chaser.feed(10);
    clock.stop();
    const ev = record(clock);
    await sleep(150);
    assert.equal(ev.length, 0);
    assert.equal(clock.snapshot.source, 'internal');
  });

  it('freerun: an explicit play during the free-run cancels the pending stop', async function () {
    const clock = newClock();
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'freerun', freerunMs: 1000 });
    chaser.feed(10);
    await waitFor(() => !chaser.locked, 'the loss');
    assert.equal(clock.snapshot.state, 'chasing');
    clock.play();
    assert.equal(clock.snapshot.state, 'playing');
    assert.equal(clock.snapshot.source, 'internal');
    const ev = record(clock);
    await sleep(1200); // past the free-run's end
    assert.equal(ev.length, 0);
    assert.equal(clock.snapshot.state, 'playing');
  });

  it('close() cancels the loss and free-run timers', async function () {
    const clock = newClock();
    const chaser = newChaser(clock, { lossTimeoutMs: 60, lossPolicy: 'hold' });
    chaser.feed(10);
    chaser.close();
    assert.equal(chaser.locked, false);
    chaser.close(); // idempotent
    const ev = record(clock);

    const clock2 = newClock();
    const chaser2 = newChaser(clock2, { lossTimeoutMs: 40, lossPolicy: 'freerun', freerunMs: 1000 });
    chaser2.feed(10);
    await waitFor(() => !chaser2.locked, 'the loss');
    assert.equal(clock2.snapshot.state, 'chasing', 'free-running when closed');
    chaser2.close();
    const ev2 = record(clock2);

    await sleep(1200); // past the loss of the first and the free-run's end of the second
    assert.equal(ev.length, 0);
    assert.equal(clock.snapshot.state, 'chasing', 'left running on its last timeline');
    assert.equal(ev2.length, 0);
    assert.equal(clock2.snapshot.state, 'chasing');
  });
});
