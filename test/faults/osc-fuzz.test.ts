/**
 * Fault suite, attack 1: random and mutated OSC datagrams and bundles (valid cuemux messages truncated, with wrong
 * type tags, huge sizes, nested bundles, odd timetags; random bytes) at a real `cuemux serve`'s OSC port, from a
 * sender of its own (127.0.0.2), while a console on 127.0.0.1 sends /cuemux/thump. The server stays up, its RSS
 * stays bounded, after a warm-up (a fifth of the datagrams) the second of two equal halves adds no live memory after a
 * full GC (fault-measures.ts LeakProbe), and every thump is answered. ~5,000 datagrams
 * in `npm test`, 100,000 under `npm run soak`.
 */
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { minuteClip } from '../support/media';
import { encode } from '../support/osc';
import { spawnServer } from '../support/server';
import { copyInto, scratchDir } from '../support/tmp';
import { childrenKilledAfterEach } from '../support/wait';
import { udpDrops, oscFuzzDatagram, percentile, recordFault, Rng, scaled, ThumpConsole, validOscMessages, type OscFuzzKind, SERVER_NICE } from '../support/faults';
import { LEAK_BOUND_MB, LeakProbe, PairedThumps } from '../support/fault-measures';

describe('faults: OSC fuzzing', function () {
  this.timeout(scaled(120_000, 1_800_000));
  const children = childrenKilledAfterEach();

  it('random and mutated datagrams and bundles: the server stays up, memory bounded, a console\'s thump answered', async function () {
    const total = Number(process.env.CUEMUX_FAULT_OSC_N ?? scaled(5_000, 100_000));
    const seed = Number(process.env.CUEMUX_FAULT_SEED ?? 12);
    const root = await scratchDir('fault-osc-root');
    await copyInto(await minuteClip(), root, 'clip.mp4');
    const run = await scratchDir('fault-osc-run');
    const leaks = await LeakProbe.create();
    await fsp.chmod(run, 0o700);
    // Budgets raised so that every datagram reaches the decoder (the default per-sender budget would drop most of a
    // flood unread: that is tested in osc-limits.test.ts).
    const s = await spawnServer(['--socket', path.join(run, 's.sock'), '--media-root', root, '--state-file', path.join(run, 'show.json'),
      '--osc-rate-messages', '10000000', '--osc-rate-bytes', '10000000000'], leaks.env(), { nice: SERVER_NICE });
    children.push(s.child);
    const pid = s.child.pid as number;
    const port = s.oscPort as number;
    const console_ = await ThumpConsole.open(port);

    // The attacker: its own address, a large receive buffer, counting every reply.
    const attacker = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
    await new Promise<void>((resolve) => attacker.bind(0, '127.0.0.2', resolve));
    let replies = 0;
    const sentinels = new Set<number>();
    attacker.on('message', (m: Buffer) => {
      replies++;
      const at = m.indexOf('"page":', 0, 'latin1');
      if (at >= 0) {
        const n = /^"page":(\d+),"next"/.exec(m.toString('latin1', at, at + 40));
        if (n) sentinels.add(Number(n[1]));
      }
    });
    const send = (b: Buffer): Promise<void> => new Promise((resolve) => attacker.send(b, port, '127.0.0.1', () => resolve()));
    try {
      // Warm up: the media opened once, a cue loaded and unloaded.
      await send(encode('/cuemux/cue/load', [{ type: 's', value: 'warm' }, { type: 's', value: 'clip.mp4' }]));
      await send(encode('/cuemux/cue/unload', [{ type: 's', value: 'warm' }]));
      const dropsBefore = await udpDrops(port);
      const rng = new Rng(seed);
      const seeds = validOscMessages('clip.mp4');
      const kinds = new Map<OscFuzzKind, number>();
      let sentBytes = 0;
      let lostSentinels = 0;
      // Small windows: the server's socket has the kernel's default receive buffer (212 KB, and a small datagram takes
      // about 1 KB of it), so a larger burst would overflow it before the server reads (see udpDrops).
      const window = 25;
      let sentinel = 1_000_000_000;
      let sent = 0;
      /** Send datagrams up to `until`, paced by the server. */
      const flood = async (until: number): Promise<void> => {
        while (sent < until) {
          for (const end = Math.min(until, sent + window); sent < end; sent++) {
            const { kind, bytes } = oscFuzzDatagram(rng, seeds);
            kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
            sentBytes += bytes.length;
            await send(bytes);
          }
          // Pace by the server: a status request for an unused page whose reply names it comes after every reply to the
          // window (replies keep their order), so the server's receive buffer never overflows. Lost: send another.
          let answered = false;
          for (let attempt = 0; attempt < 20 && !answered; attempt++) {
            const n = ++sentinel;
            await send(encode('/cuemux/status', [{ type: 'i', value: n }]));
            const deadline = Date.now() + 1000;
            while (!sentinels.has(n) && Date.now() < deadline && s.child.exitCode === null) await new Promise((r) => setTimeout(r, 2));
            answered = sentinels.has(n);
            if (!answered) lostSentinels++;
          }
          assert.equal(s.child.exitCode, null, `the server exited after ${sent} datagrams (seed ${seed}): ${s.stderr().slice(-3000)}`);
          assert.ok(answered, `the server stopped answering after ${sent} datagrams (seed ${seed})`);
        }
      };
      // BLOCKS attack phases with an idle phase after each (PairedThumps). The first fifth of the datagrams warms the
      // server up (budgets filled, code paths compiled: V8's code and a constant table built on first use were most of
      // a second half's growth without it); then two equal halves, the server's live memory measured after a GC at the
      // start, the middle and the end (LeakProbe).
      const blocks = scaled(5, 10);
      const warmBlocks = blocks / 5;
      const idlePerBlock = scaled(20, 120);
      const thumps = new PairedThumps(console_);
      for (let b = 0; b < blocks; b++) {
        if (b === warmBlocks || b === warmBlocks + (blocks - warmBlocks) / 2) await leaks.measure(pid);
        await thumps.attackPhase(() => flood(Math.round((total * (b + 1)) / blocks)));
        await thumps.idlePhase(idlePerBlock);
      }
      await leaks.measure(pid);
      const drops = (await udpDrops(port)) - dropsBefore;
      // A console is still served, and status still fits a reply.
      const after = await console_.sample(5);
      assert.equal(after.length, 5, 'thump answered after the attack');
      assert.equal(s.child.exitCode, null);
      assert.doesNotMatch(s.stderr(), /uncaught|unhandled|FATAL|Segmentation/i);
      const h = leaks.halves();
      process.stdout.write(`      ${total} datagrams (${(sentBytes / 2 ** 20).toFixed(1)} MB; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}): ` +
        `${replies} replies; ${leaks.note()}; thump p99 idle ${percentile(thumps.idle, 99).toFixed(2)} ms, during ${percentile(thumps.attack, 99).toFixed(2)} ms ` +
        `(${thumps.counts()}; ${thumps.unanswered} unanswered), ${drops} datagrams dropped by the kernel (receive buffer full)\n`);
      recordFault({
        attack: '1. OSC fuzz', inputs: total, faults: total - (kinds.get('valid') ?? 0), served: replies, restarts: 0,
        fdsLeaked: h.fds[1], leakedMb: h.live[1], lost: null, duplicated: null, ...thumps.fields(),
        note: `seed ${seed}; ${(sentBytes / 2 ** 20).toFixed(1)} MB sent; ${drops} datagrams dropped by the kernel at the server's full receive buffer `
          + `(${lostSentinels} pacing requests and ${thumps.unanswered} console thumps among them); ${leaks.note()}; ${thumps.counts()}`,
      });
      assert.ok(h.fds[1] <= 0, `fds grew by ${h.fds[1]} in the second half`);
      // Bounded in all: what 64 ad-hoc cues of this small clip hold, 1,024 timed messages (4 MiB), and heap slack.
      assert.ok(h.rss[0] + h.rss[1] < 128, `RSS grew by ${(h.rss[0] + h.rss[1]).toFixed(1)} MB`);
      assert.ok(h.live[1] < LEAK_BOUND_MB, `live memory grew by ${h.live[1].toFixed(2)} MB in the second half (${leaks.note()})`);
      // Thumps lost during the attack were dropped by the kernel with the rest of a burst (counted in the table): the
      // server answers every datagram it reads, as the thumps after the attack show.
    } finally {
      await console_.stop();
      console_.close();
      attacker.close();
    }
  });
});
