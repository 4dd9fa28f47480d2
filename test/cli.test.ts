/**
 * `cuemux index` as a technician uses it: folders, exit codes, and a clear message naming the file for each kind of
 * bad input.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ffprobePackets } from './support/ffmpeg-reference';
import { ensureMedia } from './support/media';
import { runCli } from './support/cli';
import { copyInto, scratchDir } from './support/tmp';
import { restrictedUser } from './support/users';

interface BuildReport { ok: boolean; exitCode: number; files: Array<{ media: string; status: string; index?: string; packets?: number; error?: { code: string; message: string } }> }

describe('cuemux index CLI', function () {
  let dir: string;
  let env: Record<string, string>;

  beforeEach(async function () {
    dir = await scratchDir('cli');
    env = { CUEMUX_CACHE_DIR: await scratchDir('cli-cache') };
  });

  it('builds a folder recursively, recognising media by probing (not by extension), and reports in JSON', async function () {
    await fsp.mkdir(path.join(dir, 'act1', 'sound'), { recursive: true });
    await copyInto(await ensureMedia('mp4-h264-aac'), path.join(dir, 'act1'), 'opening.video');
    await copyInto(await ensureMedia('wav'), path.join(dir, 'act1', 'sound'), 'thunder.wav');
    await fsp.writeFile(path.join(dir, 'act1', 'cue-notes.txt'), 'GO on the blackout\n'.repeat(50));
    await fsp.writeFile(path.join(dir, 'readme'), 'not media');
    const r = await runCli(['index', 'build', '--json', '--jobs', '2', dir], { env });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as BuildReport;
    const by = Object.fromEntries(report.files.map((f) => [path.relative(dir, f.media), f.status]));
    assert.deepEqual(by, { 'act1/opening.video': 'built', 'act1/sound/thunder.wav': 'built', 'act1/cue-notes.txt': 'skipped', readme: 'skipped' });
    // A second run finds everything fresh; `check` agrees (exit 0).
    const again = JSON.parse((await runCli(['index', 'build', '--json', dir], { env })).stdout) as BuildReport;
    assert.deepEqual(again.files.filter((f) => f.status !== 'skipped').map((f) => f.status), ['fresh', 'fresh']);
    assert.equal((await runCli(['index', 'check', dir], { env })).code, 0);
  });

  it('in a folder: follows symlinks to media, and reports damaged media (not "skipped") with the reason', async function () {
    const lib = await scratchDir('cli-lib');
    const shared = await copyInto(await ensureMedia('flac'), lib, 'shared.flac');
    await fsp.symlink(shared, path.join(dir, 'linked.flac'));
    const src = await fsp.readFile(await ensureMedia('mp4-h264-aac'));
    await fsp.writeFile(path.join(dir, 'cut.mp4'), src.subarray(0, src.length >> 1));
    await fsp.writeFile(path.join(dir, 'Gobo list.txt'), 'Gobo 3 on LX 12\n'.repeat(30));
    const r = await runCli(['index', 'build', '--json', dir], { env });
    const report = JSON.parse(r.stdout) as BuildReport;
    const by = Object.fromEntries(report.files.map((f) => [path.basename(f.media), f.status]));
    assert.deepEqual(by, { 'Gobo list.txt': 'skipped', 'cut.mp4': 'failed', 'linked.flac': 'built' });
    assert.equal(r.code, 6);
    assert.match(report.files.find((f) => f.media.endsWith('cut.mp4'))?.error?.message ?? '', /moov/);
  });

  it('check on a file that is not media says so (6), not "missing"', async function () {
    const f = path.join(dir, 'notes.txt');
    await fsp.writeFile(f, 'Q1 GO\n'.repeat(40));
    const r = await runCli(['index', 'check', f], { env });
    assert.equal(r.code, 6, r.stdout + r.stderr);
    assert.match(r.stdout, /notes\.txt .*(not a media file|text file, not media)/);
  });

  it('prints plain lines and a summary when not a TTY', async function () {
    await copyInto(await ensureMedia('flac'), dir, 'a.flac');
    const r = await runCli(['index', 'build', dir], { env });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^built {4}.*a\.flac {2}\d+ packets in [\d.]+ s -> .*a\.flac\.idx$/m);
    assert.match(r.stdout, /1 built, 0 already fresh, 0 partial, 0 skipped \(not media\), 0 failed/);
    assert.doesNotMatch(r.stderr, /\r|\x1b\[/, 'no progress bar without a TTY');
  });

  it('check: the worst of 3 stale, 4 missing, 5 corrupt', async function () {
    const a = await copyInto(await ensureMedia('flac'), dir, 'a.flac');
    const b = await copyInto(await ensureMedia('mp3'), dir, 'b.mp3');
    assert.equal((await runCli(['index', 'check', a], { env })).code, 4);
    assert.equal((await runCli(['index', 'build', a, b], { env })).code, 0);
    assert.equal((await runCli(['index', 'check', a, b], { env })).code, 0);
    await fsp.appendFile(a, Buffer.from('trailing bytes'));
    assert.equal((await runCli(['index', 'check', a, b], { env })).code, 3);
    await fsp.rm(`${b}.idx`);
    assert.equal((await runCli(['index', 'check', a, b], { env })).code, 4);
    await fsp.writeFile(`${b}.idx`, 'CUEMUXIX garbage');
    const r = await runCli(['index', 'check', '--json', a, b], { env });
    assert.equal(r.code, 5);
    const states = (JSON.parse(r.stdout) as { files: Array<{ state: string }> }).files.map((f) => f.state);
    assert.deepEqual(states, ['stale', 'corrupt']);
  });

  it('info: streams, counts, duration, longest GOP, index path and size', async function () {
    const m = await copyInto(await ensureMedia('mp4-h264-aac'), dir, 'a.mp4');
    const r = await runCli(['index', 'info', '--json', m], { env });
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as { packets: number; durationSeconds: number; keyframes: number; longestGopPackets: number;
      index: { path: string; bytes: number }; streams: Array<{ type: string; codec: string; packets: number }> };
    const probe = await ffprobePackets(m);
    assert.equal(info.packets, probe.length);
    assert.equal(info.keyframes, probe.filter((p) => p.key).length);
    assert.equal(info.longestGopPackets, 25);
    assert.ok(Math.abs(info.durationSeconds - 3) < 0.1, String(info.durationSeconds));
    assert.equal(info.index.path, `${m}.idx`);
    assert.equal(info.index.bytes, (await fsp.stat(`${m}.idx`)).size);
    assert.deepEqual(info.streams.map((s) => [s.type, s.codec, s.packets]),
      [['video', 'h264', probe.filter((p) => p.stream === 0).length], ['audio', 'aac', probe.filter((p) => p.stream === 1).length]]);
    const text = await runCli(['index', 'info', m], { env });
    assert.match(text.stdout, /^stream 0 +video h264/m);
    assert.match(text.stdout, /longest GOP 25 packets/);
  });

  describe('bad input: a clear message naming the file, and the documented exit code', function () {
    it('missing path: 8', async function () {
      const p = path.join(dir, 'nope.mov');
      const b = await runCli(['index', 'build', p], { env });
      assert.equal(b.code, 8);
      assert.match(b.stdout, /FAILED .*nope\.mov .*no such file/);
      const i = await runCli(['index', 'info', p], { env });
      assert.equal(i.code, 8);
      assert.match(i.stderr, /^cuemux: .*nope\.mov: no such file or directory$/m);
    });

    it('a directory given to info: 2', async function () {
      const r = await runCli(['index', 'info', dir], { env });
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`${dir.replace(/[/.]/g, '\\$&')}: is a directory`));
    });

    it('zero-length file: 6', async function () {
      const f = path.join(dir, 'empty.wav');
      await fsp.writeFile(f, '');
      const r = await runCli(['index', 'build', f], { env });
      assert.equal(r.code, 6);
      assert.match(r.stdout, /empty\.wav: file is empty \(0 bytes\)/);
    });

    it('a text file: 6', async function () {
      const f = path.join(dir, 'cues.txt');
      await fsp.writeFile(f, 'Q1 GO house lights\n'.repeat(40));
      const r = await runCli(['index', 'build', f], { env });
      assert.equal(r.code, 6);
      assert.match(r.stdout, /cues\.txt: a text file, not media/);
    });

    it('truncated media: 7, the readable part indexed exactly, and where reading stopped', async function () {
      const src = await fsp.readFile(await ensureMedia('mkv-vp9-opus'));
      const f = path.join(dir, 'cut.mkv');
      await fsp.writeFile(f, src.subarray(0, Math.floor(src.length * 0.6)));
      const r = await runCli(['index', 'build', '--json', f], { env });
      assert.equal(r.code, 7, r.stdout + r.stderr);
      const file = (JSON.parse(r.stdout) as BuildReport).files[0];
      assert.equal(file.status, 'partial');
      assert.match(file.error?.message ?? '', /FFmpeg stopped at byte \d+ of \d+ .*File ended prematurely; the readable part is indexed/);
      const dump = await runCli(['index', 'dump', f], { env });
      assert.equal(dump.code, 0);
      const rows = dump.stdout.trim().split('\n').map((l) => JSON.parse(l) as { size: number; pos: number });
      const probe = await ffprobePackets(f);
      assert.deepEqual(rows.map((x) => [x.pos, x.size]), probe.map((p) => [p.pos, p.size]));
      const info = await runCli(['index', 'info', f], { env });
      assert.equal(info.code, 7);
      assert.match(info.stdout, /PARTIAL +FFmpeg stopped at byte/);
    });

    it('permission denied: 9', async function () {
      const f = await copyInto(await ensureMedia('flac'), dir, 'locked.flac');
      await fsp.chmod(f, 0o000);
      const r = await runCli(['index', 'build', f], { env, ...restrictedUser() });
      assert.equal(r.code, 9, r.stdout + r.stderr);
      assert.match(r.stdout, /locked\.flac: permission denied/);
    });

    it('usage errors: 2, with the usage text', async function () {
      const r = await runCli(['index', 'build', '--jobs', 'many', dir], { env });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--jobs must be an integer 1\.\.256, got "many"/);
      assert.match(r.stderr, /Usage: cuemux index/);
      assert.equal((await runCli(['index', 'frobnicate'], { env })).code, 2);
      assert.equal((await runCli(['index', 'dump', '--format', 'xml', dir], { env })).code, 2);
    });

    it('several failures of different kinds: 1, each listed with its reason', async function () {
      const empty = path.join(dir, 'empty.wav');
      await fsp.writeFile(empty, '');
      const good = await copyInto(await ensureMedia('flac'), dir, 'good.flac');
      const r = await runCli(['index', 'build', empty, path.join(dir, 'gone.wav'), good], { env });
      assert.equal(r.code, 1);
      assert.match(r.stdout, /Problems:\n {2}.*empty\.wav: .*file is empty.*\n {2}.*gone\.wav: .*no such file/);
      assert.match(r.stdout, /1 built/);
    });
  });
});

describe('cuemux index build on a terminal', function () {
  it('draws a progress bar (files, packets, MB/s, ETA) on a TTY and erases it before each result line', async function () {
    const { spawnSync } = await import('node:child_process');
    const which = spawnSync('which', ['script']);
    assert.equal(which.status, 0, 'util-linux script(1) provides the pseudo-terminal');
    const dir = await scratchDir('tty');
    await copyInto(await ensureMedia('mp4-h264-aac'), dir, 'a.mp4');
    await copyInto(await ensureMedia('flac'), dir, 'b.flac');
    const cacheDir = await scratchDir('tty-cache');
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(path.resolve(__dirname, '..', '..', 'bin', 'cuemux.js'))} index build --jobs 1 ${JSON.stringify(dir)}`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, CUEMUX_CACHE_DIR: cacheDir, COLUMNS: '120' } });
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /\r\x1b\[2K\[[=> ]{24}\] \d\/2 files {2}[\d,]+ packets {2}[\d.]+ MB\/s {2}ETA [\d:-]+/);
    assert.match(r.stdout, /\x1b\[2Kbuilt {4}.*a\.mp4/);
    assert.match(r.stdout, /2 built, 0 already fresh/);
  });
});
