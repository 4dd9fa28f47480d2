/**
 * Fault suite, attack 2: random and mutated cue lists (docs/cue-list.md), state files and `.idx` files
 * (docs/idx-format.md), each handed to a real `cuemux serve`: a cue list loaded over OSC, a state file at start, an
 * index beside the media it opens. Each gives a clear error or warning naming the file (or works), never a crash or
 * a hang; a console's thump is answered throughout. Many more of each go through the parsers in this process.
 */
import assert from 'node:assert/strict';
import { childrenKilledAfterEach } from '../support/wait';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { ensureMedia, minuteClip } from '../support/media';
import { OscPeer } from '../support/osc';
import { spawnServer } from '../support/server';
import { copyInto, scratchDir } from '../support/tmp';
import { mutateBytes, mutateJsonText, recordFault, Rng, scaled, ThumpConsole, waitFor, SERVER_NICE } from '../support/faults';
import { PairedThumps } from '../support/fault-measures';
import { MediaClient, MediaClientError } from '../../src/clients/media-client';
import { isCuemuxError, errorStack } from '../../src/common/errors';
import { unixNs } from '../../src/common/time-source';
import { maxIndexBytes, readIndexFile } from '../../src/index-store/index-file';
import { parseCueList } from '../../src/show/cue-list-file';
import { parseSavedShow } from '../../src/show/show-state';
import { parseTimecodeRate } from '../../src/show/timecode';

/** A valid cue list for the media `clip.mp4` (the docs' example, adapted). */
const CUE_LIST = {
  version: 1, name: 'Act 1', timecodeRate: '25',
  cues: [
    { id: '1', name: 'House to half', media: 'clip.mp4', loop: true, outputs: { stage: ['video'], main: ['audio'] } },
    { id: '2', media: 'clip.mp4', in: '00:00:01:12', out: 5.5, outputs: { main: ['audio'] } },
    { id: '2.5', media: 'clip.mp4', follow: true },
  ],
};

/** Lines of a server's log that concern `what` (a file's role), for checking that they name the file. */
function linesAbout(stderr: string, pattern: RegExp): string[] {
  return stderr.split('\n').filter((l) => pattern.test(l));
}

describe('faults: hostile cue lists, state files and .idx files', function () {
  this.timeout(scaled(120_000, 1_800_000));
  const children = childrenKilledAfterEach();
  const seed = Number(process.env.CUEMUX_FAULT_SEED ?? 12);

  it('each mutated file gives a clear error or warning naming it (or works); the server never crashes or hangs', async function () {
    const rng = new Rng(seed);
    const root = await scratchDir('fault-files-root');
    await copyInto(await minuteClip(), root, 'clip.mp4');
    const small = await ensureMedia('mp4-h264-aac');
    const run = await scratchDir('fault-files-run');
    await fsp.chmod(run, 0o700);
    const files = await scratchDir('fault-files');
    const stateFile = path.join(run, 'show.json');
    const s = await spawnServer(['--socket', path.join(run, 's.sock'), '--media-root', root, '--state-file', stateFile, '--idle-close-ms', '0'], {}, { nice: SERVER_NICE });
    children.push(s.child);
    const port = s.oscPort as number;
    const peer = await OscPeer.open();
    const console_ = await ThumpConsole.open(port);
    const client = new MediaClient(path.join(run, 's.sock'));
    let inputs = 0;
    let faults = 0;
    let served = 0;
    try {
      // Idle before and after the attack, at the attack's pacing (PairedThumps).
      const thumps = new PairedThumps(console_);
      await thumps.idlePhase(scaled(25, 100));
      thumps.startAttack();

      // 1. Cue lists, loaded over OSC: the reply is ok, or an error naming the file.
      const lists = scaled(60, 1000);
      let listErrors = 0;
      for (let k = 0; k < lists; k++) {
        const file = path.join(files, `list-${k}.json`);
        await fsp.writeFile(file, mutateJsonText(rng, CUE_LIST));
        const r = await peer.request(port, '/cuemux/cuelist/load', [{ type: 's', value: file }], 30_000);
        inputs++;
        faults++;
        served++;
        if (r.status === 'error') {
          listErrors++;
          assert.ok((r.error ?? '').includes(file), `cue list ${k} (seed ${seed}): the error names the file: ${JSON.stringify(r).slice(0, 600)}`);
        }
        await fsp.rm(file);
      }
      // Many more through the parser alone: an error naming the file, or a list.
      const parsed = scaled(300, 20_000);
      for (let k = 0; k < parsed; k++) {
        const text = mutateJsonText(rng, CUE_LIST).toString('utf8');
        try {
          parseCueList(text, '/show/act1.json', parseTimecodeRate('25'));
        } catch (e) {
          assert.ok(isCuemuxError(e, 'INVALID_ARGUMENT') && e.message.startsWith('/show/act1.json'), `parse ${k} (seed ${seed}): ${String(e)}`);
        }
      }

      // 2. State files: the state this server saved (a cue playing), mutated, then a server started over each.
      assert.equal((await peer.request(port, '/cuemux/cue/load', [{ type: 's', value: 'Q' }, { type: 's', value: 'clip.mp4' }], 30_000)).status, 'ok');
      assert.equal((await peer.request(port, '/cuemux/cue/go', [{ type: 's', value: 'Q' }], 30_000)).status, 'ok');
      const saved = await waitFor('the state file holds the playing cue', async () => {
        const text = await fsp.readFile(stateFile, 'utf8');
        return /"state":"playing"/.test(text) ? JSON.parse(text) as Record<string, unknown> : undefined;
      });
      const starts = scaled(5, 60);
      let stateWarnings = 0;
      for (let k = 0; k < starts; k++) {
        const runK = await scratchDir('fault-state-run');
        await fsp.chmod(runK, 0o700);
        const file = path.join(runK, 'state.json');
        await fsp.writeFile(file, mutateJsonText(rng, { ...saved, savedUnixNs: String(unixNs()), clean: false }));
        const other = await Promise.race([
          spawnServer(['--socket', path.join(runK, 's.sock'), '--media-root', root, '--state-file', file]),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`state file ${k} (seed ${seed}): the server did not start within 60 s`)), 60_000)),
        ]);
        children.push(other.child);
        inputs++;
        faults++;
        const p = await OscPeer.open();
        try {
          const thump = await p.request(other.oscPort as number, '/cuemux/thump', [], 30_000);
          assert.equal(thump.status, 'ok', `state file ${k} (seed ${seed}): thump: ${JSON.stringify(thump).slice(0, 600)}`);
          served++;
        } finally {
          p.close();
        }
        const about = linesAbout(other.stderr(), /show state|saved show|previous server|saved clock/);
        stateWarnings += about.length;
        for (const l of about) assert.ok(l.includes(file), `state file ${k} (seed ${seed}): a line about the state that does not name it: ${l.slice(0, 600)}`);
        other.child.kill('SIGTERM');
        const [code] = await once(other.child, 'exit') as [number | null];
        assert.equal(code, 0, `state file ${k}: ${other.stderr().slice(-2000)}`);
      }
      const parsedStates = scaled(300, 20_000);
      for (let k = 0; k < parsedStates; k++) {
        const text = mutateJsonText(rng, { ...saved, savedUnixNs: String(unixNs()) }).toString('utf8');
        try {
          parseSavedShow(text);
        } catch (e) {
          assert.ok(e instanceof Error && e.message.length > 0, `state parse ${k} (seed ${seed}): ${String(e)}`);
        }
      }

      // 3. .idx files: a copy of a small clip with a mutated index beside it, opened and read through the server.
      // Most are "crafted": mutated, then given a valid CRC, so they reach the checks behind the checksum.
      const base = path.join(root, 'base.mp4');
      await fsp.copyFile(small, base);
      const info = await client.openMedia('base.mp4', { timeout: 60_000 });
      let reference = 0;
      for await (const b of client.readPackets({ mediaId: info.mediaId })) reference += b.packets.length;
      await client.closeMedia(info.mediaId);
      const goodIdx = await fsp.readFile(`${base}.idx`);
      const mediaSize = (await fsp.stat(base)).size;
      const mutateIdx = (): Buffer => {
        const b = mutateBytes(rng, goodIdx, 4 << 20);
        if (rng.chance(0.75) && b.length >= 4) b.writeUInt32LE(crc32(b.subarray(0, b.length - 4)), b.length - 4);
        return b;
      };
      const idxInputs = scaled(30, 300);
      let corrupt = 0;
      for (let k = 0; k < idxInputs; k++) {
        const media = path.join(root, `m-${k}.mp4`);
        await fsp.copyFile(small, media);
        await fsp.writeFile(`${media}.idx`, mutateIdx());
        let verdict = 'loads';
        try {
          readIndexFile(`${media}.idx`, maxIndexBytes(mediaSize));
        } catch (e) {
          assert.ok(isCuemuxError(e) && e.message.includes(`${media}.idx`), `idx ${k} (seed ${seed}): ${String(e)}`);
          verdict = 'corrupt';
          corrupt++;
        }
        inputs++;
        faults++;
        const opened = await client.openMedia(`m-${k}.mp4`, { timeout: 60_000 });
        let n = 0;
        try {
          for await (const b of client.readPackets({ mediaId: opened.mediaId }, { timeout: 60_000 })) n += b.packets.length;
          if (verdict === 'corrupt') assert.equal(n, reference, `idx ${k}: the rebuilt index serves every packet`);
        } catch (e) {
          // A crafted index that passed every check may place packets wrongly: the read fails, naming the file.
          assert.ok(e instanceof MediaClientError && verdict === 'loads' && e.details.includes(`m-${k}.mp4`), `idx ${k} (seed ${seed}, ${verdict}): ${String(e)}`);
        }
        served += 2;
        await client.closeMedia(opened.mediaId);
        if (verdict === 'corrupt') {
          await waitFor(`idx ${k}: the server's warning naming ${media}.idx`, () => (s.stderr().includes(`${media}.idx`) ? true : undefined), 10_000);
        }
        await fsp.rm(media);
        await fsp.rm(`${media}.idx`, { force: true });
      }
      const parsedIdx = scaled(300, 10_000);
      const probe = path.join(files, 'probe.idx');
      for (let k = 0; k < parsedIdx; k++) {
        await fsp.writeFile(probe, mutateIdx());
        try {
          readIndexFile(probe, maxIndexBytes(mediaSize));
        } catch (e) {
          assert.ok(isCuemuxError(e) && e.message.includes(probe), `idx parse ${k} (seed ${seed}): ${errorStack(e)}`);
        }
      }

      await thumps.stopAttack();
      await thumps.idlePhase(scaled(25, 100));
      assert.equal(s.child.exitCode, null, s.stderr().slice(-3000));
      assert.doesNotMatch(s.stderr(), /uncaught|unhandled|FATAL|Segmentation/i);
      process.stdout.write(`      ${lists} cue lists (${listErrors} refused), ${starts} state files (${stateWarnings} warnings), ${idxInputs} .idx (${corrupt} corrupt) ` +
        `through the server; ${parsed} + ${parsedStates} + ${parsedIdx} through the parsers\n`);
      recordFault({
        attack: '2. cue lists, state files, .idx', inputs, faults, served, restarts: 0, fdsLeaked: null, leakedMb: null, lost: null, duplicated: null,
        ...thumps.fields(),
        note: `seed ${seed}; through the server: ${lists} cue lists (${listErrors} refused naming the file), ${starts} server starts over mutated state files `
          + `(${stateWarnings} warnings, each naming it), ${idxInputs} .idx (${corrupt} corrupt, rebuilt); in process: ${parsed} cue lists, ${parsedStates} states, ${parsedIdx} .idx; ${thumps.counts()}`,
      });
      assert.equal(thumps.unanswered, 0, `show control answered throughout: ${thumps.counts()}`);
    } finally {
      await console_.stop();
      console_.close();
      peer.close();
      client.close();
    }
  });
});
