/**
 * An index is never stale and never trusted when damaged: same-size edits in the middle, replaced files, flipped
 * bytes and truncations are all detected; a touched file or an identical copy is accepted; read-only media folders
 * use the cache directory.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ensureMedia, makeMedia } from './support/media';
import { runCli } from './support/cli';
import { copyInto, scratchDir } from './support/tmp';
import { restrictedUser } from './support/users';
import { checkIndex, openIndex } from '../src/index-store/open-index';
import { readIndexFile } from '../src/index-store/index-file';
import { parseIndex } from '../src/index-store/idx-format';
import { sampleRanges } from '../src/index-store/fingerprint';
import { isCuemuxError } from '../src/common/errors';

/** A ProRes clip of ~4.5 MB: big enough that the fingerprint samples blocks instead of hashing everything. */
function largeClip(): Promise<string> {
  return makeMedia('prores-10s.mov', ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=f=330:sample_rate=48000',
    '-t', '10', '-c:v', 'prores_ks', '-profile:v', '0', '-c:a', 'pcm_s16le']);
}

function entriesOf(idx: Awaited<ReturnType<typeof openIndex>>): string {
  return JSON.stringify([...idx.entries()]);
}

describe('index freshness', function () {
  let dir: string;
  let cacheDir: string;
  let media: string;

  beforeEach(async function () {
    dir = await scratchDir('fresh');
    cacheDir = await scratchDir('fresh-cache');
    media = await copyInto(await largeClip(), dir, 'clip.mov');
    const size = (await fsp.stat(media)).size;
    assert.ok(sampleRanges(size).length > 2, 'the clip is large enough to be sampled, not hashed whole');
  });

  it('a same-size edit in the middle of the file makes the index stale and it is rebuilt', async function () {
    const first = await openIndex(media, { cacheDir });
    assert.equal(first.origin, 'built');
    const size = (await fsp.stat(media)).size;
    const fh = await fsp.open(media, 'r+');
    const mid = Math.floor(size / 2);
    const b = Buffer.alloc(16);
    await fh.read(b, 0, 16, mid);
    for (let i = 0; i < 16; i++) b[i] ^= 0x5a;
    await fh.write(b, 0, 16, mid);
    await fh.close();
    assert.equal((await fsp.stat(media)).size, size);
    const c = await checkIndex(media, { cacheDir });
    assert.equal(c.state, 'stale');
    assert.match(c.reason ?? '', /content changed/);
    const cli = await runCli(['index', 'check', media], { env: { CUEMUX_CACHE_DIR: cacheDir } });
    assert.equal(cli.code, 3, cli.stdout + cli.stderr);
    const again = await openIndex(media, { cacheDir });
    assert.equal(again.origin, 'built');
    assert.ok(!again.identity.sampleHash.equals(first.identity.sampleHash));
  });

  it('touching the file (mtime only) keeps the index fresh', async function () {
    await openIndex(media, { cacheDir });
    const later = new Date(Date.now() + 3_600_000);
    await fsp.utimes(media, later, later);
    assert.equal((await checkIndex(media, { cacheDir })).state, 'fresh');
    assert.equal((await openIndex(media, { cacheDir })).origin, 'loaded');
  });

  it('a file replaced by different media is detected and reindexed from the new content', async function () {
    await openIndex(media, { cacheDir });
    const other = await ensureMedia('mov-prores-pcm');
    await fsp.copyFile(other, `${media}.new`);
    await fsp.rename(`${media}.new`, media);
    assert.equal((await checkIndex(media, { cacheDir })).state, 'stale');
    const idx = await openIndex(media, { cacheDir });
    assert.equal(idx.origin, 'built');
    const direct = await openIndex(await copyInto(other, await scratchDir('fresh-ref'), 'ref.mov'), { cacheDir });
    assert.equal(entriesOf(idx), entriesOf(direct));
  });

  it('a file replaced by an identical copy (new inode) keeps the index fresh', async function () {
    await openIndex(media, { cacheDir });
    await fsp.copyFile(media, `${media}.copy`);
    await fsp.rename(`${media}.copy`, media);
    assert.equal((await checkIndex(media, { cacheDir })).state, 'fresh');
  });
});

describe('index corruption', function () {
  let bytes: Buffer;
  let media: string;
  let cacheDir: string;

  before(async function () {
    const dir = await scratchDir('corrupt');
    cacheDir = await scratchDir('corrupt-cache');
    media = await copyInto(await ensureMedia('flac'), dir, 'small.flac');
    const idx = await openIndex(media, { cacheDir });
    bytes = await fsp.readFile(idx.indexPath);
    assert.ok(bytes.length < 4096, `a small index (${bytes.length} bytes)`);
  });

  function aligned(b: Buffer): Buffer {
    const out = Buffer.allocUnsafeSlow(b.length);
    b.copy(out);
    return out;
  }

  it('detects every single flipped byte and every flipped low bit', function () {
    assert.doesNotThrow(() => parseIndex(aligned(bytes), 'x.idx'));
    for (const mask of [0xff, 0x01]) {
      for (let i = 0; i < bytes.length; i++) {
        const b = aligned(bytes);
        b[i] ^= mask;
        assert.throws(() => parseIndex(b, 'x.idx'), (e: unknown) => isCuemuxError(e, 'INDEX_CORRUPT'), `byte ${i} ^ ${mask}`);
      }
    }
  });

  it('detects truncation at any of several lengths, and appended bytes', function () {
    for (const n of [0, 1, 8, 50, 96, 100, bytes.length >> 1, bytes.length - 5, bytes.length - 1]) {
      assert.throws(() => parseIndex(aligned(bytes.subarray(0, n)), 'x.idx'), (e: unknown) => isCuemuxError(e, 'INDEX_CORRUPT'), `length ${n}`);
    }
    assert.throws(() => parseIndex(aligned(Buffer.concat([bytes, Buffer.alloc(8)])), 'x.idx'), (e: unknown) => isCuemuxError(e, 'INDEX_CORRUPT'));
  });

  it('a corrupt index on disk is reported by `check` (exit 5) and rebuilt on open with the same entries', async function () {
    const idxPath = `${media}.idx`;
    const good = await openIndex(media, { cacheDir });
    const before = entriesOf(good);
    const damaged = Buffer.from(bytes);
    damaged[damaged.length >> 1] ^= 0x10;
    await fsp.writeFile(idxPath, damaged);
    assert.throws(() => readIndexFile(idxPath), (e: unknown) => isCuemuxError(e, 'INDEX_CORRUPT'));
    const cli = await runCli(['index', 'check', '--json', media], { env: { CUEMUX_CACHE_DIR: cacheDir } });
    assert.equal(cli.code, 5, cli.stderr);
    assert.equal((JSON.parse(cli.stdout) as { files: Array<{ state: string }> }).files[0].state, 'corrupt');
    await fsp.truncate(idxPath, 40);
    const rebuilt = await openIndex(media, { cacheDir });
    assert.equal(rebuilt.origin, 'built');
    assert.equal(entriesOf(rebuilt), before);
    assert.doesNotThrow(() => readIndexFile(idxPath));
  });
});

describe('index location', function () {
  it('a read-only media folder puts the index in the cache directory, and finds it there next time', async function () {
    const parent = await scratchDir('ro');
    const cacheDir = await scratchDir('ro-cache');
    const dir = path.join(parent, 'show');
    await fsp.mkdir(dir);
    const media = await copyInto(await ensureMedia('m4a-aac'), dir, 'house-music.m4a');
    await fsp.chmod(media, 0o644);
    await fsp.chmod(dir, 0o555);
    const user = restrictedUser();
    const env = { CUEMUX_CACHE_DIR: cacheDir };
    const first = await runCli(['index', 'build', '--json', media], { env, ...user });
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const r1 = JSON.parse(first.stdout) as { files: Array<{ status: string; index: string }> };
    assert.equal(r1.files[0].status, 'built');
    assert.equal(path.dirname(r1.files[0].index), cacheDir);
    await assert.rejects(fsp.access(`${media}.idx`), 'nothing written beside the media');
    const second = await runCli(['index', 'build', '--json', media], { env, ...user });
    const r2 = JSON.parse(second.stdout) as { files: Array<{ status: string; index: string }> };
    assert.equal(r2.files[0].status, 'fresh');
    assert.equal(r2.files[0].index, r1.files[0].index);
    const info = await runCli(['index', 'info', '--json', media], { env, ...user });
    assert.equal((JSON.parse(info.stdout) as { index: { path: string } }).index.path, r1.files[0].index);
    // Another file of the same name in another folder gets its own cache entry.
    const dir2 = await scratchDir('ro2');
    const media2 = await copyInto(await ensureMedia('mp3'), dir2, 'house-music.m4a');
    await fsp.chmod(dir2, 0o555);
    const third = await runCli(['index', 'build', '--json', media2], { env, ...user });
    const r3 = JSON.parse(third.stdout) as { files: Array<{ status: string; index: string }> };
    assert.equal(r3.files[0].status, 'built', third.stdout + third.stderr);
    assert.notEqual(r3.files[0].index, r1.files[0].index);
  });
});
