/**
 * `npm run bench:index` — index build speed, CLI against CLI: `cuemux index build` as a process (start to end, its
 * index written) against peers run as processes on the same files in the same run: ffmsindex on every track (issue
 * 13's peer: it decodes every audio packet), ffmsindex on the video track alone, and `ffprobe -show_packets` (a
 * demux of every packet, no decode). Also the in-process build (no start-up, no write) against the same peers, one
 * `cuemux index build` process over all the files against the peers' per-file processes, index size per packet, and
 * open/lookup time on a 2-hour A/V index (~500k packets). Prints a table and a JSON summary.
 *
 * Fairness: every command runs once untimed before the timed rounds (the same warm page cache for all: every file
 * is read whole by every peer); each round runs every command once, in an order that rotates from round to round,
 * so a burst of load on this shared machine falls on every peer alike; figures are the best and the median of
 * BENCH_RUNS rounds (default 5). The machine's steal time over the timed rounds is printed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { aac600, hd1080, hd1080Mkv, twoHours } from './bench-media';
import { largeMp4, longMkv } from './bench/index-media';
import { openIndex } from '../src/index-store/open-index';
import { readIndexFile } from '../src/index-store/index-file';
import { MediaIndex } from '../src/index-store/media-index';
import { buildIndexBytes } from '../src/index-store/index-builder';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { CLI, runBench, withScratch } from './bench/harness';
import { watchSteal } from './bench/machine';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Wall time of a process from spawn to exit, in ms. stdout goes to /dev/null (ffprobe's packet list), or with `pipe`
 * to this process (cuemux's few result lines, which name what failed).
 */
function timeProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, stdout: 'ignore' | 'pipe' = 'ignore'): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', stdout, 'pipe'], maxBuffer: 1 << 24 });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${String(r.status ?? r.signal)}): ${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`);
  }
  return ms;
}

async function timeAsync(f: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** The commands compared on one file: the CLI, its peers, and the in-process build. */
type Peer = 'cli' | 'ffmsAll' | 'ffmsVideo' | 'ffprobe' | 'inProcess';
const PEERS: Peer[] = ['cli', 'ffmsAll', 'ffmsVideo', 'ffprobe', 'inProcess'];

/** What each command does, one line each (printed with the table). */
const PEER_LINES: Record<Peer, string> = {
  cli: '`cuemux index build --force F` (a process): FFmpeg demux of every packet, no decode; exact index of every stream written beside F (fsync + rename)',
  ffmsAll: '`ffmsindex -f -t -1 F OUT` (issue 13\'s peer): FFMS2 indexes every track, decoding every audio packet; writes OUT',
  ffmsVideo: '`ffmsindex -f -t 0 F OUT`: FFMS2 indexes the video track alone (no audio decoded, nor indexed: FFMS2 has no mask that indexes audio without decoding it); writes OUT',
  ffprobe: '`ffprobe -v error -show_packets -of compact F >/dev/null`: FFmpeg demux of every packet, no decode; one text line per packet',
  inProcess: 'buildIndexBytes(F) inside this process: no start-up, no FFmpeg loading, no write (the build alone)',
};

interface Timing {
  best: number;
  median: number;
  runs: number[];
}

function timing(runs: number[]): Timing {
  return { best: Math.min(...runs), median: median(runs), runs };
}

interface FileFigures {
  file: string;
  sizeMB: number;
  packets: number;
  bytesPerPacket: number;
  ms: Record<Peer, Timing>;
}

interface Bench {
  files: string[];
  scratch: string;
  env: NodeJS.ProcessEnv;
}

/** Run `peer` once on `file`; returns its wall time in ms. */
async function runPeer(b: Bench, peer: Peer, file: string): Promise<number> {
  const ffindex = path.join(b.scratch, `${path.basename(file)}.ffindex`);
  switch (peer) {
    case 'cli': return timeProcess(process.execPath, [CLI, 'index', 'build', '--force', file], b.env, 'pipe');
    case 'ffmsAll': return timeProcess('ffmsindex', ['-f', '-t', '-1', file, ffindex]);
    case 'ffmsVideo': return timeProcess('ffmsindex', ['-f', '-t', '0', file, ffindex]);
    case 'ffprobe': return timeProcess('ffprobe', ['-v', 'error', '-show_packets', '-of', 'compact', file]);
    case 'inProcess': return timeAsync(() => buildIndexBytes(file));
  }
}

/**
 * Every round: each file with each command (the order of commands rotating by round and file), then one
 * `cuemux index build` process over all the files. Round 0 is the untimed warm-up.
 */
async function measure(b: Bench): Promise<{ perFile: Map<string, Record<Peer, number[]>>; batchCli: number[] }> {
  const perFile = new Map<string, Record<Peer, number[]>>(b.files.map((f) => [f, { cli: [], ffmsAll: [], ffmsVideo: [], ffprobe: [], inProcess: [] }]));
  const batchCli: number[] = [];
  for (let round = 0; round <= RUNS; round++) {
    process.stderr.write(`bench:index: ${round === 0 ? 'warm-up round (untimed)' : `round ${round} of ${RUNS}`}\n`);
    for (const [k, file] of b.files.entries()) {
      const shift = (round + k) % PEERS.length;
      for (const peer of [...PEERS.slice(shift), ...PEERS.slice(0, shift)]) {
        const ms = await runPeer(b, peer, file);
        if (round > 0) perFile.get(file)?.[peer].push(ms);
      }
    }
    const ms = timeProcess(process.execPath, [CLI, 'index', 'build', '--force', '--jobs', '1', ...b.files], b.env, 'pipe');
    if (round > 0) batchCli.push(ms);
  }
  return { perFile, batchCli };
}

/** Node's own start-up here (`node -e 0`), as is and without NODE_EXTRA_CA_CERTS (read at every start by Node 20). */
function nodeStartup(): { asIs: number; withoutExtraCa: number | null } {
  const env = { ...process.env };
  const hasExtra = env.NODE_EXTRA_CA_CERTS !== undefined;
  delete env.NODE_EXTRA_CA_CERTS;
  const asIs: number[] = [];
  const without: number[] = [];
  for (let i = 0; i < 6; i++) {
    asIs.push(timeProcess(process.execPath, ['-e', '0']));
    if (hasExtra) without.push(timeProcess(process.execPath, ['-e', '0'], env));
  }
  return { asIs: median(asIs.slice(1)), withoutExtraCa: hasExtra ? median(without.slice(1)) : null };
}

async function main(scratch: string): Promise<void> {
  const started = Date.now();
  process.stderr.write('bench:index: preparing media (cached after the first run)...\n');
  // Hard links in the scratch folder: the files' bytes, as private names (other benchmarks and tests share the media
  // cache and may regenerate a file under its name meanwhile), with the indexes written beside them there.
  const files: string[] = [];
  for (const f of [await largeMp4(), await longMkv(), await hd1080(), await aac600(), await hd1080Mkv()]) {
    const link = path.join(scratch, path.basename(f).replace(/\.[0-9a-f]{10}\./, '.'));
    await fsp.link(f, link);
    files.push(link);
  }
  const twoHoursFile = path.join(scratch, path.basename(await twoHours()));
  await fsp.link(await twoHours(), twoHoursFile);
  const env = { ...process.env, CUEMUX_CACHE_DIR: path.join(scratch, 'cache'), CUEMUX_LOG_LEVEL: 'error' };
  const b: Bench = { files, scratch, env };

  const steal = watchSteal();
  const load0 = os.loadavg()[0];
  const { perFile, batchCli } = await measure(b);
  const stealPct = steal();
  const load1 = os.loadavg()[0];

  const figures: FileFigures[] = [];
  for (const file of files) {
    const runs = perFile.get(file);
    if (runs === undefined) throw new Error('unreachable');
    const idx = await openIndex(file, { cacheDir: path.join(scratch, 'cache'), build: false });
    figures.push({
      file: path.basename(file), sizeMB: (await fsp.stat(file)).size / 1e6, packets: idx.packetCount,
      bytesPerPacket: idx.byteLength / idx.packetCount,
      ms: { cli: timing(runs.cli), ffmsAll: timing(runs.ffmsAll), ffmsVideo: timing(runs.ffmsVideo), ffprobe: timing(runs.ffprobe), inProcess: timing(runs.inProcess) },
    });
  }
  // The batch: one cuemux process over every file against one peer process per file, summed round by round.
  const roundSum = (peer: Peer): number[] => batchCli.map((_, r) => files.reduce((a, f) => a + (perFile.get(f)?.[peer][r] ?? 0), 0));
  const batch: Record<Peer, Timing> = {
    cli: timing(batchCli), ffmsAll: timing(roundSum('ffmsAll')), ffmsVideo: timing(roundSum('ffmsVideo')),
    ffprobe: timing(roundSum('ffprobe')), inProcess: timing(roundSum('inProcess')),
  };

  // The naive path, once on the 60 s MP4: one native read (one thread-pool hop and one promise) per packet.
  const perPacketReadMs = await timeAsync(async () => {
    const d = await openDemuxer(files[0]);
    while ((await d.readPacket()) !== null) { /* count nothing: the cost is the call */ }
    await d.close();
  });
  const startup = nodeStartup();

  // Open and lookups on the 2-hour A/V index.
  process.stderr.write('bench:index: 2-hour index open and lookups...\n');
  const cacheDir = path.join(scratch, 'cache');
  const built = await openIndex(twoHoursFile, { cacheDir, force: true });
  const openRuns: number[] = [];
  for (let i = 0; i < 22; i++) {
    const t = process.hrtime.bigint();
    const parsed = readIndexFile(built.indexPath);
    void new MediaIndex(parsed, twoHoursFile, built.indexPath, 'loaded');
    if (i > 0) openRuns.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const openMs = median(openRuns);
  const checkedRuns: number[] = [];
  for (let i = 0; i < 12; i++) {
    const ms = await timeAsync(() => openIndex(twoHoursFile, { cacheDir, build: false }));
    if (i > 0) checkedRuns.push(ms);
  }
  const openCheckedMs = median(checkedRuns);
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
  const ffmsTwoHourBuildMs = timeProcess('ffmsindex', ['-f', '-t', '-1', twoHoursFile, ffmsTwoHour]);
  const ffmsTwoHourBytes = (await fsp.stat(ffmsTwoHour)).size;

  const ratio = (peer: Peer, t: Record<Peer, Timing>, base: Peer = 'cli'): { best: number; median: number } =>
    ({ best: t[peer].best / t[base].best, median: t[peer].median / t[base].median });
  const out = {
    machine: {
      cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '?', node: process.version,
      ffmsindex: execFileSync('dpkg-query', ['-W', '-f=${Version}', 'ffmsindex']).toString(),
      stealPct, loadAverage: [load0, load1], nodeStartupMs: startup,
    },
    runs: RUNS,
    build: figures.map((f) => ({
      ...f,
      cliVs: { ffmsAll: ratio('ffmsAll', f.ms), ffmsVideo: ratio('ffmsVideo', f.ms), ffprobe: ratio('ffprobe', f.ms) },
      inProcessVs: { ffmsAll: ratio('ffmsAll', f.ms, 'inProcess'), ffmsVideo: ratio('ffmsVideo', f.ms, 'inProcess'), ffprobe: ratio('ffprobe', f.ms, 'inProcess') },
    })),
    batch: {
      ms: batch,
      cliVs: { ffmsAll: ratio('ffmsAll', batch), ffmsVideo: ratio('ffmsVideo', batch), ffprobe: ratio('ffprobe', batch) },
      inProcessVs: { ffmsAll: ratio('ffmsAll', batch, 'inProcess'), ffmsVideo: ratio('ffmsVideo', batch, 'inProcess'), ffprobe: ratio('ffprobe', batch, 'inProcess') },
    },
    perPacketReadMs,
    twoHour: {
      file: path.basename(twoHoursFile), packets: idx.packetCount, indexBytes: idx.byteLength, bytesPerPacket: idx.byteLength / idx.packetCount,
      openMs, openWithFreshnessCheckMs: openCheckedMs, videoKeyframeLookupNs: videoLookupNs, audioKeyframeLookupNs: audioLookupNs,
      ptsToFrameNs: frameLookupNs, ffmsindexBuildMs: ffmsTwoHourBuildMs, ffmsindexIndexBytes: ffmsTwoHourBytes,
    },
    seconds: (Date.now() - started) / 1000,
  };
  const f0 = (x: number): string => x.toFixed(0);
  const f1 = (x: number): string => x.toFixed(1);
  const f2 = (x: number): string => x.toFixed(2);
  const t2 = (t: Timing): string => `${f0(t.best)}/${f0(t.median)}`.padStart(10);
  const r2 = (r: { best: number; median: number }): string => `${f2(r.best)}/${f2(r.median)}`.padStart(10);
  const pass = (r: { best: number; median: number }): string => (r.best >= 1 && r.median >= 1 ? 'PASS' : 'MISS');
  const row = (name: string, mb: string, packets: string, t: Record<Peer, Timing>): string =>
    `${name.padEnd(40)} ${mb.padStart(6)} ${packets.padStart(8)} ${t2(t.cli)} ${t2(t.ffmsAll)} ${t2(t.ffmsVideo)} ${t2(t.ffprobe)} ${t2(t.inProcess)} ` +
    `${r2(ratio('ffmsAll', t))} ${pass(ratio('ffmsAll', t))} ${r2(ratio('ffmsVideo', t))} ${r2(ratio('ffprobe', t))} ${r2(ratio('ffmsAll', t, 'inProcess'))}`;
  const lines = [
    '',
    `Index build, CLI vs CLI (process start to process end), warm page cache (one untimed round first), ${RUNS} rounds, commands interleaved;`,
    `ms as best/median; ratio = peer time / cuemux time (> 1: cuemux faster), best/median; steal ${f1(stealPct)} %, load average ${f1(load0)} -> ${f1(load1)}`,
    ...PEERS.map((p) => `  ${p.padEnd(10)} ${PEER_LINES[p]}`),
    `  node start-up alone here (node -e 0): ${f0(startup.asIs)} ms` +
      (startup.withoutExtraCa === null ? '' : ` (${f0(startup.withoutExtraCa)} ms without NODE_EXTRA_CA_CERTS, which this machine sets: Node 20 parses that file at every start)`),
    `${'file'.padEnd(40)} ${'MB'.padStart(6)} ${'packets'.padStart(8)} ${'cuemux'.padStart(10)} ${'ffms -1'.padStart(10)} ${'ffms vid'.padStart(10)} ` +
      `${'ffprobe'.padStart(10)} ${'in-proc'.padStart(10)} ${'x ffms -1'.padStart(10)} ≥1? ${'x ffms vid'.padStart(10)} ${'x ffprobe'.padStart(10)} ${'in-proc x-1'.padStart(10)}`,
    ...figures.map((f) => row(f.file, f1(f.sizeMB), String(f.packets), f.ms)),
    row(`batch: all ${files.length} (1 cuemux process, --jobs 1)`, f1(figures.reduce((a, f) => a + f.sizeMB, 0)), String(figures.reduce((a, f) => a + f.packets, 0)), batch),
    `bytes per packet: ${figures.map((f) => `${f.file} ${f1(f.bytesPerPacket)}`).join(', ')}`,
    `per-packet read() (one native call per packet, the path the builder avoids) on ${figures[0].file}: ${f1(perPacketReadMs)} ms`,
    '',
    `2-hour A/V index (${idx.packetCount} packets, ${idx.byteLength} bytes = ${f1(out.twoHour.bytesPerPacket)} B/packet; ffmsindex: ${ffmsTwoHourBytes} bytes)`,
    `  open (read + CRC-32 + tables):           ${f2(openMs)} ms   target < 10 ms`,
    `  open with freshness check (fingerprint): ${f2(openCheckedMs)} ms`,
    `  video keyframe at or before t:           ${f1(videoLookupNs)} ns   target < 2000 ns`,
    `  audio packet at or before t (sparse):    ${f1(audioLookupNs)} ns`,
    `  pts -> frame number:                     ${f1(frameLookupNs)} ns`,
    `bench:index took ${f0(out.seconds)} s`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(out)}\n`);
}

runBench('bench:index', () => withScratch('cuemux-bench-', main));
