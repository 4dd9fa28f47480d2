/**
 * The real-time guard of the presenting thread (src/players/rt-guard.ts, native/sched) in real processes under the
 * real scheduler: a player-like process raises its main thread to SCHED_FIFO as `play-video` does, then either loops
 * through its event loop (as V8's sweeper did, reposting a task while it waited on normal-priority threads) or ticks
 * at 60 Hz as a healthy presenting thread does. The thread's policy is read from outside, in /proc, while it loops.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SCHED_ADDON } from '../src/players/rt-guard';
import { threadScheduling } from './support/scheduling';
import { scratchDir } from './support/tmp';

const DIST_SRC = path.resolve(__dirname, '..', 'src', 'players');

/** The child: raise the main thread, guard it, then `spin` until the flag file exists (at most 10 s) or `tick`. */
const CHILD = `
const fs = require('node:fs');
const { raisePresentingThread } = require(${JSON.stringify(path.join(DIST_SRC, 'thread-priority.js'))});
const { RtGuard } = require(${JSON.stringify(path.join(DIST_SRC, 'rt-guard.js'))});
const { TickScheduler } = require(${JSON.stringify(path.join(DIST_SRC, 'tick-scheduler.js'))});
const [mode, flag] = process.argv.slice(1);
const p = raisePresentingThread(10, 0);
if (p.realtime === 0) { process.stdout.write('norealtime ' + p.problems.join('; ') + '\\n'); process.exit(0); }
const guard = RtGuard.start(10);
const policy = () => { const f = fs.readFileSync('/proc/self/stat', 'utf8'); return Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[38]); };
const report = (extra) => { process.stdout.write(JSON.stringify({ ...guard.stats, policy: policy(), ...extra }) + '\\n'); };
if (mode === 'spin') {
  process.stdout.write('spinning at policy ' + policy() + '\\n');
  // A loop through the event loop, as V8's sweeper reposting its task: it never waits for I/O (at most 10 s).
  const t = Date.now();
  const spin = () => {
    if (!fs.existsSync(flag) && Date.now() - t < 10000) return setImmediate(spin);
    report({ while: 'looped', flagSeen: fs.existsSync(flag) });
    let waits = 0;
    const idle = () => {
      if (guard.stats.demotedNow && ++waits < 100) return setTimeout(idle, 20);
      report({ while: 'idle' });
      guard.close();
    };
    setTimeout(idle, 20);
  };
  spin();
} else {
  let ticks = 0;
  const s = new TickScheduler({ startNs: process.hrtime.bigint() + 20000000n, rate: { num: 60, den: 1 } }, () => {
    // A presenting thread's work per tick: a little JS and garbage.
    const a = []; for (let i = 0; i < 2000; i++) a.push({ i });
    if (++ticks === 120) { s.stop(); report({ while: 'ticked', ticks }); guard.close(); }
  });
  s.start();
}
`;

interface Report { demotions: number; demotedNow: boolean; policy: number; error: string; while: string; flagSeen?: boolean }

function runChild(mode: 'spin' | 'tick', flag: string, children: ChildProcess[]): { child: ChildProcess; lines: () => string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['-e', CHILD, mode, flag], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, lines: () => out.split('\n').filter((l) => l !== ''), exited };
}

const reports = (lines: string[]): Report[] => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Report);

describe('the presenting thread\'s real-time guard (native/sched)', function () {
  this.timeout(60_000);
  const children: ChildProcess[] = [];

  before(function () {
    if (!fs.existsSync(SCHED_ADDON)) throw new Error(`the scheduling addon is not built (${SCHED_ADDON}): scripts/build-addons.js sched`);
  });

  afterEach(function () {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('puts a SCHED_FIFO thread that loops back to normal scheduling while it loops, and raises it again once it sleeps', async function () {
    const flag = path.join(await scratchDir('rt-guard'), 'stop');
    const c = runChild('spin', flag, children);
    // Wait for the loop to start (bounded: 10 s in 20 ms steps).
    for (let i = 0; i < 500 && !c.lines().some((l) => l.startsWith('spinning') || l.startsWith('norealtime')); i++) await new Promise((r) => setTimeout(r, 20));
    const norealtime = c.lines().find((l) => l.startsWith('norealtime'));
    if (norealtime !== undefined) {
      process.stdout.write(`      (skipped: this user may not use SCHED_FIFO: ${norealtime})\n`);
      this.skip();
    }
    assert.ok(c.lines().includes('spinning at policy 1'), `the loop began at SCHED_FIFO: ${c.lines().join('\n')}`);
    // Read the looping thread's policy from outside until it is normal scheduling (at most 500 reads).
    const seen: string[] = [];
    for (let i = 0; i < 500; i++) {
      const s = await threadScheduling(c.child.pid as number);
      if (seen.at(-1) !== s) seen.push(s);
      if (s.startsWith('nice')) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    fs.writeFileSync(flag, '');
    assert.equal(await c.exited, 0, c.lines().join('\n'));
    const [looped, idle] = reports(c.lines());
    assert.match(seen.at(-1) ?? '', /^nice /, `the looping thread was put back to normal scheduling (policies read: ${seen.join(' → ')})`);
    assert.equal(looped.flagSeen, true, 'the loop ended because it was told to, not at its 10 s bound');
    assert.equal(looped.policy, 0, 'still at normal scheduling at the loop\'s end');
    assert.ok(looped.demotions >= 1);
    assert.equal(idle.demotedNow, false, 'raised again once it slept');
    assert.equal(idle.policy, 1, 'SCHED_FIFO again');
    assert.equal(idle.error, '');
  });

  it('leaves a healthy presenting thread (60 ticks a second, sleeping between them) at SCHED_FIFO throughout', async function () {
    const c = runChild('tick', '', children);
    assert.equal(await c.exited, 0, c.lines().join('\n'));
    if (c.lines().some((l) => l.startsWith('norealtime'))) this.skip();
    const [ticked] = reports(c.lines());
    assert.equal(ticked.while, 'ticked');
    assert.equal(ticked.demotions, 0, `a thread that sleeps between ticks was never put back: ${JSON.stringify(ticked)}`);
    assert.equal(ticked.policy, 1);
  });
});
