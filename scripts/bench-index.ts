/**
 * `npm run bench:index` — index build speed against ffmsindex and ffprobe on the same files in the same run, index
 * size per packet, and open/lookup time on a 2-hour A/V index (~500k packets). Prints a table and a JSON summary.
 * Timings are wall-clock medians of warm-cache runs (each command is run once before timing).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { aac600, hd1080, hd1080Mkv, twoHours } from './bench-media';
import { openIndex } from '../src/index-store/open-index';
import { readIndexFile } from '../src/index-store/index-file';
import { MediaIndex } from '../src/index-store/media-index';
import { buildIndexBytes } from '../src/index-store/index-builder';
import { openDemuxer } from '../src/ffmpeg/beamcoder-adapter';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
import { CLI, runBench, withScratch } from './bench-server';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function timeCommand(cmd: string, args: string[], stdout: 'ignore' | 'pipe' = 'ignore'): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', stdout, 'pipe'], maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString() ?? ''}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function timeAsync(f: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function medianOf(n: number, f: () => Promise<number> | number): Promise<number> {
  await f(); // warm-up (page cache, JIT)
  const xs: number[] = [];
  for (let i = 0; i < n; i++) xs.push(await f());
  return median(xs);
}

interface FileFigures {
  file: string; sizeMB: number; packets: number;
  cliMs: number; inProcessMs: number; ffmsindexMs: number; ffprobeMs: number; perPacketReadMs: number | null;
  vsFfmsindex: number; vsFfprobe: number; bytesPerPacket: number;
}

async function benchBuild(file: string, scratch: string, perPacket: boolean): Promise<FileFigures> {
  const size = (await fsp.stat(file)).size;
  const cacheDir = path.join(scratch, 'cache');
  const env = { ...process.env, CUEMUX_CACHE_DIR: cacheDir, CUEMUX_LOG_LEVEL: 'error' };
  const ffindex = path.join(scratch, `${path.basename(file)}.ffindex`);
  const cliMs = await medianOf(RUNS, () => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [CLI, 'index', 'build', '--force', file], { env, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`cuemux index build ${file} failed (${String(r.status)})`);
    return Number(process.hrtime.bigint() - t) / 1e6;
  });
  const inProcessMs = await medianOf(RUNS, () => timeAsync(() => buildIndexBytes(file)));
  const ffmsindexMs = await medianOf(RUNS, () => timeCommand('ffmsindex', ['-f', '-t', '-1', file, ffindex]));
  const ffprobeMs = await medianOf(RUNS, () => timeCommand('ffprobe', ['-v', 'error', '-show_packets', '-of', 'compact', file], 'pipe'));
  let perPacketReadMs: number | null = null;
  if (perPacket) {
    // The naive path: one native read (one thread-pool hop and one promise) per packet, as beamcoder's read().
    perPacketReadMs = await timeAsync(async () => {
      const d = await openDemuxer(file);
      while ((await d.readPacket()) !== null) { /* count nothing: the cost is the call */ }
      await d.close();
    });
  }
  const idx = await openIndex(file, { cacheDir });
  return {
    file: path.basename(file), sizeMB: size / 1e6, packets: idx.packetCount,
    cliMs, inProcessMs, ffmsindexMs, ffprobeMs, perPacketReadMs,
    vsFfmsindex: ffmsindexMs / cliMs, vsFfprobe: ffprobeMs / cliMs,
    bytesPerPacket: idx.byteLength / idx.packetCount,
  };
}

async function main(scratch: string): Promise<void> {
  process.stderr.write('bench:index: preparing media (cached after the first run)...\n');
  const hd = await hd1080();
  const aac = await aac600();
  const mkv = await hd1080Mkv();
  const twoHoursFile = await twoHours();

  const files: FileFigures[] = [];
  for (const [f, perPacket] of [[hd, true], [aac, true], [mkv, false]] as const) {
    process.stderr.write(`bench:index: building ${path.basename(f)}...\n`);
    files.push(await benchBuild(f, scratch, perPacket));
  }

  // The pre-show case: one `cuemux index build` over all the files (one process, files one after another) against
  // one ffmsindex process per file.
  const cacheDirAll = path.join(scratch, 'cache');
  const batchCliMs = await medianOf(RUNS, () => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [CLI, 'index', 'build', '--force', '--jobs', '1', hd, aac, mkv],
      { env: { ...process.env, CUEMUX_CACHE_DIR: cacheDirAll, CUEMUX_LOG_LEVEL: 'error' }, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`cuemux index build (3 files) failed (${String(r.status)})`);
    return Number(process.hrtime.bigint() - t) / 1e6;
  });
  const batch = {
    cuemuxOneProcessMs: batchCliMs,
    ffmsindexSumMs: files.reduce((a, f) => a + f.ffmsindexMs, 0),
    ffprobeSumMs: files.reduce((a, f) => a + f.ffprobeMs, 0),
    cuemuxInProcessSumMs: files.reduce((a, f) => a + f.inProcessMs, 0),
  };

  // Open and lookups on the 2-hour A/V index.
  process.stderr.write('bench:index: 2-hour index open and lookups...\n');
  const cacheDir = path.join(scratch, 'cache');
  const built = await openIndex(twoHoursFile, { cacheDir, force: true });
  const openMs = await medianOf(21, () => {
    const t = process.hrtime.bigint();
    const parsed = readIndexFile(built.indexPath);
    void new MediaIndex(parsed, twoHoursFile, built.indexPath, 'loaded');
    return Number(process.hrtime.bigint() - t) / 1e6;
  });
  const openCheckedMs = await medianOf(11, () => timeAsync(() => openIndex(twoHoursFile, { cacheDir, build: false })));
  const idx = await openIndex(twoHoursFile, { cacheDir, build: false });
  const video = idx.streams.find((s) => s.codecType === 'video');
  const audio = idx.streams.find((s) => s.codecType === 'audio');
  if (!video || !audio) throw new Error('2-hour file lacks a stream');
  const lookup = (s: number, n: number): number => {
    const span = 7200;
    const times = Array.from({ length: 4096 }, (_, i) => idx.toTicks(s, ((i * 7919) % 4096) / 4096 * span));
    let sink = 0;
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += idx.keyframeAtOrBefore(s, times[i & 4095])?.entry ?? 0;
    const ns = Number(process.hrtime.bigint() - t) / n;
    if (sink < 0) throw new Error('unreachable');
    return ns;
  };
  lookup(video.index, 100_000);
  const videoLookupNs = lookup(video.index, 1_000_000);
  lookup(audio.index, 10_000);
  const audioLookupNs = lookup(audio.index, 100_000);
  const frameLookupNs = (() => {
    const n = 1_000_000;
    const t = process.hrtime.bigint();
    let sink = 0;
    for (let i = 0; i < n; i++) sink += idx.ptsToFrame(video.index, (i * 7919) % 92160000);
    if (sink < 0) throw new Error('unreachable');
    return Number(process.hrtime.bigint() - t) / n;
  })();
  const ffmsTwoHour = path.join(scratch, 'two-hours.ffindex');
  const ffmsTwoHourBuildMs = timeCommand('ffmsindex', ['-f', '-t', '-1', twoHoursFile, ffmsTwoHour]);
  const ffmsTwoHourBytes = (await fsp.stat(ffmsTwoHour)).size;

  const out = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '?', node: process.version,
      ffmsindex: execFileSync('dpkg-query', ['-W', '-f=${Version}', 'ffmsindex']).toString() },
    build: files,
    batch,
    twoHour: {
      file: path.basename(twoHoursFile), packets: idx.packetCount, indexBytes: idx.byteLength, bytesPerPacket: idx.byteLength / idx.packetCount,
      openMs, openWithFreshnessCheckMs: openCheckedMs, videoKeyframeLookupNs: videoLookupNs, audioKeyframeLookupNs: audioLookupNs,
      ptsToFrameNs: frameLookupNs, ffmsindexBuildMs: ffmsTwoHourBuildMs, ffmsindexIndexBytes: ffmsTwoHourBytes,
    },
  };
  const f1 = (x: number): string => x.toFixed(1);
  const f2 = (x: number): string => x.toFixed(2);
  const lines = [
    '',
    `Index build, warm cache, median of ${RUNS} (ratio > 1: cuemux faster)`,
    'x ffmsindex / x ffprobe: peer time / cuemux CLI time (one process per file, ~200 ms of it Node + loading FFmpeg\'s libraries)',
    'file                                   MB  packets  cuemux CLI ms  in-process ms  ffmsindex ms  ffprobe ms  x ffmsindex  x ffprobe  B/packet  per-packet read() ms',
    ...files.map((f) => `${f.file.replace(/\.[0-9a-f]{10}\./, '.').padEnd(36)} ${f1(f.sizeMB).padStart(5)} ${String(f.packets).padStart(8)} ${f1(f.cliMs).padStart(14)} ${f1(f.inProcessMs).padStart(14)} ` +
      `${f1(f.ffmsindexMs).padStart(13)} ${f1(f.ffprobeMs).padStart(11)} ${f2(f.vsFfmsindex).padStart(12)} ${f2(f.vsFfprobe).padStart(10)} ${f1(f.bytesPerPacket).padStart(9)} ` +
      `${f.perPacketReadMs === null ? '-' : f1(f.perPacketReadMs)}`),
    '',
    `All three files: one \`cuemux index build\` process ${f1(batch.cuemuxOneProcessMs)} ms vs ffmsindex ${f1(batch.ffmsindexSumMs)} ms ` +
      `(x${f2(batch.ffmsindexSumMs / batch.cuemuxOneProcessMs)}) and ffprobe ${f1(batch.ffprobeSumMs)} ms (x${f2(batch.ffprobeSumMs / batch.cuemuxOneProcessMs)}); ` +
      `in-process builds ${f1(batch.cuemuxInProcessSumMs)} ms (x${f2(batch.ffmsindexSumMs / batch.cuemuxInProcessSumMs)} ffmsindex)`,
    '',
    `2-hour A/V index (${idx.packetCount} packets, ${idx.byteLength} bytes = ${f1(out.twoHour.bytesPerPacket)} B/packet; ffmsindex: ${ffmsTwoHourBytes} bytes)`,
    `  open (read + CRC-32 + tables):           ${f2(openMs)} ms   target < 10 ms`,
    `  open with freshness check (fingerprint): ${f2(openCheckedMs)} ms`,
    `  video keyframe at or before t:           ${f1(videoLookupNs)} ns   target < 2000 ns`,
    `  audio packet at or before t (sparse):    ${f1(audioLookupNs)} ns`,
    `  pts -> frame number:                     ${f1(frameLookupNs)} ns`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(out)}\n`);
}

runBench('bench:index', () => withScratch('cuemux-bench-', main));
