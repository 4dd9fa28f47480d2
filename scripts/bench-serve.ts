/**
 * `npm run bench:serve` — the media server against players demuxing the file themselves, in one run: packets/s and
 * MB/s for 1, 2 and 8 concurrent client processes over UDS and TCP, each row set against as many player processes
 * demuxing the same file with FFmpeg's batched path (beamcoder readColumns, N demuxers for N clients) run just before
 * it; time to the first packet at random positions for an open file (from the TypeScript client and from gRPC's C
 * core through python3-grpcio) and for files not yet open (distinct files, index on disk, their pages dropped from
 * the page cache: cold), against a player process opening the same files cold; bytes the server read from the file
 * for an audio+video pair (/proc/PID/io rchar) against the file size; server RSS against its budget (64 MB + 8 per
 * client), on a fresh server per row and on one long-running server.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { hd1080, hd1080Mkv, small120 } from './bench-media';
import { CLI, REPO, runBench, startBenchServer, withScratch } from './bench/harness';
import { watchMachine } from './bench/machine';
import { openPeerLine, runOpenPeer } from './bench/open-peer';
import { dropPageCache, residentBytes } from './bench/page-cache';
import { runNodeJson, runTogether } from './bench/procs';
import { pct } from './bench/stats';

const CLIENT = path.join(__dirname, 'bench-serve-client.js');

/** What a read or demux client process printed. */
interface ReadResult {
  packets: number;
  bytes: number;
  ms: number;
}

/** The peer of each row, in one line. */
const DEMUX_PEER = 'N player processes for N clients, each demuxing the file itself with FFmpeg\'s batched path (beamcoder readColumns, ' +
  '4096 packets with payloads a call), started together, timed as the clients, run just before the row (same page cache: warm)';

function procIo(pid: number): number {
  const m = /rchar: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** Resident memory of `pid` in MB: all of it, and the anonymous part (heap, buffers; not mapped files such as the node binary and FFmpeg's libraries). */
function rssMB(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon') };
}

/** Sample `pid`'s resident memory every 20 ms; `peak()` samples once more and returns the largest seen (MB). */
function watchPeakRss(pid: number): { peak(): { rss: number; anon: number }; stop(): void } {
  let top = { rss: 0, anon: 0 };
  const sample = (): void => {
    const m = rssMB(pid);
    top = { rss: Math.max(top.rss, m.rss), anon: Math.max(top.anon, m.anon) };
  };
  sample();
  const timer = setInterval(sample, 20);
  return {
    peak: () => {
      sample();
      return top;
    },
    stop: () => clearInterval(timer),
  };
}

/** `n` player processes demuxing `file` together (the peer of a row of `n` clients): MB/s in all. */
async function demuxPeer(file: string, n: number): Promise<number> {
  const { wallSec, results } = await runTogether<ReadResult>(Array.from({ length: n }, () => [CLIENT, 'demux', file]));
  return results.reduce((a, r) => a + r.bytes, 0) / 1e6 / wallSec;
}

/** `n` client processes reading `file` from the server at `target` together. */
function readers(target: string, file: string, n: number, streams?: string): Promise<{ wallSec: number; results: ReadResult[] }> {
  return runTogether<ReadResult>(Array.from({ length: n }, () => [CLIENT, 'read', target, file, ...(streams === undefined ? [] : [streams])]));
}

async function main(): Promise<void> {
  process.stderr.write('bench:serve: preparing media (cached after the first run)...\n');
  const hd = await hd1080();
  const mkv = await hd1080Mkv();
  const small = await small120();
  await withScratch('cuemux-bench-serve-', (scratch) => measure(scratch, hd, mkv, small));
}

/** Positions of the first-packet reads on files not yet open: spread over the first 90 % of a `duration` s file. */
const coldAt = (i: number, duration: number): number => Math.round((((i * 37) % 100) / 100) * duration * 0.9 * 1000) / 1000;

/** The benchmark proper, in `scratch` (a temporary folder the caller removes). */
async function measure(scratch: string, hd: string, mkv: string, small: string): Promise<void> {
  const root = path.join(scratch, 'media');
  await fsp.mkdir(root);
  await fsp.copyFile(hd, path.join(root, 'hd.mp4'));
  await fsp.link(path.join(root, 'hd.mp4'), path.join(root, 'pair.mp4'));
  await fsp.copyFile(mkv, path.join(root, 'hd.mkv'));
  // Files not yet open: 40 distinct copies (not hard links, which share one inode and so one set of cached pages).
  const cold = Array.from({ length: 40 }, (_, i) => `cold-${String(i).padStart(2, '0')}.mp4`);
  for (const f of cold) await fsp.copyFile(small, path.join(root, f));
  // Before the show: every index built and on disk.
  const b = spawnSync(process.execPath, [CLI, 'index', 'build', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (b.status !== 0) throw new Error('index build failed');
  const size = (await fsp.stat(hd)).size;
  const smallSeconds = Number(spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', small], { encoding: 'utf8' }).stdout.trim());
  const coldFiles = cold.map((f) => path.join(root, f));
  const machine = watchMachine();
  process.stdout.write(`${machine.startLine}\n`);

  const socket = path.join(scratch, 'cuemux.sock');
  // OSC on any free port: the default 53100 may belong to another server on this machine (bench:serve uses no OSC).
  const serverArgs = ['--socket', socket, '--listen', '127.0.0.1:0', '--media-root', root, '--osc-port', '0'];
  const runs: Array<{ transport: string; file: string; clients: number; packetsPerSec: number; mbPerSec: number; peerMBs: number; peakRssMB: number; peakAnonMB: number }> = [];
  let idleRss = { rss: 0, anon: 0 };
  // Each row has a server of its own: its memory is what that row needs, not the high-water mark of the rows before
  // (a process keeps the heap and buffers it grew to). Before the timed reads, one client reads the file once (JIT,
  // connection, page cache), as on a server that has been running.
  for (const [file, label] of [['hd.mp4', 'MP4'], ['hd.mkv', 'MKV']] as const) {
    for (const transport of ['UDS', 'TCP'] as const) {
      for (const n of file === 'hd.mkv' ? [1, 8] : [1, 2, 8]) {
        process.stderr.write(`bench:serve: ${n} client(s) over ${transport} on ${label}, and ${n} demuxing player(s) before...\n`);
        // The peer is measured again just before each row: on a shared machine its speed alone varies 2-4x
        // from minute to minute, so each row is compared with a peer run under the same conditions.
        const peerMBs = await demuxPeer(path.join(root, file), n);
        const server = await startBenchServer(serverArgs);
        const pid = server.child.pid as number;
        if (idleRss.rss === 0) idleRss = rssMB(pid);
        const target = transport === 'UDS' ? socket : server.tcp as string;
        const rss = watchPeakRss(pid);
        try {
          await readers(target, file, 1);
          const { wallSec: wall, results } = await readers(target, file, n);
          const peakRss = rss.peak();
          const packets = results.reduce((a, r) => a + r.packets, 0);
          const bytes = results.reduce((a, r) => a + r.bytes, 0);
          runs.push({ transport, file: label, clients: n, packetsPerSec: packets / wall, mbPerSec: bytes / 1e6 / wall, peerMBs, peakRssMB: peakRss.rss, peakAnonMB: peakRss.anon });
        } finally {
          rss.stop();
          await server.stop();
        }
      }
    }
  }
  const server = await startBenchServer(serverArgs);
  const pid = server.child.pid as number;
  // The memory a server keeps after load: this one serves 8 clients first, then everything below; its RSS is
  // sampled throughout and checked against the budget at the end (a process keeps the heap and buffers it grew to).
  const longRss = watchPeakRss(pid);
  try {
    process.stderr.write('bench:serve: a long-running server: 8 clients, then the rest...\n');
    await readers(socket, 'hd.mkv', 8);
    process.stderr.write('bench:serve: audio+video pair bytes read...\n');
    const before = procIo(pid);
    await runTogether<ReadResult>([[CLIENT, 'read', socket, 'pair.mp4', '0'], [CLIENT, 'read', socket, 'pair.mp4', '1']]);
    const pairBytes = procIo(pid) - before;

    process.stderr.write('bench:serve: first-packet latency...\n');
    const latency = await runNodeJson<{ ms: number[]; unaryMs: number[] }>([CLIENT, 'latency', socket, 'hd.mp4', '300', String(64 << 10)]);
    const open = latency.ms;
    const unary = latency.unaryMs;
    // The same from gRPC's C core (a C++ player's stack), through Debian's python3-grpcio, built from the .proto.
    const descriptors = path.join(scratch, 'cuemux.pb');
    const protoc = spawnSync(path.join(REPO, 'node_modules', '.bin', 'protoc'),
      ['--include_imports', `--descriptor_set_out=${descriptors}`, `-I${path.join(REPO, 'proto')}`, 'cuemux/v1/media_server.proto'], { encoding: 'utf8' });
    if (protoc.status !== 0) throw new Error(`protoc failed: ${protoc.stderr}`);
    const py = spawnSync('/usr/bin/python3', [path.join(REPO, 'scripts', 'bench-serve-client.py'), descriptors, `unix://${socket}`, 'hd.mp4', '300', String(64 << 10)],
      { encoding: 'utf8' });
    if (py.status !== 0) throw new Error(`the python3-grpcio client failed: ${py.stderr}`);
    const core = JSON.parse(py.stdout) as { ms: number[]; unaryMs: number[] };
    process.stderr.write('bench:serve: first packet on files not yet open (cold page cache), and the cold peer...\n');
    const coldPages = [...coldFiles, ...coldFiles.map((f) => `${f}.idx`)];
    dropPageCache(coldPages);
    const coldResident = residentBytes(coldPages);
    const coldMs = (await runNodeJson<{ ms: number[] }>([CLIENT, 'cold', socket, String(64 << 10), 'hd.mp4', ...cold.map((f, i) => `${f}@${coldAt(i, smallSeconds)}`)])).ms;
    const peerCold = await runOpenPeer(coldFiles.map((file, i) => ({ file, at: coldAt(i, smallSeconds), prep: 'cold' as const })));
    const longPeak = longRss.peak().rss;
    longRss.stop();
    const longEnd = rssMB(pid).rss;
    const serving = (file: string): string => {
      const r = spawnSync(process.execPath, [CLI, 'index', 'info', '--json', path.join(root, file)], { encoding: 'utf8' });
      return r.status === 0 ? (JSON.parse(r.stdout) as { serving: string }).serving : `unknown (index info exited ${String(r.status)})`;
    };

    const f1 = (x: number): string => x.toFixed(1);
    const f2 = (x: number): string => x.toFixed(2);
    const ratio = (r: (typeof runs)[number]): number => r.mbPerSec / r.peerMBs;
    const budget = (clients: number): number => 64 + 8 * clients;
    const targets: Array<{ ok: boolean; text: string }> = [];
    const target = (ok: boolean, text: string): void => { targets.push({ ok, text }); };
    for (const r of runs.filter((x) => x.clients === 1 || x.clients === 8)) {
      target(ratio(r) >= 1, `${r.clients} client${r.clients > 1 ? 's' : ''}, ${r.file} over ${r.transport}: ${f2(ratio(r))}x ${r.clients} demuxing player${r.clients > 1 ? 's' : ''} run just before (target >= 1.0x)`);
    }
    target(pct(open, 99) <= 5, `first packet, open file, TypeScript client (grpc-js): p99 ${f2(pct(open, 99))} ms (target <= 5 ms)`);
    target(pct(core.ms, 99) <= 5, `first packet, open file, C-core client (python3-grpcio): p99 ${f2(pct(core.ms, 99))} ms (target <= 5 ms)`);
    target(pct(coldMs, 99) <= 40, `first packet, file not yet open (cold page cache, index on disk): p99 ${f2(pct(coldMs, 99))} ms (target <= 40 ms)`);
    target(pct(coldMs, 50) <= pct(peerCold, 50), `first packet, file not yet open: p50 ${f2(pct(coldMs, 50))} ms vs a player opening it cold ${f2(pct(peerCold, 50))} ms (target: not slower)`);
    target(pairBytes / size <= 1.05, `audio + video clients on one file: server read ${f2(pairBytes / size)}x the file size (target <= 1.05x)`);
    for (const r of runs) {
      target(r.peakRssMB <= budget(r.clients), `server RSS, ${r.clients} client${r.clients > 1 ? 's' : ''} on ${r.file} over ${r.transport}: ${f1(r.peakRssMB)} MB (target <= ${budget(r.clients)} MB)`);
    }
    target(longPeak <= budget(8), `long-running server, peak RSS (8 clients at most at once): ${f1(longPeak)} MB (target <= ${budget(8)} MB)`);
    target(longEnd <= budget(0), `long-running server, RSS at the end with no client: ${f1(longEnd)} MB (target <= ${budget(0)} MB)`);
    const lines = [
      '',
      `File: 1080p25 H.264 + AAC, 120 s, ${f1(size / 1e6)} MB (MP4; MKV remux of the same streams); served by: MP4 ${serving('hd.mp4')}, MKV ${serving('hd.mkv')} (cuemux index info)`,
      `Peer of each throughput row: ${DEMUX_PEER}`,
      `Peer of "not yet open": ${openPeerLine('cold')}`,
      '',
      'Server: cuemux serve as started by npm start (glibc MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=65536; NODE_OPTIONS=--max-semi-space-size=1), a new one for each row,',
      'warmed by one client reading the file once; clients: one process each, timed from when all are connected with the media open. Server RSS before any client: ' +
        `${f1(idleRss.rss)} MB (${f1(idleRss.anon)} MB anonymous, the rest mapped files, mostly the node binary).`,
      'x peer: MB/s in all over the MB/s in all of as many demuxing player processes (batched path) run just before the row.',
      'clients  transport  file  packets/s   MB/s   peer MB/s  x peer   peak server RSS MB (anonymous)  budget 64 + 8/client',
      ...runs.map((r) => `${String(r.clients).padStart(7)}  ${r.transport.padEnd(9)}  ${r.file.padEnd(4)}  ${f1(r.packetsPerSec).padStart(9)}  ${f1(r.mbPerSec).padStart(7)}  ` +
        `${f1(r.peerMBs).padStart(9)}  ${f2(ratio(r)).padStart(7)}   ${f1(r.peakRssMB).padStart(8)} (${f1(r.peakAnonMB).padStart(5)})            ${budget(r.clients)}`),
      '',
      `A long-running server (8 clients on MKV, then the pair, the latency and cold-open clients below): peak RSS ${f1(longPeak)} MB (budget ${budget(8)}), ${f1(longEnd)} MB at the end (budget ${budget(0)})`,
      `Audio + video clients on one file: server read ${f1(pairBytes / 1e6)} MB for a ${f1(size / 1e6)} MB file = ${f2(pairBytes / size)}x`,
      `First packet, open file, TypeScript client (${open.length} random positions, 64 KiB batches): p50 ${f2(pct(open, 50))} ms, p90 ${f2(pct(open, 90))} ms, p99 ${f2(pct(open, 99))} ms`,
      `  for scale, on the same connection: a small unary call (GetStatus), p50 ${f2(pct(unary, 50))} ms, p99 ${f2(pct(unary, 99))} ms`,
      `First packet, open file, from gRPC's C core (python3-grpcio, as a C++ player): p50 ${f2(pct(core.ms, 50))} ms, p90 ${f2(pct(core.ms, 90))} ms, p99 ${f2(pct(core.ms, 99))} ms;` +
        ` GetStatus p50 ${f2(pct(core.unaryMs, 50))} ms, p99 ${f2(pct(core.unaryMs, 99))} ms`,
      `First packet, file not yet open, index on disk, cold page cache (${coldMs.length} distinct ${f1((await fsp.stat(small)).size / 1e6)} MB files; ` +
        `${coldResident === null ? 'fincore missing' : `${f1(coldResident / 1e6)} MB of them resident after the drop`}): p50 ${f2(pct(coldMs, 50))} ms, p90 ${f2(pct(coldMs, 90))} ms, p99 ${f2(pct(coldMs, 99))} ms`,
      `  peer, a player opening the same files cold at the same positions: p50 ${f2(pct(peerCold, 50))} ms, p90 ${f2(pct(peerCold, 90))} ms, p99 ${f2(pct(peerCold, 99))} ms`,
      '',
      machine.endLine(),
      '',
      'Targets (all measured in this run):',
      ...targets.map((t) => `  ${t.ok ? 'PASS' : 'MISS'}  ${t.text}`),
      `${targets.filter((t) => t.ok).length} of ${targets.length} targets met`,
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n${JSON.stringify({ size, runs, pairBytes, idleRss, longRunning: { peakRssMB: longPeak, endRssMB: longEnd }, openMs: { p50: pct(open, 50), p90: pct(open, 90), p99: pct(open, 99) }, unaryMs: { p50: pct(unary, 50), p99: pct(unary, 99) }, coreMs: { p50: pct(core.ms, 50), p90: pct(core.ms, 90), p99: pct(core.ms, 99) }, coreUnaryMs: { p50: pct(core.unaryMs, 50), p99: pct(core.unaryMs, 99) }, coldMs: { p50: pct(coldMs, 50), p90: pct(coldMs, 90), p99: pct(coldMs, 99) }, peerColdMs: { p50: pct(peerCold, 50), p90: pct(peerCold, 90), p99: pct(peerCold, 99) }, targets })}\n`);
  } finally {
    longRss.stop();
    await server.stop();
  }
}

runBench('bench:serve', main);
