/**
 * Fault suite, attack 5: a full disk (ENOSPC, a small tmpfs filled to the last page) under a running `cuemux serve`
 * and a `play-audio`: index writes (beside the media and in --cache-dir), state file writes and the player's sync
 * log all fail. The server says so, naming each file, and keeps serving (the index built in memory, README
 * "What the index guarantees"); the player says so and keeps playing; once there is room again the state is saved.
 * Skipped where a tmpfs cannot be mounted (not root, or no CAP_SYS_ADMIN).
 */
import assert from 'node:assert/strict';
import { childrenKilledAfterEach } from '../support/wait';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ensureMedia } from '../support/media';
import { OscPeer } from '../support/osc';
import { spawnServer } from '../support/server';
import { scratchDir } from '../support/tmp';
import { spawnPlayer } from '../support/show-check';
import { fillDisk, mountTmpfs, recordFault, scaled, ThumpConsole, unmountAll, waitFor, SERVER_NICE } from '../support/faults';
import { PairedThumps } from '../support/fault-measures';
import { MediaClient } from '../../src/clients/media-client';

describe('faults: a full disk (ENOSPC)', function () {
  this.timeout(scaled(120_000, 600_000));
  const children = childrenKilledAfterEach();

  afterEach(async function () {
    await unmountAll();
  });

  it('index, state file and sync-log writes fail: the server and the player say so, naming the file, and keep serving', async function () {
    const mnt = await mountTmpfs('4m');
    if (mnt === null) {
      process.stdout.write('      skipped: a tmpfs cannot be mounted here (needs root with CAP_SYS_ADMIN)\n');
      this.skip();
    }
    const disk = mnt;
    const media = path.join(disk, 'media');
    const cache = path.join(disk, 'cache');
    const stateDir = path.join(disk, 'state');
    for (const d of [media, cache, stateDir]) await fsp.mkdir(d);
    const names = ['a.mp4', 'b.mp4', 'c.mp4'];
    for (const n of names) await fsp.copyFile(await ensureMedia('mp4-h264-aac'), path.join(media, n));
    const run = await scratchDir('fault-enospc-run');
    await fsp.chmod(run, 0o700);
    const out = await scratchDir('fault-enospc-out');
    const socket = path.join(run, 's.sock');
    const stateFile = path.join(stateDir, 'show.json');
    const syncLog = path.join(disk, 'sync.log');
    const s = await spawnServer(['--socket', socket, '--media-root', media, '--cache-dir', cache, '--state-file', stateFile, '--idle-close-ms', '0'], {}, { nice: SERVER_NICE });
    children.push(s.child);
    const port = s.oscPort as number;
    const peer = await OscPeer.open();
    const console_ = await ThumpConsole.open(port);
    const client = new MediaClient(socket);
    let served = 0;
    let faults = 0;
    try {
      await waitFor('the first state saved', async () => ((await fsp.stat(stateFile).catch(() => null))?.isFile() ? true : undefined));
      // Idle before and after the attack, at the attack's pacing (PairedThumps).
      const thumps = new PairedThumps(console_);
      await thumps.idlePhase(scaled(25, 100));
      // A player following the audio output, its sync log on the disk about to be full, its samples on another disk.
      const wav = path.join(out, 'audio.wav');
      const player = spawnPlayer(['play-audio', '--socket', socket, '--output', 'audio', '--sync-log', syncLog, '--sink', `wav:${wav}`, '--rt-priority', '0', '--nice', '0']);
      children.push(player.child);
      await waitFor('the player follows', async () => ((await client.getStatus()).clients.some((c) => c.output === 'audio') ? true : undefined));

      // The disk is full: not a page left.
      fillDisk(disk, 0);
      faults++;
      thumps.startAttack();

      // 1. Index writes: beside the media and in the cache folder both fail; the index is served from memory.
      for (const n of names.slice(0, 2)) {
        const info = await client.openMedia(n, { timeout: 60_000 });
        let count = 0;
        for await (const b of client.readPackets({ mediaId: info.mediaId }, { timeout: 60_000 })) count += b.packets.length;
        assert.ok(count > 0);
        await client.closeMedia(info.mediaId);
        served += 2;
        faults++;
        await waitFor(`the server says ${n}'s index is served from memory`,
          () => (new RegExp(`${n.replace('.', '\\.')}: the index could not be written \\(.*(no space|ENOSPC).*\\): serving the index built in memory`, 'i').test(s.stderr()) ? true : undefined), 10_000);
      }
      // 2. State file writes: a cue loaded and started changes the show; the save fails, naming the file.
      assert.equal((await peer.request(port, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'a.mp4' }], 30_000)).status, 'ok');
      assert.equal((await peer.request(port, '/cuemux/cue/go', [{ type: 's', value: 'Q' }], 30_000)).status, 'ok');
      served += 2;
      faults++;
      await waitFor('the server says the state was not saved', () => (s.stderr().split('\n').some((l) => /show state not saved/.test(l) && l.includes(stateFile) && /ENOSPC|no space/i.test(l)) ? true : undefined), 10_000);
      // 3. The player's sync log: it says so, once, and goes on playing (its samples keep coming).
      faults++;
      await waitFor('the player says its sync log cannot be written', () => (/sync log cannot be written/.test(player.stderr()) ? true : undefined), 30_000);
      assert.ok(player.stderr().includes(syncLog), player.stderr());
      const size = (await fsp.stat(wav)).size;
      await waitFor('the player goes on playing', async () => ((await fsp.stat(wav)).size > size + 48_000 ? true : undefined), 30_000);
      assert.equal(player.child.exitCode, null, player.stderr());
      assert.equal((player.stderr().match(/sync log cannot be written/g) ?? []).length, 1, 'said once');

      // Room again: the state is saved (the heartbeat), and the next index goes to disk.
      await fsp.rm(path.join(disk, 'filler'));
      await waitFor('the state saved again, with the cue', async () => (/"id":"Q"/.test(await fsp.readFile(stateFile, 'utf8')) ? true : undefined), 30_000);
      const info = await client.openMedia(names[2], { timeout: 60_000 });
      await client.closeMedia(info.mediaId);
      served++;
      await waitFor('the next index written beside its media', async () => ((await fsp.stat(path.join(media, `${names[2]}.idx`)).catch(() => null)) ? true : undefined));
      await thumps.stopAttack();
      await thumps.idlePhase(scaled(25, 100));
      assert.equal(s.child.exitCode, null, s.stderr().slice(-3000));
      assert.doesNotMatch(s.stderr(), /uncaught|unhandled|FATAL|Segmentation/i);
      const notSaved = s.stderr().split('\n').filter((l) => /show state not saved/.test(l)).length;
      process.stdout.write(`      full disk: 2 indexes served from memory, state not saved (${notSaved} warnings), the player's sync log off; all recovered\n`);
      recordFault({
        attack: '5. ENOSPC (index, state, sync log)', inputs: 3, faults, served, restarts: 0, fdsLeaked: null, leakedMb: null, lost: null, duplicated: null,
        ...thumps.fields(),
        note: `${notSaved} "show state not saved" warnings while the disk was full (one per save attempt); ${thumps.counts()}`,
      });
      player.child.kill('SIGTERM');
      await player.exited;
    } finally {
      await console_.stop();
      console_.close();
      peer.close();
      client.close();
    }
  });
});
