/**
 * Fault suite, attack 7: SIGKILL of the server while 8 resilient Follow clients (4 on output `video`, 4 on `audio`,
 * each its own connection) stream a running cue; a new server on the same socket and state file; every client
 * resumes. Every packet each client received is checked against FFmpeg (`ffmpeg -c copy -f framemd5`): the bytes
 * are FFmpeg's, and per client and stream the packets run from the first received to the last with none lost and
 * none twice. Once in `npm test`, 5 kills under `npm run soak`.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { minuteClip } from '../support/media';
import { OscPeer } from '../support/osc';
import { spawnServer } from '../support/server';
import { copyInto, scratchDir } from '../support/tmp';
import { md5 } from '../support/check';
import { ffprobePackets, framemd5Copy } from '../support/ffmpeg-reference';
import { freeUdpPort, percentile, recordFault, scaled, ThumpConsole, waitFor, SERVER_NICE } from '../support/faults';
import { MediaClient } from '../../src/clients/media-client';
import { resilientFollow } from '../../src/clients/resilient-follow';
import type { Packet } from '../../src/generated/cuemux/v1/media_server';
import { childrenKilledAfterEach } from '../support/wait';

describe('faults: SIGKILL of the server under 8 streaming clients', function () {
  this.timeout(scaled(120_000, 1_800_000));
  const children = childrenKilledAfterEach();

  it('every client resumes after each restart; packets lost or duplicated against FFmpeg: 0', async function () {
    const kills = scaled(1, 5);
    const clip = await minuteClip();
    const root = await scratchDir('fault-kill-root');
    await copyInto(clip, root, 'clip.mp4');
    const run = await scratchDir('fault-kill-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 'cuemux.sock');
    // One OSC port for every start, as a console is set up with one: the same console (another machine, in a real show:
    // it does not restart with the server) times the thumps of every server. A new console per restart measured its
    // own first round trip, cold, among the server's.
    const oscPort = await freeUdpPort();
    const args = ['--socket', socket, '--media-root', root, '--state-file', path.join(run, 'show.json'), '--lead-seconds', '0.5', '--osc-port', String(oscPort)];
    const start = async (): Promise<{ child: ChildProcess; oscPort: number }> => {
      const s = await spawnServer(args, {}, { nice: SERVER_NICE });
      children.push(s.child);
      return { child: s.child, oscPort: s.oscPort as number };
    };
    // The reference: every packet in file order (entry n is the n-th), and FFmpeg's payload hashes per stream.
    const probe = await ffprobePackets(clip);
    const hashes = new Map<number, string[]>();
    for (const f of await framemd5Copy(clip)) hashes.set(f.stream, [...(hashes.get(f.stream) ?? []), f.md5]);
    const nth: number[] = [];
    const perStream = new Map<number, number>();
    for (const p of probe) {
      nth.push(perStream.get(p.stream) ?? 0);
      perStream.set(p.stream, (perStream.get(p.stream) ?? 0) + 1);
    }

    let server = await start();
    const peer = await OscPeer.open();
    const ctl = new AbortController();
    const got: Packet[][] = Array.from({ length: 8 }, () => []);
    let reconnects = 0;
    const followers = got.map(async (packets, i) => {
      const client = new MediaClient(socket);
      try {
        for await (const e of resilientFollow(client, { output: i < 4 ? 'video' : 'audio', onReconnect: () => { reconnects++; } }, { signal: ctl.signal })) {
          if (e.event?.$case === 'packets' && e.event.value.cueId === 'Q') packets.push(...e.event.value.packets);
        }
      } finally {
        client.close();
      }
    });
    const console_ = await ThumpConsole.open(server.oscPort);
    const idle = await console_.sample(scaled(50, 200));
    const idleStatus = console_.statusRtts;
    const during: number[] = [];
    const duringStatus: number[] = [];
    let unanswered = 0;
    let statusUnanswered = 0;
    try {
      const load = await peer.request(server.oscPort, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }, { type: 'i', value: 2 }], 30_000);
      assert.equal(load.status, 'ok', JSON.stringify(load));
      const go = await peer.request(server.oscPort, '/cuemux/cue/go', [{ type: 's', value: 'Q' }], 30_000);
      assert.equal(go.status, 'ok', JSON.stringify(go));
      const counts = (): number[] => got.map((g) => g.length);
      for (let k = 0; k < kills; k++) {
        const before = counts();
        await waitFor('every client streaming', () => (counts().every((n, i) => n >= before[i] + 25) ? true : undefined), 60_000);
        server.child.kill('SIGKILL');
        await once(server.child, 'exit');
        const atKill = counts();
        server = await start();
        assert.equal(server.oscPort, oscPort, 'the restarted server listens for OSC on the same port');
        console_.start(20);
        await waitFor(`every client resumed after restart ${k + 1}`, () => (counts().every((n, i) => n >= atKill[i] + 25) ? true : undefined), 60_000)
          .catch((e: unknown) => assert.fail(`${String(e)}: packets per client ${counts().join(', ')} (at the kill ${atKill.join(', ')})`));
        during.push(...await console_.stop());
        duringStatus.push(...console_.statusRtts);
        unanswered += console_.unanswered;
        statusUnanswered += console_.statusUnanswered;
      }
    } finally {
      ctl.abort();
      await Promise.all(followers.map((f) => f.catch(() => undefined)));
      console_.close();
      peer.close();
    }

    // Against FFmpeg: per client and stream, the packets received are FFmpeg's k-th..m-th, each once.
    let lost = 0;
    let duplicated = 0;
    let wrong = 0;
    let total = 0;
    for (const packets of got) {
      const byStream = new Map<number, number[]>();
      for (const p of packets) {
        const entry = Number(p.entry);
        const k = nth[entry];
        if (md5(p.data) !== hashes.get(p.streamIndex)?.[k] || probe[entry]?.stream !== p.streamIndex) wrong++;
        byStream.set(p.streamIndex, [...(byStream.get(p.streamIndex) ?? []), k]);
        total++;
      }
      for (const ks of byStream.values()) {
        const unique = new Set(ks);
        duplicated += ks.length - unique.size;
        lost += Math.max(...unique) - Math.min(...unique) + 1 - unique.size;
      }
    }
    process.stdout.write(`      ${kills} kill(s), 8 clients, ${total} packets: ${lost} lost, ${duplicated} duplicated, ${wrong} not FFmpeg's bytes; ${reconnects} reconnects\n`);
    recordFault({
      attack: '7. server SIGKILL under 8 Follow clients', inputs: 8, faults: kills, served: total, restarts: kills, fdsLeaked: null, rssLeakedMb: null,
      lost, duplicated, thumpIdleP99Ms: percentile(idle, 99), thumpAttackP99Ms: percentile(during, 99), thumpUnanswered: unanswered,
      statusIdleP99Ms: percentile(idleStatus, 99), statusAttackP99Ms: percentile(duringStatus, 99), statusUnanswered,
      note: `${reconnects} reconnects; ${wrong} packets not FFmpeg's bytes; thump during = while the clients reconnect and catch up after each restart `
        + '(one console on one OSC port across the restarts)',
    });
    assert.equal(wrong, 0, 'every packet is FFmpeg\'s');
    assert.equal(lost, 0, 'no packet lost');
    assert.equal(duplicated, 0, 'no packet twice');
    assert.ok(reconnects >= 8 * kills, `every client reconnected (${reconnects})`);
  });
});
