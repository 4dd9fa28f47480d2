/**
 * Hostile input and faults (issue 12): a malformed state file, hostile `.idx` files (a FIFO, a huge sparse file,
 * crafted contents with a valid CRC), a full disk while an index is published, ReadPackets without a start, and a
 * socket folder owned by another user. Real processes, real files, media made by ffmpeg; no timing assertions.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { promises as fsp, closeSync, openSync, writeSync, ftruncateSync, fstatSync, watch } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { ensureMedia } from './support/media';
import { OscPeer } from './support/osc';
import { spawnServer, startServer } from './support/server';
import { copyInto, scratchDir } from './support/tmp';
import { CUEMUX_BIN, runCli } from './support/cli';
import { ffprobePackets, framemd5Copy } from './support/ffmpeg-reference';
import { MediaClient } from '../src/clients/media-client';
import { unixNs } from '../src/common/time-source';
import { isCuemuxError } from '../src/common/errors';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { META_STRIDE, Meta } from '../src/ffmpeg/types';
import { fingerprint } from '../src/index-store/fingerprint';
import { IndexEncoder } from '../src/index-store/idx-encoder';
import { readIndexFile } from '../src/index-store/index-file';
import { checkIndex, openIndex } from '../src/index-store/open-index';
import type { Packet } from '../src/generated/cuemux/v1/media_server';
import { childrenKilledAfterEach, eachAtOnce } from './support/wait';

const run = promisify(execFile);

/** Another user for ownership tests (see support/users.ts): nobody. */
const OTHER_UID = 65534;

/** Resolve with `p`, or reject after `ms` saying what did not happen (a hang on the old code fails, not stalls). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

/** Recompute an index's CRC-32 trailer after editing it (a crafted file that passes the checksum). */
function reCrc(buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32(buf.subarray(0, buf.length - 4)), buf.length - 4);
  return buf;
}

describe('hostile input', function () {
  this.timeout(120_000);
  const children = childrenKilledAfterEach();

  /** A media root with the small MP4 (H.264 + AAC) as clip.mp4, and a private run folder. */
  async function mediaRoot(): Promise<{ root: string; run: string; media: string }> {
    const root = await scratchDir('hostile-root');
    const media = await copyInto(await ensureMedia('mp4-h264-aac'), root, 'clip.mp4');
    const runDir = await scratchDir('hostile-run');
    await fsp.chmod(runDir, 0o700);
    return { root, run: runDir, media };
  }

  describe('state file', function () {
    /** A state a crashed server could have left: clock playing at 100 s, generation 7, saved `ageMs` ago. */
    function savedState(ageMs: number): string {
      const now = unixNs();
      return JSON.stringify({
        version: 1, savedUnixNs: String(now - BigInt(Math.round(ageMs * 1e6))), clean: false,
        clock: { generation: 7, state: 'playing', source: 'internal', rate: 1, positionSeconds: 100, anchorUnixNs: String(now), timecodeRate: '25' },
        cueListPath: '', playhead: null, cues: [],
      });
    }

    it('any malformed content: a warning naming the file and what is wrong, and a fresh show (never a failed start)', async function () {
      const { root, run: runDir } = await mediaRoot();
      const good = JSON.parse(savedState(0)) as Record<string, unknown>;
      const cases: Array<[string, (file: string) => Promise<void>, RegExp]> = [
        ['{"version":1}', (f) => fsp.writeFile(f, '{"version":1}'), /savedUnixNs is not a decimal integer string/],
        ['null', (f) => fsp.writeFile(f, 'null'), /the file is not an object/],
        ['an array', (f) => fsp.writeFile(f, '[1,2,3]'), /the file is not an object/],
        ['a wrong version', (f) => fsp.writeFile(f, JSON.stringify({ ...good, version: 2 })), /version \(expected 1\) is 2/],
        ['a string generation', (f) => fsp.writeFile(f, JSON.stringify({ ...good, clock: { ...(good.clock as object), generation: '7' } })), /clock\.generation is not an integer/],
        ['a NaN-like position', (f) => fsp.writeFile(f, JSON.stringify({ ...good, clock: { ...(good.clock as object), positionSeconds: 'x' } })), /clock\.positionSeconds is not a finite number/],
        ['a bad timecode rate', (f) => fsp.writeFile(f, JSON.stringify({ ...good, clock: { ...(good.clock as object), timecodeRate: 'fast' } })), /clock\.timecodeRate is not a timecode rate/],
        ['cues not an array', (f) => fsp.writeFile(f, JSON.stringify({ ...good, cues: { a: 1 } })), /cues is not an array/],
        ['a cue without numbering', (f) => fsp.writeFile(f, JSON.stringify({ ...good, cues: [{ def: { id: 'a' }, state: 'playing', run: null, pausedMedia: null }] })), /cues\[0\]\.numbering is not an object/],
        ['a huge cue array', (f) => fsp.writeFile(f, JSON.stringify({ ...good, cues: new Array(20_000).fill(0) })), /cues has 20000 entries, more than 10000/],
        ['a huge passes array', (f) => fsp.writeFile(f, JSON.stringify({ ...good, cues: [{ def: { id: 'a' }, state: 'armed', run: null, numbering: { runs: 0, nextSegment: 0, passes: new Array(1_000_001).fill(1) }, pausedMedia: null }] })),
          /passes has 1000001 entries/],
        ['garbage bytes', (f) => fsp.writeFile(f, Buffer.from([0x7b, 0xff, 0x00, 0x13, 0x9c, 0x22, 0xfe, 0x01])), /not JSON/],
        ['a file over 16 MiB', (f) => fsp.writeFile(f, Buffer.alloc((16 << 20) + 1, 0x20)), /more than a show state can be/],
        ['a FIFO', async (f) => { await run('mkfifo', [f]); }, /not a regular file \(a FIFO\)/],
        ['a folder', (f) => fsp.mkdir(f), /not a regular file \(a folder\)/],
      ];
      // Three servers at a time (each its own state file and socket): the 15 starts one after the other took 11 s.
      await eachAtOnce(cases, 3, async ([name, make, reason], i) => {
        const file = path.join(runDir, `${name.replace(/\W+/g, '-')}.show.json`);
        await make(file);
        const socket = path.join(runDir, `s${i}.sock`);
        const s = await within(spawnServer(['--socket', socket, '--media-root', root, '--state-file', file]), 30_000, `serve with ${name} as its state file`);
        children.push(s.child);
        // A fresh show: the clock is stopped at generation 1 (the saved one was playing at generation 7).
        const c = new MediaClient(socket);
        const peer = await OscPeer.open();
        try {
          const clock = await peer.request(s.oscPort as number, '/cuemux/status');
          assert.equal(clock.status, 'ok', `${name}: ${JSON.stringify(clock)}`);
          assert.equal((await c.getStatus({ timeout: 10_000 })).media.length, 0);
        } finally {
          peer.close();
          c.close();
        }
        const err = s.stderr();
        assert.ok(err.includes(file), `${name}: the warning names the file: ${err}`);
        assert.match(err, reason, `${name}: the warning says what is wrong`);
        assert.match(err, /starting a fresh show/, name);
        s.child.kill('SIGTERM');
        const [code] = await once(s.child, 'exit') as [number | null];
        assert.equal(code, 0, `${name}: ${s.stderr()}`);
        await fsp.rm(file, { recursive: true, force: true });
      });
    });

    it('a state saved "in the future" (negative age) does not resume an old show; one saved a second ago does', async function () {
      const runDir = await scratchDir('state-age');
      const future = path.join(runDir, 'future.show.json');
      await fsp.writeFile(future, savedState(-3_600_000));
      const a = await startServer({ stateFile: future });
      try {
        const s = a.server.show.clock.snapshot;
        assert.equal(s.state, 'stopped', 'the show saved an hour in the future is not resumed');
        assert.notEqual(s.generation, 7);
      } finally {
        await a.stop();
      }
      // Control: the same state saved a second ago is resumed, so the test above is about the age alone.
      const recent = path.join(runDir, 'recent.show.json');
      await fsp.writeFile(recent, savedState(1000));
      const b = await startServer({ stateFile: recent });
      try {
        const s = b.server.show.clock.snapshot;
        assert.equal(s.state, 'playing');
        assert.equal(s.generation, 7);
      } finally {
        await b.stop();
      }
    });
  });

  describe('index files', function () {
    it('a FIFO as the .idx beside the media: the open completes (index rebuilt) while OSC and gRPC stay responsive', async function () {
      const { root, run: runDir, media } = await mediaRoot();
      await run('mkfifo', [`${media}.idx`]);
      const socket = path.join(runDir, 's.sock');
      const s = await spawnServer(['--socket', socket, '--media-root', root, '--cache-dir', path.join(runDir, 'cache')]);
      children.push(s.child);
      const c = new MediaClient(socket);
      const peer = await OscPeer.open();
      try {
        const opening = c.openMedia('clip.mp4', { timeout: 30_000 });
        // While it opens (and after): show control and gRPC answer.
        const thump = await within(peer.request(s.oscPort as number, '/cuemux/thump', [], 10_000), 15_000, 'OSC thump during the open');
        assert.equal(thump.status, 'ok');
        await within(c.getStatus({ timeout: 10_000 }), 15_000, 'GetStatus during the open');
        const info = await opening;
        assert.equal(info.streams.length, 2);
        assert.equal((await within(peer.request(s.oscPort as number, '/cuemux/thump', [], 10_000), 15_000, 'OSC thump after')).status, 'ok');
        // The FIFO was replaced by a real index.
        assert.ok((await fsp.lstat(`${media}.idx`)).isFile());
        assert.match(s.stderr(), new RegExp(`${media.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.idx: index is corrupt \\(a FIFO, not a regular file\\)`));
      } finally {
        peer.close();
        c.close();
      }
    });

    it('a 1.5 GB sparse .idx is refused without being read, and rebuilt', async function () {
      const dir = await scratchDir('idx-huge');
      const media = await copyInto(await ensureMedia('mp4-h264-aac'), dir, 'clip.mp4');
      const fh = await fsp.open(`${media}.idx`, 'w');
      await fh.truncate(1_500_000_000);
      await fh.close();
      // `index check` in a process of its own, its peak memory measured by the kernel (GNU time's %M, in KiB).
      const r = spawnSync('/usr/bin/time', ['-f', 'maxrss-kib=%M', process.execPath, CUEMUX_BIN, 'index', 'check', '--json', media],
        { encoding: 'utf8', env: { ...process.env, CUEMUX_CACHE_DIR: path.join(dir, 'cache') } });
      assert.equal(r.status, 5, r.stderr);
      const file = (JSON.parse(r.stdout) as { files: Array<{ state: string; reason: string }> }).files[0];
      assert.equal(file.state, 'corrupt');
      assert.match(file.reason, /clip\.mp4\.idx: index is corrupt \(1500000000 bytes, more than the \d+ an index of this media can need; not read\)/);
      const rss = Number(/maxrss-kib=(\d+)/.exec(r.stderr)?.[1]);
      assert.ok(rss > 0 && rss < 400 * 1024, `peak RSS ${rss} KiB: the file was not read`);
      const idx = await openIndex(media, { cacheDir: path.join(dir, 'cache') });
      assert.equal(idx.origin, 'built');
      assert.ok((await fsp.stat(`${media}.idx`)).size < 100_000);
    });

    it('a crafted .idx with a valid CRC (absurd counts, a packet outside the media) is corrupt and rebuilt', async function () {
      const dir = await scratchDir('idx-crafted');
      const cacheDir = path.join(dir, 'cache');
      const media = await copyInto(await ensureMedia('mp4-h264-aac'), dir, 'clip.mp4');
      const good = await openIndex(media, { cacheDir });
      const entries = (): string => JSON.stringify([...good.entries()]);
      const reference = entries();
      const original = await fsp.readFile(`${media}.idx`);
      const parsed = readIndexFile(`${media}.idx`);
      const mediaSize = (await fsp.stat(media)).size;

      const crafted: Array<[string, Buffer, RegExp]> = [];
      // 1. Header: entries per block and packet count blown up, the block count still consistent with them.
      {
        const b = Buffer.from(original);
        const blocks = b.readUInt32LE(40);
        b.writeUInt32LE(0xffffffff, 28);
        b.writeBigUInt64LE(BigInt(blocks - 1) * 0xffffffffn + 1n, 32);
        crafted.push(['entries per block', reCrc(b), /entries per block/]);
      }
      // 2. Header: a packet count the entry bytes cannot hold (blocks of 2^20 entries).
      {
        const b = Buffer.from(original);
        const blocks = b.readUInt32LE(40);
        b.writeUInt32LE(4096, 28);
        b.writeBigUInt64LE(BigInt(blocks) * 4096n, 32);
        crafted.push(['packet count', reCrc(b), /cannot fit/]);
      }
      // 3. Entries: one packet placed past the end of the media file, encoded by the real encoder (valid in form).
      {
        const d = await openDemuxer(media);
        const cols = await d.readColumns({ maxPackets: 1_000_000 });
        await d.close();
        cols.meta[5 * META_STRIDE + Meta.POS] = mediaSize + 4096;
        const enc = new IndexEncoder(d.info.streams);
        enc.add(cols);
        const b = enc.finish(await fingerprint(media), media, d.info.formatName, parsed.lavfVersion, null, parsed.params);
        crafted.push(['a packet outside the media', b, /entry 5: bytes \[\d+, \+\d+\) are not inside the \d+-byte media file/]);
      }
      for (const [name, bytes, reason] of crafted) {
        await fsp.writeFile(`${media}.idx`, bytes);
        assert.throws(() => readIndexFile(`${media}.idx`), (e: unknown) => isCuemuxError(e, 'INDEX_CORRUPT') && reason.test(e.message) && e.message.includes(`${media}.idx`), name);
        const check = await checkIndex(media, { cacheDir });
        assert.equal(check.state, 'corrupt', `${name}: ${String(check.reason)}`);
        const idx = await openIndex(media, { cacheDir });
        assert.equal(idx.origin, 'built', `${name}: rebuilt`);
        assert.equal(idx.packetCount, good.packetCount, name);
        assert.equal(JSON.stringify([...idx.entries()]), reference, name);
      }
    });
  });

  describe('a full disk (ENOSPC) while publishing an index', function () {
    const mounts: string[] = [];
    after(async function () {
      for (const m of mounts.splice(0)) await run('umount', [m]).catch(() => undefined);
    });

    /** Fill the filesystem of `dir` with `dir/filler`, then give back `pagesFree` pages of 4 KiB. */
    function fill(dir: string, pagesFree: number): void {
      const fd = openSync(path.join(dir, 'filler'), 'a');
      try {
        const chunk = Buffer.alloc(4096, 1);
        for (;;) {
          try {
            writeSync(fd, chunk);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw e;
          }
        }
        const size = fstatSync(fd).size;
        ftruncateSync(fd, Math.max(0, Math.floor(size / 4096) * 4096 - pagesFree * 4096));
      } finally {
        closeSync(fd);
      }
    }

    it('serves the index built in memory, tries the cache folder, and says so', async function () {
      if (process.getuid?.() !== 0) this.skip(); // mounting a tmpfs needs root
      const mnt = await scratchDir('enospc');
      try {
        await run('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
      } catch (e) {
        // A container without CAP_SYS_ADMIN: no way to make a small full disk here.
        this.skip();
        throw e;
      }
      mounts.push(mnt);
      const media = await copyInto(await ensureMedia('mp4-h264-aac'), mnt, 'clip.mp4');
      const fullCache = path.join(mnt, 'cache');
      await fsp.mkdir(fullCache);
      const diskCache = path.join(await scratchDir('enospc-cache'), 'index');
      // One free page: room for the build lock, none for the index.
      fill(mnt, 1);

      // 1. The media's folder is full: the index goes to the cache folder, with a warning.
      const a = await runCli(['index', 'info', '--json', media], { env: { CUEMUX_CACHE_DIR: diskCache } });
      assert.equal(a.code, 0, a.stderr);
      const infoA = JSON.parse(a.stdout) as { packets: number; index: { path: string; origin: string } };
      assert.equal(infoA.index.origin, 'built');
      assert.ok(infoA.index.path.startsWith(diskCache), infoA.index.path);
      assert.match(a.stderr, /clip\.mp4: index written to the cache folder instead \(.*clip\.mp4\.idx: .*(no space|ENOSPC)/i);
      await assert.rejects(fsp.access(`${media}.idx`), 'nothing half-written beside the media');
      const reference = await openIndex(media, { cacheDir: diskCache });
      assert.equal(reference.origin, 'loaded', 'the next open finds it in the cache folder');

      // 2. The cache folder is full too: the index is served from memory, and the warning says so.
      const b = await runCli(['index', 'info', '--json', media], { env: { CUEMUX_CACHE_DIR: fullCache } });
      assert.equal(b.code, 0, b.stderr);
      const infoB = JSON.parse(b.stdout) as { packets: number; index: { origin: string } };
      assert.equal(infoB.index.origin, 'memory');
      assert.equal(infoB.packets, reference.packetCount);
      assert.match(b.stderr, /clip\.mp4: the index could not be written \(.*(no space|ENOSPC).*\): serving the index built in memory/i);
      assert.deepEqual((await fsp.readdir(fullCache)).filter((n) => !n.endsWith('.lock')), [], 'no temp file left');
      // `index build` is asked to leave an index on disk: there it fails, saying why.
      const build = await runCli(['index', 'build', '--json', media], { env: { CUEMUX_CACHE_DIR: fullCache } });
      assert.equal(build.code, 1, build.stderr);
      assert.match(build.stdout, /the index was built but could not be written/);

      // 3. Not even room for a lock: the server still opens and serves the media.
      fill(mnt, 0);
      const srv = await startServer({ mediaRoots: [mnt], cacheDir: fullCache });
      try {
        const c = srv.client();
        const info = await c.openMedia('clip.mp4');
        let n = 0;
        for await (const batch of c.readPackets({ mediaId: info.mediaId })) n += batch.packets.length;
        assert.equal(n, reference.packetCount);
      } finally {
        await srv.stop();
      }
    });
  });

  describe('ReadPackets without start_seconds', function () {
    it('reads from the first packet: exactly ffprobe\'s packets, AAC priming (negative pts) included', async function () {
      const file = await ensureMedia('mp4-h264-aac');
      const probe = await ffprobePackets(file);
      const md5s = await framemd5Copy(file);
      const audio = 1;
      assert.ok(probe.some((p) => p.stream === audio && p.pts !== null && p.pts < 0), 'the AAC track starts with a priming packet of negative pts');
      const srv = await startServer();
      try {
        await copyInto(file, srv.root, 'clip.mp4');
        const c = srv.client();
        const info = await c.openMedia('clip.mp4');
        const got: Packet[] = [];
        for await (const b of c.readPackets({ mediaId: info.mediaId })) got.push(...b.packets);
        for (const stream of [0, 1]) {
          const want = probe.filter((p) => p.stream === stream);
          const have = got.filter((p) => p.streamIndex === stream);
          assert.equal(have.length, want.length, `stream ${stream}: every packet`);
          assert.deepEqual(have.map((p) => (p.pts === undefined ? null : Number(p.pts))), want.map((p) => p.pts), `stream ${stream}: pts`);
          assert.deepEqual(have.map((p) => p.data.length), want.map((p) => p.size), `stream ${stream}: sizes`);
          assert.deepEqual(have.map((p) => createHash('md5').update(p.data).digest('hex')), md5s.filter((m) => m.stream === stream).map((m) => m.md5), `stream ${stream}: bytes`);
        }
        // An explicit start of 0 starts at the keyframe at or before 0, so it leaves the priming packet out.
        let fromZero = 0;
        for await (const b of c.readPackets({ mediaId: info.mediaId, streams: [audio], startSeconds: 0 })) fromZero += b.packets.length;
        assert.equal(fromZero, probe.filter((p) => p.stream === audio).length - 1);
      } finally {
        await srv.stop();
      }
    });
  });

  describe('cue lists loaded over OSC', function () {
    it('load only from beneath the media roots (or the --cue-list / state file folders): any other path is refused alike, existing or not', async function () {
      const srv = await startServer({ stateFile: null });
      const peer = await OscPeer.open();
      try {
        await copyInto(await ensureMedia('mp4-h264-aac'), srv.root, 'clip.mp4');
        const list = JSON.stringify({ version: 1, cues: [{ id: '1', media: 'clip.mp4' }] });
        const outside = await scratchDir('cues-outside');
        await fsp.writeFile(path.join(outside, 'show.json'), list);
        await fsp.writeFile(path.join(srv.root, 'show.json'), list);
        await fsp.symlink(path.join(outside, 'show.json'), path.join(srv.root, 'link.json'));
        const load = (p: string): ReturnType<OscPeer['request']> => peer.request(srv.oscPort, '/cuemux/cuelist/load', [{ type: 's', value: p }]);
        // Outside: a real cue list, a file that is not one, a path that does not exist, a link leading out, a climb.
        for (const p of [path.join(outside, 'show.json'), '/etc/passwd', path.join(outside, 'nothing-here.json'), 'link.json', '../x/show.json']) {
          const r = await load(p);
          assert.equal(r.status, 'error', `${p}: ${JSON.stringify(r)}`);
          assert.equal(r.code, 'PERMISSION_DENIED', `${p}: ${JSON.stringify(r)}`);
          assert.match(r.error ?? '', /loads cue lists only from beneath the media roots/);
          assert.doesNotMatch(r.error ?? '', /root:|not valid JSON|no such file|ENOENT/i, 'nothing about the file itself');
        }
        const status = await peer.request(srv.oscPort, '/cuemux/status');
        assert.equal((status.data as { cueList: { path: string } }).cueList.path, '', 'no list was loaded');
        // Inside the media root, by absolute and relative path.
        const ok = await load('show.json');
        assert.equal(ok.status, 'ok', JSON.stringify(ok));
        assert.equal((await load(path.join(srv.root, 'show.json'))).status, 'ok');
      } finally {
        peer.close();
        await srv.stop();
      }
    });
  });

  describe('socket folder', function () {
    /** Run `cuemux serve` until it exits (at most 30 s: a server that starts is killed, its code null). */
    async function serveOnce(args: string[]): Promise<{ code: number | null; stderr: string }> {
      const child = spawn(process.execPath, [CUEMUX_BIN, 'serve', '--osc-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const [code] = await once(child, 'exit') as [number | null];
      clearTimeout(timer);
      return { code, stderr };
    }

    for (const [label, mode] of [['mode 755', 0o755], ['sticky and world-writable (like /tmp)', 0o1777], ['group-writable', 0o775]] as const) {
      it(`a socket folder owned by another user (${label}) is refused before anything is created in it`, async function () {
        if (process.getuid?.() !== 0) this.skip(); // chown to another user needs root
        const { root } = await mediaRoot();
        const parent = await scratchDir('sock-other');
        const dir = path.join(parent, 'run');
        await fsp.mkdir(dir);
        await fsp.chown(dir, OTHER_UID, OTHER_UID);
        await fsp.chmod(dir, mode);
        // inotify sees every name created in the folder, also one removed again before the server exits.
        const created: string[] = [];
        const watcher = watch(dir, (event, name) => created.push(`${event} ${String(name)}`));
        let r: { code: number | null; stderr: string };
        try {
          r = await serveOnce(['--socket', path.join(dir, 'cuemux.sock'), '--media-root', root]);
          await sleep(200); // let the watcher deliver what the kernel queued
        } finally {
          watcher.close();
        }
        assert.equal(r.code, 9, `exit 9 (permission denied): ${r.stderr}`);
        assert.ok(r.stderr.includes(`${dir}: the socket folder is owned by uid ${OTHER_UID} (nobody)`), r.stderr);
        assert.deepEqual(created, [], 'nothing created in it, not even for a moment (no .lock, no state file, no socket)');
        assert.deepEqual(await fsp.readdir(dir), []);
      });
    }
  });
});
