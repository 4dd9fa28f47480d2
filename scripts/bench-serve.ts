/**
 * `npm run bench:serve` — the media server against an in-process beamcoder demux of the same file, in one run:
 * packets/s and MB/s for 1, 2 and 8 concurrent client processes over UDS and TCP; time to the first packet at random
 * positions for an open file (from the TypeScript client and from gRPC's C core through python3-grpcio) and for files
 * not yet open (index on disk); bytes the server read from the file for an
 * audio+video pair (/proc/PID/io rchar) against the file size; server RSS with 8 clients on a large file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDemuxer } from '../src/ffmpeg/beamcoder-adapter';
import { hd1080, hd1080Mkv, small120 } from './bench-media';
import { CLI, pct, runBench, startBenchServer, watchSteal, withScratch } from './bench-server';

const CLIENT = path.join(__dirname, 'bench-serve-client.js');
/** The repository (scripts run from dist/scripts). */
const REPO = path.resolve(__dirname, '..', '..');

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

function runClient(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, unknown>) : reject(new Error(`client ${args.join(' ')} exited ${String(code)}`))));
  });
}

/**
 * Run `read` clients (one process each, argument lists in `each`) together: start them, wait until every one is
 * connected with its media open, then start them all at once. The wall time runs from that start to the last one's
 * end, so it measures streaming, not Node's process start-up (the in-process peer excludes its own start-up too).
 */
async function runReaders(each: string[][]): Promise<{ wallSec: number; results: Array<Record<string, unknown>> }> {
  const children = each.map((args) => {
    const c = spawn(process.execPath, [CLIENT, 'read', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => { onReady = resolve; });
    const result = new Promise<Record<string, unknown>>((resolve, reject) => {
      c.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.startsWith('{"ready":true}\n')) {
          out = out.slice('{"ready":true}\n'.length);
          onReady();
        }
      });
      c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Record<string, unknown>) : reject(new Error(`client read ${args.join(' ')} exited ${String(code)}`))));
    });
    result.catch(() => undefined);
    return { c, ready, result };
  });
  await Promise.race([Promise.all(children.map((x) => x.ready)), Promise.all(children.map((x) => x.result))]);
  const t = process.hrtime.bigint();
  for (const x of children) x.c.stdin.end('go\n');
  const results = await Promise.all(children.map((x) => x.result));
  return { wallSec: Number(process.hrtime.bigint() - t) / 1e9, results };
}

async function inProcess(file: string): Promise<{ perPacket: { ms: number; packets: number; bytes: number }; batched: { ms: number; packets: number; bytes: number } }> {
  const perPacket = { ms: 0, packets: 0, bytes: 0 };
  let d = await openDemuxer(file);
  let t = process.hrtime.bigint();
  for (let p = await d.readPacket(); p !== null; p = await d.readPacket()) {
    perPacket.packets++;
    perPacket.bytes += p.data.length;
  }
  perPacket.ms = Number(process.hrtime.bigint() - t) / 1e6;
  await d.close();
  const batched = { ms: 0, packets: 0, bytes: 0 };
  d = await openDemuxer(file);
  t = process.hrtime.bigint();
  for (;;) {
    const c = await d.readColumns({ maxPackets: 4096, withData: true });
    batched.packets += c.count;
    batched.bytes += c.data?.length ?? 0;
    if (c.eof || c.count === 0) break;
  }
  batched.ms = Number(process.hrtime.bigint() - t) / 1e6;
  await d.close();
  return { perPacket, batched };
}

async function main(): Promise<void> {
  process.stderr.write('bench:serve: preparing media (cached after the first run)...\n');
  const hd = await hd1080();
  const mkv = await hd1080Mkv();
  const small = await small120();
  await withScratch('cuemux-bench-serve-', (scratch) => measure(scratch, hd, mkv, small));
}

/** The benchmark proper, in `scratch` (a temporary folder the caller removes). */
async function measure(scratch: string, hd: string, mkv: string, small: string): Promise<void> {
  const root = path.join(scratch, 'media');
  await fsp.mkdir(root);
  await fsp.copyFile(hd, path.join(root, 'hd.mp4'));
  await fsp.link(path.join(root, 'hd.mp4'), path.join(root, 'pair.mp4'));
  await fsp.copyFile(mkv, path.join(root, 'hd.mkv'));
  const cold = Array.from({ length: 40 }, (_, i) => `cold-${String(i).padStart(2, '0')}.mp4`);
  await fsp.copyFile(small, path.join(root, cold[0]));
  for (const f of cold.slice(1)) await fsp.link(path.join(root, cold[0]), path.join(root, f));
  // Before the show: every index built and on disk.
  const b = spawnSync(process.execPath, [CLI, 'index', 'build', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (b.status !== 0) throw new Error('index build failed');
  const size = (await fsp.stat(hd)).size;
  const steal = watchSteal();

  process.stderr.write('bench:serve: in-process demux...\n');
  await inProcess(hd); // warm the page cache
  const peer = await inProcess(hd);
  const peerMkv = await inProcess(mkv);

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
        process.stderr.write(`bench:serve: ${n} client(s) over ${transport} on ${label}...\n`);
        // The peer is measured again just before each row: on a shared machine its speed alone varies 2-4x
        // from minute to minute, so each row is compared with a peer run under the same conditions.
        const rowPeer = (await inProcess(file === 'hd.mkv' ? mkv : hd)).perPacket;
        const server = await startBenchServer(serverArgs);
        const pid = server.child.pid as number;
        if (idleRss.rss === 0) idleRss = rssMB(pid);
        const target = transport === 'UDS' ? socket : server.tcp as string;
        const rss = watchPeakRss(pid);
        try {
          await runReaders([[target, file]]);
          const { wallSec: wall, results } = await runReaders(Array.from({ length: n }, () => [target, file]));
          const peakRss = rss.peak();
          const packets = results.reduce((a, r) => a + (r.packets as number), 0);
          const bytes = results.reduce((a, r) => a + (r.bytes as number), 0);
          runs.push({ transport, file: label, clients: n, packetsPerSec: packets / wall, mbPerSec: bytes / 1e6 / wall,
            peerMBs: rowPeer.bytes / 1e6 / (rowPeer.ms / 1e3), peakRssMB: peakRss.rss, peakAnonMB: peakRss.anon });
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
  // sampled throughout and reported at the end (a process keeps the heap and buffers it grew to).
  const longRss = watchPeakRss(pid);
  try {
    process.stderr.write('bench:serve: a long-running server: 8 clients, then the rest...\n');
    await runReaders(Array.from({ length: 8 }, () => [socket, 'hd.mkv']));
    process.stderr.write('bench:serve: audio+video pair bytes read...\n');
    const before = procIo(pid);
    await runReaders([[socket, 'pair.mp4', '0'], [socket, 'pair.mp4', '1']]);
    const pairBytes = procIo(pid) - before;

    process.stderr.write('bench:serve: first-packet latency...\n');
    const latency = await runClient(['latency', socket, 'hd.mp4', '300', String(64 << 10)]);
    const open = latency.ms as number[];
    const unary = latency.unaryMs as number[];
    // The same from gRPC's C core (a C++ player's stack), through Debian's python3-grpcio, built from the .proto.
    const descriptors = path.join(scratch, 'cuemux.pb');
    const protoc = spawnSync(path.join(REPO, 'node_modules', '.bin', 'protoc'),
      ['--include_imports', `--descriptor_set_out=${descriptors}`, `-I${path.join(REPO, 'proto')}`, 'cuemux/v1/media_server.proto'], { encoding: 'utf8' });
    if (protoc.status !== 0) throw new Error(`protoc failed: ${protoc.stderr}`);
    const py = spawnSync('/usr/bin/python3', [path.join(REPO, 'scripts', 'bench-serve-client.py'), descriptors, `unix://${socket}`, 'hd.mp4', '300', String(64 << 10)],
      { encoding: 'utf8' });
    if (py.status !== 0) throw new Error(`the python3-grpcio client failed: ${py.stderr}`);
    const core = JSON.parse(py.stdout) as { ms: number[]; unaryMs: number[] };
    const coldMs = (await runClient(['cold', socket, String(64 << 10), 'hd.mp4', ...cold])).ms as number[];
    const longPeak = longRss.peak().rss;
    longRss.stop();
    const longEnd = rssMB(pid).rss;
    const serving = (file: string): string => {
      const r = spawnSync(process.execPath, [CLI, 'index', 'info', '--json', path.join(root, file)], { encoding: 'utf8' });
      return r.status === 0 ? (JSON.parse(r.stdout) as { serving: string }).serving : `unknown (index info exited ${String(r.status)})`;
    };

    const peerMBs = peer.perPacket.bytes / 1e6 / (peer.perPacket.ms / 1e3);
    const batchedMBs = peer.batched.bytes / 1e6 / (peer.batched.ms / 1e3);
    const mkvPeerMBs = peerMkv.perPacket.bytes / 1e6 / (peerMkv.perPacket.ms / 1e3);
    const f1 = (x: number): string => x.toFixed(1);
    const f2 = (x: number): string => x.toFixed(2);
    const ratio = (r: (typeof runs)[number]): number => r.mbPerSec / r.peerMBs;
    const budget = (clients: number): number => 64 + 8 * clients;
    const targets: Array<{ ok: boolean; text: string }> = [];
    const target = (ok: boolean, text: string): void => { targets.push({ ok, text }); };
    for (const r of runs.filter((x) => x.clients === 1 || x.clients === 8)) {
      const want = r.clients === 1 ? 1 : 4;
      target(ratio(r) >= want, `${r.clients} client${r.clients > 1 ? 's' : ''}, ${r.file} over ${r.transport}: ${f2(ratio(r))}x the in-process demux run just before (target >= ${want}.0x)`);
    }
    target(pct(open, 99) <= 5, `first packet, open file, TypeScript client (grpc-js): p99 ${f2(pct(open, 99))} ms (target <= 5 ms)`);
    target(pct(core.ms, 99) <= 5, `first packet, open file, C-core client (python3-grpcio): p99 ${f2(pct(core.ms, 99))} ms (target <= 5 ms)`);
    target(pct(coldMs, 99) <= 40, `first packet, file not yet open (index on disk): p99 ${f2(pct(coldMs, 99))} ms (target <= 40 ms)`);
    target(pairBytes / size <= 1.05, `audio + video clients on one file: server read ${f2(pairBytes / size)}x the file size (target <= 1.05x)`);
    for (const r of runs) {
      target(r.peakRssMB <= budget(r.clients), `server RSS, ${r.clients} client${r.clients > 1 ? 's' : ''} on ${r.file} over ${r.transport}: ${f1(r.peakRssMB)} MB (target <= ${budget(r.clients)} MB)`);
    }
    const lines = [
      '',
      `File: 1080p25 H.264 + AAC, 120 s, ${f1(size / 1e6)} MB, ${peer.perPacket.packets} packets (MP4; MKV remux of the same streams); ` +
        `served by: MP4 ${serving('hd.mp4')}, MKV ${serving('hd.mkv')} (cuemux index info)`,
      `In-process beamcoder demux, one read() per packet, before the server starts: MP4 ${f1(peerMBs)} MB/s, ${f1(peer.perPacket.packets / (peer.perPacket.ms / 1e3))} packets/s; ` +
        `MKV ${f1(mkvPeerMBs)} MB/s`,
      `In-process batched readBatch (cuemux's native path): ${f1(batchedMBs)} MB/s`,
      '',
      'Server: cuemux serve as started by npm start (glibc MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=65536; NODE_OPTIONS=--max-semi-space-size=1), a new one for each row,',
      'warmed by one client reading the file once; clients: one process each, timed from when all are connected with the media open. Server RSS before any client: ' +
        `${f1(idleRss.rss)} MB (${f1(idleRss.anon)} MB anonymous, the rest mapped files, mostly the node binary).`,
      'x demux: MB/s over the MB/s of an in-process demux (one read() per packet) of the same file run just before the row.',
      'clients  transport  file  packets/s   MB/s   demux MB/s  x demux   peak server RSS MB (anonymous)  budget 64 + 8/client',
      ...runs.map((r) => `${String(r.clients).padStart(7)}  ${r.transport.padEnd(9)}  ${r.file.padEnd(4)}  ${f1(r.packetsPerSec).padStart(9)}  ${f1(r.mbPerSec).padStart(7)}  ` +
        `${f1(r.peerMBs).padStart(9)}  ${f2(ratio(r)).padStart(8)}   ${f1(r.peakRssMB).padStart(8)} (${f1(r.peakAnonMB).padStart(5)})            ${budget(r.clients)}`),
      '',
      `A long-running server (8 clients on MKV, then the pair, the latency and cold-open clients below): peak RSS ${f1(longPeak)} MB, ${f1(longEnd)} MB at the end`,
      `Audio + video clients on one file: server read ${f1(pairBytes / 1e6)} MB for a ${f1(size / 1e6)} MB file = ${f2(pairBytes / size)}x`,
      `First packet, open file, TypeScript client (${open.length} random positions, 64 KiB batches): p50 ${f2(pct(open, 50))} ms, p90 ${f2(pct(open, 90))} ms, p99 ${f2(pct(open, 99))} ms`,
      `  for scale, on the same connection: a small unary call (GetStatus), p50 ${f2(pct(unary, 50))} ms, p99 ${f2(pct(unary, 99))} ms`,
      `First packet, open file, from gRPC's C core (python3-grpcio, as a C++ player): p50 ${f2(pct(core.ms, 50))} ms, p90 ${f2(pct(core.ms, 90))} ms, p99 ${f2(pct(core.ms, 99))} ms;` +
        ` GetStatus p50 ${f2(pct(core.unaryMs, 50))} ms, p99 ${f2(pct(core.unaryMs, 99))} ms`,
      `First packet, file not yet open, index on disk (${coldMs.length} files): p50 ${f2(pct(coldMs, 50))} ms, p90 ${f2(pct(coldMs, 90))} ms, p99 ${f2(pct(coldMs, 99))} ms`,
      '',
      `Machine: ${os.cpus().length} CPUs; steal time (CPU time the hypervisor gave to other guests) during this run: ${f1(steal())}%`,
      '',
      'Targets (all measured in this run):',
      ...targets.map((t) => `  ${t.ok ? 'PASS' : 'MISS'}  ${t.text}`),
      `${targets.filter((t) => t.ok).length} of ${targets.length} targets met`,
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n${JSON.stringify({ size, peer, peerMkv, runs, pairBytes, idleRss, longRunning: { peakRssMB: longPeak, endRssMB: longEnd }, openMs: { p50: pct(open, 50), p90: pct(open, 90), p99: pct(open, 99) }, unaryMs: { p50: pct(unary, 50), p99: pct(unary, 99) }, coreMs: { p50: pct(core.ms, 50), p90: pct(core.ms, 90), p99: pct(core.ms, 99) }, coreUnaryMs: { p50: pct(core.unaryMs, 50), p99: pct(core.unaryMs, 99) }, coldMs: { p50: pct(coldMs, 50), p90: pct(coldMs, 90), p99: pct(coldMs, 99) }, targets })}\n`);
  } finally {
    longRss.stop();
    await server.stop();
  }
}

runBench('bench:serve', main);
