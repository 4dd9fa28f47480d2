/**
 * A show console as a process of its own (forked by `ThumpConsole` in faults.ts): it sends `/cuemux/thump` to the
 * server's OSC port (argv[2]) and times each reply. A real console is another machine, so the attack's processes and
 * the test process's own work (spawning clients, generating fuzz) must not delay the console's sends and receives:
 * in one process with the fuzzer, the measured "round trip" was mostly the test's own event loop (session 8).
 * Each probe is two round trips: `/cuemux/thump` (answered by the server's OSC thread while its main thread beats) and
 * `/cuemux/status` (a show query: it runs on the server's main thread, like every show command). A reply that is an
 * error (thump: "show control stalled") counts as unanswered, as a console would take it.
 * Messages from the parent: {op:'sample', n, everyMs} → {op:'sample', rtts, statusRtts}; {op:'start', everyMs};
 * {op:'stop'} → {op:'stopped', rtts, unanswered, statusRtts, statusUnanswered, why} (why: what each unanswered thump got).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { OscPeer } from './osc';

type Command = { op: 'sample'; n: number; everyMs: number } | { op: 'start'; everyMs: number } | { op: 'stop' };

async function main(): Promise<void> {
  const port = Number(process.argv[2]);
  const peer = await OscPeer.open();

  /** Why thumps went unanswered (an error reply's message, or the timeout), for the table's note. */
  const why: string[] = [];
  const one = async (address: string): Promise<number | null> => {
    peer.clear();
    const t0 = process.hrtime.bigint();
    try {
      const reply = await peer.request(port, address, [], 5000);
      if (reply.status === 'ok') return Number(process.hrtime.bigint() - t0) / 1e6;
      if (address === '/cuemux/thump') why.push(JSON.stringify(reply).slice(0, 300));
      return null;
    } catch (e) {
      if (address === '/cuemux/thump') why.push(`no reply within 5 s (${String(e).slice(0, 200)})`);
      return null;
    }
  };

  let running: Promise<void> | null = null;
  let stop = false;
  const rtts: number[] = [];
  const statusRtts: number[] = [];
  let unanswered = 0;
  let statusUnanswered = 0;
  const send = (m: object): void => { process.send?.(m); };

  process.on('message', (m: Command) => {
    if (m.op === 'sample') {
      void (async () => {
        const out: number[] = [];
        const status: number[] = [];
        for (let i = 0; i < m.n; i++) {
          const r = await one('/cuemux/thump');
          if (r !== null) out.push(r);
          const q = await one('/cuemux/status');
          if (q !== null) status.push(q);
          await sleep(m.everyMs);
        }
        send({ op: 'sample', rtts: out, statusRtts: status });
      })();
    } else if (m.op === 'start') {
      stop = false;
      rtts.length = 0;
      statusRtts.length = 0;
      unanswered = 0;
      statusUnanswered = 0;
      why.length = 0;
      running = (async () => {
        while (!stop) {
          const r = await one('/cuemux/thump');
          if (r === null) unanswered++;
          else rtts.push(r);
          const q = await one('/cuemux/status');
          if (q === null) statusUnanswered++;
          else statusRtts.push(q);
          await sleep(m.everyMs);
        }
      })();
    } else {
      stop = true;
      void (running ?? Promise.resolve()).then(() => send({ op: 'stopped', rtts, unanswered, statusRtts, statusUnanswered, why }));
    }
  });
  process.on('disconnect', () => {
    peer.close();
    process.exit(0);
  });
  send({ op: 'ready' });
}

main().catch((e: unknown) => {
  process.stderr.write(`thump console: ${String(e)}\n`);
  process.exit(1);
});
