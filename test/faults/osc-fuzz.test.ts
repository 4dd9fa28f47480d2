/**
 * Fault suite, attack 1: random and mutated OSC datagrams and bundles (valid cuemux messages truncated, with wrong
 * type tags, huge sizes, nested bundles, odd timetags; random bytes) at a real `cuemux serve`'s OSC port, from a
 * sender of its own (127.0.0.2), while a console on 127.0.0.1 sends /cuemux/thump. The server stays up, its RSS
 * stays bounded, and every thump is answered. ~5,000 datagrams in `npm test`, 100,000 under `npm run soak`.
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
import { fdCount, udpDrops, oscFuzzDatagram, percentile, recordFault, Rng, rssBytes, scaled, ThumpConsole, validOscMessages, type OscFuzzKind, SERVER_NICE } from '../support/faults';

describe('faults: OSC fuzzing', function () {
  this.timeout(scaled(120_000, 1_800_000));
  const children = childrenKilledAfterEach();

  it('random and mutated datagrams and bundles: the server stays up, memory bounded, a console\'s thump answered', async function () {
    const total = Number(process.env.CUEMUX_FAULT_OSC_N ?? scaled(5_000, 100_000));
    const seed = Number(process.env.CUEMUX_FAULT_SEED ?? 12);
    const root = await scratchDir('fault-osc-root');
    await copyInto(await minuteClip(), root, 'clip.mp4');
    const run = await scratchDir('fault-osc-run');
    await fsp.chmod(run, 0o700);
    // Budgets raised so that every datagram reaches the decoder (the default per-sender budget would drop most of a
    // flood unread: that is tested in osc-limits.test.ts).
    const s = await spawnServer(['--socket', path.join(run, 's.sock'), '--media-root', root, '--state-file', path.join(run, 'show.json'),
      '--osc-rate-messages', '10000000', '--osc-rate-bytes', '10000000000'], {}, { nice: SERVER_NICE });
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
      // Warm up (the media opened once, a cue loaded and unloaded), then measure the idle baseline.
      await send(encode('/cuemux/cue/load', [{ type: 's', value: 'warm' }, { type: 's', value: 'clip.mp4' }]));
      await send(encode('/cuemux/cue/unload', [{ type: 's', value: 'warm' }]));
      const idle = await console_.sample(scaled(100, 300));
      const idleStatus = console_.statusRtts;
      const dropsBefore = await udpDrops(port);
      const rssBefore = await rssBytes(pid);
      const fdsBefore = await fdCount(pid);

      const rng = new Rng(seed);
      const seeds = validOscMessages('clip.mp4');
      const kinds = new Map<OscFuzzKind, number>();
      let sentBytes = 0;
      let lostSentinels = 0;
      console_.start(20);
      // Small windows: the server's socket has the kernel's default receive buffer (212 KB, and a small datagram takes
      // about 1 KB of it), so a larger burst would overflow it before the server reads (see udpDrops).
      const window = 25;
      let sentinel = 1_000_000_000;
      for (let sent = 0; sent < total;) {
        for (const end = Math.min(total, sent + window); sent < end; sent++) {
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
      const during = await console_.stop();
      const duringStatus = console_.statusRtts;
      const rssAfter = await rssBytes(pid);
      const drops = (await udpDrops(port)) - dropsBefore;
      const fdsAfter = await fdCount(pid);
      // A console is still served, and status still fits a reply.
      const after = await console_.sample(5);
      assert.equal(after.length, 5, 'thump answered after the attack');
      assert.equal(s.child.exitCode, null);
      assert.doesNotMatch(s.stderr(), /uncaught|unhandled|FATAL|Segmentation/i);
      const grownMb = (rssAfter - rssBefore) / 2 ** 20;
      process.stdout.write(`      ${total} datagrams (${(sentBytes / 2 ** 20).toFixed(1)} MB; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}): ` +
        `${replies} replies, RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> ${(rssAfter / 2 ** 20).toFixed(1)} MB, fds ${fdsBefore} -> ${fdsAfter}, ` +
        `thump p99 idle ${percentile(idle, 99).toFixed(2)} ms, during ${percentile(during, 99).toFixed(2)} ms (${console_.unanswered} unanswered), ${drops} datagrams dropped by the kernel (receive buffer full)\n`);
      recordFault({
        attack: '1. OSC fuzz', inputs: total, faults: total - (kinds.get('valid') ?? 0), served: replies, restarts: 0,
        fdsLeaked: fdsAfter - fdsBefore, rssLeakedMb: grownMb, lost: null, duplicated: null,
        thumpIdleP99Ms: percentile(idle, 99), thumpAttackP99Ms: percentile(during, 99), thumpUnanswered: console_.unanswered,
        statusIdleP99Ms: percentile(idleStatus, 99), statusAttackP99Ms: percentile(duringStatus, 99), statusUnanswered: console_.statusUnanswered,
        note: `seed ${seed}; ${(sentBytes / 2 ** 20).toFixed(1)} MB sent; ${drops} datagrams dropped by the kernel at the server's full receive buffer `
          + `(${lostSentinels} pacing requests and ${console_.unanswered} console thumps among them)`,
      });
      // Bounded: what 64 ad-hoc cues of this small clip hold, 1,024 timed messages (4 MiB), and heap slack.
      assert.ok(grownMb < 128, `RSS grew by ${grownMb.toFixed(1)} MB`);
      // Thumps lost during the attack were dropped by the kernel with the rest of a burst (counted in the table): the
      // server answers every datagram it reads, as the thumps after the attack show.
    } finally {
      await console_.stop();
      console_.close();
      attacker.close();
    }
  });
});
