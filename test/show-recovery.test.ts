/**
 * Crash recovery: a `cuemux serve` child process killed with SIGKILL mid-cue and started again takes the show back
 * from its state file (same clock timeline and generation, same cue run), and a player using resilientFollow
 * reconnects and goes on from the next packet it needs: every packet of the cue exactly once, in order.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { minuteClip } from './support/media';
import { OscPeer } from './support/osc';
import { spawnServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { md5 } from './support/check';
import { MediaClient } from '../src/clients/media-client';
import { resilientFollow } from '../src/clients/resilient-follow';
import { monoNs } from '../src/common/time-source';
import type { FollowEvent, FollowPackets, FollowResume, Packet } from '../src/generated/cuemux/v1/media_server';

describe('crash recovery', function () {
  this.timeout(120_000);
  const children: ChildProcess[] = [];

  /** A media root with the minute clip, a private run folder, and a `cuemux serve` there with `extra` arguments. */
  async function showServer(extra: string[] = []): Promise<{ socket: string; run: string; start: () => Promise<{ child: ChildProcess; oscPort: number }> }> {
    const root = await scratchDir('rec-root');
    await copyInto(await minuteClip(), root, 'clip.mp4');
    const run = await scratchDir('rec-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 'cuemux.sock');
    const args = ['--socket', socket, '--media-root', root, '--osc-port', '0', ...extra];
    return {
      socket, run,
      start: async () => {
        const s = await spawnServer(args);
        children.push(s.child);
        assert.ok(s.oscPort !== null, s.stdout());
        return { child: s.child, oscPort: s.oscPort };
      },
    };
  }

  /** An OSC peer and a resilientFollow of output `video` on `socket` recording every event; close() ends both. */
  async function recorder(socket: string): Promise<{ peer: OscPeer; events: FollowEvent[]; close: () => Promise<void> }> {
    const peer = await OscPeer.open();
    const client = new MediaClient(socket);
    const ctl = new AbortController();
    const events: FollowEvent[] = [];
    const following = (async () => {
      for await (const e of resilientFollow(client, { output: 'video' }, { signal: ctl.signal })) events.push(e);
    })();
    return {
      peer, events,
      close: async () => {
        ctl.abort();
        await following.catch(() => undefined);
        client.close();
        peer.close();
      },
    };
  }

  afterEach(async function () {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await new Promise((r) => c.once('exit', r));
      }
    }
  });

  it('a server killed mid-cue resumes the show; a resilient player gets every packet exactly once', async function () {
    const { socket, start } = await showServer(['--lead-seconds', '0.5']);
    const first = await start();
    const peer = await OscPeer.open();
    const client = new MediaClient(socket);
    const ctl = new AbortController();
    const events: Array<{ e: FollowEvent; at: bigint }> = [];
    let reconnects = 0;
    const following = (async () => {
      for await (const e of resilientFollow(client, { output: 'video', onReconnect: () => { reconnects++; } }, { signal: ctl.signal })) events.push({ e, at: monoNs() });
    })();
    try {
      const packets = (): Packet[] => events.flatMap(({ e }) => (e.event?.$case === 'packets' && e.event.value.cueId === 'Q' ? e.event.value.packets : []));
      const load = await peer.request(first.oscPort, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }, { type: 'i', value: 2 }]);
      assert.equal(load.status, 'ok', JSON.stringify(load));
      assert.equal((await peer.request(first.oscPort, '/cuemux/cue/go', [{ type: 's', value: 'Q' }])).status, 'ok');
      while (packets().length < 60) await sleep(20);
      first.child.kill('SIGKILL');
      await new Promise((r) => first.child.once('exit', r));
      const before = packets().length;
      await sleep(300); // the show goes on without a server: the player runs on what it has

      const second = await start();
      const ready = monoNs();
      while (packets().length < before + 60) await sleep(20);
      const resumedAfterMs = Number(events.find(({ e, at }) => at > ready && e.event?.$case === 'packets')!.at - ready) / 1e6;
      const status = await peer.request(second.oscPort, '/cuemux/status');
      const st = status.data as { cues: Array<{ id: string; state: string }>; clock: { state: string } };
      assert.deepEqual(st.cues.map((c) => [c.id, c.state]), [['Q', 'playing']], 'the cue was restored');
      assert.equal(st.clock.state, 'playing');
      assert.ok(reconnects >= 1);

      // Exactly once, in order: the received packets are the first N packets of the cue as ReadPackets gives them.
      const got = packets();
      const entries = got.map((p) => p.entry);
      for (let i = 1; i < entries.length; i++) assert.ok(entries[i] > entries[i - 1], `entry ${entries[i]} after ${entries[i - 1]}`);
      const gens = new Set(events.flatMap(({ e }) => (e.event?.$case === 'packets' ? [e.event.value.generation] : [])));
      assert.equal(gens.size, 1, 'one generation across the restart');
      const starts = events.filter(({ e }) => e.event?.$case === 'started');
      assert.equal(starts.length, 1, 'CueStarted is not repeated to the player');
      const info = await client.openMedia('clip.mp4');
      const video = info.streams.find((s) => s.codecType === 'video');
      assert.ok(video);
      const reference: Packet[] = [];
      for await (const b of client.readPackets({ mediaId: info.mediaId, streams: [video.index], startSeconds: (info.startSeconds ?? 0) + 2 })) {
        reference.push(...b.packets);
        if (reference.length >= got.length) break;
      }
      assert.deepEqual(got.map((p) => [p.pts, md5(p.data)]), reference.slice(0, got.length).map((p) => [p.pts, md5(p.data)]));
      process.stdout.write(`      (packets flowing again ${resumedAfterMs.toFixed(0)} ms after the new server printed its socket)\n`);
    } finally {
      ctl.abort();
      await following.catch(() => undefined);
      client.close();
      peer.close();
    }
  });

  it('a resilient player learns of a cue unloaded while it was away (the next server did not restore it)', async function () {
    const { socket, start } = await showServer();
    const first = await start();
    const { peer, events, close } = await recorder(socket);
    try {
      const load = await peer.request(first.oscPort, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }]);
      assert.equal(load.status, 'ok', JSON.stringify(load));
      while (!events.some((e) => e.event?.$case === 'loaded')) await sleep(20);
      first.child.kill('SIGTERM'); // a clean stop: the next server keeps no loaded cue
      await new Promise((r) => first.child.once('exit', r));
      await start();
      const deadline = Date.now() + 10_000;
      while (!events.some((e) => e.event?.$case === 'unloaded') && Date.now() < deadline) await sleep(50);
      const unloaded = events.filter((e) => e.event?.$case === 'unloaded');
      assert.deepEqual(unloaded.map((e) => (e.event?.$case === 'unloaded' ? e.event.value.cueId : '')), ['Q']);
    } finally {
      await close();
    }
  });

  it('a resilient player meeting a new server (clean restart) does not carry its old resume positions to it', async function () {
    // The new server numbers its clock generations and cue segments afresh: the same show run on it again gives the
    // same numbers, and a resume position from the old server would then match and start the cue mid-GOP.
    const { socket, start } = await showServer(['--lead-seconds', '0.5']);
    const { peer, events, close } = await recorder(socket);
    const run = async (oscPort: number): Promise<void> => {
      assert.equal((await peer.request(oscPort, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }, { type: 'i', value: 2 }])).status, 'ok');
      assert.equal((await peer.request(oscPort, '/cuemux/cue/go', [{ type: 's', value: 'Q' }])).status, 'ok');
    };
    const batches = (): Array<{ segment: number; generation: bigint; packets: Packet[] }> =>
      events.flatMap((e) => (e.event?.$case === 'packets' && e.event.value.cueId === 'Q' ? [e.event.value] : []));
    try {
      const first = await start();
      await run(first.oscPort);
      while (batches().reduce((n, b) => n + b.packets.length, 0) < 60) await sleep(20);
      const old = batches()[batches().length - 1];
      first.child.kill('SIGTERM');
      await new Promise((r) => first.child.once('exit', r));
      const seen = events.length;
      const second = await start();
      while (!events.slice(seen).some((e) => e.event?.$case === 'unloaded' && e.event.value.cueId === 'Q')) await sleep(20);
      await run(second.oscPort);
      while (!events.slice(seen).some((e) => e.event?.$case === 'packets' && e.event.value.cueId === 'Q')) await sleep(20);
      const fresh = events.slice(seen).flatMap((e) => (e.event?.$case === 'packets' && e.event.value.cueId === 'Q' ? [e.event.value] : []));
      // The same numbers as on the old server (what made its resume position match)...
      assert.deepEqual([fresh[0].segment, fresh[0].generation], [old.segment, old.generation]);
      // ...and yet the cue starts from its keyframe at or before the in-point, not from where the old server was.
      const video = fresh[0].packets.filter((p) => p.streamIndex === 0);
      assert.ok(video.length > 0 && video[0].key, `first video packet after the restart: entry ${video[0]?.entry}, key ${video[0]?.key}`);
      assert.ok(video[0].entry < old.packets[old.packets.length - 1].entry, 'the cue started again from its beginning');
    } finally {
      await close();
    }
  });

  it('a server honours a resume point only from its own show (show_id): a crash recovery keeps it, a clean restart does not', async function () {
    // A player that is not resilientFollow (e.g. the C++ example) sends its resume points as they are: the server
    // must not continue a cue mid-GOP from a position of another show that happens to have the same numbers.
    const { socket, start } = await showServer(['--lead-seconds', '0.5']);
    const peer = await OscPeer.open();
    const client = new MediaClient(socket);
    /** The first Follow events of `output` video with `resume`, up to `n` packets of cue Q (clock states kept). */
    const follow = async (resume: FollowResume[], n: number): Promise<{ showIds: Set<string>; batches: FollowPackets[] }> => {
      const ctl = new AbortController();
      const showIds = new Set<string>();
      const batches: FollowPackets[] = [];
      let count = 0;
      try {
        for await (const e of client.follow({ output: 'video', resume }, { signal: ctl.signal })) {
          if (e.event?.$case === 'clock') showIds.add(e.event.value.showId);
          if (e.event?.$case === 'packets' && e.event.value.cueId === 'Q') {
            batches.push(e.event.value);
            count += e.event.value.packets.length;
            if (count >= n) break;
          }
        }
      } finally {
        ctl.abort();
      }
      return { showIds, batches };
    };
    const go = async (oscPort: number): Promise<void> => {
      assert.equal((await peer.request(oscPort, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }, { type: 'i', value: 2 }])).status, 'ok');
      assert.equal((await peer.request(oscPort, '/cuemux/cue/go', [{ type: 's', value: 'Q' }])).status, 'ok');
    };
    try {
      const first = await start();
      await go(first.oscPort);
      const a = await follow([], 40);
      assert.equal(a.showIds.size, 1);
      const [showA] = [...a.showIds];
      assert.match(showA, /^[0-9a-f]{16}$/);
      const last = a.batches[a.batches.length - 1];
      const point: FollowResume = { cueId: 'Q', segment: last.segment, generation: last.generation, nextEntry: last.packets[last.packets.length - 1].entry + 1n, showId: showA };

      // Crash recovery: the same show, so the point is honoured (the first packet is the one asked for).
      first.child.kill('SIGKILL');
      await new Promise((r) => first.child.once('exit', r));
      await start();
      const resumed = await follow([point], 1);
      assert.deepEqual([...resumed.showIds], [showA], 'the recovered show keeps its show_id');
      // (entries count every stream of the file: the output's next packet is the first of its streams from there)
      assert.ok(resumed.batches[0].packets[0].entry >= point.nextEntry, `continued from next_entry ${point.nextEntry}: got ${resumed.batches[0].packets[0].entry}`);

      // Clean restart: a fresh show with a new id; the same cue run gives the same numbers, and yet the old point
      // is not honoured: the cue starts from its keyframe.
      for (const c of children.splice(0)) {
        if (c.exitCode !== null || c.signalCode !== null) continue;
        c.kill('SIGTERM');
        await new Promise((r) => c.once('exit', r));
      }
      const third = await start();
      await go(third.oscPort);
      const fresh = await follow([point], 1);
      const [showC] = [...fresh.showIds];
      assert.notEqual(showC, showA, 'a fresh show has a new show_id');
      assert.deepEqual([fresh.batches[0].segment, fresh.batches[0].generation], [point.segment, point.generation], 'same numbers as the old show');
      const firstVideo = fresh.batches[0].packets.find((p) => p.streamIndex === 0);
      assert.ok(firstVideo !== undefined && firstVideo.key && firstVideo.entry < point.nextEntry, `first packet entry ${firstVideo?.entry} key ${firstVideo?.key}`);
      // The same point under the new show's id is honoured (what makes the refusal above the show_id's doing).
      const own = await follow([{ ...point, showId: showC }], 1);
      assert.ok(own.batches[0].packets[0].entry >= point.nextEntry, `entry ${own.batches[0].packets[0].entry} from ${point.nextEntry}`);
    } finally {
      client.close();
      peer.close();
    }
  });

  it('a resilient player waiting for its server retries without piling up abort listeners, and connects once it is up', async function () {
    const { socket, start } = await showServer();
    const { events, close, attempts, listeners } = (() => {
      const client = new MediaClient(socket);
      const ctl = new AbortController();
      const seen: FollowEvent[] = [];
      let tries = 0;
      const following = (async () => {
        for await (const e of resilientFollow(client, { output: 'video', onReconnect: () => { tries++; } }, { signal: ctl.signal })) seen.push(e);
      })();
      return {
        events: seen, attempts: () => tries, listeners: () => getEventListeners(ctl.signal, 'abort').length,
        close: async () => {
          ctl.abort();
          await following.catch(() => undefined);
          client.close();
        },
      };
    })();
    try {
      // No server yet: six failed attempts (at the backoff's 50-250 ms, 1.1 s; a dozen took 2.6 s), each of which
      // would have left an abort listener behind if they piled up, against the 2 allowed.
      while (attempts() < 6) await sleep(20);
      assert.ok(listeners() <= 2, `${listeners()} abort listeners after ${attempts()} attempts`);
      await start();
      while (!events.some((e) => e.event?.$case === 'clock')) await sleep(20);
      assert.ok(listeners() <= 2, `${listeners()} abort listeners while following`);
    } finally {
      await close();
    }
  });

  it('after a clean stop (SIGTERM) the next server keeps the cue list but does not resume playback', async function () {
    const { run, start } = await showServer();
    const list = path.join(run, 'cues.json');
    await fsp.writeFile(list, JSON.stringify({ version: 1, cues: [{ id: '1', media: 'clip.mp4' }, { id: '2', media: 'clip.mp4', in: 10 }] }));
    const peer = await OscPeer.open();
    try {
      const s = await start();
      assert.equal((await peer.request(s.oscPort, '/cuemux/cuelist/load', [{ type: 's', value: list }])).status, 'ok');
      assert.equal((await peer.request(s.oscPort, '/cuemux/cue/go')).status, 'ok');
      s.child.kill('SIGTERM');
      await new Promise((r) => s.child.once('exit', r));
      const again = await start();
      const st = (await peer.request(again.oscPort, '/cuemux/status')).data as { cues: unknown[]; clock: { state: string }; cueList: { path: string; cues: string[]; playhead: string } };
      assert.deepEqual(st.cueList, { path: list, cues: ['1', '2'], playhead: '2' });
      assert.deepEqual(st.cues, []);
      assert.equal(st.clock.state, 'stopped');
    } finally {
      peer.close();
    }
  });
});
