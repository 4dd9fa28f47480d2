/**
 * A child process for test/native-release.test.ts: muxes a file's packets, each carried in a Buffer made in JavaScript,
 * collecting garbage after every write so that each packet object dies before FFmpeg lets go of the packet's buffer,
 * then prints one line of JSON: `{ mode, packets, stats }` (stats: the addon's cuemuxReleaseStats() at the end).
 * A process of its own so that a crash fails the test instead of killing mocha; run with `node --expose-gc`.
 *
 * argv: <mode> <media file> <output folder>. Modes:
 *  - `interleaved`: beamcoder's muxer as it comes (`interleaved = true`: av_interleaved_write_frame). FFmpeg keeps
 *    each packet in its interleaving queue and drops that reference during a later write, on a thread-pool thread:
 *    with the packet object already collected, that is the last reference, and beamcoder's packetBufferFree runs
 *    there (the off-thread release the patch defers to the JavaScript thread).
 *  - `worker`: the same inside a worker_thread (beamcoder initialised in the worker's own environment), which then
 *    ends with HELD_AT_EXIT packet objects alive: their buffers are released by the worker's teardown, after the
 *    environment has been unregistered (left undeleted: `dropped`). The worker's stats, then the process's once the
 *    worker has exited.
 *  - `fmp4`: cuemux's FragmentedMp4 (src/ffmpeg/muxer.ts: av_write_frame, which drops its reference before returning).
 */
import { once } from 'node:events';
import * as path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { codecParameters, decoderConfigFromParams } from '../../src/ffmpeg/decoder';
import { openDemuxer } from '../../src/ffmpeg/demuxer';
import { FragmentedMp4, rescaleTicks } from '../../src/ffmpeg/muxer';
import { native, type NativeMuxer } from '../../src/ffmpeg/native';
import type { Packet } from '../../src/ffmpeg/types';

type Mode = 'interleaved' | 'worker' | 'fmp4';

/** Packet objects (data set from JavaScript) the worker leaves alive when it ends. */
const HELD_AT_EXIT = 10;

/** A full collection, then a turn of the event loop: Node-API runs the finalizers of collected objects in an immediate. */
async function collect(): Promise<void> {
  if (globalThis.gc === undefined) throw new Error('run with node --expose-gc');
  globalThis.gc();
  await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Write `p` through `mux` with a packet object and a payload Buffer made here, in a function of its own so that nothing
 * on the caller's stack keeps either alive after the write (the caller collects them next).
 */
async function writeOne(mux: NativeMuxer, p: Packet, from: { num: number; den: number }, to: { num: number; den: number }): Promise<void> {
  const pkt = native().packet({
    pts: p.pts === null ? null : rescaleTicks(p.pts, from, to),
    dts: p.dts === null ? null : rescaleTicks(p.dts, from, to),
    duration: rescaleTicks(p.duration, from, to),
    stream_index: p.stream,
  });
  pkt.data = Buffer.from(p.data);
  pkt.size = p.data.length;
  pkt.flags = { KEY: (p.flags & 1) !== 0, CORRUPT: false, DISCARD: false, TRUSTED: false, DISPOSABLE: false };
  await mux.writeFrame(pkt);
}

/** beamcoder's own muxer, interleaving (its default), into a plain MP4 file in `outDir`; returns the packets written. */
async function muxInterleaved(file: string, outDir: string): Promise<number> {
  const demux = await openDemuxer(file);
  const streams = demux.info.streams;
  const mux = native().muxer({ format_name: 'mp4' });
  mux.interleaved = true;
  for (const s of streams) {
    const out = mux.newStream({ name: s.codecName, time_base: [s.timeBase.num, s.timeBase.den], interleaved: true });
    codecParameters(decoderConfigFromParams(s), file, out.codecpar).codec_tag = 0;
  }
  await mux.openIO({ url: `file:${path.join(outDir, `interleaved-${process.pid}-${isMainThread ? 'main' : 'worker'}.mp4`)}` });
  await mux.writeHeader({ options: {} });
  const to = (mux.streams as Array<{ time_base: [number, number] }>).map((s) => ({ num: s.time_base[0], den: s.time_base[1] }));
  let packets = 0;
  for (let p = await demux.readPacket(); p !== null; p = await demux.readPacket()) {
    await writeOne(mux, p, streams[p.stream].timeBase, to[p.stream]);
    packets++;
    await collect();
  }
  await mux.writeTrailer();
  await demux.close();
  await collect();
  return packets;
}

/** cuemux's FragmentedMp4 over every packet of `file` (its output read and thrown away); returns the packets written. */
async function muxFragmented(file: string): Promise<number> {
  const demux = await openDemuxer(file);
  const fmp4 = await FragmentedMp4.open(demux.info.streams, file);
  fmp4.output.resume();
  const ended = once(fmp4.output, 'end');
  let packets = 0;
  for (let p = await demux.readPacket(); p !== null; p = await demux.readPacket()) {
    await fmp4.write({ stream: p.stream, pts: p.pts, dts: p.dts, duration: p.duration, key: (p.flags & 1) !== 0, data: Buffer.from(p.data) });
    packets++;
    await collect();
  }
  await fmp4.finish();
  await ended;
  await demux.close();
  await collect();
  return packets;
}

async function main(): Promise<void> {
  if (!isMainThread) {
    const { file, outDir } = workerData as { file: string; outDir: string };
    const packets = await muxInterleaved(file, outDir);
    // Packets still alive when the worker ends: their environment's teardown frees them (after its cleanup hooks).
    const held = Array.from({ length: HELD_AT_EXIT }, (_, i) => {
      const pkt = native().packet({ pts: i, dts: i, duration: 1 });
      pkt.data = Buffer.alloc(64);
      return pkt;
    });
    parentPort?.postMessage({ packets, held: held.length, stats: native().cuemuxReleaseStats() });
    return;
  }
  const [mode, file, outDir] = process.argv.slice(2) as [Mode, string, string];
  let result: Record<string, unknown>;
  if (mode === 'interleaved') {
    result = { packets: await muxInterleaved(file, outDir), stats: native().cuemuxReleaseStats() };
  } else if (mode === 'fmp4') {
    result = { packets: await muxFragmented(file), stats: native().cuemuxReleaseStats() };
  } else if (mode === 'worker') {
    // Loaded here first, so that the addon (and its counters) outlives the worker: Node unloads an addon with the
    // last environment that loaded it.
    native();
    // V8's flags are the process's: the worker has `gc` too (Node refuses --expose-gc in a worker's execArgv).
    const worker = new Worker(__filename, { workerData: { file, outDir } });
    const [message] = await once(worker, 'message') as [{ packets: number; held: number; stats: unknown }];
    const [code] = await once(worker, 'exit') as [number];
    // The counters are the process's: after the worker's environment is gone, whatever its teardown left undone.
    result = { packets: message.packets, held: message.held, stats: message.stats, workerExit: code, afterExit: native().cuemuxReleaseStats() };
  } else {
    throw new Error(`unknown mode ${String(mode)}`);
  }
  process.stdout.write(`${JSON.stringify({ mode, ...result })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exitCode = 1;
});
