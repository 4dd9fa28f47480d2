/**
 * Exactly one builder per media file across processes; the others wait and load its result. A builder killed with
 * SIGKILL leaves no index visible and the next build takes over its lock.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureMedia, longClip } from './support/media';
import { runCli, startCli } from './support/cli';
import { copyInto, scratchDir } from './support/tmp';
import { openIndex } from '../src/index-store/open-index';
import { readIndexFile } from '../src/index-store/index-file';
import { isCuemuxError } from '../src/common/errors';


/** Wait until process `pid` is stopped (state T in /proc/PID/stat) after a SIGSTOP. */
async function waitStopped(pid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) [Tt] /.test(stat)) return;
    assert.ok(Date.now() < deadline, `process ${pid} did not stop: ${stat}`);
    await sleep(2);
  }
}

async function leftovers(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((n) => /\.(lock|takeover)$|\.tmp-|\.lock\./.test(n));
}

describe('index build concurrency', function () {
  this.timeout(120_000);

  it('4 processes building the same index at once: one build, the others wait and load the same index', async function () {
    const dir = await scratchDir('conc');
    // Long enough (~130k packets) that the build surely overlaps the other processes' start.
    const media = await copyInto(await longClip(), dir, 'clip.mp4');
    const env = { CUEMUX_CACHE_DIR: await scratchDir('conc-cache') };
    const runs = await Promise.all([0, 1, 2, 3].map(() => runCli(['index', 'build', '--json', media], { env })));
    const reports = runs.map((r) => {
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return (JSON.parse(r.stdout) as { files: Array<{ status: string; index: string; packets: number }> }).files[0];
    });
    assert.equal(reports.filter((r) => r.status === 'built').length, 1, JSON.stringify(reports));
    assert.ok(reports.some((r) => r.status === 'waited'), `at least one process waited for the builder: ${JSON.stringify(reports)}`);
    for (const r of reports) {
      assert.ok(['built', 'waited', 'fresh'].includes(r.status));
      assert.equal(r.index, `${media}.idx`);
      assert.equal(r.packets, reports[0].packets);
    }
    readIndexFile(`${media}.idx`);
    assert.deepEqual(await leftovers(dir), []);
  });

  it('concurrent opens in one process share one build', async function () {
    const dir = await scratchDir('conc-in');
    const media = await copyInto(await ensureMedia('mp4-h264-aac'), dir, 'a.mp4');
    const all = await Promise.all([0, 1, 2, 3].map(() => openIndex(media, { cacheDir: dir })));
    assert.equal(all[0].origin, 'built');
    for (const idx of all) assert.equal(idx, all[0]);
  });

  it('a lock left by a dead process is taken over', async function () {
    const dir = await scratchDir('dead');
    const media = await copyInto(await ensureMedia('wav'), dir, 'a.wav');
    const dead = spawnSync('true').pid;
    await fsp.writeFile(`${media}.idx.lock`, JSON.stringify({ pid: dead, host: os.hostname(), startTicks: 0, since: new Date(0).toISOString() }));
    await fsp.writeFile(`${media}.idx.tmp-${dead}-deadbeef`, 'half an index');
    const idx = await openIndex(media, { cacheDir: dir, lockTimeoutMs: 5_000 });
    assert.equal(idx.origin, 'built');
    assert.deepEqual(await leftovers(dir), []);
  });

  it("a lock taker killed between its temporary and the link leaves a file the next taker removes", async function () {
    const dir = await scratchDir('dead-lock-temp');
    const media = await copyInto(await ensureMedia('wav'), dir, 'a.wav');
    const dead = spawnSync('true').pid;
    await fsp.writeFile(`${media}.idx.lock.tmp-${dead}-0badf00d`, JSON.stringify({ pid: dead, host: os.hostname(), startTicks: 0, since: new Date(0).toISOString() }));
    const idx = await openIndex(media, { cacheDir: dir, lockTimeoutMs: 5_000 });
    assert.equal(idx.origin, 'built');
    assert.deepEqual(await leftovers(dir), []);
  });

  it('a lock held by a live process makes others wait, bounded, with an error naming the owner', async function () {
    const dir = await scratchDir('live');
    const media = await copyInto(await ensureMedia('wav'), dir, 'a.wav');
    const holder = spawn('sleep', ['30']);
    try {
      await fsp.writeFile(`${media}.idx.lock`, JSON.stringify({ pid: holder.pid, host: os.hostname(), startTicks: 0, since: new Date().toISOString() }));
      let waited = false;
      await assert.rejects(openIndex(media, { cacheDir: dir, lockTimeoutMs: 300, onWait: () => { waited = true; } }), (e: unknown) => {
        assert.ok(isCuemuxError(e, 'LOCK_TIMEOUT'));
        assert.match(e.message, new RegExp(`a\\.wav: another index build \\(process ${holder.pid} on `));
        return true;
      });
      assert.ok(waited);
      const cli = await runCli(['index', 'build', '--lock-timeout', '1', media], { env: { CUEMUX_CACHE_DIR: dir } });
      assert.equal(cli.code, 10, cli.stdout);
      assert.match(cli.stdout, /process \d+ .*still holds a\.wav\.idx\.lock/);
    } finally {
      const gone = new Promise((resolve) => holder.once('exit', resolve));
      holder.kill('SIGKILL');
      await gone;
    }
    // Owner gone (exited and reaped): the next build proceeds.
    assert.equal((await openIndex(media, { cacheDir: dir, lockTimeoutMs: 5_000 })).origin, 'built');
  });

  it('a builder killed with SIGKILL leaves no partial index; the next build succeeds', async function () {
    this.timeout(300_000);
    const dir = await scratchDir('kill');
    const media = await copyInto(await longClip(), dir, 'long.mp4');
    const env = { CUEMUX_CACHE_DIR: dir };
    const child = startCli(['index', 'build', media], { env });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, s) => resolve(s)));
    const exists = (p: string): Promise<boolean> => fsp.access(p).then(() => true, () => false);
    // Wait (generously) until the build holds its lock (the lock there, and the temporary file it was linked from
    // gone: the builder is past taking it), then freeze the builder where it is: with it stopped, the lock still
    // there and no index published, it is caught mid-build whatever the machine's speed.
    const linking = async (): Promise<boolean> => (await fsp.readdir(dir)).some((n) => n.startsWith('long.mp4.idx.lock.'));
    const deadline = Date.now() + 60_000;
    while (!(await exists(`${media}.idx.lock`)) || await linking()) {
      assert.ok(child.exitCode === null && child.signalCode === null, 'the builder exited before it took its lock');
      assert.ok(Date.now() < deadline, 'the builder took no lock within 60 s');
      await sleep(2);
    }
    child.kill('SIGSTOP');
    await waitStopped(child.pid as number);
    assert.ok(await exists(`${media}.idx.lock`), 'the builder still holds its lock when stopped');
    assert.equal(await linking(), false, 'the builder is past taking its lock');
    assert.equal(await exists(`${media}.idx`), false, 'the builder was stopped before it published its index');
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    await assert.rejects(fsp.access(`${media}.idx`), 'no index published by the killed builder');
    const again = await runCli(['index', 'build', '--json', media], { env });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal((JSON.parse(again.stdout) as { files: Array<{ status: string }> }).files[0].status, 'built');
    assert.ok(readIndexFile(`${media}.idx`).packetCount > 100_000);
    assert.deepEqual(await leftovers(dir), []);
    const check = await runCli(['index', 'check', media], { env });
    assert.equal(check.code, 0, `the rebuilt index is fresh: ${check.stdout}${check.stderr}`);
  });
});
