/**
 * Fault suite, attack 4: a `cuemux serve` under `ulimit -n 64`, and more clients than its descriptors allow, each on
 * its own connection opening a file of its own. The clients beyond the budget get an error, the server survives
 * (OSC answered, the clients it holds still served), and once they go it serves a new client as before, with no
 * descriptor left behind.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ensureMedia } from '../support/media';
import { spawnServer } from '../support/server';
import { scratchDir } from '../support/tmp';
import { fdCount, fdTargets, recordFault, scaled, ThumpConsole, waitFor, SERVER_NICE } from '../support/faults';
import { PairedThumps } from '../support/fault-measures';
import { MediaClient } from '../../src/clients/media-client';

/** The compiled client, for the child process (this file runs from dist/test/faults). */
const CLIENT_JS = path.resolve(__dirname, '..', '..', 'src', 'clients', 'media-client.js');

/**
 * N clients, each its own connection opening w-K.wav and holding it; the first five held read their file. Prints one
 * JSON line (each client's outcome), then holds everything until stdin ends.
 */
const CLIENTS = `
const { MediaClient } = require(process.env.CLIENT_JS);
(async () => {
  const held = [];
  const out = [];
  for (let k = 0; k < Number(process.env.N); k++) {
    const c = new MediaClient(process.env.SOCKET);
    try {
      const info = await c.openMedia('w-' + k + '.wav', { timeout: 20000 });
      held.push({ c, id: info.mediaId });
      out.push({ ok: true });
    } catch (e) {
      out.push({ ok: false, code: e.code, details: String(e.details === undefined ? e.message : e.details) });
    }
  }
  let read = 0;
  for (const h of held.slice(0, 5)) {
    let n = 0;
    for await (const b of h.c.readPackets({ mediaId: h.id }, { timeout: 30000 })) n += b.packets.length;
    if (n > 0) read++;
  }
  process.stdout.write(JSON.stringify({ out, read }) + '\\n');
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
})().catch((e) => { process.stderr.write(String(e && e.stack)); process.exit(3); });`;

describe('faults: ulimit -n 64', function () {
  this.timeout(scaled(120_000, 1_800_000));
  const children: ChildProcess[] = [];
  const clients: MediaClient[] = [];

  afterEach(async function () {
    for (const c of clients.splice(0)) c.close();
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await once(c, 'exit');
      }
    }
  });

  it('clients beyond the fd budget get an error; the server survives and recovers when they go', async function () {
    const rounds = scaled(1, 5);
    const perRound = 80;
    const root = await scratchDir('fault-fd-root');
    const wav = await ensureMedia('wav');
    for (let k = 0; k < perRound; k++) await fsp.copyFile(wav, path.join(root, `w-${k}.wav`));
    const run = await scratchDir('fault-fd-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 's.sock');
    const s = await spawnServer(['--socket', socket, '--media-root', root, '--cache-dir', path.join(run, 'cache'), '--state-file', 'none', '--idle-close-ms', '0'],
      {}, { nofile: 64, nice: SERVER_NICE });
    children.push(s.child);
    const pid = s.child.pid as number;
    const limits = await fsp.readFile(`/proc/${pid}/limits`, 'utf8');
    assert.match(limits, /Max open files\s+64\s+64/, 'the server runs under ulimit -n 64');
    const console_ = await ThumpConsole.open(s.oscPort as number);
    // Index every file first (one at a time), so the attack is about connections and open files alone.
    {
      const c = new MediaClient(socket);
      for (let k = 0; k < perRound; k++) await c.closeMedia((await c.openMedia(`w-${k}.wav`, { timeout: 30_000 })).mediaId);
      c.close();
    }
    const mediaClosed = async (): Promise<true | undefined> => ((await fdTargets(pid)).some((t) => t.includes(root)) ? undefined : true);
    await waitFor('the indexing connection closed', mediaClosed);
    const fdsBefore = await fdCount(pid);
    // Idle before and after the attack, at the attack's pacing (PairedThumps).
    const thumps = new PairedThumps(console_);
    await thumps.idlePhase(scaled(25, 100));
    thumps.startAttack();
    const errors = new Map<string, number>();
    let served = 0;
    let refused = 0;
    let inputs = 0;
    let droppedAfter = 0;
    let droppedWhy = '';
    try {
      for (let round = 0; round < rounds; round++) {
        // The clients: one process holding a connection per client (as players would; its exit closes them all).
        const child = spawn(process.execPath, ['-e', CLIENTS], { env: { ...process.env, CLIENT_JS, SOCKET: socket, N: String(perRound) }, stdio: ['pipe', 'pipe', 'pipe'] });
        children.push(child);
        let out = '';
        let err = '';
        child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
        const line = await new Promise<string>((resolve, reject) => {
          child.stdout.setEncoding('utf8').on('data', (d: string) => {
            out += d;
            if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
          });
          child.once('exit', (code) => reject(new Error(`the client process exited (${String(code)}): ${err}`)));
        });
        const result = JSON.parse(line) as { out: Array<{ ok: boolean; code?: number; details?: string }>; read: number };
        inputs += result.out.length;
        let refusedNow = 0;
        result.out.forEach((r, k) => {
          if (r.ok) {
            served++;
            return;
          }
          refusedNow++;
          const code = (r.code ?? -1) as grpc.status;
          const details = r.details ?? '';
          // A connection the server cannot accept (no fd for it) fails to connect; an OpenMedia that finds no fd for
          // the file or its folder is RESOURCE_EXHAUSTED saying so (it once said NOT_FOUND, "its folder changed").
          const clear = code === grpc.status.UNAVAILABLE || (code === grpc.status.RESOURCE_EXHAUSTED && /EMFILE|too many open files/i.test(details));
          assert.ok(clear, `client ${k}: ${grpc.status[code]}: ${details}`);
          const key = `${grpc.status[code]}: ${details.replace(/w-\d+\.wav/g, 'w-N.wav').replace(/\/tmp\/\S+/g, '…').replace(/ \(\d{4}-[^)]*\)/g, '')
            .replace(/Resolution note:.*/, '').slice(0, 120)}`;
          errors.set(key, (errors.get(key) ?? 0) + 1);
        });
        refused += refusedNow;
        assert.equal(s.child.exitCode, null, `the server exited: ${s.stderr().slice(-3000)}`);
        assert.ok(refusedNow > 0, `round ${round + 1}: the fd budget was reached (${perRound - refusedNow} clients held)`);
        // At the limit: the clients it holds are still served.
        assert.equal(result.read, Math.min(5, perRound - refusedNow), 'the clients held read their files');
        served += result.read;
        child.stdin.end();
        await once(child, 'exit');
        // They go: every descriptor comes back.
        await waitFor('the server\'s fds back to what they were', async () => ((await fdCount(pid)) <= fdsBefore ? true : undefined), 60_000)
          .catch(async (e: unknown) => assert.fail(`round ${round + 1}: ${String(e)}: server fds ${await fdCount(pid)} (this process: ${await fdCount(process.pid)}): `
            + `${(await fdTargets(pid)).join(', ')}`));
        // A new client is served as before (an attempt dropped meanwhile is counted, and retried on a new connection).
        await waitFor('a new client served', async () => {
          const c = new MediaClient(socket);
          clients.push(c);
          try {
            const info = await c.openMedia('w-0.wav', { timeout: 30_000 });
            let n = 0;
            for await (const b of c.readPackets({ mediaId: info.mediaId }, { timeout: 30_000 })) n += b.packets.length;
            assert.ok(n > 0);
            served += 2;
            return true;
          } catch (e) {
            droppedAfter++;
            droppedWhy = e instanceof Error ? e.message : String(e);
            return undefined;
          } finally {
            c.close();
          }
        }, 60_000, 100);
        for (const x of clients.splice(0)) x.close();
      }
      await thumps.stopAttack();
      await thumps.idlePhase(scaled(25, 100));
      await waitFor('the last client went', async () => ((await fdCount(pid)) <= fdsBefore ? true : undefined), 60_000).catch(() => undefined);
      const fdsAfter = await fdCount(pid);
      const seen = [...errors].map(([k, n]) => `${n}× ${k}`).join('; ');
      process.stdout.write(`      ${inputs} clients in ${rounds} round(s): ${served} calls served, ${refused} refused (${seen}); fds ${fdsBefore} -> ${fdsAfter}\n`);
      assert.doesNotMatch(s.stderr(), /uncaught|unhandled|FATAL|Segmentation/i);
      recordFault({
        attack: '4. ulimit -n 64', inputs, faults: refused, served, restarts: 0, fdsLeaked: fdsAfter - fdsBefore, leakedMb: null, lost: null, duplicated: null,
        ...thumps.fields(),
        note: `clients refused with: ${seen}; after they went, ${droppedAfter} first attempt(s) of a new client failed${droppedAfter > 0 ? ` (${droppedWhy})` : ''} before one was served; the server's log lines about it: ${s.stderr().split('\n').filter((l) => /EMFILE|too many open files/i.test(l)).length}; ${thumps.counts()}`,
      });
      assert.ok(fdsAfter <= fdsBefore, `fds ${fdsBefore} -> ${fdsAfter}`);
      assert.equal(thumps.unanswered, 0, `show control answered throughout: ${thumps.counts()}`);
    } finally {
      await console_.stop();
      console_.close();
    }
  });
});
