/**
 * Fault suite, attack 3: truncated and garbage media files (cut at random bytes, overwritten in the middle, random
 * bytes behind a real header, pure random bytes, empty, text) opened and read through a real `cuemux serve`:
 * OpenMedia and ReadPackets either work (everything readable is served) or fail with a typed gRPC status whose
 * message names the file, and the server then serves the next client.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ensureMedia, type CorpusName } from '../support/media';
import { spawnServer } from '../support/server';
import { atRest, scratchDir } from '../support/tmp';
import { fdCount, fdTargets, recordFault, Rng, scaled, ThumpConsole, waitFor, SERVER_NICE } from '../support/faults';
import { PairedThumps } from '../support/fault-measures';
import { MediaClient, MediaClientError } from '../../src/clients/media-client';
import { childrenKilledAfterEach } from '../support/wait';

/** The gRPC codes a damaged file may give (README "Errors"). */
const TYPED = new Set([grpc.status.FAILED_PRECONDITION, grpc.status.DATA_LOSS, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND]);

describe('faults: truncated and garbage media', function () {
  this.timeout(scaled(120_000, 1_800_000));
  const children = childrenKilledAfterEach();

  it('OpenMedia/ReadPackets give a typed error naming the file, or serve what is readable; the next client is served', async function () {
    const seed = Number(process.env.CUEMUX_FAULT_SEED ?? 12);
    const rng = new Rng(seed);
    const sources: CorpusName[] = ['mp4-h264-aac', 'mkv-vp9-opus', 'ts-h264-mp2', 'wav', 'mp3', 'flac', 'mov-prores-pcm'];
    const originals = new Map<CorpusName, Buffer>();
    for (const name of sources) originals.set(name, await fsp.readFile(await ensureMedia(name)));
    const root = await scratchDir('fault-media-root');
    await fsp.copyFile(await ensureMedia('wav'), path.join(root, 'good.wav'));
    const run = await scratchDir('fault-media-run');
    await fsp.chmod(run, 0o700);
    const socket = path.join(run, 's.sock');
    const s = await spawnServer(['--socket', socket, '--media-root', root, '--cache-dir', path.join(run, 'cache'), '--state-file', 'none', '--idle-close-ms', '0'], {}, { nice: SERVER_NICE });
    children.push(s.child);
    const pid = s.child.pid as number;
    const console_ = await ThumpConsole.open(s.oscPort as number);
    const total = scaled(40, 400);
    const outcomes = new Map<string, number>();
    const note = (k: string): void => { outcomes.set(k, (outcomes.get(k) ?? 0) + 1); };
    let served = 0;
    try {
      // The next client: a new connection that opens and reads a good file.
      const nextClient = async (): Promise<void> => {
        const c = new MediaClient(socket);
        try {
          const info = await c.openMedia('good.wav', { timeout: 30_000 });
          let n = 0;
          for await (const b of c.readPackets({ mediaId: info.mediaId }, { timeout: 30_000 })) n += b.packets.length;
          assert.ok(n > 0);
          served += 2;
        } finally {
          c.close();
        }
      };
      await nextClient();
      const mediaClosed = async (): Promise<true | undefined> => ((await fdTargets(pid)).some((t) => t.includes(root)) ? undefined : true);
      await waitFor('the good file closed', mediaClosed);
      const fdsBefore = await fdCount(pid);
      // Idle before and after the attack, at the attack's pacing (PairedThumps).
      const thumps = new PairedThumps(console_);
      await thumps.idlePhase(scaled(25, 100));
      thumps.startAttack();
      for (let k = 0; k < total; k++) {
        const source = rng.pick(sources);
        const good = originals.get(source) as Buffer;
        const ext = path.extname(await ensureMedia(source));
        let bytes: Buffer;
        let how: string;
        switch (rng.int(6)) {
          case 0: { const at = rng.int(good.length); bytes = good.subarray(0, at); how = `cut at ${at}`; break; }
          case 1: { const at = rng.int(Math.min(good.length, 4096)); bytes = good.subarray(0, at); how = `cut in the header at ${at}`; break; }
          case 2: { bytes = Buffer.from(good); const at = rng.int(bytes.length); rng.bytes(Math.min(4096, bytes.length - at)).copy(bytes, at); how = `overwritten at ${at}`; break; }
          case 3: { const head = Math.min(good.length, 64 + rng.int(8192)); bytes = Buffer.concat([good.subarray(0, head), rng.bytes(rng.int(200_000))]); how = `garbage after ${head} header bytes`; break; }
          case 4: bytes = rng.bytes(rng.int(300_000)); how = 'random bytes'; break;
          default: bytes = rng.chance(0.5) ? Buffer.alloc(0) : Buffer.from('this is not a media file\n'.repeat(rng.int(100))); how = 'empty or text'; break;
        }
        const name = `bad-${k}${ext}`;
        await fsp.writeFile(path.join(root, name), bytes);
        await atRest(path.join(root, name));
        const what = `${name} (${source}, ${how}, seed ${seed})`;
        const c = new MediaClient(socket);
        try {
          let info;
          try {
            info = await c.openMedia(name, { timeout: 60_000 });
          } catch (e) {
            assert.ok(e instanceof MediaClientError, `${what}: ${String(e)}`);
            assert.ok(TYPED.has(e.code), `${what}: OpenMedia gave ${grpc.status[e.code]}: ${e.details}`);
            assert.ok(e.details.includes(name), `${what}: the error names the file: ${e.details}`);
            note(`OpenMedia ${grpc.status[e.code]}`);
            continue;
          }
          served++;
          let n = 0;
          try {
            for await (const b of c.readPackets({ mediaId: info.mediaId }, { timeout: 60_000 })) n += b.packets.length;
            note('served');
            served++;
          } catch (e) {
            assert.ok(e instanceof MediaClientError, `${what}: ${String(e)}`);
            assert.ok(TYPED.has(e.code), `${what}: ReadPackets gave ${grpc.status[e.code]}: ${e.details}`);
            assert.ok(e.details.includes(name), `${what}: the error names the file: ${e.details}`);
            note(`ReadPackets ${grpc.status[e.code]} after ${n} packets`.replace(/after \d+ packets/, n > 0 ? 'after some packets' : 'at once'));
          }
        } finally {
          c.close();
        }
        assert.equal(s.child.exitCode, null, `${what}: the server exited: ${s.stderr().slice(-3000)}`);
        await nextClient();
      }
      await thumps.stopAttack();
      await thumps.idlePhase(scaled(25, 100));
      await waitFor('every media file closed', mediaClosed, 30_000).catch(() => undefined);
      const fdsAfter = await fdCount(pid);
      assert.doesNotMatch(s.stderr(), /uncaught|unhandled|FATAL|Segmentation/i);
      const summary = [...outcomes].map(([k, n]) => `${k} ${n}`).join(', ');
      process.stdout.write(`      ${total} damaged files: ${summary}; fds ${fdsBefore} -> ${fdsAfter}\n`);
      recordFault({
        attack: '3. truncated and garbage media', inputs: total, faults: total, served, restarts: 0, fdsLeaked: fdsAfter - fdsBefore, leakedMb: null,
        lost: null, duplicated: null, ...thumps.fields(),
        note: `seed ${seed}; ${summary}; ${thumps.counts()}`,
      });
      assert.ok(fdsAfter <= fdsBefore, `fds ${fdsBefore} -> ${fdsAfter}`);
    } finally {
      await console_.stop();
      console_.close();
    }
  });
});
