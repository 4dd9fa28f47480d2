/**
 * README promises of the `cuemux` command line that no other test checked, each tested as the README words it:
 * - "Never stale: size plus a SHA-256 of ... plus the libavformat version": an index built by another libavformat
 *   is stale (`check` exits 3 and says why), and the version recorded is the one `ffmpeg -version` reports;
 * - "`--cache-dir DIR`" as a flag of `index build` (the cache folder: where the index goes when the media's folder
 *   is not writable), over `CUEMUX_CACHE_DIR`;
 * - "`--log-format text|json` (default: text on a terminal, JSON lines otherwise), `--log-file FILE`".
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { runCli } from './support/cli';
import { ensureMedia } from './support/media';
import { copyInto, scratchDir } from './support/tmp';
import { restrictedUser } from './support/users';

const execFileAsync = promisify(execFile);

/** libavformat's version as the ffmpeg tool reports it (`libavformat    59. 27.100 / ...`). */
async function ffmpegLavf(): Promise<{ major: number; minor: number; micro: number }> {
  const { stdout } = await execFileAsync('ffmpeg', ['-hide_banner', '-version']);
  const m = /libavformat\s+(\d+)\.\s*(\d+)\.\s*(\d+)/.exec(stdout);
  assert.ok(m !== null, stdout);
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3]) };
}

describe('README promises: the command line', function () {
  this.timeout(120_000);

  it('an index records the libavformat version; one built by another version is stale (exit 3, saying so)', async function () {
    const dir = await scratchDir('lavf');
    const media = await copyInto(await ensureMedia('wav'), dir, 'a.wav');
    const env = { CUEMUX_CACHE_DIR: path.join(dir, 'cache') };
    const built = await runCli(['index', 'build', media], { env });
    assert.equal(built.code, 0, built.stdout + built.stderr);
    const idx = `${media}.idx`;
    const bytes = await fsp.readFile(idx);
    // Header (docs/idx-format.md): the libavformat version at byte 12 as major<<16 | minor<<8 | micro.
    const v = await ffmpegLavf();
    assert.equal(bytes.readUInt32LE(12), (v.major << 16) | (v.minor << 8) | v.micro, 'the version ffmpeg -version reports');
    assert.equal((await runCli(['index', 'check', media], { env })).code, 0, 'fresh as built');
    // The same index as an older libavformat would have written it: only the version differs, the CRC-32 trailer
    // (zlib's, over every byte before it) made valid again, so nothing but the version makes it stale.
    bytes.writeUInt32LE(((v.major - 1) << 16) | (v.minor << 8) | v.micro, 12);
    bytes.writeUInt32LE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
    await fsp.writeFile(idx, bytes);
    const check = await runCli(['index', 'check', media], { env });
    assert.equal(check.code, 3, check.stdout + check.stderr);
    assert.match(check.stdout + check.stderr, new RegExp(`libavformat ${v.major - 1}\\.${v.minor}.*this is ${v.major}\\.${v.minor}`));
    // A build replaces it.
    assert.equal((await runCli(['index', 'build', media], { env })).code, 0);
    assert.equal((await runCli(['index', 'check', media], { env })).code, 0);
  });

  it('--cache-dir DIR: with the media folder not writable the index goes to DIR, the flag over CUEMUX_CACHE_DIR', async function () {
    const user = restrictedUser();
    const media = await copyInto(await ensureMedia('wav'), await scratchDir('cachedir-media'), 'a.wav');
    await fsp.chmod(path.dirname(media), 0o555);
    if (process.getuid?.() !== 0) {
      // Not root: the folder's mode holds for us (root ignores it, hence the restricted user).
      await fsp.access(path.dirname(media), 2).then(() => assert.fail('the media folder is still writable'), () => undefined);
    }
    const flagDir = await scratchDir('cachedir-flag');
    const envDir = await scratchDir('cachedir-env');
    const r = await runCli(['index', 'build', '--json', '--cache-dir', flagDir, media], { env: { CUEMUX_CACHE_DIR: envDir }, ...user });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as { files: Array<{ index: string }> };
    assert.equal(path.dirname(report.files[0].index), flagDir, `the index is in the --cache-dir folder: ${report.files[0].index}`);
    assert.ok(existsSync(report.files[0].index));
    assert.equal(existsSync(`${media}.idx`), false, 'not beside the media');
    assert.deepEqual(await fsp.readdir(envDir), [], 'CUEMUX_CACHE_DIR loses to the flag');
    // It is the media's index: `check` finds it fresh there.
    assert.equal((await runCli(['index', 'check', media], { env: { CUEMUX_CACHE_DIR: flagDir }, ...user })).code, 0);
    await fsp.chmod(path.dirname(media), 0o755);
  });

  describe('--log-format and --log-file', function () {
    /** A command that logs at info level: building an index ("index built"). */
    async function logged(extra: string[]): Promise<{ stderr: string; file: string | null; logFile: string }> {
      const dir = await scratchDir('logs');
      const media = await copyInto(await ensureMedia('wav'), dir, 'a.wav');
      const logFile = path.join(dir, 'cuemux.log');
      const r = await runCli(['--log-level', 'info', ...extra.map((a) => (a === 'LOGFILE' ? logFile : a)), 'index', 'build', media], { env: { CUEMUX_CACHE_DIR: dir } });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return { stderr: r.stderr, file: existsSync(logFile) ? await fsp.readFile(logFile, 'utf8') : null, logFile };
    }
    const lines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');

    it('default, not on a terminal: JSON lines on stderr', async function () {
      const { stderr } = await logged([]);
      const records = lines(stderr).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(records.some((r) => r.level === 'info' && r.message === 'index built'), stderr);
    });

    it('--log-format text: readable lines, not JSON', async function () {
      const { stderr } = await logged(['--log-format', 'text']);
      const built = lines(stderr).filter((l) => l.includes('index built'));
      assert.equal(built.length, 1, stderr);
      assert.match(built[0], /^\d\d:\d\d:\d\d\.\d{3} info \[[^\]]+\] index built/);
      assert.throws(() => JSON.parse(built[0]) as unknown);
    });

    it('--log-file FILE: the log goes to the file (JSON with --log-format json), not to stderr', async function () {
      const { stderr, file } = await logged(['--log-format', 'json', '--log-file', 'LOGFILE']);
      assert.ok(file !== null, 'the log file was written');
      const records = lines(file).map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(records.some((r) => r.level === 'info' && r.message === 'index built'), file);
      assert.doesNotMatch(stderr, /index built/, 'nothing of it on stderr');
    });
  });
});
