/**
 * Fault suite, attack 7: SIGKILL of the server while 8 resilient Follow clients (4 on output `video`, 4 on `audio`,
 * each its own connection) stream a running cue; a new server on the same socket and state file; every client
 * resumes. Every packet each client received is checked against FFmpeg (`ffmpeg -c copy -f framemd5`): the bytes
 * are FFmpeg's, and per client and stream the packets run from the first received to the last with none lost and
 * none twice. Once in `npm test`, 20 kills under `npm run soak`. A console's thumps are timed just before each kill
 * (idle: the same show streaming) and from the kill until every client has resumed (attack).
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
import { PairedThumps } from '../support/fault-measures';
import { MediaClient } from '../../src/clients/media-client';
import { resilientFollow } from '../../src/clients/resilient-follow';
import type { Packet } from '../../src/generated/cuemux/v1/media_server';
import { childrenKilledAfterEach } from '../support/wait';

describe('faults: SIGKILL of the server under 8 streaming clients', function () {
  this.timeout(scaled(120_000, 1_800_000));
  const children = childrenKilledAfterEach();

  it('every client resumes after each restart; packets lost or duplicated against FFmpeg: 0', async function () {
    // Soak: 20 kills, ~20 thumps while the clients resume after each (~400 in all: a p99 that is not one thump).
    const kills = scaled(1, 20);
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
    // Before the cue: the server with its 8 clients connected and nothing to stream (the old baseline, in the note).
    const beforeCue = await console_.sample(scaled(50, 200), 20);
    const thumps = new PairedThumps(console_);
    try {
      const load = await peer.request(server.oscPort, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }, { type: 'i', value: 2 }], 30_000);
      assert.equal(load.status, 'ok', JSON.stringify(load));
      const go = await peer.request(server.oscPort, '/cuemux/cue/go', [{ type: 's', value: 'Q' }], 30_000);
      assert.equal(go.status, 'ok', JSON.stringify(go));
      const counts = (): number[] => got.map((g) => g.length);
      for (let k = 0; k < kills; k++) {
        const before = counts();
        await waitFor('every client streaming', () => (counts().every((n, i) => n >= before[i] + 25) ? true : undefined), 60_000);
        // Idle: the same show, the same 8 clients streaming, no fault; then the kill and the restart.
        await thumps.idlePhase(scaled(20, 20));
        server.child.kill('SIGKILL');
        await once(server.child, 'exit');
        const atKill = counts();
        server = await start();
        assert.equal(server.oscPort, oscPort, 'the restarted server listens for OSC on the same port');
        // Attack: from the new server's start (a dead server answers nothing) until every client has resumed.
        await thumps.attackPhase(async () => {
          await waitFor(`every client resumed after restart ${k + 1}`, () => (counts().every((n, i) => n >= atKill[i] + 25) ? true : undefined), 60_000)
            .catch((e: unknown) => assert.fail(`${String(e)}: packets per client ${counts().join(', ')} (at the kill ${atKill.join(', ')})`));
        });
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
      attack: '7. server SIGKILL under 8 Follow clients', inputs: 8, faults: kills, served: total, restarts: kills, fdsLeaked: null, leakedMb: null,
      lost, duplicated, ...thumps.fields(),
      note: `${reconnects} reconnects; ${wrong} packets not FFmpeg's bytes; thump idle = the cue running and the 8 clients streaming just before each kill, `
        + `attack = from the restarted server's start until every client has resumed (one console on one OSC port across the restarts); ${thumps.counts()}; `
        + `thump p99 before the cue (server up, clients connected, nothing streaming): ${percentile(beforeCue, 99).toFixed(2)} ms `
        + `(${beforeCue.length} thumps), attack against it ${(percentile(thumps.attack, 99) / percentile(beforeCue, 99)).toFixed(2)}×`,
    });
    assert.equal(wrong, 0, 'every packet is FFmpeg\'s');
    assert.equal(lost, 0, 'no packet lost');
    assert.equal(duplicated, 0, 'no packet twice');
    assert.ok(reconnects >= 8 * kills, `every client reconnected (${reconnects})`);
  });
});
