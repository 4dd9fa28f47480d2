/**
 * `npm run bench:osc-flood` — does a real-time OSC thread starve the server's other work under a datagram flood?
 * The OSC thread runs at SCHED_FIFO (--osc-priority, osc-priority.ts) with a busy-share bound (osc-duty.ts); this
 * measures, from outside, a gRPC client reading every packet of a 93 MB 1080p file (bench:go's, 4,313 packets)
 * while another process floods the OSC port with 100,000 datagrams (garbage, unknown addresses and thumps: all of
 * it answered or refused by the OSC thread itself), against the same reads with no flood, on the same server in the
 * same run. Servers: OSC thread at normal priority, at SCHED_FIFO 5, both with the per-sender budgets raised so
 * every datagram is decoded (the worst case), and at SCHED_FIFO 5 with the default budgets.
 * Target: read time with the flood / without ≤ 1.5 at SCHED_FIFO, i.e. no worse than at normal priority.
 *
 *   node dist/scripts/bench-osc-flood.js [--datagrams N]     (child mode: flood <port> <n>)
 * Each server: 5 reads with no flood, then reads back to back while floods of N datagrams (default 100,000) run,
 * repeated until 5 reads ran during one; medians compared.
 */
/* eslint-disable no-console */
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { encodeMessage } from '../src/wire/osc-codec';
import { startBenchServer, runBench, withScratch } from './bench/harness';
import { largeMp4 } from './bench/index-media';
import { watchMachine } from './bench/machine';
import { Osc } from './bench/osc';
import { runTogether, spawnNode } from './bench/procs';
import { pct } from './bench/stats';

const CLIENT = path.join(__dirname, 'bench-serve-client.js');
const SELF = __filename;

/** The flood's datagrams: what a hostile or broken sender on an allowed address sends, none of it for the main thread. */
function floodDatagrams(): Buffer[] {
  const garbage = Buffer.alloc(512);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 131 + 7) & 0xff;
  return [garbage, Buffer.from(encodeMessage('/cuemux/thump', [])), Buffer.from(encodeMessage('/no/such/address', [{ type: 'i', value: 1 }])),
    Buffer.concat([Buffer.from(encodeMessage('/cuemux/thump', [])).subarray(0, 10), garbage.subarray(0, 3)])];
}

/**
 * Child: send `n` datagrams from 127.0.0.2 to `port` as fast as the socket takes them; print {sent, ms, stalled}:
 * stalled counts thump replies saying the server's main thread had not run for 250 ms (starved by the flood?).
 */
async function flood(port: number, n: number): Promise<void> {
  const s = dgram.createSocket({ type: 'udp4', sendBufferSize: 1 << 20 });
  await new Promise<void>((r) => s.bind(0, '127.0.0.2', r));
  let stalled = 0;
  s.on('message', (m: Buffer) => { if (m.includes('show control stalled')) stalled++; });
  const kinds = floodDatagrams();
  const t = process.hrtime.bigint();
  let sent = 0;
  // 64 in flight: the socket's send queue stays short, so the rate is the kernel's, not Node's buffering.
  await new Promise<void>((resolve) => {
    let inFlight = 0;
    const pump = (): void => {
      while (inFlight < 64 && sent < n) {
        inFlight++;
        s.send(kinds[sent++ % kinds.length], port, '127.0.0.1', () => {
          inFlight--;
          if (sent < n) pump();
          else if (inFlight === 0) resolve();
        });
      }
    };
    pump();
  });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  // Replies still on their way.
  await new Promise((r) => setTimeout(r, 200));
  s.close();
  process.stdout.write(`${JSON.stringify({ sent, ms, stalled })}\n`);
}

interface ReadResult { packets: number; bytes: number; ms: number }

/** Reads measured per server and condition (at least; during a flood, as many as fit while it lasts, floods repeated). */
const READS = 5;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'flood') return flood(Number(argv[1]), Number(argv[2]));
  const at = argv.indexOf('--datagrams');
  const datagrams = at >= 0 ? Number(argv[at + 1]) : 100_000;
  const machine = watchMachine();
  console.log(machine.startLine);
  const file = await largeMp4();
  const raised = ['--osc-rate-messages', '100000000', '--osc-rate-bytes', '100000000000'];
  const configs = [
    { name: 'OSC thread normal priority, budgets raised', args: ['--osc-priority', '0', ...raised] },
    { name: 'OSC thread SCHED_FIFO 5, budgets raised', args: ['--osc-priority', '5', ...raised] },
    { name: 'OSC thread SCHED_FIFO 5, default budgets', args: ['--osc-priority', '5'] },
  ];
  const rows: string[] = [];
  for (const config of configs) {
    await withScratch('cuemux-bench-osc-flood-', async (dir) => {
      const socket = path.join(dir, 's.sock');
      const server = await startBenchServer(['--socket', socket, '--media-root', path.dirname(file), '--cache-dir', path.join(dir, 'cache'),
        '--state-file', 'none', '--osc-port', '0', ...config.args], { logLevel: 'error' });
      try {
        const read = async (): Promise<number> => (await runTogether<ReadResult>([[CLIENT, 'read', `unix:${socket}`, path.basename(file)]])).results[0].ms;
        await read(); // warm: index built, pages cached
        const quiet: number[] = [];
        for (let i = 0; i < READS; i++) quiet.push(await read());
        const flooded: number[] = [];
        const fl = { sent: 0, ms: 0, stalled: 0, floods: 0 };
        // Reads back to back while a flood lasts; floods of `datagrams` repeated until READS reads ran during one.
        while (flooded.length < READS) {
          const f = spawnNode([SELF, 'flood', String(server.oscPort), String(datagrams)], ['ignore', 'pipe', 'inherit']);
          let out = '';
          f.child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
          let done = false;
          void f.exited.then(() => { done = true; });
          while (!done) flooded.push(await read());
          await f.exited;
          const r = JSON.parse(out) as { sent: number; ms: number; stalled: number };
          fl.sent += r.sent;
          fl.ms += r.ms;
          fl.stalled += r.stalled;
          fl.floods++;
        }
        const osc = await Osc.open(server.oscPort as number);
        const status = await osc.request('/cuemux/status').finally(() => osc.close());
        const thread = ((status.data as Record<string, unknown>).osc as Record<string, unknown>).thread as Record<string, unknown>;
        const q = pct(quiet, 50);
        const w = pct(flooded, 50);
        rows.push(`| ${config.name} | ${q.toFixed(0)} | ${w.toFixed(0)} (${flooded.length} reads) | ${(w / q).toFixed(2)}× | ${fl.sent} in ${(fl.ms / 1000).toFixed(1)} s `
          + `(${fl.floods} flood${fl.floods === 1 ? '' : 's'}) | ${fl.stalled} | ${String(thread.realtimePriority)} | ${JSON.stringify(thread.busySleeps)} |`);
      } finally {
        await server.stop();
      }
    });
  }
  console.log(`\n| server | read ms, no flood (median of ${READS}) | read ms during the flood (median) | ratio (target ≤ 1.5) | datagrams sent `
    + '| thumps answered "stalled" (main thread not run for 250 ms) | OSC thread SCHED_FIFO | its busy-bound sleeps |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`\n${machine.endLine()}`);
}

runBench('bench:osc-flood', main);
