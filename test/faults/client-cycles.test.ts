/**
 * Fault suite, attack 6: client processes that connect, OpenMedia, start a ReadPackets and are killed with SIGKILL
 * mid-stream, again and again (64 in `npm test`, 1,000 under `npm run soak`), four at a time, in two equal halves. The
 * server's open descriptors (/proc/PID/fd) and what is alive after a full GC (fault-measures.ts LeakProbe) are measured at the
 * start, the middle and the end: no descriptor is left behind, the second half adds no live memory (within
 * LEAK_BOUND_MB), and RSS stays within a stated bound in all.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { minuteClip } from '../support/media';
import { spawnServer } from '../support/server';
import { copyInto, scratchDir } from '../support/tmp';
import { fdCount, fdTargets, recordFault, scaled, ThumpConsole, waitFor, SERVER_NICE } from '../support/faults';
import { LEAK_BOUND_MB, LeakProbe, PairedThumps } from '../support/fault-measures';
import { MediaClient } from '../../src/clients/media-client';
import { childrenKilledAfterEach } from '../support/wait';

/** The compiled client, for the child processes (this file runs from dist/test/faults). */
const CLIENT_JS = path.resolve(__dirname, '..', '..', 'src', 'clients', 'media-client.js');

/** RSS a server may keep after the cycles, beyond what it had before them (allocator and V8 heap slack), MB. */
const RSS_BOUND_MB = 32;

/** A client process: connects, opens the clip, reads slowly; says "reading" after its first batch. */
const CHILD = `
const { MediaClient } = require(process.env.CLIENT_JS);
(async () => {
  const c = new MediaClient(process.env.SOCKET);
  const info = await c.openMedia('clip.mp4');
  for await (const b of c.readPackets({ mediaId: info.mediaId, maxBatchBytes: 16384 })) {
    process.stdout.write('reading\\n');
    await new Promise((r) => setTimeout(r, 20));
  }
  process.stdout.write('ended\\n');
})().catch((e) => { process.stderr.write(String(e) + '\\n'); process.exit(3); });`;

describe('faults: client processes killed with SIGKILL mid-stream', function () {
  this.timeout(scaled(120_000, 3_600_000));
  const children = childrenKilledAfterEach();

  it(`connect/OpenMedia/ReadPackets/kill -9 cycles: 0 fds leaked, RSS back within ${RSS_BOUND_MB} MB`, async function () {
    const cycles = Number(process.env.CUEMUX_FAULT_CYCLES ?? scaled(64, 1000));
    const root = await scratchDir('fault-cycles-root');
    await copyInto(await minuteClip(), root, 'clip.mp4');
    const run = await scratchDir('fault-cycles-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 's.sock');
    // As `npm start` runs it (README "Memory"): glibc gives large buffers back at once, a small young generation.
    const leaks = await LeakProbe.create();
    const s = await spawnServer(['--socket', socket, '--media-root', root, '--state-file', 'none', '--idle-close-ms', '0'], {
      MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '65536', ...leaks.env('--max-semi-space-size=1'),
    }, { nice: SERVER_NICE });
    children.push(s.child);
    const pid = s.child.pid as number;
    const console_ = await ThumpConsole.open(s.oscPort as number);

    /** One cycle: a client process reads until it has a batch, then is killed. Resolves with whether it read. */
    const cycle = async (): Promise<boolean> => {
      const child = spawn(process.execPath, ['-e', CHILD], { env: { ...process.env, CLIENT_JS, SOCKET: socket }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
      const reading = new Promise<boolean>((resolve) => {
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (out.includes('reading')) resolve(true);
        });
        child.once('exit', () => resolve(out.includes('reading')));
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const read = await reading;
      clearTimeout(timer);
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      children.splice(children.indexOf(child), 1);
      assert.ok(read, `a client did not get its first batch: ${err}`);
      return read;
    };
    const mediaClosed = async (): Promise<true | undefined> => ((await fdTargets(pid)).some((t) => t.includes(root)) ? undefined : true);

    // Warm up (index built, code paths run).
    for (let i = 0; i < 4; i++) await cycle();
    await waitFor('the warm-up clients gone', mediaClosed);
    /** Every killed client's connection noticed and its media released (the file closes at once: idle close 0). */
    const released = (fdsBefore: number): Promise<unknown> => waitFor('every client connection and media file released',
      async () => ((await mediaClosed()) && (await fdCount(pid)) <= fdsBefore ? true : undefined), 60_000).catch(() => undefined);
    const fdsBefore = await fdCount(pid);
    // Two equal halves of BLOCKS attack phases, each followed by an idle phase (PairedThumps); the server's live memory
    // after a GC at the start, the middle and the end, every client of the half gone (LeakProbe).
    const blocks = scaled(1, 5);
    const idlePerBlock = scaled(25, 50);
    const thumps = new PairedThumps(console_);
    await leaks.measure(pid);
    let served = 0;
    let next = 0;
    const worker = async (until: number): Promise<void> => {
      while (next < until) {
        next++;
        if (await cycle()) served++;
        assert.equal(s.child.exitCode, null, `the server exited after ${next} cycles: ${s.stderr().slice(-3000)}`);
      }
    };
    for (let half = 0; half < 2; half++) {
      for (let b = 0; b < blocks; b++) {
        const until = Math.round((cycles * (half * blocks + b + 1)) / (2 * blocks));
        await thumps.attackPhase(() => Promise.all([worker(until), worker(until), worker(until), worker(until)]));
        await thumps.idlePhase(idlePerBlock);
      }
      await released(fdsBefore);
      await leaks.measure(pid);
    }
    console_.close();
    const fdsAfter = await fdCount(pid);
    // GetStatus from a new client: nothing is held for the dead ones.
    const c = new MediaClient(socket);
    const st = await c.getStatus({ timeout: 10_000 });
    c.close();
    const h = leaks.halves();
    process.stdout.write(`      ${cycles} cycles (${served} read before the kill): fds ${fdsBefore} -> ${fdsAfter}; ${leaks.note()}; ` +
      `status: ${st.media.length} media open, ${st.clients.length} clients; ${thumps.counts()}\n`);
    recordFault({
      attack: '6. client kill -9 cycles', inputs: cycles, faults: cycles, served, restarts: 0, fdsLeaked: fdsAfter - fdsBefore, leakedMb: h.live[1],
      lost: null, duplicated: null, ...thumps.fields(),
      note: `4 clients at a time; ${leaks.note()}; RSS bound ${RSS_BOUND_MB} MB in all; ${thumps.counts()}`,
    });
    assert.ok(fdsAfter <= fdsBefore, `fds ${fdsBefore} -> ${fdsAfter}: ${(await fdTargets(pid)).join(', ')}`);
    assert.equal(st.media.length, 0, 'no media held for killed clients');
    assert.equal(st.clients.length, 0, 'no call left for killed clients');
    assert.ok(h.rss[0] + h.rss[1] < RSS_BOUND_MB, `RSS grew by ${(h.rss[0] + h.rss[1]).toFixed(1)} MB`);
    assert.ok(h.live[1] < LEAK_BOUND_MB, `live memory grew by ${h.live[1].toFixed(2)} MB in the second half (${leaks.note()})`);
  });
});
