/**
 * A test-only preload for `cuemux serve` children of the fault suite (never part of the server): with
 * `NODE_OPTIONS=--require .../gc-probe.js` and `CUEMUX_GC_PROBE=FILE`, SIGUSR2 makes the server's main thread run
 * two full garbage collections and write what is left alive to FILE as one JSON line
 * (`{ seq, rss, heapUsed, code, external, arrayBuffers }`, bytes; `code`: V8's code spaces, part of `heapUsed`;
 * `seq` counts the probes). A leak is memory that stays
 * alive and grows with the work: measured after a GC, a heap that grew once and has garbage to collect is not one.
 * Two collections: the first runs finalizers and weak callbacks that free more on the second.
 * Only the main thread's V8 heap is collected (the OSC thread is a second isolate; its memory is in `rss`).
 */
import { writeFileSync } from 'node:fs';
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
      writeFileSync(file, `${JSON.stringify({ seq, rss: m.rss, heapUsed: m.heapUsed, code, external: m.external, arrayBuffers: m.arrayBuffers })}\n`);
    });
  });
}
