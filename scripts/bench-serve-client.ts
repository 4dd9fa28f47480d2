/**
 * A benchmark client process for bench:serve (one per simulated player). Prints one JSON line.
 *   read <target> <path> [streams]        read every packet from the start; packets, bytes, ms. After connecting and
 *                                         opening the media it prints {"ready":true} and waits for a line on stdin, so
 *                                         the parent times the reads of all its clients, not their process start-up
 *   demux <file>                          the peer of 'read': a player demuxing the file itself with FFmpeg's batched
 *                                         path (beamcoder readColumns, 4096 packets with their payloads a call), ready
 *                                         and timed the same way
 *   latency <target> <path> <n> <batch>   n ReadPackets at random times on an open file: ms to the first batch
 *                                         (after 10 calls not counted, at other positions); then n GetStatus calls
 *   cold <target> <batch> <warm> <path@seconds...>  OpenMedia + ReadPackets at <seconds> on files not yet open: ms
 *                                         to the first batch (after 10 calls not counted on <warm>, another file)
 */
import { MediaClient } from '../src/clients/media-client';
import { openDemuxer } from '../src/ffmpeg/demuxer';
import { readyThenWait } from './bench/procs';
import { errorMessage } from '../src/common/errors';

/** Calls made before measuring, not counted (see 'latency'). */
const WARM_UP = 10;

function ms(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

async function firstBatch(c: MediaClient, mediaId: string, t: number, batch: number): Promise<void> {
  for await (const b of c.readPackets({ mediaId, startSeconds: t, maxBatchBytes: batch })) {
    if (b.packets.length > 0) return;
  }
}

/** The peer of 'read': demux `file` in this process with the batched path, timed from the parent's go. */
async function demux(file: string): Promise<void> {
  const d = await openDemuxer(file);
  await readyThenWait();
  const t = process.hrtime.bigint();
  let packets = 0;
  let bytes = 0;
  for (;;) {
    const cols = await d.readColumns({ maxPackets: 4096, withData: true });
    packets += cols.count;
    bytes += cols.data?.length ?? 0;
    if (cols.eof || cols.count === 0) break;
  }
  const elapsed = ms(t);
  await d.close();
  process.stdout.write(`${JSON.stringify({ packets, bytes, ms: elapsed })}\n`);
}

async function main(): Promise<void> {
  const [mode, target, ...rest] = process.argv.slice(2);
  if (mode === 'demux') {
    await demux(target);
    return;
  }
  const c = new MediaClient(target);
  // Warm the connection so the figures are per request, not per connect.
  await c.getStatus();
  if (mode === 'read') {
    const [file, streams] = rest;
    const info = await c.openMedia(file);
    await readyThenWait();
    const t = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    let packets = 0;
    let bytes = 0;
    const wanted = streams ? streams.split(',').map(Number) : [];
    for await (const b of c.readPackets({ mediaId: info.mediaId, startSeconds: -1e9, streams: wanted })) {
      packets += b.packets.length;
      for (const p of b.packets) bytes += p.data.length;
    }
    const cpu = process.cpuUsage(cpu0);
    process.stdout.write(`${JSON.stringify({ packets, bytes, ms: ms(t), cpuMs: (cpu.user + cpu.system) / 1e3 })}\n`);
  } else if (mode === 'latency') {
    const [file, n, batch] = rest;
    const info = await c.openMedia(file);
    const out: number[] = [];
    // A fresh process runs its first calls through code V8 has not compiled yet (measured: the first 3-5 of 300
    // took 8-14 ms against a 2 ms median, and alone set the p99). A player measured is one that has been running:
    // WARM_UP calls first, at positions half-way between those measured, not counted.
    for (let i = 0; i < WARM_UP; i++) await firstBatch(c, info.mediaId, ((i * 7919) % 1000 + 0.5) / 1000 * info.durationSeconds * 0.95, Number(batch));
    for (let i = 0; i < Number(n); i++) {
      const at = ((i * 7919) % 1000) / 1000 * info.durationSeconds * 0.95;
      const t = process.hrtime.bigint();
      await firstBatch(c, info.mediaId, at, Number(batch));
      out.push(ms(t));
    }
    // The floor under those figures: a unary call with an empty request, as many times, interleaved in time the same
    // way (one after another on this connection).
    const unaryMs: number[] = [];
    for (let i = 0; i < Number(n); i++) {
      const t = process.hrtime.bigint();
      await c.getStatus();
      unaryMs.push(ms(t));
    }
    process.stdout.write(`${JSON.stringify({ ms: out, unaryMs })}\n`);
  } else if (mode === 'cold') {
    const [batch, warmFile, ...files] = rest;
    // Warm this process's call path on a file that is already open (not one of those measured, see 'latency').
    const warm = await c.openMedia(warmFile);
    for (let i = 0; i < WARM_UP; i++) await firstBatch(c, warm.mediaId, (i + 0.5) / WARM_UP * warm.durationSeconds * 0.9, Number(batch));
    await c.closeMedia(warm.mediaId);
    const out: number[] = [];
    for (const entry of files) {
      const at = entry.lastIndexOf('@');
      const t = process.hrtime.bigint();
      const info = await c.openMedia(entry.slice(0, at));
      await firstBatch(c, info.mediaId, Number(entry.slice(at + 1)), Number(batch));
      out.push(ms(t));
    }
    process.stdout.write(`${JSON.stringify({ ms: out })}\n`);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  c.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`bench client: ${errorMessage(e)}\n`);
  process.exit(1);
});
