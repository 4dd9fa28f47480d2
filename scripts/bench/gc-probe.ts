/**
 * A measuring preload for `cuemux serve` children of the fault suite and of bench:progressive (never part of the
 * server; here, not in test/, so a benchmark may use it): with
 * `NODE_OPTIONS=--require .../gc-probe.js` and `CUEMUX_GC_PROBE=FILE`, SIGUSR2 makes the server's main thread run
 * two full garbage collections and write what is left alive to FILE as one JSON line
 * (`{ seq, rss, heapUsed, code, external, arrayBuffers, spareFrames }`, bytes; `code`: V8's code spaces, part of
 * `heapUsed`; `spareFrames`: the server's idle message buffers kept for reuse, part of `external`, see
 * spareFrameBytes in src/server/packet-stream.ts; `seq` counts the probes). A leak is memory that stays
 * alive and grows with the work: measured after a GC, a heap that grew once and has garbage to collect is not one.
 * Two collections: the first runs finalizers and weak callbacks that free more on the second.
 * Only the main thread's V8 heap is collected (the OSC thread is a second isolate; its memory is in `rss`).
 */
import { promises as fsp, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { isMainThread } from 'node:worker_threads';

const file = process.env.CUEMUX_GC_PROBE;
if (isMainThread && file !== undefined && file !== '') {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  let seq = 0;
  process.on('SIGUSR2', () => {
    gc();
    // Finalizers queued by the first collection run before the second one.
    setImmediate(() => {
      gc();
      const m = process.memoryUsage();
      seq++;
      // A heap snapshot per probe into the folder CUEMUX_GC_PROBE_SNAPSHOTS names, to find what a leak is made of.
      const snapshots = process.env.CUEMUX_GC_PROBE_SNAPSHOTS;
      if (snapshots !== undefined && snapshots !== '') v8.writeHeapSnapshot(`${snapshots}/probe-${process.pid}-${seq}.heapsnapshot`);
      // V8's compiled code (code spaces) grows and shrinks as functions are optimised and deoptimised: not data kept.
      const code = v8.getHeapSpaceStatistics().filter((sp) => sp.space_name.includes('code')).reduce((a, sp) => a + sp.space_used_size, 0);
      // Written whole, then renamed over the file: the bench reads it while the next probe may be writing.
      writeFileSync(`${file}.tmp`, `${JSON.stringify({ seq, rss: m.rss, heapUsed: m.heapUsed, code, external: m.external, arrayBuffers: m.arrayBuffers, spareFrames: spareFrames() })}\n`);
      renameSync(`${file}.tmp`, file);
    });
  });
}

/**
 * The server's spare message buffers (bytes), read through the module it loaded (the same file, so the same module
 * instance in require's cache); 0 when it has not loaded it (or is of a build without the call).
 */
function spareFrames(): number {
  const key = Object.keys(require.cache).find((k) => k.endsWith(`${path.sep}src${path.sep}server${path.sep}packet-stream.js`));
  const m = key === undefined ? undefined : require.cache[key]?.exports as { spareFrameBytes?: () => number } | undefined;
  return typeof m?.spareFrameBytes === 'function' ? m.spareFrameBytes() : 0;
}

/** One probe's record (bytes; see the module comment). */
export interface GcProbeRecord {
  seq: number;
  rss: number;
  heapUsed: number;
  code: number;
  external: number;
  arrayBuffers: number;
  /** The server's idle message buffers kept for reuse (part of `external`; absent from an older probe: 0). */
  spareFrames?: number;
}

/** The environment that gives a server the probe writing to `file` (`nodeOptions` kept). */
export function gcProbeEnv(file: string, nodeOptions = ''): Record<string, string> {
  return { CUEMUX_GC_PROBE: file, NODE_OPTIONS: `${nodeOptions} --require ${path.join(__dirname, 'gc-probe.js')}`.trim() };
}

/**
 * Make server `pid` (started with {@link gcProbeEnv}(`file`)) collect its garbage and return probe number `seq`'s
 * record (probes are numbered 1, 2, ... in the order they are asked for); rejects after `timeoutMs` without it.
 */
export async function probeAfterGc(pid: number, file: string, seq: number, timeoutMs = 30_000): Promise<GcProbeRecord> {
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await fsp.readFile(file, 'utf8').catch(() => '');
    // A line cut short (a server of an older build writing in place) is read again at the next turn.
    let r: GcProbeRecord | null = null;
    try {
      r = text === '' ? null : JSON.parse(text) as GcProbeRecord;
    } catch {
      r = null;
    }
    if (r !== null && r.seq === seq) return r;
    if (Date.now() > deadline) throw new Error(`server ${pid}'s GC probe ${seq} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Live memory of a record: V8 heap used plus external memory (Buffers), less V8's compiled code, in bytes. The
 * server's spare message buffers (`spareFrames`) stay in: bench:progressive found them 2.0 MiB at every probe of three
 * runs (session 17), not what made its live memory swing (external 14.3 then 17.7 MiB at 1/4 and 3/4 of the write
 * in one of them, the spares 2.0 MiB at both).
 */
export function liveBytes(r: GcProbeRecord): number {
  return r.heapUsed - r.code + r.external;
}
